package runner

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/tests/conformance/script"
)

// TCP flag bits (RFC 9293 §3.1, RFC 3168 ECE/CWR, RFC 9768 AE).
const (
	flFIN = 0x01
	flSYN = 0x02
	flRST = 0x04
	flPSH = 0x08
	flACK = 0x10
	flURG = 0x20
	flECE = 0x40
	flCWR = 0x80
	flAE  = 0x100
)

// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const (
	optEOL    = 0
	optNOP    = 1
	optMSS    = 2
	optWS     = 3
	optSACKOK = 4
	optSACK   = 5
	optTS     = 8
)

// flowKey is a connection as the stack sees it: its port and the peer's.
type flowKey struct{ local, remote uint16 }

// flow holds one connection's sequence-number mapping. Script numbers are
// relative: inbound seq + peer ISN; outbound seq - (live ISN - script ISN).
type flow struct {
	key      flowKey
	remoteIP tcpip.Address
	peerISN  uint32
	hasPeer  bool
	off      uint32 // live stack ISN - script stack ISN
	hasOff   bool
	// newPeer: an inbound SYN declared a new peer ISN since the stack's
	// ISN was learned, so its next SYN or SYN-ACK declares a new one too.
	newPeer bool
	// Timestamp mapping (RFC 7323 TSval, per connection as the stacks
	// keep it): script value -> live value, and the learned offset.
	tsKnown bool
	tsOff   uint32
	tsMap   map[uint32]uint32
}

// outSeg is a segment the stack sent, stamped with virtual time (µs).
type outSeg struct {
	at      int64
	src     tcpip.Address
	dst     tcpip.Address
	tos     uint8
	ttl     uint8
	sport   uint16
	dport   uint16
	resv    uint8 // reserved header bits (RFC 9293 §3.1: must be zero)
	seq     uint32
	ack     uint32
	flags   uint16
	win     uint16
	urg     uint16
	opts    []tcpOpt
	payload []byte
}

// tcpOpt is one option as it appeared on the wire.
type tcpOpt struct {
	kind   byte
	val    uint32 // mss, wscale
	tsVal  uint32
	tsEcr  uint32
	blocks [][2]uint32
	raw    []byte
}

