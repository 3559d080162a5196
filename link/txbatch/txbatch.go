// Package txbatch provides a stack.QueueingDiscipline that lets a sender
// (a batchtcp shard) gather every packet one batch produces and pass them to
// the link in a single WritePackets call.
//
// Packets are split into lanes by pkt.Hash % lanes. A lane that is held
// (Hold) queues its packets; Flush writes them in one call and releases the
// hold. Packets on a lane that is not held go straight through.
package txbatch

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// MaxHeld bounds the packets a held lane queues; the next packet flushes
// the lane early (the hold stays).
const MaxHeld = 256

// LaneStats counts one lane's traffic.
type LaneStats struct {
	Calls   uint64 // WritePackets calls made for the lane
	Packets uint64 // packets passed to those calls
	Errors  uint64 // calls that returned an error
}

type lane struct {
	mu    sync.Mutex
	held  bool
	pkts  stack.PacketBufferList
	one   stack.PacketBufferList // reused for write-through
	stats LaneStats
	_     [64]byte // keep lanes on separate cache lines
}

// QDisc is a lane-batching queueing discipline. It implements
// stack.QueueingDiscipline and batchtcp's TxBatcher (Hold, Flush).
type QDisc struct {
	w     stack.LinkWriter
	lanes []lane

	closed atomic.Bool
}

var _ stack.QueueingDiscipline = (*QDisc)(nil)

// New returns a QDisc writing to w with the given number of lanes (at
// least 1).
func New(w stack.LinkWriter, lanes int) *QDisc {
	if lanes < 1 {
		lanes = 1
	}
	return &QDisc{w: w, lanes: make([]lane, lanes)}
}

// Lanes returns the number of lanes.
func (q *QDisc) Lanes() int { return len(q.lanes) }

// Lane returns the lane a packet with the given hash uses.
func (q *QDisc) Lane(hash uint32) int { return int(hash % uint32(len(q.lanes))) }

func (q *QDisc) lane(i int) *lane {
	if i < 0 || i >= len(q.lanes) {
		return nil
	}
	return &q.lanes[i]
}

// Hold makes the lane queue packets until Flush. Out-of-range lanes are
// ignored.
func (q *QDisc) Hold(i int) {
	l := q.lane(i)
	if l == nil {
		return
	}
	l.mu.Lock()
	l.held = true
	l.mu.Unlock()
}

// Flush writes the lane's queued packets in one WritePackets call and
// releases the hold. Flush without Hold, or on an out-of-range lane, does
// nothing.
func (q *QDisc) Flush(i int) {
	l := q.lane(i)
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.held {
		q.flushLocked(l)
		l.held = false
	}
	l.mu.Unlock()
}

// flushLocked writes l's queue. The lane lock stays held across the write
// so that a later packet on the lane cannot overtake the batch.
func (q *QDisc) flushLocked(l *lane) {
	n := l.pkts.Len()
	if n == 0 {
		return
	}
	l.stats.Calls++
	l.stats.Packets += uint64(n)
	if _, err := q.w.WritePackets(l.pkts); err != nil {
		l.stats.Errors++
	}
	l.pkts.Reset() // DecRefs the queued packets.
}

// WritePacket implements stack.QueueingDiscipline.
func (q *QDisc) WritePacket(pkt *stack.PacketBuffer) tcpip.Error {
	l := &q.lanes[q.Lane(pkt.Hash)]
	l.mu.Lock()
	defer l.mu.Unlock()
	// Close sets closed before it flushes each lane under the lane lock, so
	// nothing is queued on a lane after its final flush.
	if q.closed.Load() {
		return &tcpip.ErrClosedForSend{}
	}
	if l.held {
		if l.pkts.Len() >= MaxHeld {
			q.flushLocked(l)
		}
		l.pkts.PushBack(pkt.IncRef())
		return nil
	}
	l.one.PushBack(pkt.IncRef())
	l.stats.Calls++
	l.stats.Packets++
	_, err := q.w.WritePackets(l.one)
	if err != nil {
		l.stats.Errors++
	}
	l.one.Reset()
	return err
}

// Close implements stack.QueueingDiscipline: it flushes every lane, and
// later packets are refused. Idempotent.
func (q *QDisc) Close() {
	if q.closed.Swap(true) {
		return
	}
	for i := range q.lanes {
		l := &q.lanes[i]
		l.mu.Lock()
		q.flushLocked(l)
		l.held = false
		l.mu.Unlock()
	}
}

// Stats returns a snapshot of every lane's counters.
func (q *QDisc) Stats() []LaneStats {
	s := make([]LaneStats, len(q.lanes))
	for i := range q.lanes {
		l := &q.lanes[i]
		l.mu.Lock()
		s[i] = l.stats
		l.mu.Unlock()
	}
	return s
}
