// Package memlink provides a connected pair of in-memory Ethernet link
// endpoints, for tests, benchmarks and demos.
//
// Each endpoint owns a bounded receive queue that its peer's WritePackets
// fills and that one goroutine per endpoint drains in batches into the
// endpoint's dispatcher, as a NIC's receive path would. The goroutine
// decouples the two stacks: a sender never runs the receiver's stack.
package memlink

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Defaults for Options fields left zero.
const (
	DefaultMTU      = 1500
	DefaultQueueLen = 1024
)

// Default locally-administered MAC addresses of the two ends.
var (
	DefaultAddrA = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x01")
	DefaultAddrB = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x02")
)

// Options configures Pair.
type Options struct {
	// MTU is the network-layer MTU (excluding the Ethernet header).
	// Default 1500.
	MTU uint32
	// AddrA and AddrB are the MAC addresses of the two ends.
	AddrA, AddrB tcpip.LinkAddress
	// QueueLen bounds each direction's queue; a frame arriving at a full
	// queue is dropped and counted. Default 1024.
	QueueLen int
	// ChecksumOffload advertises RX and TX checksum offload, so the stacks
	// neither compute nor verify transport checksums.
	ChecksumOffload bool
}

// Stats counts frames of one endpoint. Sent and Dropped count this end's
// transmissions (a drop is a frame the peer's queue could not take);
// Delivered counts frames this end handed to its dispatcher.
type Stats struct {
	Sent, SentBytes           uint64
	Delivered, DeliveredBytes uint64
	Dropped                   uint64
}

// Endpoint is one end of a memlink pair. It implements stack.LinkEndpoint.
type Endpoint struct {
	peer  *Endpoint
	caps  stack.LinkEndpointCapabilities
	limit int
	mtu   atomic.Uint32

	sent, sentBytes           atomic.Uint64
	delivered, deliveredBytes atomic.Uint64
	dropped                   atomic.Uint64

	mu      sync.Mutex
	addr    tcpip.LinkAddress
	disp    stack.NetworkDispatcher
	rxq     []*stack.PacketBuffer // frames from the peer, awaiting delivery
	stop    chan struct{}         // closed to stop the running receive goroutine
	wake    chan struct{}         // 1-slot wake-up for the receive goroutine
	closed  bool
	onClose func()

	wg sync.WaitGroup
}

var _ stack.LinkEndpoint = (*Endpoint)(nil)

// Pair returns two connected endpoints: frames written on a arrive at b and
// vice versa.
func Pair(opts Options) (a, b stack.LinkEndpoint) {
	x, y := NewPair(opts)
	return x, y
}

// NewPair is Pair returning the concrete type, for access to Stats.
func NewPair(opts Options) (a, b *Endpoint) {
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.AddrA == "" {
		opts.AddrA = DefaultAddrA
	}
	if opts.AddrB == "" {
		opts.AddrB = DefaultAddrB
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	var caps stack.LinkEndpointCapabilities
	if opts.ChecksumOffload {
		caps = stack.CapabilityRXChecksumOffload | stack.CapabilityTXChecksumOffload
	}
	a = newEndpoint(opts, opts.AddrA, caps)
	b = newEndpoint(opts, opts.AddrB, caps)
	a.peer, b.peer = b, a
	return a, b
}

func newEndpoint(opts Options, addr tcpip.LinkAddress, caps stack.LinkEndpointCapabilities) *Endpoint {
	e := &Endpoint{
		caps:  caps,
		limit: opts.QueueLen,
		addr:  addr,
		rxq:   make([]*stack.PacketBuffer, 0, opts.QueueLen),
		wake:  make(chan struct{}, 1),
	}
	e.mtu.Store(opts.MTU)
	return e
}

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	return Stats{
		Sent:           e.sent.Load(),
		SentBytes:      e.sentBytes.Load(),
		Delivered:      e.delivered.Load(),
		DeliveredBytes: e.deliveredBytes.Load(),
		Dropped:        e.dropped.Load(),
	}
}

