package batchtcp_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

func (h *harness) proto6() *batchtcp.Protocol {
	return h.s.TransportProtocolInstance(batchtcp.ProtocolNumber).(*batchtcp.Protocol)
}

// counters are what a gVisor user reads about received packets.
type counters struct {
	NICPkts, NICBytes, IPRcvd, IPValid, IPDelivered, IPBadDst, TCPValid, TCPChecksum uint64
	NICLocalPkts, IPLocalDelivered                                                   uint64
}

func (h *harness) counters() counters {
	h.proto6().Sync()
	st := h.s.Stats()
	info := h.s.NICInfo()[1]
	c := counters{
		NICPkts: st.NICs.Rx.Packets.Value(), NICBytes: st.NICs.Rx.Bytes.Value(),
		IPRcvd: st.IP.PacketsReceived.Value(), IPValid: st.IP.ValidPacketsReceived.Value(),
		IPDelivered: st.IP.PacketsDelivered.Value(), IPBadDst: st.IP.InvalidDestinationAddressesReceived.Value(),
		TCPValid: st.TCP.ValidSegmentsReceived.Value(), TCPChecksum: st.TCP.ChecksumErrors.Value(),
		NICLocalPkts: info.Stats.Rx.Packets.Value(),
	}
	if v4, ok := info.NetworkStats[ipv4.ProtocolNumber].(*ipv4.Stats); ok && h.proto == ipv4.ProtocolNumber {
		c.IPLocalDelivered = v4.IP.PacketsDelivered.Value()
	}
	return c
}

// directExchange is a passive open, data both ways and the peer's FIN.
func directExchange(h *harness) {
	h.t.Helper()
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1})
	c.send(fACK|fPSH, []byte("hello"))
	c.seq += 5
	if got := c.readN(5); string(got) != "hello" {
		h.t.Fatalf("read %q", got)
	}
	c.write([]byte("world"))
	c.expect(fACK|fPSH, c.ack, c.seq)
	c.ack += 5
	c.send(fACK|fFIN, nil)
	c.seq++
	c.waitState(stCloseWait)
}

// The direct path changes who carries a segment, not what a user observes:
// the same exchange leaves the same NIC, IP and TCP counters with and
// without it, and most of its segments went direct.
func TestDirectSameCountersAsStackPath(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		var got [2]counters
		var direct batchtcp.Stats
		for i, d := range []bool{false, true} {
			h := newHarness(t, hopt{v6: v6, direct: d})
			directExchange(h)
			got[i] = h.counters()
			if d {
				direct = h.proto6().Stats()
			}
		}
		if diff := cmp.Diff(got[0], got[1]); diff != "" {
			t.Errorf("v6=%v: counters differ (-stack path +direct):\n%s", v6, diff)
		}
		// SYN through the stack; handshake ACK, data, ACK of our data... direct.
		if direct.DirectSegments < 3 || direct.DirectFallbacks != 0 {
			t.Errorf("v6=%v: %d direct segments, %d fallbacks; want >= 3 and 0", v6, direct.DirectSegments, direct.DirectFallbacks)
		}
	}
}

// A segment for a 4-tuple no shard holds goes back to the stack, which
// answers a closed port with a reset and counts the segment once.
func TestDirectFallbackClosedPort(t *testing.T) {
	h := newHarness(t, hopt{direct: true})
	before := h.counters()
	h.inject(seg{src: 4000, dst: 81, flags: fACK, seq: 5, ack: 77, wnd: 1000})
	h.expect(fRST, 77, 0)
	after := h.counters()
	if st := h.proto6().Stats(); st.DirectFallbacks != 1 || st.DirectSegments != 0 {
		t.Errorf("fallbacks %d, direct %d; want 1, 0", st.DirectFallbacks, st.DirectSegments)
	}
	if d := after.IPDelivered - before.IPDelivered; d != 1 {
		t.Errorf("IP delivered %d, want 1", d)
	}
	if d := after.NICPkts - before.NICPkts; d != 1 {
		t.Errorf("NIC received %d, want 1", d)
	}
}