func flagString(f uint16) string {
	var b strings.Builder
	for _, x := range []struct {
		bit uint16
		c   byte
	}{{flSYN, 'S'}, {flFIN, 'F'}, {flRST, 'R'}, {flPSH, 'P'}, {flURG, 'U'}, {flECE, 'E'}, {flCWR, 'W'}, {flAE, 'A'}} {
		if f&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	if f&flACK != 0 {
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// parseFlags turns script flags ("S.", "P.", "-", "SEW") into bits.
func parseFlags(s string) (uint16, error) {
	var f uint16
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'S':
			f |= flSYN
		case 'F':
			f |= flFIN
		case 'R':
			f |= flRST
		case 'P':
			f |= flPSH
		case 'U':
			f |= flURG
		case 'E':
			f |= flECE
		case 'W':
			f |= flCWR
		case 'A':
			f |= flAE
		case '.':
			f |= flACK
		case '-':
		default:
			return 0, fmt.Errorf("flag %q is not supported (AccECN ACE counters)", s[i])
		}
	}
	return f, nil
}

func (o tcpOpt) String() string {
	switch o.kind {
	case optEOL:
		return "eol"
	case optNOP:
		return "nop"
	case optMSS:
		return fmt.Sprintf("mss %d", o.val)
	case optWS:
		return fmt.Sprintf("wscale %d", o.val)
	case optSACKOK:
		return "sackOK"
	case optSACK:
		var b []string
		for _, bl := range o.blocks {
			b = append(b, fmt.Sprintf("%d:%d", bl[0], bl[1]))
		}
		return "sack " + strings.Join(b, " ")
	case optTS:
		return fmt.Sprintf("TS val %d ecr %d", o.tsVal, o.tsEcr)
	}
	return fmt.Sprintf("kind%d(%x)", o.kind, o.raw)
}

func optsString(opts []tcpOpt) string {
	s := make([]string, len(opts))
	for i, o := range opts {
		s[i] = o.String()
	}
	return strings.Join(s, ",")
}

// String shows a segment in script notation with live (unmapped) numbers.
func (o *outSeg) String() string {
	s := fmt.Sprintf("%d>%d %s %d:%d(%d)", o.sport, o.dport, flagString(o.flags), o.seq, o.seq+uint32(len(o.payload)), len(o.payload))
	if o.flags&flACK != 0 {
		s += fmt.Sprintf(" ack %d", o.ack)
	}
	s += fmt.Sprintf(" win %d", o.win)
	if len(o.opts) > 0 {
		s += " <" + optsString(o.opts) + ">"
	}
	return s
}

// flowFor returns the flow of a segment the stack sent or will receive,
// creating it (and adopting it as the default flow's local port when that
// is still unknown, as after connect).
func (r *run) flowFor(local, remote uint16, remoteIP tcpip.Address) *flow {
	k := flowKey{local, remote}
	if f := r.flows[k]; f != nil {
		return f
	}
	if d := r.deflow; d != nil && d.key.local == 0 && d.key.remote == remote {
		delete(r.flows, d.key)
		d.key.local = local
		d.remoteIP = remoteIP
		r.flows[d.key] = d
		return d
	}
	f := &flow{key: k, remoteIP: remoteIP}
	r.flows[k] = f
	return f
}

// remoteAddr is the peer address packets come from by default.
func (r *run) remoteAddr() tcpip.Address {
	a := netip.MustParseAddr(r.remoteIP)
	return tcpip.AddrFromSlice(a.AsSlice())
}

// inject builds an inbound segment from the script and gives it to the
// stack.
func (r *run) inject(p *script.Packet) {
	flags, err := parseFlags(p.Flags)
	if err != nil {
		r.unsupported("%v", err)
	}
	var f *flow
	if p.HasPorts {
		f = r.flowFor(uint16(p.DstPort), uint16(p.SrcPort), r.remoteAddr())
	} else {
		if r.deflow == nil || r.deflow.key.local == 0 {
			r.failf("inbound packet before the flow is known: no listen() or connect() yet, or connect's SYN not matched")
		}
		f = r.deflow
	}
	if f.remoteIP.Len() == 0 {
		f.remoteIP = r.remoteAddr()
	}
	seq, ack := uint32(p.Start), uint32(p.Ack)
	switch {
	case p.SeqRaw:
	case flags&flSYN != 0:
		f.peerISN, f.hasPeer, f.newPeer = seq, true, true
	default:
		seq += f.peerISN
	}
	if flags&flACK != 0 && !p.SeqRaw {
		ack += f.off
	}
	var opts []byte
	for i := range p.Options {
		opts = r.appendOption(opts, &p.Options[i], flags, f)
	}
	for len(opts)%4 != 0 {
		opts = append(opts, optEOL)
	}
	if len(opts) > 40 {
		r.failf("inbound TCP options are %d bytes (at most 40)", len(opts))
	}
	hlen := header.TCPMinimumSize + len(opts)
	if p.Len < 0 || hlen+int(p.Len)+header.IPv6MinimumSize > 0xffff {
		r.failf("inbound segment of %d octets does not fit in an IP packet", p.Len)
	}
	tcp := make([]byte, hlen+int(p.Len))
	binary.BigEndian.PutUint16(tcp[0:], f.key.remote)
	binary.BigEndian.PutUint16(tcp[2:], f.key.local)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = byte(hlen/4)<<4 | byte(flags>>8)
	tcp[13] = byte(flags)
	if !p.HasWin {
		r.failf("inbound packets need a window (win N)")
	}
	binary.BigEndian.PutUint16(tcp[14:], uint16(p.Win))
	binary.BigEndian.PutUint16(tcp[18:], uint16(p.Urg))
	copy(tcp[header.TCPMinimumSize:], opts)
	src, dst := f.remoteIP, r.tg.local
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))
	binary.BigEndian.PutUint16(tcp[16:], ^checksum.Checksum(tcp, xsum))

	tos, ttl := uint8(0), uint8(64)
	for _, it := range p.IPInfo {
		switch it.Name {
		case "noecn":
			tos &^= 3
		case "ect0":
			tos = tos&^3 | 2
		case "ect1":
			tos = tos&^3 | 1
		case "ce":
			tos |= 3
		case "tos", "class":
			var v uint64
			if _, err := fmt.Sscanf(it.Value, "%v", &v); err != nil {
				r.failf("bad tos %q", it.Value)
			}
			tos = uint8(v)
		case "ttl", "hlim":
			var v uint64
			if _, err := fmt.Sscanf(it.Value, "%v", &v); err != nil {
				r.failf("bad ttl %q", it.Value)
			}
			ttl = uint8(v)
		default:
			r.unsupported("inbound ip info %q is not supported", it.Name)
		}
	}
	var ip []byte
	if r.tg.proto == header.IPv4ProtocolNumber {
		ip = make([]byte, header.IPv4MinimumSize)
		v4 := header.IPv4(ip)
		v4.Encode(&header.IPv4Fields{TOS: tos, TotalLength: uint16(len(ip) + len(tcp)), TTL: ttl,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
		v4.SetChecksum(^v4.CalculateChecksum())
	} else {
		ip = make([]byte, header.IPv6MinimumSize)
		header.IPv6(ip).Encode(&header.IPv6Fields{TrafficClass: tos, PayloadLength: uint16(len(tcp)), HopLimit: ttl,
			TransportProtocol: header.TCPProtocolNumber, SrcAddr: src, DstAddr: dst})
	}
	r.trace.add(r.now(), "<", fmt.Sprintf("%d>%d %s seq %d ack %d win %d len %d opts [%s]", f.key.remote, f.key.local,
		flagString(flags), seq, ack, p.Win, p.Len, hexOpts(opts)))
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append(ip, tcp...))})
	r.tg.ch.InjectInbound(r.tg.proto, pkt)
	pkt.DecRef()
	r.settle()
}

