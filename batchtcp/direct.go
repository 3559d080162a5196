package batchtcp

// Direct delivery. mTCP's TCP owns its packet path; behind gVisor's stack
// every inbound segment instead crosses the NIC, the IP layer (validation,
// up to three address-table lookups under locks, the iptables hooks) and the
// transport demuxer's miss before a shard sees it: a quarter of the CPU of a
// short connection (docs/performance.md). DirectLink wraps a link endpoint
// so that a well-formed TCP segment of a flow a shard already holds goes from
// the link's receive goroutine straight to that shard's inbox. Everything
// else, and every segment whose flow the shard turns out not to hold, takes
// the stack's own path unchanged, so the stack still decides what is ours
// (addresses, RSTs for closed ports, new connections, ICMP, forwarding).

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// DirectLink is a stack.LinkEndpoint wrapper that delivers the TCP segments
// of existing batchtcp flows to their shard without gVisor's network layer.
// A segment qualifies when it is IPv4 without options or fragmentation, or
// IPv6 whose next header is TCP; both checksums are valid; neither address is
// unspecified, multicast, broadcast or loopback, nor are they equal; and it
// is not a bare SYN (new connections go through the stack, which checks the
// destination is one of its addresses), nor does anything while the NIC is
// disabled. If the owning shard holds no connection for the 4-tuple, it
// hands the segment back to the stack's path. An existing flow's addresses
// are trusted: a segment for a flow whose local address was removed from
// the NIC after the flow was set up is still delivered, where gVisor's IP
// layer would drop it.
//
// What the stack's path would have counted is counted for direct segments
// too: the NIC's received packets and bytes, and IP's PacketsReceived,
// ValidPacketsReceived and PacketsDelivered (stack-wide and per NIC).
// Never bypassed: packet filters. The owning shard checks once per batch;
// with iptables modified (for good) or nftables configured, direct
// segments go through the stack's path. Bypassed: packet sockets on a NIC created with
// DeliverLinkPackets. Use it only on stacks whose TCP
// is this Protocol.
type DirectLink struct {
	stack.LinkEndpoint
	p   *Protocol
	nic atomic.Pointer[directNIC]
	off atomic.Bool // iptables were modified: never direct again
}

// directNIC is what Attach learned about the NIC: its dispatcher (the stack's
// path), its ID, and the counters the stack's path would have bumped
// (resolved on first use, once the NIC is registered).
type directNIC struct {
	d       stack.NetworkDispatcher
	id      tcpip.NICID
	enabled func() bool // the NIC's (an atomic load); nil: never direct
	rxsum   bool        // the link validates checksums (CapabilityRXChecksumOffload)
	stats   atomic.Pointer[directStats]
}

type directStats struct {
	nicPkts, nicBytes [2]*tcpip.StatCounter // NIC-local and stack-wide
	ip                [2][2]*tcpip.IPStats  // [v4, v6] x [NIC-local, stack-wide]
}

// DirectLink wraps link; pass the result to Stack.CreateNIC.
func (p *Protocol) DirectLink(link stack.LinkEndpoint) *DirectLink {
	return &DirectLink{LinkEndpoint: link, p: p}
}

// Attach implements stack.LinkEndpoint: the inner link delivers to l, which
// forwards to d what does not go direct.
func (l *DirectLink) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		l.LinkEndpoint.Attach(nil)
		l.nic.Store(nil)
		return
	}
	n := &directNIC{d: d, rxsum: l.LinkEndpoint.Capabilities()&stack.CapabilityRXChecksumOffload != 0}
	if withID, ok := d.(interface{ ID() tcpip.NICID }); ok {
		n.id = withID.ID()
	}
	if en, ok := d.(interface{ Enabled() bool }); ok {
		n.enabled = en.Enabled
	}
	l.nic.Store(n)
	l.LinkEndpoint.Attach(l)
}

// GSOMaxSize implements stack.GSOEndpoint for an inner link that does (the
// wrapper must not hide it: routes probe the NIC's link for it).
func (l *DirectLink) GSOMaxSize() uint32 {
	if g, ok := l.LinkEndpoint.(stack.GSOEndpoint); ok {
		return g.GSOMaxSize()
	}
	return 0
}

// SupportedGSO implements stack.GSOEndpoint like GSOMaxSize.
func (l *DirectLink) SupportedGSO() stack.SupportedGSO {
	if g, ok := l.LinkEndpoint.(stack.GSOEndpoint); ok {
		return g.SupportedGSO()
	}
	return stack.GSONotSupported
}

