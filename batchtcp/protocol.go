// Package batchtcp is xdptcp's TCP: written from RFC 9293 and its companions,
// sharded and batched in the manner of mTCP, and plugged into gVisor's tcpip
// stack as its TCP (protocol 6) through stack.Options.TransportProtocols.
//
// A Protocol runs N shards. A shard is one goroutine that alone owns the
// connections hashed to it (a symmetric hash of the 4-tuple), their flow
// table, timers and memory. Segments reach a shard through its inbox and are
// processed in bounded batches; the segments a batch produces leave through
// the link in one WritePackets call when the NIC's queueing discipline
// supports it (see TxBatcher). Applications talk to their connection through
// lock-free byte queues and coalesced events.
package batchtcp

import (
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/header/parse"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ProtocolNumber is TCP's transport protocol number.
const ProtocolNumber = header.TCPProtocolNumber

// Config is batchtcp's own configuration. Everything a gVisor user already
// sets through Stack.SetTransportProtocolOption (buffer ranges, RTO bounds,
// TIME-WAIT, delay, SYN retries) is honoured through that path instead.
type Config struct {
	// Shards is the number of shard goroutines; 0 means
	// runtime.GOMAXPROCS(0).
	Shards int
}

// TxBatcher is a NIC queueing discipline that holds the packets written on a
// lane until Flush, so that a shard's batch leaves in one WritePackets call.
// batchtcp sets PacketBuffer.Hash to the flow hash, whose value modulo the
// shard count is the shard; the batcher's lane count must equal Shards().
type TxBatcher interface {
	Hold(lane int)
	Flush(lane int)
}

// NewProtocol is a stack.TransportProtocolFactory with the default Config.
func NewProtocol(s *stack.Stack) stack.TransportProtocol {
	return newProtocol(s, Config{})
}

// Factory returns a stack.TransportProtocolFactory for cfg.
func Factory(cfg Config) stack.TransportProtocolFactory {
	return func(s *stack.Stack) stack.TransportProtocol { return newProtocol(s, cfg) }
}

// opts are the protocol options, read by shards on connection set-up.
type opts struct {
	sndBuf           tcpip.TCPSendBufferSizeRangeOption
	rcvBufRange      tcpip.TCPReceiveBufferSizeRangeOption
	delay            bool
	sack             bool
	timeWait         time.Duration
	minRTO, maxRTO   time.Duration
	maxRetries       uint32
	synRetries       uint8
	lingerTimeout    time.Duration
	moderateRecv     bool
	congestionCtl    string
	timeWaitReuse    tcpip.TCPTimeWaitReuseOption
	alwaysSynCookies bool
	recovery         tcpip.TCPRecovery
}

// Protocol is batchtcp's stack.TransportProtocol.
type Protocol struct {
	stack  *stack.Stack
	hasher flowHasher
	shards []*shard
	sec    secrets

	optMu sync.RWMutex
	opt   opts

	listeners listenerTable

	txMu       sync.Mutex
	txBatchers atomic.Pointer[[]TxBatcher]

	closeOnce sync.Once
	wg        sync.WaitGroup

	// Method values made once: a method value made per endpoint would be
	// two allocations per connection.
	sndLimits tcpip.GetSendBufferLimits
	rcvLimits tcpip.GetReceiveBufferLimits
}

var _ stack.TransportProtocol = (*Protocol)(nil)

func newProtocol(s *stack.Stack, cfg Config) *Protocol {
	n := cfg.Shards
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Protocol{
		stack:  s,
		hasher: flowHasher{seed: maphash.MakeSeed(), shards: uint32(n)},
		opt: opts{
			sndBuf:        tcpip.TCPSendBufferSizeRangeOption{Min: minBufferSize, Default: defaultSendBufferSize, Max: maxBufferSize},
			rcvBufRange:   tcpip.TCPReceiveBufferSizeRangeOption{Min: minBufferSize, Default: defaultReceiveBufferSize, Max: maxBufferSize},
			delay:         false,
			sack:          true, // gVisor's default (tcp.NewProtocol)
			timeWait:      timeWaitTimeout,
			minRTO:        minRTO,
			maxRTO:        maxRTO,
			maxRetries:    maxRetries,
			synRetries:    synRetries,
			lingerTimeout: finWait2Timeout,
			moderateRecv:  false,
			congestionCtl: "reno",
			timeWaitReuse: tcpip.TCPTimeWaitReuseLoopbackOnly,
		},
	}
	rng := s.SecureRNG()
	if _, err := rng.Reader.Read(p.sec.isnKey[:]); err != nil {
		panic(fmt.Sprintf("batchtcp: secure random source failed: %v", err))
	}
	if _, err := rng.Reader.Read(p.sec.tsKey[:]); err != nil {
		panic(fmt.Sprintf("batchtcp: secure random source failed: %v", err))
	}
	p.sndLimits, p.rcvLimits = p.sendBufferLimits, p.receiveBufferLimits
	p.listeners.init()
	p.shards = make([]*shard, n)
	for i := range p.shards {
		p.shards[i] = newShard(p, i)
	}
	for _, sh := range p.shards {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			sh.run()
		}()
	}
	return p
}