func hexOpts(b []byte) string {
	var out []tcpOpt
	parseOpts(b, &out)
	return optsString(out)
}

// appendOption encodes one inbound option.
func (r *run) appendOption(b []byte, o *script.TCPOption, flags uint16, f *flow) []byte {
	switch o.Kind {
	case "nop":
		return append(b, optNOP)
	case "eol":
		return append(b, optEOL)
	case "mss":
		return append(b, optMSS, 4, byte(o.Value>>8), byte(o.Value))
	case "wscale":
		return append(b, optWS, 3, byte(o.Value))
	case "sackOK":
		return append(b, optSACKOK, 2)
	case "sack":
		b = append(b, optSACK, byte(2+8*len(o.Blocks)))
		for _, bl := range o.Blocks {
			b = binary.BigEndian.AppendUint32(b, uint32(bl.Left)+f.off)
			b = binary.BigEndian.AppendUint32(b, uint32(bl.Right)+f.off)
		}
		return b
	case "TS":
		if o.TSAny {
			r.failf("'TS val ...' is for outbound packets only")
		}
		ecr := uint32(o.TSEcr)
		if flags&flACK != 0 && !o.EcrRaw {
			ecr = f.liveTS(ecr)
		}
		b = append(b, optTS, 10)
		b = binary.BigEndian.AppendUint32(b, uint32(o.TSVal))
		return binary.BigEndian.AppendUint32(b, ecr)
	}
	r.unsupported("TCP option %s is not supported", o.Kind)
	return nil
}

// liveTS maps a script TSval of the stack to the live one (RFC 7323 TSecr
// of an inbound segment): recorded pairs first, then the learned offset.
func (f *flow) liveTS(v uint32) uint32 {
	if live, ok := f.tsMap[v]; ok {
		return live
	}
	if f.tsKnown {
		return v + f.tsOff
	}
	return v
}

