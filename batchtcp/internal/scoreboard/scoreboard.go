// Package scoreboard is a TCP sender's record of the data the receiver has
// selectively acknowledged (RFC 2018 §5, RFC 6675 §3 "scoreboard"): sorted,
// merged ranges above SND.UNA, and the holes between them that loss
// recovery retransmits. It is a connection's, used on its shard only.
package scoreboard

import "gvisor.dev/gvisor/pkg/tcpip/seqnum"

// MaxRanges bounds the ranges kept. When more are reported the highest are
// forgotten: the sender then knows less and retransmits more, never less
// than it must (RFC 6675 §5.1 lets a sender keep what it can).
const MaxRanges = 8

// Range is [Start, End) of sequence space.
type Range struct{ Start, End seqnum.Value }

// Board holds SACKed ranges, lowest first, and the point up to which the
// current recovery has retransmitted (Next).
type Board struct {
	r []Range
	a [MaxRanges]Range
	// Next is where the search for the next hole to retransmit starts;
	// the recovery that set it owns it.
	Next seqnum.Value
}

// Empty reports whether nothing is SACKed.
func (b *Board) Empty() bool { return len(b.r) == 0 }

// Reset forgets everything (RFC 2018 §8: after a retransmission timeout the
// receiver may have reneged).
func (b *Board) Reset() { b.r, b.Next = b.a[:0], 0 }

// Add records the block [start, end) reported by an ACK whose cumulative
// acknowledgment is una, for data sent up to max; blocks that are empty,
// at or below una (D-SACK, RFC 2883) or beyond max are ignored.
func (b *Board) Add(start, end, una, max seqnum.Value) {
	if b.r == nil {
		b.r = b.a[:0]
	}
	if !start.LessThan(end) || !una.LessThan(end) || max.LessThan(end) {
		return
	}
	if start.LessThan(una) {
		start = una
	}
	// Find the first range that ends at or after start.
	i := 0
	for i < len(b.r) && b.r[i].End.LessThan(start) {
		i++
	}
	// Merge every range that overlaps or touches [start, end).
	j := i
	for j < len(b.r) && b.r[j].Start.LessThanEq(end) {
		if b.r[j].Start.LessThan(start) {
			start = b.r[j].Start
		}
		if end.LessThan(b.r[j].End) {
			end = b.r[j].End
		}
		j++
	}
	nr := Range{start, end}
	switch {
	case j > i: // replace r[i:j] by nr
		b.r[i] = nr
		b.r = append(b.r[:i+1], b.r[j:]...)
	case len(b.r) < MaxRanges:
		b.r = append(b.r, Range{})
		copy(b.r[i+1:], b.r[i:])
		b.r[i] = nr
	case i < len(b.r): // full: drop the highest to make room
		copy(b.r[i+1:], b.r[i:len(b.r)-1])
		b.r[i] = nr
	}
}

// Ack drops what the cumulative acknowledgment una now covers.
func (b *Board) Ack(una seqnum.Value) {
	k := 0
	for k < len(b.r) && b.r[k].End.LessThanEq(una) {
		k++
	}
	b.r = b.r[:copy(b.r, b.r[k:])]
	if len(b.r) > 0 && b.r[0].Start.LessThan(una) {
		b.r[0].Start = una
	}
}

// High is the end of the highest SACKed range (ok false when none).
func (b *Board) High() (seqnum.Value, bool) {
	if len(b.r) == 0 {
		return 0, false
	}
	return b.r[len(b.r)-1].End, true
}

// Sacked is the number of octets SACKed.
func (b *Board) Sacked() int {
	n := 0
	for _, r := range b.r {
		n += int(r.Start.Size(r.End))
	}
	return n
}

// Hole returns the first span at or after from that is not SACKed and lies
// below the highest SACKed octet: data the receiver is missing while it
// holds later data (RFC 6675 §4 NextSeg rule 1, with IsLost approximated by
// "below a SACKed range").
func (b *Board) Hole(from seqnum.Value) (Range, bool) {
	for _, r := range b.r {
		if from.LessThan(r.Start) {
			return Range{from, r.Start}, true
		}
		if from.LessThan(r.End) {
			from = r.End
		}
	}
	return Range{}, false
}

// Pipe estimates RFC 6675's pipe (§4 SetPipe) during a recovery that has
// resent up to Next: the octets sent above the highest SACKed octet, plus
// the holes below it already resent ([una, Next)). Holes not yet resent
// count as lost (IsLost, approximated: data is missing below SACKed data)
// and SACKed octets as delivered. Without SACKed data it is all of
// [una, sndNxt).
func (b *Board) Pipe(una, sndNxt seqnum.Value) int {
	high, ok := b.High()
	if !ok {
		return int(una.Size(sndNxt))
	}
	pipe := 0
	if high.LessThan(sndNxt) {
		pipe = int(high.Size(sndNxt))
	}
	end := b.Next
	if high.LessThan(end) {
		end = high
	}
	for from := una; from.LessThan(end); {
		h, ok := b.Hole(from)
		if !ok || !h.Start.LessThan(end) {
			break
		}
		e := h.End
		if end.LessThan(e) {
			e = end
		}
		pipe += int(h.Start.Size(e))
		from = h.End
	}
	return pipe
}

// Ranges returns the SACKed ranges, lowest first (valid until the next
// change).
func (b *Board) Ranges() []Range { return b.r }