// MTU implements stack.LinkEndpoint.
func (e *Endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *Endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (*Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// SetLinkAddress implements stack.LinkEndpoint.
func (e *Endpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	e.mu.Lock()
	e.addr = addr
	e.mu.Unlock()
}

// Capabilities implements stack.LinkEndpoint. Link resolution (ARP/NDP) is
// required, as on a real Ethernet.
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities {
	return e.caps | stack.CapabilityResolutionRequired
}

// ARPHardwareType implements stack.LinkEndpoint.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (e *Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	src := pkt.EgressRoute.LocalLinkAddress
	if src == "" {
		src = e.LinkAddress()
	}
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: src,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *Endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *Endpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.disp != nil
}

// Attach implements stack.LinkEndpoint. A non-nil dispatcher starts the
// receive goroutine; nil stops it and drops queued frames. It never waits
// for the goroutine (it may run under stack locks the goroutine needs);
// Wait does.
func (e *Endpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	if e.closed && d != nil {
		e.mu.Unlock()
		return
	}
	e.disp = d
	var drop []*stack.PacketBuffer
	if d == nil {
		drop = e.stopLocked()
	} else if e.stop == nil {
		e.stop = make(chan struct{})
		e.wg.Add(1)
		go e.rxLoop(e.stop)
	}
	e.mu.Unlock()
	e.dropAll(drop)
}

// stopLocked stops the receive goroutine and returns the queued frames,
// which the caller must drop outside the lock.
func (e *Endpoint) stopLocked() []*stack.PacketBuffer {
	if e.stop != nil {
		close(e.stop)
		e.stop = nil
	}
	if len(e.rxq) == 0 {
		return nil
	}
	// Hand the queue over and start a fresh one: the caller DecRefs the
	// old one without the lock.
	q := e.rxq
	e.rxq = make([]*stack.PacketBuffer, 0, e.limit)
	return q
}

func (e *Endpoint) dropAll(q []*stack.PacketBuffer) {
	for i, p := range q {
		p.DecRef()
		q[i] = nil
	}
	e.dropped.Add(uint64(len(q)))
}

// Close implements stack.LinkEndpoint: it detaches, drops queued frames and
// makes later writes fail. Idempotent.
func (e *Endpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.disp = nil
	drop := e.stopLocked()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	e.dropAll(drop)
	if f != nil {
		f()
	}
}

// Wait implements stack.LinkEndpoint: it waits for the receive goroutine
// to exit after Close or Attach(nil).
func (e *Endpoint) Wait() { e.wg.Wait() }

// WritePackets implements stack.LinkWriter. The whole list is queued at the
// peer under one lock acquisition; frames that do not fit are dropped and
// counted. Each queued frame holds a reference until delivered.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return 0, &tcpip.ErrClosedForSend{}
	}
	n, bytes, dropped := e.peer.enqueue(pkts.AsSlice(), int(e.MTU())+header.EthernetMinimumSize)
	e.sent.Add(uint64(n))
	e.sentBytes.Add(bytes)
	e.dropped.Add(uint64(dropped))
	if n == 0 && dropped > 0 {
		return 0, &tcpip.ErrNoBufferSpace{}
	}
	return n + dropped, nil
}

// enqueue queues frames for delivery at e. It reports frames queued, their
// bytes, and frames dropped (queue full, e detached, or larger than max).
func (e *Endpoint) enqueue(pkts []*stack.PacketBuffer, max int) (n int, bytes uint64, dropped int) {
	e.mu.Lock()
	if e.disp == nil {
		e.mu.Unlock()
		return 0, 0, len(pkts)
	}
	for _, p := range pkts {
		size := p.Size()
		if len(e.rxq) >= e.limit || size > max {
			dropped++
			continue
		}
		e.rxq = append(e.rxq, p.IncRef())
		n++
		bytes += uint64(size)
	}
	e.mu.Unlock()
	if n > 0 {
		e.signal()
	}
	return n, bytes, dropped
}

func (e *Endpoint) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// rxLoop drains the receive queue in batches until stop is closed.
func (e *Endpoint) rxLoop(stop chan struct{}) {
	defer e.wg.Done()
	spare := make([]*stack.PacketBuffer, 0, e.limit)
	for {
		select {
		case <-stop:
			return
		case <-e.wake:
		}
		e.mu.Lock()
		if e.disp == nil || isClosed(stop) {
			e.mu.Unlock()
			// The wake-up may have been meant for a successor goroutine.
			e.signal()
			return
		}
		batch, d := e.rxq, e.disp
		e.rxq = spare
		e.mu.Unlock()
		for i, p := range batch {
			if isClosed(stop) {
				e.dropAll(batch[i:])
				break
			}
			e.deliver(d, p)
			batch[i] = nil
		}
		spare = batch[:0]
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// deliver copies the frame into a fresh inbound packet, as a wire would,
// releases the sender's reference and hands the copy to d.
func (e *Endpoint) deliver(d stack.NetworkDispatcher, p *stack.PacketBuffer) {
	v := p.ToView()
	p.DecRef()
	size := v.Size()
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	defer in.DecRef()
	if !e.ParseHeader(in) {
		e.dropped.Add(1)
		return
	}
	eth := header.Ethernet(in.LinkHeader().Slice())
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		in.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		in.PktType = tcpip.PacketMulticast
	case dst == e.LinkAddress():
		in.PktType = tcpip.PacketHost
	default:
		in.PktType = tcpip.PacketOtherHost
	}
	e.delivered.Add(1)
	e.deliveredBytes.Add(uint64(size))
	d.DeliverNetworkPacket(eth.Type(), in)
}