// Shards returns the number of shards.
func (p *Protocol) Shards() int { return len(p.shards) }

// ShardOf returns the shard that owns the flow id (either direction).
func (p *Protocol) ShardOf(id stack.TransportEndpointID) int {
	return p.hasher.shardOf(p.hasher.hashID(id))
}

// FlowShard maps a flow given as two (address, port) ends to its shard, in
// either order: the steering function a multi-queue link uses to hand a
// frame to the shard that owns its flow.
func (p *Protocol) FlowShard(a tcpip.Address, ap uint16, b tcpip.Address, bp uint16) int {
	return p.hasher.shardOf(p.hasher.hash(a, ap, b, bp))
}

// AttachTxBatcher registers a NIC queueing discipline that holds each
// shard's output until the end of its batch.
func (p *Protocol) AttachTxBatcher(b TxBatcher) {
	p.txMu.Lock()
	defer p.txMu.Unlock()
	var list []TxBatcher
	if cur := p.txBatchers.Load(); cur != nil {
		list = append(list, *cur...)
	}
	list = append(list, b)
	p.txBatchers.Store(&list)
}

// Stats sums batchtcp's own counters over the shards.
func (p *Protocol) Stats() Stats {
	st := Stats{Shards: len(p.shards)}
	for _, sh := range p.shards {
		sh.pubMu.Lock()
		c := sh.pub
		conns := sh.pubConns
		sh.pubMu.Unlock()
		st.InboxDrops += c.InboxDrops + sh.inboxDrops.Load()
		st.DirectSegments += c.DirectSegments
		st.DirectFallbacks += c.DirectFallbacks
		st.TailLossProbes += c.TailLossProbes
		st.PAWSDrops += c.PAWSDrops
		st.ChallengeACKs += c.ChallengeACKs
		st.ChallengeLimited += c.ChallengeLimited
		st.OutOfWindowDrops += c.OutOfWindowDrops
		st.Batches += c.Batches
		st.BatchSegments += c.BatchSegments
		st.ZeroWindowProbes += c.ZeroWindowProbes
		st.KeepalivesSent += c.KeepalivesSent
		st.Retransmits += c.Retransmits
		st.OwnershipViolations += c.OwnershipViolations
		st.PerShardSegments = append(st.PerShardSegments, c.BatchSegments)
		st.PerShardConns = append(st.PerShardConns, conns)
	}
	return st
}

func (p *Protocol) options() opts {
	p.optMu.RLock()
	o := p.opt
	p.optMu.RUnlock()
	return o
}

// Number implements stack.TransportProtocol.
func (*Protocol) Number() tcpip.TransportProtocolNumber { return ProtocolNumber }

// NewEndpoint implements stack.TransportProtocol.
func (p *Protocol) NewEndpoint(netProto tcpip.NetworkProtocolNumber, wq *waiter.Queue) (tcpip.Endpoint, tcpip.Error) {
	return newEndpoint(p, netProto, wq), nil
}

// NewRawEndpoint implements stack.TransportProtocol: raw TCP sockets are not
// offered (gVisor hands them to its raw package, which needs the stack's
// demuxer registration batchtcp does not use).
func (*Protocol) NewRawEndpoint(tcpip.NetworkProtocolNumber, *waiter.Queue) (tcpip.Endpoint, tcpip.Error) {
	return nil, &tcpip.ErrNotSupported{}
}

// MinimumPacketSize implements stack.TransportProtocol.
func (*Protocol) MinimumPacketSize() int { return header.TCPMinimumSize }

// ParsePorts implements stack.TransportProtocol. It is also called on the 8
// bytes an ICMP error quotes, so it reads only the first 4.
func (*Protocol) ParsePorts(v []byte) (src, dst uint16, err tcpip.Error) {
	if len(v) < 4 {
		return 0, 0, &tcpip.ErrMalformedHeader{}
	}
	return uint16(v[0])<<8 | uint16(v[1]), uint16(v[2])<<8 | uint16(v[3]), nil
}

// Parse implements stack.TransportProtocol.
func (*Protocol) Parse(pkt *stack.PacketBuffer) bool { return parse.TCP(pkt) }

