package batchtcp_test

// Segment-level tests: the test plays the remote peer of a gVisor stack
// running batchtcp over a channel link. It builds IP+TCP segments, injects
// them, reads what the stack sends back and drives a manual clock. Per-state
// fixtures reach each RFC 9293 §3.3.2 state through the real handshake;
// tests are grouped per state in segstate_test.go and segdata_test.go.

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// Flags, shorter.
const (
	fFIN = wire.FlagFIN
	fSYN = wire.FlagSYN
	fRST = wire.FlagRST
	fPSH = wire.FlagPSH
	fACK = wire.FlagACK
)

// gVisor tcp.EndpointState numbering (batchtcp.State uses the same).
const (
	stEstablished = uint32(batchtcp.StateEstablished)
	stSynSent     = uint32(batchtcp.StateSynSent)
	stSynRecv     = uint32(batchtcp.StateSynRecv)
	stFinWait1    = uint32(batchtcp.StateFinWait1)
	stFinWait2    = uint32(batchtcp.StateFinWait2)
	stTimeWait    = uint32(batchtcp.StateTimeWait)
	stClose       = uint32(batchtcp.StateClose)
	stCloseWait   = uint32(batchtcp.StateCloseWait)
	stLastAck     = uint32(batchtcp.StateLastAck)
	stListen      = uint32(batchtcp.StateListen)
	stClosing     = uint32(batchtcp.StateClosing)
	stError       = uint32(batchtcp.StateError)
)

const (
	replyWait   = 2 * time.Second       // bound on waiting for an expected segment
	nothingWait = 50 * time.Millisecond // how long "no reply" waits
	listenPort  = 80
	peerISS     = 1000
	peerWnd     = 65535
	linkMTU     = 1500
)

var (
	stackV4 = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	peerV4  = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	stackV6 = tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	peerV6  = tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
)

// harness is one stack on a channel link with a manual clock.
type harness struct {
	t        *testing.T
	s        *stack.Stack
	ch       *channel.Endpoint
	clock    *faketime.ManualClock
	proto    tcpip.NetworkProtocolNumber
	local    tcpip.Address // the stack's address
	remote   tcpip.Address // the peer's (the test's) address
	advanced bool          // a clock advance is awaiting its effect
}

type hopt struct {
	v6     bool
	shards int
	direct bool // the NIC's link is wrapped in a batchtcp.DirectLink
}

func newHarness(t *testing.T, o hopt) *harness {
	t.Helper()
	if o.shards == 0 {
		o.shards = 1
	}
	clock := faketime.NewManualClock()
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{ipv4.NewProtocol,
			ipv6.NewProtocolWithOptions(ipv6.Options{})}, // no DAD: the address is usable at once
		TransportProtocols: []stack.TransportProtocolFactory{batchtcp.Factory(batchtcp.Config{Shards: o.shards})},
		Clock:              clock,
	})
	ch := channel.New(256, linkMTU, "")
	var link stack.LinkEndpoint = ch
	if o.direct {
		link = s.TransportProtocolInstance(batchtcp.ProtocolNumber).(*batchtcp.Protocol).DirectLink(ch)
	}
	if err := s.CreateNIC(1, link); err != nil {
		t.Fatal(err)
	}
	for _, a := range []tcpip.Address{stackV4, stackV6} {
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: a.WithPrefix()}
		if a.Len() == 16 {
			pa.Protocol = ipv6.ProtocolNumber
		}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			t.Fatal(err)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: 1},
		{Destination: header.IPv6EmptySubnet, NIC: 1},
	})
	h := &harness{t: t, s: s, ch: ch, clock: clock, proto: ipv4.ProtocolNumber, local: stackV4, remote: peerV4}
	if o.v6 {
		h.proto, h.local, h.remote = ipv6.ProtocolNumber, stackV6, peerV6
	}
	t.Cleanup(func() {
		s.Close()
		s.Wait()
		ch.Close()
	})
	return h
}

// setOpt sets a stack-wide TCP option.
func (h *harness) setOpt(o tcpip.SettableTransportProtocolOption) {
	h.t.Helper()
	if err := h.s.SetTransportProtocolOption(batchtcp.ProtocolNumber, o); err != nil {
		h.t.Fatalf("SetTransportProtocolOption(%T): %v", o, err)
	}
}

