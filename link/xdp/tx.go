package xdp

import (
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// maxKicks bounds the sendto calls one burst may take: in copy mode the
// kernel sends at most its TX budget (32 by default) per call and returns
// EAGAIN while descriptors remain.
const maxKicks = 64

// txSock picks the socket a burst leaves on: by flow hash, so one
// connection's packets stay in order on one queue and the shards' bursts
// spread over the sockets' locks.
func (ep *Endpoint) txSock(hash uint32) *xsk {
	return ep.socks[hash%uint32(len(ep.socks))]
}

// WritePackets implements stack.LinkEndpoint: it copies the packets (link
// header included) into free UMEM frames of one socket, publishes them
// with one TX ring update and wakes the kernel. Packets beyond the free
// frames or descriptors are dropped and counted (TxRingFull).
func (ep *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	ps := pkts.AsSlice()
	if len(ps) == 0 {
		return 0, nil
	}
	x := ep.txSock(ps[0].Hash)
	x.txMu.Lock()
	defer x.txMu.Unlock()
	if x.closed {
		return 0, &tcpip.ErrClosedForSend{}
	}
	c := &x.stats
	x.reclaim()
	want := uint32(len(ps))
	room := min(uint32(len(x.txFree)), x.tx.free(want))
	if room < want {
		// Let the kernel finish what it holds, then look again.
		x.kick()
		x.reclaim()
		room = min(uint32(len(x.txFree)), x.tx.free(want))
	}
	n := min(want, room)
	var queued uint32
	var bytes uint64
	for _, pkt := range ps[:n] {
		size := pkt.Size()
		if size > int(x.frameSize) {
			c.txOversize.inc()
			continue
		}
		addr := x.txFree[len(x.txFree)-1]
		x.txFree = x.txFree[:len(x.txFree)-1]
		frame := x.umem[addr : addr+uint64(x.frameSize)]
		off := copyPacket(frame, pkt)
		x.txQ[(x.tx.cachedProd+queued)&x.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(off)}
		queued++
		bytes += uint64(off)
	}
	if dropped := want - n; dropped > 0 {
		c.txRingFull.add(uint64(dropped))
	}
	if queued == 0 {
		return 0, &tcpip.ErrNoBufferSpace{}
	}
	x.tx.reserve(queued)
	x.tx.submit()
	x.kick()
	c.txFrames.add(uint64(queued))
	c.txBytes.add(bytes)
	c.txBursts.inc()
	c.txBatch[bucket(int(queued))].inc()
	return int(n), nil
}

// reclaim moves completed TX frames back to the free list, in bulk.
func (x *xsk) reclaim() {
	n, first := x.comp.peek(x.comp.mask + 1)
	if n == 0 {
		return
	}
	for i := uint32(0); i < n; i++ {
		x.txFree = append(x.txFree, x.compQ[(first+i)&x.comp.mask])
	}
	x.comp.release(n)
}

// kick wakes the kernel to send what the TX ring holds: always in copy mode
// (the syscall does the sending), when the ring asks for it with
// need_wakeup. In copy mode one call sends at most the kernel's TX budget,
// so it repeats while the kernel says EAGAIN and descriptors remain.
func (x *xsk) kick() {
	if x.zeroCopy && x.needWakeup && !x.tx.needWakeup() {
		return
	}
	c := &x.stats
	for range maxKicks {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(x.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		c.txKicks.inc()
		switch e {
		case 0:
			return
		case unix.EAGAIN, unix.EBUSY, unix.EINTR:
			// EAGAIN: budget spent or completion ring full; EBUSY:
			// the driver dropped one frame. Go on while the kernel
			// has not consumed everything.
			x.reclaim()
			if !x.zeroCopy && x.tx.pending() == 0 {
				return
			}
			if x.zeroCopy {
				return
			}
		default:
			c.txKickErrors.inc()
			return
		}
	}
}

// copyPacket copies pkt's bytes (from its first header on) into frame,
// without building a slice of slices.
func copyPacket(frame []byte, pkt *stack.PacketBuffer) int {
	views, skip := pkt.AsViewList()
	off := 0
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		off += copy(frame[off:], b[skip:])
		skip = 0
	}
	return off
}