// parseOpts decodes a TCP option area.
func parseOpts(b []byte, out *[]tcpOpt) bool {
	for len(b) > 0 {
		k := b[0]
		if k == optEOL || k == optNOP {
			*out = append(*out, tcpOpt{kind: k})
			b = b[1:]
			continue
		}
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			return false
		}
		l := int(b[1])
		o := tcpOpt{kind: k, raw: b[2:l]}
		d := b[2:l]
		switch {
		case k == optMSS && l == 4:
			o.val = uint32(binary.BigEndian.Uint16(d))
		case k == optWS && l == 3:
			o.val = uint32(d[0])
		case k == optTS && l == 10:
			o.tsVal, o.tsEcr = binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])
		case k == optSACK && (l-2)%8 == 0:
			for i := 0; i+8 <= len(d); i += 8 {
				o.blocks = append(o.blocks, [2]uint32{binary.BigEndian.Uint32(d[i:]), binary.BigEndian.Uint32(d[i+4:])})
			}
		}
		*out = append(*out, o)
		b = b[l:]
	}
	return true
}

// collect reads what the stack sent since the last collect.
func (r *run) collect() {
	for {
		pkt := r.tg.ch.Read()
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		b := append([]byte(nil), v.AsSlice()...)
		v.Release()
		proto := pkt.NetworkProtocolNumber
		pkt.DecRef()
		if o := r.decode(proto, b); o != nil {
			r.outq = append(r.outq, o)
			r.trace.add(o.at, ">", o.String())
		}
	}
}

// decode parses an outbound IP packet; nil if it is not TCP.
func (r *run) decode(proto tcpip.NetworkProtocolNumber, b []byte) *outSeg {
	o := &outSeg{at: r.now()}
	var tcp []byte
	switch proto {
	case header.IPv4ProtocolNumber:
		if len(b) < header.IPv4MinimumSize {
			return nil
		}
		ip := header.IPv4(b)
		if ip.TransportProtocol() != header.TCPProtocolNumber || int(ip.HeaderLength()) > len(b) {
			return nil
		}
		tos, _ := ip.TOS()
		o.src, o.dst, o.tos, o.ttl = ip.SourceAddress(), ip.DestinationAddress(), tos, ip.TTL()
		end := min(int(ip.TotalLength()), len(b))
		tcp = b[ip.HeaderLength():end]
	case header.IPv6ProtocolNumber:
		if len(b) < header.IPv6MinimumSize {
			return nil
		}
		ip := header.IPv6(b)
		// The stack sends no extension headers before TCP.
		if ip.NextHeader() != uint8(header.TCPProtocolNumber) {
			return nil
		}
		tc, _ := ip.TOS()
		o.src, o.dst, o.tos, o.ttl = ip.SourceAddress(), ip.DestinationAddress(), tc, ip.HopLimit()
		tcp = b[header.IPv6MinimumSize:]
	default:
		return nil
	}
	if len(tcp) < header.TCPMinimumSize {
		return nil
	}
	off := int(tcp[12]>>4) * 4
	if off < header.TCPMinimumSize || off > len(tcp) {
		return nil
	}
	o.sport, o.dport = binary.BigEndian.Uint16(tcp), binary.BigEndian.Uint16(tcp[2:])
	o.seq, o.ack = binary.BigEndian.Uint32(tcp[4:]), binary.BigEndian.Uint32(tcp[8:])
	o.flags = uint16(tcp[12]&1)<<8 | uint16(tcp[13])
	o.resv = tcp[12] & 0x0e
	o.win, o.urg = binary.BigEndian.Uint16(tcp[14:]), binary.BigEndian.Uint16(tcp[18:])
	if !parseOpts(tcp[header.TCPMinimumSize:off], &o.opts) {
		o.opts = append(o.opts, tcpOpt{kind: 255, raw: tcp[header.TCPMinimumSize:off]})
	}
	o.payload = tcp[off:]
	return o
}