// advance moves the manual clock. Shards run on their own goroutines: a
// short real pause first lets a shard that just sent something arm its
// clock timer for the new deadline.
func (h *harness) advance(d time.Duration) {
	time.Sleep(2 * time.Millisecond)
	h.clock.Advance(d)
	h.advanced = true
}

// seg is a segment as sent or received by the peer.
type seg struct {
	src, dst uint16
	flags    uint8
	seq, ack uint32
	wnd      uint16
	opt      wire.Options
	payload  []byte
}

func (s seg) String() string {
	return fmt.Sprintf("%d>%d [%s] seq=%d ack=%d win=%d len=%d mss=%v/%d ws=%d ts=%v/%d/%d",
		s.src, s.dst, wire.FlagsString(s.flags), s.seq, s.ack, s.wnd, len(s.payload),
		s.opt.HasMSS, s.opt.MSS, s.opt.WS, s.opt.HasTS, s.opt.TSVal, s.opt.TSEcr)
}

// inject sends s from the peer to the stack.
func (h *harness) inject(s seg) {
	h.t.Helper()
	if s.opt.WS == 0 && !s.opt.HasMSS && !s.opt.HasTS {
		s.opt.WS = -1 // zero Options means "no options"
	}
	hdr := wire.Header{SrcPort: s.src, DstPort: s.dst, Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: s.wnd}
	tcp := wire.Append(nil, &hdr, &s.opt)
	tcp = append(tcp, s.payload...)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, h.remote, h.local, uint16(len(tcp)))
	wire.SetChecksum(tcp, ^checksum.Checksum(tcp, xsum))
	var ip []byte
	if h.proto == ipv4.ProtocolNumber {
		ip = make([]byte, header.IPv4MinimumSize)
		v4 := header.IPv4(ip)
		v4.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip) + len(tcp)), TTL: 64,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: h.remote, DstAddr: h.local})
		v4.SetChecksum(^v4.CalculateChecksum())
	} else {
		ip = make([]byte, header.IPv6MinimumSize)
		header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(len(tcp)), HopLimit: 64,
			TransportProtocol: header.TCPProtocolNumber, SrcAddr: h.remote, DstAddr: h.local})
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append(ip, tcp...))})
	h.ch.InjectInbound(h.proto, pkt)
	pkt.DecRef()
	h.advanced = false
}

// read returns the next TCP segment the stack sends within d.
func (h *harness) read(d time.Duration) (seg, bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return seg{}, false
		}
		step := min(left, 25*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), step)
		pkt := h.ch.ReadContext(ctx)
		cancel()
		if pkt == nil {
			if h.advanced && d > nothingWait {
				// The shard may have armed its clock timer after the
				// advance (it computes the delay from "now"): nudge.
				h.clock.Advance(time.Millisecond)
			}
			continue
		}
		v := stack.PayloadSince(pkt.NetworkHeader())
		b := append([]byte(nil), v.AsSlice()...)
		v.Release()
		pkt.DecRef()
		if s, ok := h.parse(b); ok {
			return s, true
		}
	}
}

func (h *harness) parse(b []byte) (seg, bool) {
	h.t.Helper()
	var tcp []byte
	switch h.proto {
	case ipv4.ProtocolNumber:
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) || ip.TransportProtocol() != header.TCPProtocolNumber {
			return seg{}, false
		}
		if ip.SourceAddress() != h.local || ip.DestinationAddress() != h.remote {
			h.t.Errorf("segment %v -> %v, want %v -> %v", ip.SourceAddress(), ip.DestinationAddress(), h.local, h.remote)
		}
		tcp = b[ip.HeaderLength():ip.TotalLength()]
	default:
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) || tcpip.TransportProtocolNumber(ip.NextHeader()) != header.TCPProtocolNumber {
			return seg{}, false
		}
		tcp = b[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
	}
	var hdr wire.Header
	var s seg
	off, err := wire.Parse(tcp, &hdr, &s.opt)
	if err != nil {
		h.t.Fatalf("stack sent a malformed TCP header: %v", err)
	}
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, h.local, h.remote, uint16(len(tcp)))
	if checksum.Checksum(tcp, xsum) != 0xffff {
		h.t.Errorf("bad TCP checksum on %x", tcp[:off])
	}
	s.src, s.dst, s.flags, s.seq, s.ack, s.wnd = hdr.SrcPort, hdr.DstPort, hdr.Flags, hdr.Seq, hdr.Ack, hdr.Window
	s.payload = tcp[off:]
	return s, true
}

