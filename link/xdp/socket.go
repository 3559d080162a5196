package xdp

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xdpPacketHeadroom is the kernel's XDP_PACKET_HEADROOM: the bytes it keeps
// in front of each received frame in a UMEM chunk (umem headroom 0).
const xdpPacketHeadroom = 256

// sockConfig is what one socket is built with.
type sockConfig struct {
	ifindex    int
	ifname     string
	queue      int
	frameSize  uint32
	numFrames  uint32 // per socket: rxFrames + txFrames
	rxFrames   uint32 // frames kept in FILL/RX
	ringSize   uint32 // every ring
	mode       Mode   // Copy or ZeroCopy (Auto resolved by the caller)
	needWakeup bool
}

// xsk is one AF_XDP socket bound to one queue, with its own UMEM.
//
// The RX side (fill, rx) is owned by the queue's goroutine. The TX side
// (tx, comp, txFree) is guarded by txMu, so several senders may share it.
type xsk struct {
	fd         int
	queue      int
	umem       []byte
	frameSize  uint32
	zeroCopy   bool
	needWakeup bool // bound with XDP_USE_NEED_WAKEUP

	maps [4][]byte // fill, comp, rx, tx mappings

	// RX side: owned by the queue goroutine.
	fill    prodRing
	fillQ   []uint64
	rx      consRing
	rxQ     []unix.XDPDesc
	rxAddrs []uint64 // scratch: frames to refill

	// TX side.
	txMu   sync.Mutex
	closed bool // under txMu
	tx     prodRing
	txQ    []unix.XDPDesc
	comp   consRing
	compQ  []uint64
	txFree []uint64 // frames not in flight, a stack

	stats queueCounters
}

// openSocket creates, maps and binds one AF_XDP socket.
func openSocket(c sockConfig) (_ *xsk, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, sockErr("create AF_XDP socket", err)
	}
	x := &xsk{fd: fd, queue: c.queue, frameSize: c.frameSize}
	defer func() {
		if err != nil {
			x.close()
		}
	}()

	size := int(c.frameSize) * int(c.numFrames)
	x.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("xdp: map %d-byte UMEM: %w", size, err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))),
		Len:  uint64(size),
		Size: c.frameSize,
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, sockErr("register UMEM (XDP_UMEM_REG)", err)
	}
	for _, o := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o, int(c.ringSize)); err != nil {
			return nil, sockErr(fmt.Sprintf("set ring size %d (option %d)", c.ringSize, o), err)
		}
	}
	var off unix.XDPMmapOffsets
	offLen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&offLen)), 0); e != 0 {
		return nil, sockErr("read ring offsets (XDP_MMAP_OFFSETS)", e)
	}
	if offLen != uint32(unsafe.Sizeof(off)) {
		return nil, fmt.Errorf("xdp: kernel ring offsets without flags (%d bytes): need Linux 5.4 or later", offLen)
	}
	type ringMap struct {
		pgoff int64
		off   unix.XDPRingOffset
		entry uintptr
	}
	rm := [4]ringMap{
		{unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 8},
		{unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, 8},
		{unix.XDP_PGOFF_RX_RING, off.Rx, unsafe.Sizeof(unix.XDPDesc{})},
		{unix.XDP_PGOFF_TX_RING, off.Tx, unsafe.Sizeof(unix.XDPDesc{})},
	}
	for i, m := range rm {
		x.maps[i], err = unix.Mmap(fd, m.pgoff, ringBytes(m.off, c.ringSize, m.entry),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, sockErr("map ring", err)
		}
	}
	x.fill = prodRing{ringHead: newHead(x.maps[0], off.Fr, c.ringSize)}
	x.fillQ = addrSlots(x.maps[0], off.Fr, c.ringSize)
	x.comp = consRing{ringHead: newHead(x.maps[1], off.Cr, c.ringSize)}
	x.compQ = addrSlots(x.maps[1], off.Cr, c.ringSize)
	x.rx = consRing{ringHead: newHead(x.maps[2], off.Rx, c.ringSize)}
	x.rxQ = descSlots(x.maps[2], off.Rx, c.ringSize)
	x.tx = prodRing{ringHead: newHead(x.maps[3], off.Tx, c.ringSize)}
	x.txQ = descSlots(x.maps[3], off.Tx, c.ringSize)

	// Frames [0, rxFrames) start in FILL, the rest are free for TX.
	n := x.fill.free(c.rxFrames)
	if n < c.rxFrames {
		return nil, fmt.Errorf("xdp: fill ring has room for %d of %d frames", n, c.rxFrames)
	}
	first := x.fill.reserve(c.rxFrames)
	for i := uint32(0); i < c.rxFrames; i++ {
		x.fillQ[(first+i)&x.fill.mask] = uint64(i) * uint64(c.frameSize)
	}
	x.fill.submit()
	x.txFree = make([]uint64, 0, c.numFrames-c.rxFrames)
	for i := c.numFrames - 1; i >= c.rxFrames; i-- {
		x.txFree = append(x.txFree, uint64(i)*uint64(c.frameSize))
	}
	x.rxAddrs = make([]uint64, 0, rxBurst)

	var flags uint16 = unix.XDP_COPY
	if c.mode == ZeroCopy {
		flags = unix.XDP_ZEROCOPY
	}
	if c.needWakeup {
		flags |= unix.XDP_USE_NEED_WAKEUP
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(c.ifindex), QueueID: uint32(c.queue)}
	if err := bindRetry(fd, sa); err != nil {
		return nil, bindErr(c, err)
	}
	if c.mode != ZeroCopy {
		// Let one sendto send a whole ring rather than the default
		// budget of 32 (Linux 6.16+; older kernels keep 32 and the
		// sender kicks again).
		unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(c.ringSize))
	}
	x.zeroCopy = c.mode == ZeroCopy
	x.needWakeup = c.needWakeup
	return x, nil
}

