package veth

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc/fifo"
	gvlink "gvisor.dev/gvisor/pkg/tcpip/link/xdp"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	gvxsk "gvisor.dev/gvisor/pkg/xdp"
	gvbpf "gvisor.dev/gvisor/runsc/sandbox/bpf"
)

// gVisor's link/xdp as runsc sets it up, and what it expects around it.
//
// gvisor.dev/gvisor/pkg/tcpip/link/xdp.New takes an AF_XDP socket, registers
// a 2 MB UMEM (1024 frames of 2048 bytes, 512 descriptors per ring) and mmaps
// the rings (pkg/xdp.NewFromSocket). It binds the socket only when
// Options.Bind is set, and then without XDP_USE_NEED_WAKEUP; its TX kick
// (pkg/xdp TXQueue.kick) sends only when the kernel raised
// XDP_RING_NEED_WAKEUP on the TX ring, a flag the kernel sets only for
// sockets bound with XDP_USE_NEED_WAKEUP. Bound by the endpoint itself, the
// socket would therefore never transmit in copy mode (the only mode veth
// has). runsc's default path (runsc/sandbox/xdp.go, BindRunsc) instead
// creates the endpoint with Bind false and binds the socket from the runsc
// process with XDP_USE_NEED_WAKEUP (its default
// --EXPERIMENTAL-xdp-need-wakeup=true) and no mode flag (zero-copy if the
// driver has it, else copy). We do the same.
//
// The endpoint loads no XDP program: runsc attaches its own, the compiled
// object embedded in gvisor.dev/gvisor/runsc/sandbox/bpf (AFXDPProgram,
// af_xdp.ebpf.c), which is
//
//	return bpf_redirect_map(&sock_map, ctx->rx_queue_index, XDP_PASS);
//
// with sock_map an XSKMAP of one entry. runsc puts its one socket at key 0
// and binds it to queue 0; frames arriving on any other RX queue find no
// socket and go to the kernel. So gVisor's link sees only queue 0: the veth
// for it is made with one queue (numrxqueues 1), as runsc assumes ("there's
// only one queue ... on gVNIC instances"). We load that very object with
// cilium/ebpf and attach it through a BPF link (runsc uses
// link.AttachRawLink; the same kernel attachment), so it goes away with the
// process or the veth.
//
// runsc also puts a fifo queueing discipline (gVisor's
// pkg/tcpip/link/qdisc/fifo, GOMAXPROCS queues of 1000 packets, batches of
// up to 47 packets per WritePackets) in front of the link by default
// (--qdisc=fifo). adapter.New has no option for a NIC queueing discipline,
// so fifoLink below does the same job as a LinkEndpoint wrapper.
//
// Closing: the endpoint cannot be detached from a stack (runsc never removes
// the NIC), because of two defects in this version:
//   - Attach takes ep.mu and, for a nil dispatcher, calls IsAttached, which
//     takes ep.mu again (RLock): Attach(nil), which RemoveNIC calls, deadlocks
//     at once;
//   - were it to get further, its RX goroutine would never exit: dispatch
//     returns (true, nil) when the stop eventfd fires and the loop around it
//     only exits on (false, _) or an error, so it would spin while Attach(nil)
//     waited for it.
// Its Close does nothing either (the socket stays open, the UMEM mapped). So
// gvShim swallows Attach(nil), and env.close stops the RX goroutine from the
// outside: it detaches the program (no new frames), lets the ring drain,
// puts a hung-up pipe on the socket's descriptor number (gvLink.shutdown,
// dup3), then deletes the veth, whose unregistration raises ENETDOWN on the
// socket and so wakes the goroutine's ppoll; the ppoll re-polls the
// descriptor, now the pipe, sees POLLHUP, and dispatch returns an error
// (ECONNRESET), which ends the goroutine; the stack's RemoveNIC then finds it
// gone. The socket's rings and UMEM stay mapped (nothing exported can unmap
// them): about 2.1 MB per endpoint, until the process exits.

// gvLink is gVisor's link/xdp on one interface queue 0, with runsc's XDP
// program attached.
type gvLink struct {
	ep   stack.LinkEndpoint
	fd   int
	prog *ebpf.Program
	xsks *ebpf.Map
	lnk  link.Link

	shutOnce sync.Once
}