// recv waits for the next segment and fails the test if none comes.
func (h *harness) recv() seg {
	h.t.Helper()
	s, ok := h.read(replyWait)
	if !ok {
		h.t.Fatalf("no segment from the stack within %v", replyWait)
	}
	return s
}

// recvNothing asserts the stack sends nothing for a short while.
func (h *harness) recvNothing() {
	h.t.Helper()
	if s, ok := h.read(nothingWait); ok {
		h.t.Fatalf("unexpected segment %v", s)
	}
}

// expect receives a segment and checks its flags (exactly, PSH ignored),
// sequence and acknowledgment numbers.
func (h *harness) expect(flags uint8, seq, ack uint32) seg {
	h.t.Helper()
	s := h.recv()
	if s.flags&^fPSH != flags&^fPSH || s.seq != seq || (flags&fACK != 0 && s.ack != ack) {
		h.t.Fatalf("got %v, want [%s] seq=%d ack=%d", s, wire.FlagsString(flags), seq, ack)
	}
	return s
}

// waitFor polls cond (real time) up to replyWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(replyWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// conn is one connection between the peer and the stack. seq/ack are the
// peer's SND.NXT and RCV.NXT (the stack's SND.NXT).
type conn struct {
	*harness
	lport, rport uint16 // stack's and peer's ports
	seq, ack     uint32
	iss          uint32 // the stack's ISS
	ts           bool   // timestamps negotiated
	tsVal        uint32 // the peer's next TSval
	tsEcr        uint32 // the stack's last TSval
	wnd          uint16
	lep          tcpip.Endpoint // listener (passive opens)
	ep           tcpip.Endpoint
	wq           *waiter.Queue
	synOpt       wire.Options // SYN options the peer offers
}

// send injects a segment on c with the peer's current seq/ack, adding a
// timestamp when negotiated.
func (c *conn) send(flags uint8, payload []byte) {
	c.t.Helper()
	c.sendAt(flags, c.seq, c.ack, payload)
}

func (c *conn) sendAt(flags uint8, seq, ack uint32, payload []byte) {
	c.t.Helper()
	s := seg{src: c.rport, dst: c.lport, flags: flags, seq: seq, ack: ack, wnd: c.wnd, payload: payload}
	s.opt.WS = -1
	if c.ts {
		s.opt.HasTS, s.opt.TSVal, s.opt.TSEcr = true, c.tsVal, c.tsEcr
		c.tsVal++
	}
	c.inject(s)
}

// expect is harness.expect that also records the stack's TSval.
func (c *conn) expect(flags uint8, seq, ack uint32) seg {
	c.t.Helper()
	s := c.harness.expect(flags, seq, ack)
	if s.src != c.lport || s.dst != c.rport {
		c.t.Fatalf("segment %v on the wrong ports, want %d>%d", s, c.lport, c.rport)
	}
	if c.ts {
		if !s.opt.HasTS {
			c.t.Fatalf("segment %v without timestamps on a TS connection", s)
		}
		c.tsEcr = s.opt.TSVal
	}
	return s
}

// expectACK expects a pure ACK at the peer's current view.
func (c *conn) expectACK() seg {
	c.t.Helper()
	return c.expect(fACK, c.ack, c.seq)
}

// state reads the stack endpoint's state.
func (c *conn) state() uint32 { return c.ep.State() }

func (c *conn) waitState(want uint32) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("state %v", batchtcp.State(want)), func() bool { return c.ep.State() == want })
}

// write queues data on the stack's endpoint.
func (c *conn) write(b []byte) {
	c.t.Helper()
	n, err := c.ep.Write(bytes.NewReader(b), tcpip.WriteOptions{})
	if err != nil || int(n) != len(b) {
		c.t.Fatalf("Write = %d, %v", n, err)
	}
}

