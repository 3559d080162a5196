// Package xdp is an AF_XDP link endpoint (stack.LinkEndpoint) for gVisor's
// tcpip stack.
//
// New binds one AF_XDP socket to each chosen RX queue of an interface (all
// of them by default), each with its own UMEM and four rings, and attaches
// an XDP program that redirects to those sockets only the frames meant for
// the stack: IPv4/IPv6 to one of Options.Addresses, ARP for one of them,
// IPv6 neighbor solicitations for one of them. Everything else goes on to
// the kernel, so the host keeps using the interface. The program is
// attached through a BPF link, so it goes away with the process even after
// a crash.
//
// Each queue has one goroutine that takes bursts of up to 64 frames off
// its RX ring, copies them out of UMEM into pooled gVisor buffers, hands
// the frames back to the FILL ring in one go, and delivers the burst to the
// stack. WritePackets copies a batch of packets into free UMEM frames of
// one socket (picked by the packets' flow hash), publishes them with one
// store to the TX ring and kicks the kernel once (copy mode always needs
// the kick; with need_wakeup in zero-copy only when the ring asks).
//
// Queue i and shard i. Options.Steer (batchtcp.Protocol.SteerIP) tells the
// endpoint which shard owns a frame's flow; today the endpoint only counts
// frames per shard and how many arrived on the queue of the same number
// (Stats().Queues[i].SteerLocal). On a real NIC with a symmetric RSS key a
// flow stays on one queue and queue i -> shard i can hold. On veth it does
// not: the receiving queue is picked by the sender's socket hash, the two
// directions hash independently and the kernel re-draws the hash on every
// retransmission timeout, so one flow lands on several queues. The stack
// therefore re-hashes every segment to its shard (batchtcp does), and the
// per-queue counts measure how much locality there is to gain.
package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Mode is the AF_XDP bind mode.
type Mode int