// openGVLink sets up gVisor's link/xdp on ifindex (with MAC mac) in the
// calling thread's network namespace, the way runsc does. The caller closes
// it with shutdown before closing the stack built on it, then close.
func openGVLink(ifindex int, mac []byte) (_ *gvLink, err error) {
	g := &gvLink{fd: -1}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	g.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: AF_XDP socket: %w", err)
	}
	g.ep, err = gvlink.New(&gvlink.Options{
		FD:             g.fd,
		Address:        tcpip.LinkAddress(mac),
		InterfaceIndex: ifindex,
		Bind:           false, // bound below, as runsc does
	})
	if err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: %w", err)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(gvbpf.AFXDPProgram))
	if err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: runsc's XDP program: %w", err)
	}
	var objs struct {
		Program *ebpf.Program `ebpf:"xdp_prog"`
		SockMap *ebpf.Map     `ebpf:"sock_map"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: load runsc's XDP program: %w", err)
	}
	g.prog, g.xsks = objs.Program, objs.SockMap
	if err := gvxsk.Bind(g.fd, uint32(ifindex), 0, true); err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: bind to ifindex %d queue 0 with XDP_USE_NEED_WAKEUP: %w", ifindex, err)
	}
	if err := g.xsks.Update(uint32(0), uint32(g.fd), ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: put the socket in sock_map: %w", err)
	}
	g.lnk, err = link.AttachXDP(link.XDPOptions{Program: g.prog, Interface: ifindex})
	if err != nil {
		return nil, fmt.Errorf("gvisor link/xdp: attach runsc's XDP program: %w", err)
	}
	return g, nil
}

// stats is the kernel's XDP_STATISTICS for the socket.
func (g *gvLink) stats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	n := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(g.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return st, errno
	}
	return st, nil
}

// detach removes the XDP program: from then on no frame reaches the socket.
func (g *gvLink) detach() {
	if g.lnk != nil {
		g.lnk.Close()
		g.lnk = nil
	}
}

// shutdown makes the endpoint's RX goroutine exit at its next poll (see the
// comment at the top of this file). Call it after detach and before
// deleting the veth, whose unregistration wakes the goroutine.
func (g *gvLink) shutdown() error {
	var err error
	g.shutOnce.Do(func() {
		var p [2]int
		if err = unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return
		}
		unix.Close(p[1]) // the read end now reports POLLHUP
		// dup3 closes the AF_XDP descriptor and reuses its number; the
		// socket lives on in its ring mappings.
		err = unix.Dup3(p[0], g.fd, unix.O_CLOEXEC)
		unix.Close(p[0])
	})
	return err
}

// close releases the program, the map and the descriptor.
func (g *gvLink) close() {
	g.detach()
	if g.prog != nil {
		g.prog.Close()
		g.prog = nil
	}
	if g.xsks != nil {
		g.xsks.Close()
		g.xsks = nil
	}
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
}

// fifoLink is a link endpoint with gVisor's fifo queueing discipline in
// front of it, as runsc's NIC has (stack.NICOptions.QDisc): each packet the
// stack writes is queued, and the discipline's goroutines write batches of
// up to fifo.BatchSize to the link.
type fifoLink struct {
	stack.LinkEndpoint
	q         stack.QueueingDiscipline
	closeOnce sync.Once
}

// fifoQueueLen is runsc's queue length per dispatcher.
const fifoQueueLen = 1000

func newFIFOLink(lower stack.LinkEndpoint, queues int) *fifoLink {
	return &fifoLink{LinkEndpoint: lower, q: fifo.New(lower, queues, fifoQueueLen)}
}

// WritePackets implements stack.LinkWriter: it queues each packet.
func (f *fifoLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if err := f.q.WritePacket(pkt); err != nil {
			if n == 0 {
				return 0, err
			}
			return n, nil
		}
		n++
	}
	return n, nil
}

// closeQueue stops the discipline's goroutines (idempotent).
func (f *fifoLink) closeQueue() { f.closeOnce.Do(f.q.Close) }

// Attach implements stack.LinkEndpoint; Attach(nil) (RemoveNIC) stops the
// queue first so nothing is written to a link going away.
func (f *fifoLink) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		f.closeQueue()
	}
	f.LinkEndpoint.Attach(d)
}

// Close implements stack.LinkEndpoint.
func (f *fifoLink) Close() {
	f.closeQueue()
	f.LinkEndpoint.Close()
}

// gvShim is gVisor's endpoint with Attach(nil) dropped (see above).
type gvShim struct{ stack.LinkEndpoint }

// Attach implements stack.LinkEndpoint.
func (g gvShim) Attach(d stack.NetworkDispatcher) {
	if d != nil {
		g.LinkEndpoint.Attach(d)
	}
}

var errGVLinkStuck = errors.New("gvisor link/xdp: RX goroutine did not stop")