// close unmaps and closes everything; the caller has stopped every user.
func (x *xsk) close() {
	for i, m := range x.maps {
		if m != nil {
			unix.Munmap(m)
			x.maps[i] = nil
		}
	}
	if x.fd >= 0 {
		unix.Close(x.fd)
		x.fd = -1
	}
	if x.umem != nil {
		unix.Munmap(x.umem)
		x.umem = nil
	}
}

// kernelStats reads XDP_STATISTICS.
func (x *xsk) kernelStats() (unix.XDPStatistics, error) {
	var s unix.XDPStatistics
	l := uint32(unsafe.Sizeof(s))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&s)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return s, os.NewSyscallError("getsockopt XDP_STATISTICS", e)
	}
	return s, nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, l uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), l, 0); e != 0 {
		return e
	}
	return nil
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// sockErr wraps a socket set-up error with the fix for the usual causes.
func sockErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("xdp: %s: %w (AF_XDP needs CAP_NET_ADMIN and CAP_BPF: run as root or grant them, e.g. setcap cap_net_admin,cap_bpf+ep)", what, err)
	case errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("xdp: %s: %w (kernel without AF_XDP: needs CONFIG_XDP_SOCKETS=y, Linux 5.4 or later)", what, err)
	case errors.Is(err, unix.ENOMEM), errors.Is(err, unix.ENOBUFS):
		return fmt.Errorf("xdp: %s: %w (UMEM too large for RLIMIT_MEMLOCK: raise the limit or lower NumFrames/FrameSize)", what, err)
	}
	return fmt.Errorf("xdp: %s: %w", what, err)
}

// bindErr explains a failed bind.
func bindErr(c sockConfig, err error) error {
	at := fmt.Sprintf("bind AF_XDP socket to %s queue %d", c.ifname, c.queue)
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("xdp: %s: %w (the queue already has an AF_XDP socket, from another endpoint or process: close it or choose other Queues)", at, err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("xdp: %s: %w (the driver does not support %v: use Mode Copy or Auto)", at, err, c.mode)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("xdp: %s: %w (queue out of range for the interface, or flags unsupported by this kernel)", at, err)
	}
	return sockErr(at, err)
}

// bindRetryFor bounds how long bind waits for a queue that was just
// released: the kernel frees a closed AF_XDP socket's hold on its queue
// asynchronously, so binding right after another socket's Close can see
// EBUSY for a moment. A queue really held by a live socket still fails,
// after this delay.
const bindRetryFor = 300 * time.Millisecond

func bindRetry(fd int, sa *unix.SockaddrXDP) error {
	deadline := time.Now().Add(bindRetryFor)
	for {
		err := unix.Bind(fd, sa)
		if err != unix.EBUSY || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