const (
	// Auto tries zero-copy and falls back to copy mode.
	Auto Mode = iota
	// Copy forces XDP_COPY: the kernel copies frames into and out of UMEM
	// (the only mode veth has).
	Copy
	// ZeroCopy forces XDP_ZEROCOPY; New fails if the driver lacks it.
	ZeroCopy
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Copy:
		return "copy"
	case ZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults.
const (
	// DefaultFrameSize is the UMEM frame size: 2048 holds a 1500-byte MTU
	// frame after the kernel's 256-byte XDP headroom.
	DefaultFrameSize = 2048
	// DefaultRingSize is the size of each of the four rings.
	DefaultRingSize = 2048
	// rxBurst is the most frames one RX pass takes from the ring.
	rxBurst = 64
)

// Options configures New.
type Options struct {
	// Interface is the interface name, in the calling thread's network
	// namespace.
	Interface string
	// Queues are the RX queues to bind; nil means all of them.
	Queues []int
	// Addresses are the stack's addresses: frames for them (and ARP/ND
	// about them) go to the stack, the rest to the kernel.
	Addresses []netip.Addr
	// FrameSize is the UMEM frame size, 2048 or 4096 (default 2048).
	FrameSize int
	// NumFrames is the UMEM frames per queue, half for RX and half for TX
	// (default 2*RingSize).
	NumFrames int
	// RingSize is the entries in each ring, a power of two (default 2048).
	RingSize int
	// Mode picks copy or zero-copy (default Auto).
	Mode Mode
	// NeedWakeup asks for XDP_USE_NEED_WAKEUP; nil means use it where the
	// kernel accepts it.
	NeedWakeup *bool
	// Steer maps an IP packet to the shard that owns its flow
	// (batchtcp.Protocol.SteerIP). Optional; counted per queue.
	Steer func(ipPacket []byte) (shard int, ok bool)
	// TrustRXChecksum sets CapabilityRXChecksumOffload: the stack does not
	// verify TCP/UDP checksums of received frames. Needed on veth when the
	// peer has TX checksum offload on (its frames carry partial checksums).
	TrustRXChecksum bool
	// MTU is the link MTU; 0 means the interface's.
	MTU uint32
}

// Endpoint is an AF_XDP link endpoint. It implements stack.LinkEndpoint.
type Endpoint struct {
	ifc     *ifaceInfo
	socks   []*xsk
	prog    *program
	mode    Mode // resolved: Copy or ZeroCopy
	steer   atomic.Pointer[func([]byte) (int, bool)]
	caps    stack.LinkEndpointCapabilities
	stopEFD int // eventfd: readable once the RX goroutines must stop

	mtu  atomic.Uint32
	disp atomic.Pointer[stack.NetworkDispatcher]

	mu       sync.Mutex
	addr     tcpip.LinkAddress // under mu
	started  bool              // under mu
	stopped  bool              // under mu
	onClose  func()            // under mu
	wg       sync.WaitGroup
	closeOne sync.Once
}

var _ stack.LinkEndpoint = (*Endpoint)(nil)

// New opens the sockets, loads and attaches the program. It does all
// namespace-dependent work on the calling goroutine's thread, so a caller
// inside a network namespace (runtime.LockOSThread + setns) gets sockets
// and an attachment there; the goroutines started later by Attach need no
// namespace.
func New(opts Options) (_ *Endpoint, err error) {
	o, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	ifc, err := lookupIface(o.Interface)
	if err != nil {
		return nil, err
	}
	mtu := o.MTU
	if mtu == 0 {
		mtu = ifc.mtu
	}
	if room := uint32(o.FrameSize) - xdpPacketHeadroom - header.EthernetMinimumSize; mtu > room {
		return nil, fmt.Errorf("xdp: MTU %d does not fit a %d-byte frame (room for %d after %d bytes of XDP headroom and the Ethernet header): set FrameSize 4096 or lower the MTU (ip link set dev %s mtu %d)",
			mtu, o.FrameSize, room, xdpPacketHeadroom, ifc.name, room)
	}
	queues := o.Queues
	if queues == nil {
		for q := 0; q < ifc.rxQueues; q++ {
			queues = append(queues, q)
		}
	}
	seen := map[int]bool{}
	for _, q := range queues {
		if q < 0 || q >= ifc.rxQueues {
			return nil, fmt.Errorf("xdp: queue %d out of range: %s has %d RX queues (0-%d)", q, ifc.name, ifc.rxQueues, ifc.rxQueues-1)
		}
		if seen[q] {
			return nil, fmt.Errorf("xdp: queue %d listed twice", q)
		}
		seen[q] = true
	}
	if len(queues) == 0 {
		return nil, errors.New("xdp: no queues to bind")
	}

	ep := &Endpoint{ifc: ifc, addr: tcpip.LinkAddress(ifc.mac), stopEFD: -1,
		caps: stack.CapabilityResolutionRequired}
	if o.TrustRXChecksum {
		ep.caps |= stack.CapabilityRXChecksumOffload
	}
	ep.mtu.Store(mtu)
	ep.SetSteer(o.Steer)
	defer func() {
		if err != nil {
			ep.release()
		}
	}()
	ep.stopEFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("xdp: eventfd: %w", err)
	}
	ep.prog, err = loadProgram(ifc.rxQueues, o.Addresses)
	if err != nil {
		return nil, err
	}
	numFrames := uint32(o.NumFrames)
	rxFrames := min(numFrames/2, uint32(o.RingSize))
	txFrames := min(numFrames-rxFrames, uint32(o.RingSize))
	for _, q := range queues {
		c := sockConfig{
			ifindex: ifc.index, ifname: ifc.name, queue: q,
			frameSize: uint32(o.FrameSize), numFrames: rxFrames + txFrames, rxFrames: rxFrames,
			ringSize: uint32(o.RingSize), mode: o.Mode,
		}
		x, err := openResolved(c, o.NeedWakeup)
		if err != nil {
			return nil, err
		}
		ep.socks = append(ep.socks, x)
		if err := ep.prog.setSocket(q, x.fd); err != nil {
			return nil, err
		}
	}
	ep.mode = Copy
	if ep.socks[0].zeroCopy {
		ep.mode = ZeroCopy
	}
	// Checked after binding, so a queue held by another AF_XDP socket is
	// reported as such (EBUSY) first.
	if ifc.xdpProg != 0 {
		return nil, fmt.Errorf("xdp: %s already has an XDP program (id %d): remove it with `ip link set dev %s xdp off`, or close the endpoint that owns it", ifc.name, ifc.xdpProg, ifc.name)
	}
	if err := ep.prog.attach(ifc.index, ifc.name); err != nil {
		return nil, err
	}
	return ep, nil
}