// expect waits for the stack to send the segment p within [start, end]
// (plus tolerance; any time for '*'), stepping the clock from timer to
// timer, and checks it.
func (r *run) expect(p *script.Packet, start, end int64, any bool) {
	want, err := parseFlags(p.Flags)
	if err != nil {
		r.unsupported("%v", err)
	}
	lo, hi := start, end
	tolHi := r.tolerance(hi)
	limit := hi + tolHi
	if any {
		limit = r.last + 24*3600*1e6 // '*': any time, bounded at a virtual day
	}
	final := false
	for steps := 0; ; steps++ {
		if o := r.takeOut(p); o != nil {
			if !any && o.at < lo-r.tolerance(lo) {
				r.mismatch("packet", fmt.Sprintf("at %s", secs(lo)), fmt.Sprintf("at %s: %s", secs(o.at), o),
					"segment sent %s early", secs(lo-o.at))
			}
			if !any && o.at > limit {
				r.mismatch("packet", fmt.Sprintf("by %s", secs(limit)), fmt.Sprintf("at %s: %s", secs(o.at), o),
					"segment sent %s late", secs(o.at-limit))
			}
			r.match(p, want, o)
			r.last = o.at
			return
		}
		if steps > 100000 {
			r.failf("runner gave up after %d timer steps", steps)
		}
		next, ok := r.tg.clock.next()
		pendAt, pend := r.pendingDeadline()
		if ok && next <= limit*1000 && (!pend || next <= pendAt*1000) {
			r.tg.clock.fireDue(limit * 1000)
			r.settle()
			continue
		}
		if pend && pendAt <= limit {
			r.reachPendingDeadline(pendAt)
			continue
		}
		if !final {
			// Let the stack act at the limit itself, then look once more.
			r.advanceTo(limit)
			final = true
			continue
		}
		exp := fmt.Sprintf("%s by %s", scriptPacket(p), secs(limit))
		if any {
			exp = scriptPacket(p) + " at any time"
		}
		r.mismatch("packet", exp, "nothing sent", "expected segment was not sent")
		return
	}
}

// takeOut removes the oldest unmatched segment on p's ports if written,
// else on the connection under test (PACKETDRILL.md §5); segments of other
// connections stay queued for lines that name their ports.
func (r *run) takeOut(p *script.Packet) *outSeg {
	for i, o := range r.outq {
		if p.HasPorts {
			if o.sport != uint16(p.SrcPort) || o.dport != uint16(p.DstPort) {
				continue
			}
		} else if d := r.deflow; d != nil {
			if o.dport != d.key.remote || (d.key.local != 0 && o.sport != d.key.local) {
				continue
			}
		}
		r.outq = append(r.outq[:i], r.outq[i+1:]...)
		return o
	}
	return nil
}

func secs(us int64) string { return fmt.Sprintf("%.6fs", float64(us)/1e6) }

// scriptPacket shows a script packet in script notation.
func scriptPacket(p *script.Packet) string {
	s := fmt.Sprintf("%s %d:%d(%d)", p.Flags, p.Start, p.End, p.Len)
	if p.HasAck {
		s += fmt.Sprintf(" ack %d", p.Ack)
	}
	if p.HasWin {
		s += fmt.Sprintf(" win %d", p.Win)
	}
	if p.OptionsAny {
		s += " <...>"
	} else if p.HasOptions {
		var o []string
		for _, x := range p.Options {
			switch x.Kind {
			case "mss", "wscale":
				o = append(o, fmt.Sprintf("%s %d", x.Kind, x.Value))
			case "TS":
				o = append(o, fmt.Sprintf("TS val %d ecr %d", x.TSVal, x.TSEcr))
			case "sack":
				var b []string
				for _, bl := range x.Blocks {
					b = append(b, fmt.Sprintf("%d:%d", bl.Left, bl.Right))
				}
				o = append(o, "sack "+strings.Join(b, " "))
			default:
				o = append(o, x.Kind)
			}
		}
		s += " <" + strings.Join(o, ",") + ">"
	}
	return s
}