// readAll waits until n bytes are readable on the stack's endpoint.
func (c *conn) readN(n int) []byte {
	c.t.Helper()
	var buf bytes.Buffer
	waitFor(c.t, fmt.Sprintf("%d bytes readable", n), func() bool {
		_, err := c.ep.Read(&buf, tcpip.ReadOptions{})
		if err != nil {
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				c.t.Fatalf("Read: %v", err)
			}
		}
		return buf.Len() >= n
	})
	return buf.Bytes()
}

// readErr waits for Read to return an error other than ErrWouldBlock.
func (c *conn) readErr() tcpip.Error {
	c.t.Helper()
	var got tcpip.Error
	waitFor(c.t, "a Read error", func() bool {
		var buf bytes.Buffer
		_, err := c.ep.Read(&buf, tcpip.ReadOptions{})
		if _, ok := err.(*tcpip.ErrWouldBlock); ok || err == nil {
			return false
		}
		got = err
		return true
	})
	return got
}

// Fixtures. Each reaches its state through the real handshake.

var nextPort uint16 = 40000

func (h *harness) newConn() *conn {
	nextPort++
	return &conn{harness: h, lport: listenPort, rport: nextPort, seq: peerISS, wnd: peerWnd,
		synOpt: wire.Options{HasMSS: true, MSS: 1460, WS: -1}}
}

// listen opens a listener on listenPort (RFC 9293 §3.10.1 passive OPEN).
func (h *harness) listen(backlog int) tcpip.Endpoint {
	h.t.Helper()
	var wq waiter.Queue
	ep, err := h.s.NewEndpoint(batchtcp.ProtocolNumber, h.proto, &wq)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(ep.Close)
	if err := ep.Bind(tcpip.FullAddress{Addr: h.local, Port: listenPort}); err != nil {
		h.t.Fatal(err)
	}
	if err := ep.Listen(backlog); err != nil {
		h.t.Fatal(err)
	}
	if ep.State() != stListen {
		h.t.Fatalf("listener state %d, want LISTEN", ep.State())
	}
	return ep
}

func listen(t *testing.T) (*harness, tcpip.Endpoint) {
	h := newHarness(t, hopt{})
	return h, h.listen(10)
}

// synRcvdOn sends the peer's SYN to a listener and reads the SYN-ACK.
func (h *harness) synRcvdOn(lep tcpip.Endpoint, c *conn) *conn {
	h.t.Helper()
	c.lep = lep
	s := seg{src: c.rport, dst: c.lport, flags: fSYN, seq: c.seq, wnd: c.wnd, opt: c.synOpt}
	if c.synOpt.HasTS {
		c.ts = true
		c.tsVal = c.synOpt.TSVal + 1
	}
	c.inject(s)
	c.seq++
	sa := c.recv()
	if sa.flags != fSYN|fACK || sa.ack != c.seq || sa.dst != c.rport {
		h.t.Fatalf("got %v, want SYN-ACK ack=%d", sa, c.seq)
	}
	c.iss = sa.seq
	c.ack = sa.seq + 1
	if c.ts {
		c.tsEcr = sa.opt.TSVal
	}
	return c
}

func synRcvd(t *testing.T) *conn {
	h, lep := listen(t)
	return h.synRcvdOn(lep, h.newConn())
}

// accept completes the passive handshake and accepts the child.
func (c *conn) accept() *conn {
	c.t.Helper()
	c.send(fACK, nil)
	waitFor(c.t, "Accept", func() bool {
		ep, wq, err := c.lep.Accept(nil)
		if err != nil {
			return false
		}
		c.ep, c.wq = ep, wq
		return true
	})
	c.t.Cleanup(c.ep.Close)
	if c.state() != stEstablished {
		c.t.Fatalf("accepted endpoint in state %d", c.state())
	}
	return c
}

// established is a passive open: LISTEN, SYN, SYN-ACK, ACK.
func established(t *testing.T) *conn {
	return synRcvd(t).accept()
}

func (h *harness) establishedWith(o wire.Options) *conn {
	h.t.Helper()
	lep := h.listen(10)
	c := h.newConn()
	c.synOpt = o
	return h.synRcvdOn(lep, c).accept()
}