// openResolved opens one socket, resolving Auto mode and an unset
// NeedWakeup by trying the better setting first.
func openResolved(c sockConfig, needWakeup *bool) (*xsk, error) {
	modes := []Mode{c.mode}
	if c.mode == Auto {
		modes = []Mode{ZeroCopy, Copy}
	}
	wakes := []bool{true, false}
	if needWakeup != nil {
		wakes = []bool{*needWakeup}
	}
	var first error
	for _, m := range modes {
		for _, w := range wakes {
			c.mode, c.needWakeup = m, w
			x, err := openSocket(c)
			if err == nil {
				return x, nil
			}
			if first == nil || (errors.Is(first, unix.EOPNOTSUPP) && !errors.Is(err, unix.EOPNOTSUPP)) {
				first = err
			}
			// Only a refused mode or flag is worth another try.
			if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPROTONOSUPPORT) {
				return nil, err
			}
		}
	}
	return nil, first
}

func withDefaults(o Options) (Options, error) {
	if o.Interface == "" {
		return o, errors.New("xdp: Options.Interface is empty")
	}
	if len(o.Addresses) == 0 {
		return o, errors.New("xdp: Options.Addresses is empty: the program would send nothing to the stack")
	}
	var n4, n6 int
	for _, a := range o.Addresses {
		if a.Unmap().Is4() {
			n4++
		} else if a.Is6() {
			n6++
		} else {
			return o, fmt.Errorf("xdp: invalid address %v", a)
		}
	}
	if n4 > maxAddrs || n6 > maxAddrs {
		return o, fmt.Errorf("xdp: at most %d addresses per family", maxAddrs)
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.FrameSize != 2048 && o.FrameSize != 4096 {
		return o, fmt.Errorf("xdp: FrameSize %d: must be 2048 or 4096", o.FrameSize)
	}
	if o.RingSize == 0 {
		o.RingSize = DefaultRingSize
	}
	if o.RingSize < 64 || o.RingSize&(o.RingSize-1) != 0 {
		return o, fmt.Errorf("xdp: RingSize %d: must be a power of two, at least 64", o.RingSize)
	}
	if o.NumFrames == 0 {
		o.NumFrames = 2 * o.RingSize
	}
	if o.NumFrames < 2*rxBurst {
		return o, fmt.Errorf("xdp: NumFrames %d: need at least %d", o.NumFrames, 2*rxBurst)
	}
	if o.Mode < Auto || o.Mode > ZeroCopy {
		return o, fmt.Errorf("xdp: unknown %v", o.Mode)
	}
	return o, nil
}

// SetSteer replaces Options.Steer (nil turns steering off), for owners
// that learn the function only after the stack is built on the endpoint.
func (ep *Endpoint) SetSteer(f func(ipPacket []byte) (shard int, ok bool)) {
	if f == nil {
		ep.steer.Store(nil)
		return
	}
	ep.steer.Store(&f)
}

// Mode reports the bind mode in use (Copy or ZeroCopy).
func (ep *Endpoint) Mode() Mode { return ep.mode }

// Queues lists the bound RX queues.
func (ep *Endpoint) Queues() []int {
	qs := make([]int, len(ep.socks))
	for i, x := range ep.socks {
		qs[i] = x.queue
	}
	return qs
}

// MTU implements stack.LinkEndpoint.
func (ep *Endpoint) MTU() uint32 { return ep.mtu.Load() }

// SetMTU implements stack.LinkEndpoint. Values that do not fit a frame are
// ignored.
func (ep *Endpoint) SetMTU(mtu uint32) {
	if mtu+xdpPacketHeadroom+header.EthernetMinimumSize <= ep.socks[0].frameSize {
		ep.mtu.Store(mtu)
	}
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (*Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint: the interface's MAC.
func (ep *Endpoint) LinkAddress() tcpip.LinkAddress {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.addr
}

// SetLinkAddress implements stack.LinkEndpoint.
func (ep *Endpoint) SetLinkAddress(a tcpip.LinkAddress) {
	ep.mu.Lock()
	ep.addr = a
	ep.mu.Unlock()
}

// Capabilities implements stack.LinkEndpoint.
func (ep *Endpoint) Capabilities() stack.LinkEndpointCapabilities { return ep.caps }

// ARPHardwareType implements stack.LinkEndpoint.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (*Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Attach implements stack.LinkEndpoint. The first non-nil dispatcher
// starts one RX goroutine per queue. Attach(nil) (the NIC is being
// removed) stops delivery and asks the goroutines to exit without waiting
// for them: the stack calls it holding its own lock, which a goroutine in
// the middle of a delivery may need. Wait waits for them. An endpoint is
// not re-attached after Attach(nil).
func (ep *Endpoint) Attach(d stack.NetworkDispatcher) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if d == nil {
		ep.disp.Store(nil)
		ep.stopLocked()
		return
	}
	if ep.stopped {
		return
	}
	ep.disp.Store(&d)
	if ep.started {
		return
	}
	ep.started = true
	for _, x := range ep.socks {
		ep.wg.Add(1)
		go func() {
			defer ep.wg.Done()
			ep.rxLoop(x)
		}()
	}
}

// stopLocked tells the RX goroutines to exit.
func (ep *Endpoint) stopLocked() {
	if ep.stopped {
		return
	}
	ep.stopped = true
	var one = [8]byte{1}
	unix.Write(ep.stopEFD, one[:])
}

// IsAttached implements stack.LinkEndpoint.
func (ep *Endpoint) IsAttached() bool { return ep.disp.Load() != nil }

// Wait implements stack.LinkEndpoint: it waits for the RX goroutines.
func (ep *Endpoint) Wait() { ep.wg.Wait() }

// SetOnCloseAction implements stack.LinkEndpoint.
func (ep *Endpoint) SetOnCloseAction(f func()) {
	ep.mu.Lock()
	ep.onClose = f
	ep.mu.Unlock()
}

// Close implements stack.LinkEndpoint: it detaches the XDP program, stops
// the RX goroutines, and closes and unmaps the sockets. Safe to call from
// any goroutine but an RX goroutine of this endpoint (e.g. from a signal
// handler while the stack runs: writes after Close fail with
// ErrClosedForSend). Idempotent.
func (ep *Endpoint) Close() {
	// The stack's close action removes the NIC, which calls Close again:
	// run it outside closeOne, so that nested call does the work below
	// (inside Do it would deadlock).
	ep.mu.Lock()
	f := ep.onClose
	ep.onClose = nil
	ep.mu.Unlock()
	if f != nil {
		f()
	}
	ep.closeOne.Do(func() {
		ep.mu.Lock()
		ep.disp.Store(nil)
		ep.stopLocked()
		ep.mu.Unlock()
		// Detach first: from here frames for our addresses go to the
		// kernel, not to a socket about to close.
		if ep.prog != nil {
			ep.prog.close()
		}
		ep.wg.Wait()
		ep.release()
	})
}

// release frees whatever New acquired; the RX goroutines have stopped.
func (ep *Endpoint) release() {
	if ep.prog != nil {
		ep.prog.close()
		ep.prog = nil
	}
	for _, x := range ep.socks {
		x.txMu.Lock()
		x.closed = true
		x.close()
		x.txMu.Unlock()
	}
	if ep.stopEFD >= 0 {
		unix.Close(ep.stopEFD)
		ep.stopEFD = -1
	}
}