// The stack, not the direct path, decides what is addressed to it: a
// segment to an address the NIC does not have meets no RST.
func TestDirectFallbackForeignAddress(t *testing.T) {
	h := newHarness(t, hopt{direct: true})
	before := h.counters()
	h.local = tcpip.AddrFrom4([4]byte{198, 18, 0, 99})
	h.inject(seg{src: 4000, dst: 81, flags: fACK, seq: 5, ack: 77, wnd: 1000})
	h.recvNothing()
	after := h.counters()
	if d := after.IPBadDst - before.IPBadDst; d != 1 {
		t.Errorf("InvalidDestinationAddressesReceived +%d, want 1", d)
	}
	if d := after.IPDelivered - before.IPDelivered; d != 0 {
		t.Errorf("IP delivered %d, want 0", d)
	}
}

// rawOpt shapes a raw IPv4 packet: IP options (a multiple of 4 bytes),
// link padding after the datagram, and an edit made after the checksums.
type rawOpt struct {
	ipOpts []byte
	pad    int
	edit   func(pkt []byte)
	fixIP  bool // recompute the IP header checksum after edit
}

// rawV4 sends a TCP segment of c's flow in an IPv4 packet shaped by o.
func (c *conn) rawV4(flags uint8, payload []byte, o rawOpt) {
	c.t.Helper()
	hdr := wire.Header{SrcPort: c.rport, DstPort: c.lport, Seq: c.seq, Ack: c.ack, Flags: flags, Window: c.wnd}
	tcp := append(wire.Append(nil, &hdr, &wire.Options{WS: -1}), payload...)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, c.remote, c.local, uint16(len(tcp)))
	wire.SetChecksum(tcp, ^checksum.Checksum(tcp, xsum))
	ihl := header.IPv4MinimumSize + len(o.ipOpts)
	ip := make([]byte, header.IPv4MinimumSize)
	header.IPv4(ip).Encode(&header.IPv4Fields{TotalLength: uint16(ihl + len(tcp)), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: c.remote, DstAddr: c.local})
	pkt := append(append(ip, o.ipOpts...), tcp...)
	pkt[0] = 0x40 | byte(ihl/4)
	v4 := header.IPv4(pkt)
	v4.SetChecksum(^v4.CalculateChecksum())
	if o.edit != nil {
		o.edit(pkt)
	}
	if o.fixIP {
		v4.SetChecksum(0)
		v4.SetChecksum(^v4.CalculateChecksum())
	}
	pkt = append(pkt, make([]byte, o.pad)...)
	p := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	c.ch.InjectInbound(ipv4.ProtocolNumber, p)
	p.DecRef()
}

// What the direct path does not vouch for goes the stack's way, which then
// judges it: a corrupt TCP checksum is counted and dropped, a corrupt IP
// header checksum is malformed, IP options and trailing link padding are
// handled by the IP layer, and an established flow's segment that passes
// is processed exactly once either way.
func TestDirectLeavesOddPacketsToStack(t *testing.T) {
	h := newHarness(t, hopt{direct: true})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1})
	p := h.proto6()
	before := h.counters() // Syncs: the handshake's ACK is counted
	base := p.Stats().DirectSegments

	c.rawV4(fACK|fPSH, []byte("x"), rawOpt{edit: func(b []byte) { b[len(b)-1] ^= 0xff }}) // TCP checksum
	c.recvNothing()
	mid := h.counters()
	if mid.TCPChecksum != before.TCPChecksum+1 {
		t.Errorf("ChecksumErrors %d -> %d, want +1", before.TCPChecksum, mid.TCPChecksum)
	}
	c.rawV4(fACK|fPSH, []byte("x"), rawOpt{edit: func(b []byte) { b[10] ^= 0xff }}) // IP checksum
	c.recvNothing()
	if got := h.s.Stats().IP.MalformedPacketsReceived.Value(); got != 1 {
		t.Errorf("MalformedPacketsReceived %d, want 1", got)
	}
	// A fragment (MF set, the whole segment in it) waits in reassembly.
	c.rawV4(fACK|fPSH, []byte("f"), rawOpt{edit: func(b []byte) { b[6] |= 0x20 }, fixIP: true})
	c.recvNothing()
	if d := p.Stats().DirectSegments - base; d != 0 {
		t.Errorf("%d corrupt or fragmented segments went direct", d)
	}

	// IP options (NOPs, EOL): the stack's way, delivered once. Link
	// padding: direct, trimmed, delivered once.
	c.rawV4(fACK|fPSH, []byte("ok"), rawOpt{ipOpts: []byte{1, 1, 1, 0}})
	c.seq += 2
	c.rawV4(fACK|fPSH, []byte("go"), rawOpt{pad: 6})
	c.seq += 2
	if got := c.readN(4); string(got) != "okgo" {
		t.Fatalf("read %q, want okgo", got)
	}
	if d := p.Stats().DirectSegments - base; d != 1 {
		t.Errorf("%d segments went direct, want 1 (the padded one)", d)
	}
	after := h.counters()
	if d := after.IPDelivered - mid.IPDelivered; d != 2 {
		t.Errorf("IP delivered +%d, want 2", d)
	}
}