// HandleUnknownDestinationPacket implements stack.TransportProtocol. batchtcp
// registers no endpoint in the stack's demuxer (whose lookups take a
// stack-wide lock): every TCP segment arrives here and goes to the shard of
// its flow. The checksum is verified on the delivering goroutine, so work is
// spread over RX queues and a corrupt segment is reported Malformed.
func (p *Protocol) HandleUnknownDestinationPacket(id stack.TransportEndpointID, pkt *stack.PacketBuffer) stack.UnknownDestinationPacketDisposition {
	hdr := pkt.TransportHeader().Slice()
	// RFC 9293 §3.1: the data offset must cover the header and fit in
	// what was received (parse.TCP leaves a bad offset to us).
	if len(hdr) < header.TCPMinimumSize || int(hdr[12]>>4)*4 != len(hdr) {
		p.stack.Stats().TCP.InvalidSegmentsReceived.Increment()
		return stack.UnknownDestinationPacketMalformed
	}
	if !pkt.RXChecksumValidated {
		n := len(hdr) + pkt.Data().Size()
		xsum := header.PseudoHeaderChecksum(ProtocolNumber, id.RemoteAddress, id.LocalAddress, uint16(n))
		xsum = checksum.Combine(checksum.Checksum(hdr, xsum), pkt.Data().Checksum())
		if xsum != 0xffff {
			p.stack.Stats().TCP.ChecksumErrors.Increment()
			p.stack.Stats().TCP.InvalidSegmentsReceived.Increment()
			return stack.UnknownDestinationPacketMalformed
		}
	}
	h := p.hasher.hashID(id)
	sh := p.shards[p.hasher.shardOf(h)]
	pkt.IncRef()
	if !sh.in.pushSeg(inSeg{pkt: pkt, id: id, hash: h}) {
		pkt.DecRef()
		sh.inboxDrops.Add(1)
	}
	return stack.UnknownDestinationPacketHandled
}

// Close implements stack.TransportProtocol: shards abort their connections
// and stop.
func (p *Protocol) Close() {
	p.closeOnce.Do(func() {
		for _, sh := range p.shards {
			close(sh.done)
		}
		p.listeners.closeAll()
	})
}

// Wait implements stack.TransportProtocol.
func (p *Protocol) Wait() { p.wg.Wait() }

// Pause implements stack.TransportProtocol (save/restore is not supported).
func (*Protocol) Pause() {}

// Resume implements stack.TransportProtocol.
func (*Protocol) Resume() {}

// Restore implements stack.TransportProtocol.
func (*Protocol) Restore() {}

// SendBufferSize implements stack.SendBufSizeProto, which
// Stack.TCPSendBufferLimits asserts without a check.
func (p *Protocol) SendBufferSize() tcpip.TCPSendBufferSizeRangeOption {
	return p.options().sndBuf
}

// SetOption implements stack.TransportProtocol with gVisor's TCP options.
func (p *Protocol) SetOption(option tcpip.SettableTransportProtocolOption) tcpip.Error {
	p.optMu.Lock()
	defer p.optMu.Unlock()
	o := &p.opt
	switch v := option.(type) {
	case *tcpip.TCPSACKEnabled:
		o.sack = bool(*v)
	case *tcpip.TCPRecovery:
		o.recovery = *v
	case *tcpip.TCPDelayEnabled:
		o.delay = bool(*v)
	case *tcpip.TCPSendBufferSizeRangeOption:
		if v.Min <= 0 || v.Default < v.Min || v.Default > v.Max {
			return &tcpip.ErrInvalidOptionValue{}
		}
		o.sndBuf = *v
	case *tcpip.TCPReceiveBufferSizeRangeOption:
		if v.Min <= 0 || v.Default < v.Min || v.Default > v.Max {
			return &tcpip.ErrInvalidOptionValue{}
		}
		o.rcvBufRange = *v
	case *tcpip.CongestionControlOption:
		if string(*v) != "reno" {
			return &tcpip.ErrNoSuchFile{}
		}
		o.congestionCtl = string(*v)
	case *tcpip.TCPModerateReceiveBufferOption:
		o.moderateRecv = bool(*v)
	case *tcpip.TCPLingerTimeoutOption:
		o.lingerTimeout = max(time.Duration(*v), 0)
	case *tcpip.TCPTimeWaitTimeoutOption:
		o.timeWait = max(time.Duration(*v), 0)
	case *tcpip.TCPTimeWaitReuseOption:
		if *v < tcpip.TCPTimeWaitReuseDisabled || *v > tcpip.TCPTimeWaitReuseLoopbackOnly {
			return &tcpip.ErrInvalidOptionValue{}
		}
		o.timeWaitReuse = *v
	case *tcpip.TCPMinRTOOption:
		switch d := time.Duration(*v); {
		case d < 0:
			o.minRTO = minRTO
		case d <= o.maxRTO:
			o.minRTO = d
		default:
			return &tcpip.ErrInvalidOptionValue{}
		}
	case *tcpip.TCPMaxRTOOption:
		switch d := time.Duration(*v); {
		case d < 0:
			o.maxRTO = maxRTO
		case d >= o.minRTO:
			o.maxRTO = d
		default:
			return &tcpip.ErrInvalidOptionValue{}
		}
	case *tcpip.TCPMaxRetriesOption:
		o.maxRetries = uint32(*v)
	case *tcpip.TCPAlwaysUseSynCookies:
		o.alwaysSynCookies = bool(*v)
	case *tcpip.TCPSynRetriesOption:
		if *v < 1 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		o.synRetries = uint8(*v)
	default:
		return &tcpip.ErrUnknownProtocolOption{}
	}
	return nil
}