// match compares a sent segment with the script's.
func (r *run) match(p *script.Packet, want uint16, o *outSeg) {
	f := r.flowFor(o.sport, o.dport, o.dst)
	if p.HasPorts && (o.sport != uint16(p.SrcPort) || o.dport != uint16(p.DstPort)) {
		r.mismatch("packet", scriptPacket(p), o.String(), "wrong ports")
	}
	// The default flow follows the socket under test (listen, connect,
	// accept), not whatever segment the stack sent last.
	if r.deflow == nil {
		r.deflow = f
	}
	if o.flags != want {
		r.mismatch("packet", scriptPacket(p), o.String(), "flags %s, expected %s", flagString(o.flags), flagString(want))
	}
	// Sequence number.
	switch {
	case p.SeqAny:
	case p.SeqRaw:
		if o.seq != uint32(p.Start) {
			r.mismatch("packet", scriptPacket(p), o.String(), "sequence number %d, expected raw %d", o.seq, uint32(p.Start))
		}
	case want&flSYN != 0:
		// A SYN or SYN-ACK declares the stack's ISN once per connection;
		// a retransmission must carry the same one.
		if !f.hasOff || f.newPeer && want&flACK != 0 {
			f.off, f.hasOff, f.newPeer = o.seq-uint32(p.Start), true, false
		} else if rel := o.seq - f.off; rel != uint32(p.Start) {
			r.mismatch("packet", scriptPacket(p), o.String(), "SYN sequence number changed: %d relative to the ISN first sent, expected %d", rel, p.Start)
		}
	default:
		if rel := o.seq - f.off; rel != uint32(p.Start) {
			r.mismatch("packet", scriptPacket(p), o.String()+fmt.Sprintf(" (relative seq %d)", rel),
				"sequence number %d, expected %d", rel, p.Start)
		}
	}
	// Acknowledgment number: outbound always compared; SYN-ACKs raw.
	if want&flACK != 0 {
		exp := uint32(p.Ack)
		if want&flSYN == 0 && !p.SeqRaw {
			exp += f.peerISN
		}
		if o.ack != exp {
			r.mismatch("packet", scriptPacket(p), o.String()+fmt.Sprintf(" (relative ack %d)", o.ack-f.peerISN),
				"acknowledgment %d, expected %d", o.ack-f.peerISN, p.Ack)
		}
	} else if o.ack != uint32(p.Ack) {
		// Without the ACK flag the field is compared raw (omitted = 0).
		r.mismatch("packet", scriptPacket(p), o.String(), "ack field %d, expected %d", o.ack, p.Ack)
	}
	if o.resv != 0 {
		r.mismatch("packet", scriptPacket(p), o.String(), "reserved header bits %#x set", o.resv)
	}
	if int64(len(o.payload)) != p.Len {
		r.mismatch("packet", scriptPacket(p), o.String(), "payload length %d, expected %d", len(o.payload), p.Len)
	}
	for _, c := range o.payload {
		if c != 0 {
			r.mismatch("packet", scriptPacket(p), o.String(), "payload is not the zero bytes the script wrote")
			break
		}
	}
	if p.HasWin && r.cfg.Mode == Strict && int64(o.win) != p.Win {
		r.mismatch("packet", scriptPacket(p), o.String(), "window %d, expected %d", o.win, p.Win)
	}
	if int64(o.urg) != p.Urg { // omitted = 0
		r.mismatch("packet", scriptPacket(p), o.String(), "urgent pointer %d, expected %d", o.urg, p.Urg)
	}
	r.matchIPInfo(p, o)
	if !p.OptionsAny {
		r.matchOptions(p, o, f)
	}
}

// matchIPInfo checks the IP fields the script wrote.
func (r *run) matchIPInfo(p *script.Packet, o *outSeg) {
	for _, it := range p.IPInfo {
		ecn := o.tos & 3
		bad := false
		switch it.Name {
		case "noecn":
			bad = ecn != 0
		case "ect0":
			bad = ecn != 2
		case "ect1":
			bad = ecn != 1
		case "ect01":
			bad = ecn != 1 && ecn != 2
		case "ce":
			bad = ecn != 3
		case "tos", "class":
			var v uint64
			fmt.Sscanf(it.Value, "%v", &v)
			bad = uint64(o.tos) != v
		case "ttl", "hlim":
			var v uint64
			fmt.Sscanf(it.Value, "%v", &v)
			bad = uint64(o.ttl) != v
		default:
			r.unsupported("outbound ip info %q is not supported", it.Name)
		}
		if bad {
			r.mismatch("packet", fmt.Sprintf("%s %s", it.Name, it.Value), fmt.Sprintf("tos 0x%02x ttl %d", o.tos, o.ttl), "IP header field %s differs", it.Name)
		}
	}
}