// Once the stack's iptables are modified, nothing goes direct: the filter
// must see every packet.
func TestDirectOffWithIPTables(t *testing.T) {
	h := newHarness(t, hopt{direct: true})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1})
	ipt := h.s.IPTables()
	ipt.ForceReplaceTable(stack.FilterID, ipt.GetTable(stack.FilterID, false), false)
	h.proto6().Sync() // the handshake's ACK is counted before the base is read
	base := h.proto6().Stats().DirectSegments
	for i := range 3 {
		c.send(fACK|fPSH, []byte{byte('a' + i)})
		c.seq++
	}
	if got := c.readN(3); string(got) != "abc" {
		t.Fatalf("read %q", got)
	}
	if d := h.proto6().Stats().DirectSegments - base; d != 0 {
		t.Errorf("%d segments went direct past iptables", d)
	}
}

// gsoLink is a link that offers gVisor GSO.
type gsoLink struct{ stack.LinkEndpoint }

func (gsoLink) GSOMaxSize() uint32               { return 1 << 16 }
func (gsoLink) SupportedGSO() stack.SupportedGSO { return stack.GVisorGSOSupported }

// The wrapper passes on what routes probe the link for.
func TestDirectLinkKeepsGSO(t *testing.T) {
	h := newHarness(t, hopt{})
	p := h.proto6()
	var plain stack.LinkEndpoint = p.DirectLink(h.ch) // channel: GSO max 32 KiB, none supported
	if g := plain.(stack.GSOEndpoint); g.SupportedGSO() != h.ch.SupportedGSO() || g.GSOMaxSize() != h.ch.GSOMaxSize() {
		t.Errorf("channel link: GSO %v max %d, want %v %d", g.SupportedGSO(), g.GSOMaxSize(), h.ch.SupportedGSO(), h.ch.GSOMaxSize())
	}
	var withGSO stack.LinkEndpoint = p.DirectLink(gsoLink{h.ch})
	if g := withGSO.(stack.GSOEndpoint); g.SupportedGSO() != stack.GVisorGSOSupported || g.GSOMaxSize() != 1<<16 {
		t.Errorf("GSO link: GSO %v max %d", g.SupportedGSO(), g.GSOMaxSize())
	}
}

// A disabled NIC receives nothing, direct path or not.
func TestDirectDisabledNIC(t *testing.T) {
	for _, direct := range []bool{false, true} {
		h := newHarness(t, hopt{direct: direct})
		c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1000, WS: -1})
		if err := h.s.DisableNIC(1); err != nil {
			t.Fatal(err)
		}
		c.send(fACK|fPSH, payload(100, 'x'))
		h.proto6().Sync()
		var buf bytes.Buffer
		if _, err := c.ep.Read(&buf, tcpip.ReadOptions{}); buf.Len() != 0 {
			t.Errorf("direct %v: read %d octets (%v) through a disabled NIC", direct, buf.Len(), err)
		}
	}
}

// While nftables is configured nothing goes direct; afterwards it does again.
func TestDirectOffWithNFTables(t *testing.T) {
	h := newHarness(t, hopt{direct: true})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1})
	p := h.proto6()
	p.Sync()
	base := p.Stats().DirectSegments
	h.s.SetNFTablesConfigured(true)
	c.send(fACK|fPSH, []byte("a"))
	c.seq++
	p.Sync()
	if d := p.Stats().DirectSegments - base; d != 0 {
		t.Errorf("%d segments went direct past nftables", d)
	}
	h.s.SetNFTablesConfigured(false)
	c.send(fACK|fPSH, []byte("b"))
	c.seq++
	if got := c.readN(2); string(got) != "ab" {
		t.Fatalf("read %q", got)
	}
	p.Sync()
	if d := p.Stats().DirectSegments - base; d != 1 {
		t.Errorf("%d segments went direct, want 1 (after nftables)", d)
	}
}
