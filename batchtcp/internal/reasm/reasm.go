// Package reasm holds received data that arrived beyond rcv.nxt until the
// gap before it fills (RFC 9293 §3.10.7.4, "seventh, process the segment
// text": a TCP may keep segments that are in the window but not at
// rcv.nxt). It copies payloads into pooled fixed-size blocks so the
// receive path does not hold on to the link's buffers.
package reasm

import (
	"slices"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// BlockSize is the size of the pooled buffers data is copied into; larger
// payloads are split across blocks.
const BlockSize = 2048

type block [BlockSize]byte

var blockPool = sync.Pool{New: func() any { return new(block) }}

// Range is a held span of sequence space, [Start, End).
type Range struct{ Start, End seqnum.Value }

// entry is data for [seq, seq+n) stored at buf[off:off+n].
type entry struct {
	seq    seqnum.Value
	buf    *block
	off, n int
}

func (e *entry) end() seqnum.Value { return e.seq.Add(seqnum.Size(e.n)) }

func (e *entry) data() []byte { return e.buf[e.off : e.off+e.n] }

// Queue is the out-of-order queue of one connection: entries sorted by
// sequence number, none overlapping. The zero value is an empty queue.
// Sequence comparisons assume everything held lies within 2^31 of each
// other, which the receive window guarantees.
type Queue struct {
	entries []entry
	bytes   int
}

// Insert copies data, which starts at seq, into the queue. Bytes already
// held are kept and the overlapping part of data is dropped, so duplicates
// cost nothing.
func (q *Queue) Insert(seq seqnum.Value, data []byte) {
	if len(data) == 0 {
		return
	}
	end := seq.Add(seqnum.Size(len(data)))
	// Skip entries wholly before seq.
	i, _ := slices.BinarySearchFunc(q.entries, seq, func(e entry, s seqnum.Value) int {
		if e.end().LessThanEq(s) {
			return -1
		}
		return 1
	})
	cur := seq
	for i < len(q.entries) && cur.LessThan(end) {
		e := &q.entries[i]
		if !e.seq.LessThan(end) {
			break
		}
		if cur.LessThan(e.seq) {
			// Fill the gap [cur, e.seq) before entry i.
			gap := data[seq.Size(cur):seq.Size(e.seq)]
			i = q.insertAt(i, cur, gap)
			e = &q.entries[i]
		}
		if cur.LessThan(e.end()) {
			cur = e.end()
		}
		i++
	}
	if cur.LessThan(end) {
		q.insertAt(i, cur, data[seq.Size(cur):])
	}
}

// insertAt copies data (for seq) into new entries at index i, splitting it
// across blocks, and returns the index just past them.
func (q *Queue) insertAt(i int, seq seqnum.Value, data []byte) int {
	for len(data) > 0 {
		b := blockPool.Get().(*block)
		n := copy(b[:], data)
		q.entries = slices.Insert(q.entries, i, entry{seq: seq, buf: b, n: n})
		q.bytes += n
		seq = seq.Add(seqnum.Size(n))
		data = data[n:]
		i++
	}
	return i
}

// Pop hands the contiguous data starting at rcvNxt to deliver, in order.
// Held data before rcvNxt is dropped. deliver returns how many bytes it
// took; when it takes fewer than offered (the receive buffer is full) Pop
// stops and keeps the rest. Pop returns the new rcvNxt.
func (q *Queue) Pop(rcvNxt seqnum.Value, deliver func([]byte) int) seqnum.Value {
	done := 0 // entries fully consumed or dropped, all at the front
	for done < len(q.entries) {
		e := &q.entries[done]
		if e.end().LessThanEq(rcvNxt) {
			q.release(e) // already received
			done++
			continue
		}
		if rcvNxt.LessThan(e.seq) {
			break // a gap at rcvNxt
		}
		q.trimFront(e, int(e.seq.Size(rcvNxt)))
		took := min(max(deliver(e.data()), 0), e.n)
		rcvNxt = rcvNxt.Add(seqnum.Size(took))
		if took < e.n {
			q.trimFront(e, took)
			break
		}
		q.release(e)
		done++
	}
	if done > 0 {
		q.entries = slices.Delete(q.entries, 0, done)
	}
	return rcvNxt
}

// trimFront drops the first n bytes of e.
func (q *Queue) trimFront(e *entry, n int) {
	e.seq = e.seq.Add(seqnum.Size(n))
	e.off += n
	e.n -= n
	q.bytes -= n
}

// release returns e's block to the pool and uncounts its bytes.
func (q *Queue) release(e *entry) {
	q.bytes -= e.n
	blockPool.Put(e.buf)
	*e = entry{}
}

// Bytes is the number of bytes held.
func (q *Queue) Bytes() int { return q.bytes }

// Empty reports whether nothing is held.
func (q *Queue) Empty() bool { return len(q.entries) == 0 }

// Ranges writes the held ranges, adjacent ones merged, lowest first, into
// dst and returns how many it wrote (at most len(dst)). SACK generation
// (RFC 2018 §4) reorders them most recent first.
func (q *Queue) Ranges(dst []Range) int {
	n := 0
	for i := range q.entries {
		e := &q.entries[i]
		if n > 0 && dst[n-1].End == e.seq {
			dst[n-1].End = e.end()
			continue
		}
		if n == len(dst) {
			break
		}
		dst[n] = Range{e.seq, e.end()}
		n++
	}
	return n
}

// RangeOf returns the held range (adjacent entries merged) that contains
// seq, if any: the SACK block of a segment just received (RFC 2018 §4).
func (q *Queue) RangeOf(seq seqnum.Value) (Range, bool) {
	var r Range
	open := false
	for i := range q.entries {
		e := &q.entries[i]
		if open && r.End == e.seq {
			r.End = e.end()
		} else {
			if open && seq.InRange(r.Start, r.End) {
				return r, true
			}
			r, open = Range{e.seq, e.end()}, true
		}
	}
	if open && seq.InRange(r.Start, r.End) {
		return r, true
	}
	return Range{}, false
}

// Reset releases everything to the pool.
func (q *Queue) Reset() {
	for i := range q.entries {
		q.release(&q.entries[i])
	}
	q.entries = q.entries[:0]
	q.bytes = 0
}
