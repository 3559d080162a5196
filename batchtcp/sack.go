package batchtcp

// SACK, receiver side (RFC 2018). batchtcp offers SACK-permitted when the
// stack's TCPSACKEnabled option is on (gVisor's default) and, once both ends
// agreed, reports the out-of-order data it holds in every pure ACK, so a
// SACK sender (Linux, gVisor) repairs several losses per round trip instead
// of one per RTO. The sender side does not act on SACK blocks it receives:
// loss recovery stays NewReno (RFC 6582), which RFC 2018 §5 leaves open.

import (
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// noteSACK records an out-of-order segment starting at seq as the most
// recently received (RFC 2018 §4: its block goes first).
func (c *conn) noteSACK(seq seqnum.Value) {
	if !c.sackOK {
		return
	}
	n := int(c.sackN)
	if n < len(c.sackRecent) {
		n++
	}
	copy(c.sackRecent[1:n], c.sackRecent[:n-1])
	c.sackRecent[0] = seq
	c.sackN = uint8(n)
}

// addSACK fills o's SACK blocks from what the reassembly queue holds
// (RFC 2018 §4): first the block holding the latest out-of-order segment,
// then the blocks of the segments before it, most recent first, each block
// once; wire.Put keeps as many as fit beside the other options (3 with
// timestamps, 4 without).
func (c *conn) addSACK(o *wire.Options) {
	if !c.sackOK || c.reasm.Empty() {
		return
	}
	for _, seq := range c.sackRecent[:c.sackN] {
		r, ok := c.reasm.RangeOf(seq)
		if !ok || !c.rcvNxt.LessThan(r.Start) {
			continue
		}
		b := wire.SACKBlock{Start: uint32(r.Start), End: uint32(r.End)}
		dup := false
		for _, have := range o.SACK[:o.NumSACK] {
			dup = dup || have == b
		}
		if !dup {
			o.SACK[o.NumSACK] = b
			o.NumSACK++
		}
	}
}