// DeliverLinkPacket implements stack.NetworkDispatcher.
func (l *DirectLink) DeliverLinkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if n := l.nic.Load(); n != nil {
		n.d.DeliverLinkPacket(proto, pkt)
	}
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (l *DirectLink) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	n := l.nic.Load()
	if n == nil {
		return
	}
	if n.id == 0 || n.enabled == nil || !n.enabled() || !l.enabled() || !l.direct(n, proto, pkt) {
		n.d.DeliverNetworkPacket(proto, pkt)
	}
}

// enabled reports whether the direct path may be tried: no nftables, and
// iptables not found modified by a shard yet (filtered; the mutex that
// question takes is asked once per batch by the shard that owns the
// segment, not per packet on the receive goroutines).
func (l *DirectLink) enabled() bool {
	return !l.off.Load() && !l.p.stack.IsNFTablesConfigured()
}

// directFiltered reports, once per batch, whether the stack has packet
// filters the direct path would bypass; the batch's direct segments then
// go through the stack's path (fallback), whose hooks see them. iptables
// never return to unmodified, so the link stops trying for good.
func (sh *shard) directFiltered(l *DirectLink) bool {
	if !sh.filterChecked {
		sh.filterChecked = true
		ipt := sh.p.stack.IPTables().Modified()
		sh.filterOn = ipt || sh.p.stack.IsNFTablesConfigured()
		sh.iptablesOn = ipt
	}
	if sh.iptablesOn {
		l.off.Store(true)
	}
	return sh.filterOn
}

// direct validates pkt (link header already consumed) and queues it on its
// shard; false leaves pkt untouched for the stack's path.
func (l *DirectLink) direct(n *directNIC, proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) bool {
	data := pkt.Data()
	size := data.Size()
	var src, dst tcpip.Address
	var ipLen, tot int
	switch proto {
	case header.IPv4ProtocolNumber:
		b, ok := data.PullUp(header.IPv4MinimumSize)
		if !ok {
			return false
		}
		ip := header.IPv4(b)
		// RFC 791 §3.1: version 4, IHL 5 (options go the stack's way), an
		// unfragmented datagram whose total length fits what arrived.
		if b[0] != 0x45 || ip.Protocol() != uint8(header.TCPProtocolNumber) ||
			ip.More() || ip.FragmentOffset() != 0 {
			return false
		}
		ipLen, tot = header.IPv4MinimumSize, int(ip.TotalLength())
		if !n.rxsum && !ip.IsChecksumValid() {
			return false
		}
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
		if !unicastV4(src) || !unicastV4(dst) {
			return false
		}
	case header.IPv6ProtocolNumber:
		b, ok := data.PullUp(header.IPv6MinimumSize)
		if !ok {
			return false
		}
		ip := header.IPv6(b)
		// RFC 8200 §3-4: TCP directly after the fixed header (extension
		// headers go the stack's way).
		if b[0]>>4 != 6 || ip.NextHeader() != uint8(header.TCPProtocolNumber) {
			return false
		}
		ipLen, tot = header.IPv6MinimumSize, header.IPv6MinimumSize+int(ip.PayloadLength())
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
		if !unicastV6(src) || !unicastV6(dst) {
			return false
		}
	default:
		return false
	}
	if src == dst || tot < ipLen+header.TCPMinimumSize || tot > size {
		return false
	}
	b, ok := data.PullUp(tot)
	if !ok {
		return false
	}
	tcp := header.TCP(b[ipLen:tot])
	// RFC 9293 §3.1: the data offset covers the header and fits.
	off := int(tcp.DataOffset())
	if off < header.TCPMinimumSize || off > len(tcp) {
		return false
	}
	if f := tcp.Flags(); f&header.TCPFlagSyn != 0 && f&header.TCPFlagAck == 0 {
		return false
	}
	if !n.rxsum {
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))
		if checksum.Checksum(tcp, xsum) != 0xffff {
			return false
		}
	}
	if tot < size {
		data.CapLength(tot) // link-layer padding
	}
	pkt.NetworkProtocolNumber = proto
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	pkt.NICID = n.id
	pkt.RXChecksumValidated = true
	pkt.NetworkHeader().Consume(ipLen)
	pkt.TransportHeader().Consume(off)
	id := stack.TransportEndpointID{
		LocalPort: tcp.DestinationPort(), LocalAddress: dst,
		RemotePort: tcp.SourcePort(), RemoteAddress: src,
	}
	h := l.p.hasher.hashID(id)
	sh := l.p.shards[l.p.hasher.shardOf(h)]
	pkt.IncRef()
	if !sh.in.pushSeg(inSeg{pkt: pkt, id: id, hash: h, direct: l, size: uint32(size)}) {
		pkt.DecRef()
		sh.inboxDrops.Add(1)
		// The stack's path would have counted it through IP before the
		// transport dropped it.
		var pkts [2]uint64 // IPv4, IPv6
		if proto == header.IPv6ProtocolNumber {
			pkts[1] = 1
		} else {
			pkts[0] = 1
		}
		l.count(pkts, uint64(size))
	}
	return true
}