// matchOptions checks the options; relaxed mode ignores order, padding,
// and MSS, window-scale and timestamp values.
func (r *run) matchOptions(p *script.Packet, o *outSeg, f *flow) {
	// Learn the timestamp mapping first (RFC 7323 TSval of the stack).
	var got *tcpOpt
	for i := range o.opts {
		if o.opts[i].kind == optTS {
			got = &o.opts[i]
		}
	}
	for _, w := range p.Options {
		if w.Kind == "TS" && got != nil && !w.TSAny {
			if !f.tsKnown {
				f.tsKnown, f.tsOff = true, got.tsVal-uint32(w.TSVal)
			}
			if f.tsMap == nil {
				f.tsMap = map[uint32]uint32{}
			}
			f.tsMap[uint32(w.TSVal)] = got.tsVal
		}
	}
	exp := scriptPacket(p)
	if r.cfg.Mode == Strict {
		wi := 0
		for _, g := range o.opts {
			if wi >= len(p.Options) {
				r.mismatch("packet", exp, o.String(), "unexpected option %s", g)
				return
			}
			w := &p.Options[wi]
			wi++
			if !r.optEqual(w, &g, f, true) {
				r.mismatch("packet", exp, o.String(), "option %s, expected %s", g, w.Kind)
				return
			}
		}
		if wi < len(p.Options) {
			r.mismatch("packet", exp, o.String(), "missing option %s", p.Options[wi].Kind)
		}
		return
	}
	var gots []tcpOpt
	for _, g := range o.opts {
		if g.kind != optNOP && g.kind != optEOL {
			gots = append(gots, g)
		}
	}
	used := make([]bool, len(gots))
	for i := range p.Options {
		w := &p.Options[i]
		if w.Kind == "nop" || w.Kind == "eol" {
			continue
		}
		found := false
		for j := range gots {
			if !used[j] && r.optEqual(w, &gots[j], f, false) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			r.mismatch("packet", exp, o.String(), "option %s not sent", w.Kind)
		}
	}
	for j, u := range used {
		if !u {
			r.mismatch("packet", exp, o.String(), "unexpected option %s", gots[j])
		}
	}
}

// optEqual compares one option; values of MSS, window scale and
// timestamps only in strict mode. SACK blocks are sequence numbers and are
// always compared.
func (r *run) optEqual(w *script.TCPOption, g *tcpOpt, f *flow, strict bool) bool {
	switch w.Kind {
	case "nop":
		return g.kind == optNOP
	case "eol":
		return g.kind == optEOL
	case "mss":
		return g.kind == optMSS && (!strict || int64(g.val) == w.Value)
	case "wscale":
		return g.kind == optWS && (!strict || int64(g.val) == w.Value)
	case "sackOK":
		return g.kind == optSACKOK
	case "sack":
		if g.kind != optSACK || len(g.blocks) != len(w.Blocks) {
			return false
		}
		for i, b := range w.Blocks {
			if g.blocks[i][0]-f.peerISN != uint32(b.Left) || g.blocks[i][1]-f.peerISN != uint32(b.Right) {
				return false
			}
		}
		return true
	case "TS":
		if g.kind != optTS {
			return false
		}
		if !strict || w.TSAny {
			return true
		}
		if r.tsTick > 0 {
			d := int64(g.tsVal-f.tsOff) - w.TSVal
			if d < 0 {
				d = -d
			}
			if d*r.tsTick > r.tolUsecs {
				return false
			}
		}
		// The echo is the peer's value as the script sent it (RFC 7323 §4.3).
		return w.EcrRaw || g.tsEcr == uint32(w.TSEcr) || w.TSEcr == 0 && g.tsEcr == 0
	}
	r.unsupported("outbound TCP option %s is not supported", w.Kind)
	return false
}
