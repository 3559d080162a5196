package batchtcp

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// segment is an inbound segment being processed: the parsed header and a
// view of the payload inside the packet. One per shard, refilled per
// segment: no allocation.
type segment struct {
	hdr      wire.Header
	opt      wire.Options
	seq      seqnum.Value
	ack      seqnum.Value
	flags    uint8
	wnd      uint16
	payload  []byte
	id       stack.TransportEndpointID
	netProto tcpip.NetworkProtocolNumber
	nic      tcpip.NICID
}

func (s *segment) has(f uint8) bool { return s.flags&f != 0 }

// seqLen is SEG.LEN: payload plus one for each of SYN and FIN.
func (s *segment) seqLen() seqnum.Size {
	n := seqnum.Size(len(s.payload))
	if s.has(wire.FlagSYN) {
		n++
	}
	if s.has(wire.FlagFIN) {
		n++
	}
	return n
}

// parse fills s from pkt; false if the header or options are malformed.
func (s *segment) parse(pkt *stack.PacketBuffer, id stack.TransportEndpointID) bool {
	th := pkt.TransportHeader().Slice()
	if _, err := wire.Parse(th, &s.hdr, &s.opt); err != nil {
		return false
	}
	s.id = id
	s.netProto = pkt.NetworkProtocolNumber
	s.nic = pkt.NICID
	s.seq = seqnum.Value(s.hdr.Seq)
	s.ack = seqnum.Value(s.hdr.Ack)
	s.flags = s.hdr.Flags
	s.wnd = s.hdr.Window
	s.payload = nil
	if n := pkt.Data().Size(); n > 0 {
		b, ok := pkt.Data().PullUp(n)
		if !ok {
			return false
		}
		s.payload = b
	}
	return true
}