func unicastV4(a tcpip.Address) bool {
	return a != header.IPv4Any && a != header.IPv4Broadcast &&
		!header.IsV4MulticastAddress(a) && !header.IsV4LoopbackAddress(a)
}

func unicastV6(a tcpip.Address) bool {
	return a != header.IPv6Any && !header.IsV6MulticastAddress(a) && !header.IsV6LoopbackAddress(a)
}

// fallback hands a direct segment the shard has no connection for to the
// stack's path, on the shard goroutine: a fresh packet from the network
// header on (the consumed headers cannot be parsed again). The stack then
// validates the destination and delivers the segment back to this protocol
// (a listener, or the closed-port reset) through the inbox.
func (l *DirectLink) fallback(pkt *stack.PacketBuffer) {
	n := l.nic.Load()
	if n == nil {
		return
	}
	np := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: stack.BufferSince(pkt.NetworkHeader())})
	np.PktType = pkt.PktType
	n.d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, np)
	np.DecRef()
}

// count adds what the stack's path would have counted for pkts direct
// segments of bytes (as the NIC saw them) of each IP version.
func (l *DirectLink) count(pkts [2]uint64, bytes uint64) {
	n := l.nic.Load()
	if n == nil {
		return
	}
	st := n.stats.Load()
	if st == nil {
		info, ok := l.p.stack.NICInfo()[n.id]
		if !ok {
			return
		}
		st = &directStats{}
		all := l.p.stack.Stats()
		st.nicPkts = [2]*tcpip.StatCounter{info.Stats.Rx.Packets, all.NICs.Rx.Packets}
		st.nicBytes = [2]*tcpip.StatCounter{info.Stats.Rx.Bytes, all.NICs.Rx.Bytes}
		st.ip[0][1], st.ip[1][1] = &all.IP, &all.IP
		if s, ok := info.NetworkStats[ipv4.ProtocolNumber].(*ipv4.Stats); ok {
			st.ip[0][0] = &s.IP
		}
		if s, ok := info.NetworkStats[ipv6.ProtocolNumber].(*ipv6.Stats); ok {
			st.ip[1][0] = &s.IP
		}
		n.stats.Store(st)
	}
	for _, c := range st.nicPkts {
		c.IncrementBy(pkts[0] + pkts[1])
	}
	for _, c := range st.nicBytes {
		c.IncrementBy(bytes)
	}
	for v, k := range pkts {
		if k == 0 {
			continue
		}
		for _, ip := range st.ip[v] {
			if ip == nil {
				continue
			}
			ip.PacketsReceived.IncrementBy(k)
			ip.ValidPacketsReceived.IncrementBy(k)
			ip.PacketsDelivered.IncrementBy(k)
		}
	}
}

// directCount accumulates a shard's direct segments per link for one batch,
// so the stack's counters take one atomic add each per batch.
type directCount struct {
	link  *DirectLink
	pkts  [2]uint64 // IPv4, IPv6
	bytes uint64
}

// countDirect records a direct segment its shard holds the flow of.
func (sh *shard) countDirect(in *inSeg) {
	sh.stats.DirectSegments++
	if sh.direct.link != in.direct {
		sh.flushDirect()
		sh.direct.link = in.direct
	}
	v := 0
	if in.pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber {
		v = 1
	}
	sh.direct.pkts[v]++
	sh.direct.bytes += uint64(in.size)
}

// flushDirect adds the batch's direct segments to the stack's counters.
func (sh *shard) flushDirect() {
	if sh.direct.link != nil {
		sh.direct.link.count(sh.direct.pkts, sh.direct.bytes)
	}
	sh.direct = directCount{}
}
