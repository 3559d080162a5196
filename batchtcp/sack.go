package batchtcp

// SACK (RFC 2018). batchtcp offers SACK-permitted when the stack's
// TCPSACKEnabled option is on (gVisor's default). Once both ends agreed:
//   - as receiver it reports the out-of-order data it holds in every pure
//     ACK, so a SACK sender (Linux, gVisor) repairs several losses per
//     round trip, and a wholly duplicate segment with a D-SACK (RFC 2883);
//   - as sender it keeps a scoreboard of what the peer SACKed and, in fast
//     recovery, retransmits the holes below SACKed data one per duplicate
//     ACK while RFC 6675's pipe leaves an MSS of the recovery's window
//     (§5 step C, NextSeg rule 1), each hole once per recovery. Entering and leaving recovery
//     and cwnd stay NewReno's (RFC 6582); after an RTO the scoreboard is
//     cleared (RFC 2018 §8).

import (
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/internal/scoreboard"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// noteSACK records an out-of-order segment starting at seq as the most
// recently received (RFC 2018 §4: its block goes first).
func (c *conn) noteSACK(seq seqnum.Value) {
	if !c.sackOK {
		return
	}
	// Earlier entries inside the same block say nothing new, and those
	// whose data was delivered say nothing at all: drop them first, so
	// that distinct earlier blocks keep their places (§4: repeat the most
	// recently reported blocks).
	r, _ := c.reasm.RangeOf(seq)
	var keep [len(c.sackRecent)]seqnum.Value
	k := 0
	for _, old := range c.sackRecent[:c.sackN] {
		if o, ok := c.reasm.RangeOf(old); ok && o != r {
			keep[k] = old
			k++
		}
	}
	k = min(k, len(c.sackRecent)-1)
	c.sackRecent[0] = seq
	copy(c.sackRecent[1:], keep[:k])
	c.sackN = uint8(k + 1)
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
		if o.NumSACK == len(o.SACK) {
			break // full (a D-SACK may have taken the first place)
		}
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

// sendDSACK acknowledges a segment that duplicated data already received,
// reporting it in the first SACK block (RFC 2883 §4: a D-SACK lies below
// the cumulative ACK), followed by the usual blocks. The sender learns its
// retransmission was spurious (RFC 8985 §7.4 counts on it for probes).
func (sh *shard) sendDSACK(now monotime.Time, c *conn, start, end seqnum.Value) {
	d := wire.SACKBlock{Start: uint32(start), End: uint32(end)}
	sh.sendSegmentDSACK(now, c, wire.FlagACK, c.sndNxt, 0, false, &d)
}

// onSACK records an acceptable ACK's SACK blocks (RFC 6675 §5: update the
// scoreboard for every ACK with SACK information). una is the ACK's
// cumulative acknowledgment.
func (c *conn) onSACK(s *segment, una seqnum.Value) {
	if !c.sackOK || s.opt.NumSACK == 0 {
		return
	}
	if c.sb == nil {
		c.sb = &scoreboard.Board{Next: c.sndUna}
	}
	for _, b := range s.opt.SACK[:s.opt.NumSACK] {
		c.sb.Add(seqnum.Value(b.Start), seqnum.Value(b.End), una, c.sndMax)
	}
}

// retransmitHole resends the first segment of the first hole below SACKed
// data that this recovery has not resent yet, if the window has room.
func (sh *shard) retransmitHole(now monotime.Time, c *conn) {
	if c.sb == nil || c.sb.Empty() || c.ep == nil {
		return
	}
	from := c.sndUna
	if from.LessThan(c.sb.Next) {
		from = c.sb.Next
	}
	// RFC 6675 §5 step C: only while cwnd - pipe >= 1 SMSS, cwnd being
	// the recovery's ssthresh (NewReno's inflation already counts the
	// departures the scoreboard counts).
	h, ok := c.sb.Hole(from)
	if !ok || c.cc.Ssthresh()-c.sb.Pipe(c.sndUna, c.sndNxt) < c.mss {
		return
	}
	end := h.End
	if dataEnd := c.sndBase.Add(seqnum.Size(c.ep.sndq.Len())); dataEnd.LessThan(end) {
		end = dataEnd
	}
	if !h.Start.LessThan(end) {
		return
	}
	n := min(c.mss, int(h.Start.Size(end)))
	sh.sendSegment(now, c, wire.FlagACK, h.Start, n, false)
	c.sb.Next = h.Start.Add(seqnum.Size(n))
	sh.stats.Retransmits++
	c.rttTiming = false // Karn: no sample across a retransmission
}