// Option implements stack.TransportProtocol.
func (p *Protocol) Option(option tcpip.GettableTransportProtocolOption) tcpip.Error {
	o := p.options()
	switch v := option.(type) {
	case *tcpip.TCPSACKEnabled:
		*v = tcpip.TCPSACKEnabled(o.sack)
	case *tcpip.TCPRecovery:
		*v = o.recovery
	case *tcpip.TCPDelayEnabled:
		*v = tcpip.TCPDelayEnabled(o.delay)
	case *tcpip.TCPSendBufferSizeRangeOption:
		*v = o.sndBuf
	case *tcpip.TCPReceiveBufferSizeRangeOption:
		*v = o.rcvBufRange
	case *tcpip.CongestionControlOption:
		*v = tcpip.CongestionControlOption(o.congestionCtl)
	case *tcpip.TCPAvailableCongestionControlOption:
		*v = "reno"
	case *tcpip.TCPModerateReceiveBufferOption:
		*v = tcpip.TCPModerateReceiveBufferOption(o.moderateRecv)
	case *tcpip.TCPLingerTimeoutOption:
		*v = tcpip.TCPLingerTimeoutOption(o.lingerTimeout)
	case *tcpip.TCPTimeWaitTimeoutOption:
		*v = tcpip.TCPTimeWaitTimeoutOption(o.timeWait)
	case *tcpip.TCPTimeWaitReuseOption:
		*v = o.timeWaitReuse
	case *tcpip.TCPMinRTOOption:
		*v = tcpip.TCPMinRTOOption(o.minRTO)
	case *tcpip.TCPMaxRTOOption:
		*v = tcpip.TCPMaxRTOOption(o.maxRTO)
	case *tcpip.TCPMaxRetriesOption:
		*v = tcpip.TCPMaxRetriesOption(o.maxRetries)
	case *tcpip.TCPAlwaysUseSynCookies:
		*v = tcpip.TCPAlwaysUseSynCookies(o.alwaysSynCookies)
	case *tcpip.TCPSynRetriesOption:
		*v = tcpip.TCPSynRetriesOption(o.synRetries)
	default:
		return &tcpip.ErrUnknownProtocolOption{}
	}
	return nil
}

// Sync returns once every shard has processed all input queued before the
// call — segments, application events, control requests and timers due at
// the clock's current time — and written what that produced to the link.
// With a manual clock it makes a stack deterministic: inject, Sync, read.
// It returns early for shards that have stopped.
func (p *Protocol) Sync() {
	for _, sh := range p.shards {
		done := make(chan struct{})
		sh.in.pushIdle(func() { close(done) })
		select {
		case <-done:
		case <-sh.done:
		}
	}
}

// FlowInfo describes one connection a shard owns.
type FlowInfo struct {
	ID    stack.TransportEndpointID
	State State
	Shard int
}

// Flows asks every shard, through its own queue, for the connections it
// owns. It is for tests and diagnostics: each shard answers from its own
// goroutine, so no other goroutine ever reads a flow table.
func (p *Protocol) Flows() [][]FlowInfo {
	out := make([][]FlowInfo, len(p.shards))
	var wg sync.WaitGroup
	for i, sh := range p.shards {
		wg.Add(1)
		res := make(chan []FlowInfo, 1)
		sh.in.pushFn(func(sh *shard) {
			var fl []FlowInfo
			for id, c := range sh.flows {
				fl = append(fl, FlowInfo{ID: id, State: c.state, Shard: c.owner.idx})
			}
			res <- fl
		})
		go func() {
			defer wg.Done()
			select {
			case out[i] = <-res:
			case <-sh.done:
			}
		}()
	}
	wg.Wait()
	return out
}
