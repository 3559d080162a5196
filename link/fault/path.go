package fault

import (
	"math/rand/v2"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// path is the fault state of one direction. Guarded by Endpoint.mu.
type path struct {
	inbound bool

	held      *stack.PacketBuffer // frame held back for reordering
	heldProto tcpip.NetworkProtocolNumber
	holdTimer tcpip.Timer

	line       []delayed // min-heap by (due, seq)
	seq        uint64
	delayTimer tcpip.Timer
	armed      bool
	deadline   tcpip.MonotonicTime
}

type delayed struct {
	due   tcpip.MonotonicTime
	seq   uint64
	pkt   *stack.PacketBuffer
	proto tcpip.NetworkProtocolNumber
}

func (p *path) empty() bool { return p.held == nil && len(p.line) == 0 }

// reset drops every held and delayed frame and stops the timers.
func (p *path) reset() {
	if p.held != nil {
		p.held.DecRef()
		p.held = nil
	}
	for i := range p.line {
		p.line[i].pkt.DecRef()
		p.line[i] = delayed{}
	}
	p.line = p.line[:0]
	if p.holdTimer != nil {
		p.holdTimer.Stop()
	}
	if p.delayTimer != nil {
		p.delayTimer.Stop()
	}
	p.armed = false
}

func (d *delayed) less(o *delayed) bool {
	return d.due.Before(o.due) || (d.due == o.due && d.seq < o.seq)
}

func (p *path) push(d delayed) {
	p.line = append(p.line, d)
	h := p.line
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h[i].less(&h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (p *path) pop() delayed {
	h := p.line
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = delayed{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h[l].less(&h[m]) {
			m = l
		}
		if r < len(h) && h[r].less(&h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	p.line = h
	return top
}

// deepCopy returns a copy of pkt that shares no buffer with it, with the
// same header layout and metadata.
func deepCopy(pkt *stack.PacketBuffer) *stack.PacketBuffer {
	return copyWith(pkt, pkt.ToView())
}

// copyWith builds a packet from v, the flattened bytes of pkt (headers
// included), re-marking pkt's headers.
func copyWith(pkt *stack.PacketBuffer, v *buffer.View) *stack.PacketBuffer {
	c := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	for _, h := range [...]func(*stack.PacketBuffer) stack.PacketHeader{
		(*stack.PacketBuffer).LinkHeader,
		(*stack.PacketBuffer).NetworkHeader,
		(*stack.PacketBuffer).TransportHeader,
	} {
		if n := len(h(pkt).Slice()); n > 0 {
			h(c).Consume(n)
		}
	}
	c.Hash = pkt.Hash
	c.Owner = pkt.Owner
	c.GSOOptions = pkt.GSOOptions
	c.EgressRoute = pkt.EgressRoute
	c.NetworkProtocolNumber = pkt.NetworkProtocolNumber
	c.TransportProtocolNumber = pkt.TransportProtocolNumber
	c.PktType = pkt.PktType
	c.NICID = pkt.NICID
	c.RXChecksumValidated = pkt.RXChecksumValidated
	c.NetworkPacketInfo = pkt.NetworkPacketInfo
	return c
}

// corruptCopy returns a copy of pkt with one random byte flipped past the
// IP header (transport header and payload), or nil if pkt carries no IP
// packet with bytes there. pkt itself is never modified.
func corruptCopy(pkt *stack.PacketBuffer, r *rand.Rand) *stack.PacketBuffer {
	v := pkt.ToView()
	b := v.AsSlice()
	// The flattened frame starts with whatever link header pkt has marked;
	// the IP header follows.
	off := len(pkt.LinkHeader().Slice())
	if off > len(b) {
		v.Release()
		return nil
	}
	ipLen := ipHeaderLen(b[off:])
	if ipLen == 0 || off+ipLen >= len(b) {
		v.Release()
		return nil
	}
	off += ipLen
	b[off+r.IntN(len(b)-off)] ^= byte(1 + r.IntN(255))
	return copyWith(pkt, v)
}

// ipHeaderLen returns the length of the IPv4 header (with options) or the
// fixed IPv6 header at the start of b, or 0 if b holds neither.
func ipHeaderLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch b[0] >> 4 {
	case 4:
		if n := int(b[0]&0xf) * 4; n >= header.IPv4MinimumSize && n <= len(b) {
			return n
		}
	case 6:
		if len(b) >= header.IPv6MinimumSize {
			return header.IPv6MinimumSize
		}
	}
	return 0
}