// synSentOn opens a connection from the stack to the peer and reads its SYN.
func (h *harness) synSentOn() (*conn, seg) {
	h.t.Helper()
	c := h.newConn()
	c.lport = 0
	c.wq = &waiter.Queue{}
	ep, err := h.s.NewEndpoint(batchtcp.ProtocolNumber, h.proto, c.wq)
	if err != nil {
		h.t.Fatal(err)
	}
	c.ep = ep
	h.t.Cleanup(ep.Close)
	if err := ep.Connect(tcpip.FullAddress{Addr: h.remote, Port: c.rport}); err != nil {
		if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
			h.t.Fatalf("Connect: %v", err)
		}
	}
	syn := h.recv()
	if syn.flags != fSYN || syn.dst != c.rport {
		h.t.Fatalf("got %v, want SYN to port %d", syn, c.rport)
	}
	c.lport = syn.src
	c.iss = syn.seq
	c.ack = syn.seq + 1
	return c, syn
}

func synSent(t *testing.T) (*conn, seg) {
	return newHarness(t, hopt{}).synSentOn()
}

// establishedActive is an active open: SYN, SYN-ACK, ACK.
func (h *harness) establishedActive() *conn {
	h.t.Helper()
	c, _ := h.synSentOn()
	c.inject(seg{src: c.rport, dst: c.lport, flags: fSYN | fACK, seq: c.seq, ack: c.ack, wnd: c.wnd,
		opt: wire.Options{HasMSS: true, MSS: 1460, WS: -1}})
	c.seq++
	c.expectACK()
	c.waitState(stEstablished)
	return c
}

// finWait1: ESTABLISHED, the application shuts down writing, FIN sent.
func finWait1(t *testing.T) *conn {
	c := established(t)
	c.shutWrite()
	return c
}

func (c *conn) shutWrite() {
	c.t.Helper()
	if err := c.ep.Shutdown(tcpip.ShutdownWrite); err != nil {
		c.t.Fatal(err)
	}
	c.expect(fFIN|fACK, c.ack, c.seq)
	c.ack++
}

// finWait2: FIN-WAIT-1 and the peer ACKs the FIN.
func finWait2(t *testing.T) *conn {
	c := finWait1(t)
	c.send(fACK, nil)
	c.waitState(stFinWait2)
	return c
}

// closeWait: ESTABLISHED and the peer's FIN arrives.
func closeWait(t *testing.T) *conn {
	c := established(t)
	c.send(fFIN|fACK, nil)
	c.seq++
	c.expectACK()
	c.waitState(stCloseWait)
	return c
}

// lastAck: CLOSE-WAIT and the application closes: FIN sent.
func lastAck(t *testing.T) *conn {
	c := closeWait(t)
	c.shutWrite()
	c.waitState(stLastAck)
	return c
}

// closing: FIN-WAIT-1 and the peer's FIN crosses ours (simultaneous close).
func closing(t *testing.T) *conn {
	c := finWait1(t)
	c.sendAt(fFIN|fACK, c.seq, c.ack-1, nil) // does not ACK our FIN
	c.seq++
	c.expectACK()
	c.waitState(stClosing)
	return c
}

// timeWait: FIN-WAIT-2 and the peer's FIN.
func timeWait(t *testing.T) *conn {
	c := finWait2(t)
	c.send(fFIN|fACK, nil)
	c.seq++
	c.expectACK()
	c.waitState(stTimeWait)
	return c
}

// TestFixtureSanity checks every fixture's state (smoltcp's *_sanity tests).
func TestFixtureSanity(t *testing.T) {
	for _, tc := range []struct {
		name string
		fix  func(*testing.T) *conn
		want uint32
	}{
		{"Established", established, stEstablished},
		{"EstablishedActive", func(t *testing.T) *conn { return newHarness(t, hopt{}).establishedActive() }, stEstablished},
		{"SynSent", func(t *testing.T) *conn { c, _ := synSent(t); return c }, stSynSent},
		{"FinWait1", finWait1, stFinWait1},
		{"FinWait2", finWait2, stFinWait2},
		{"CloseWait", closeWait, stCloseWait},
		{"LastAck", lastAck, stLastAck},
		{"Closing", closing, stClosing},
		{"TimeWait", timeWait, stTimeWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.fix(t)
			if got := c.state(); got != tc.want {
				t.Fatalf("state %v, want %v", batchtcp.State(got), batchtcp.State(tc.want))
			}
			c.recvNothing()
		})
	}
}
