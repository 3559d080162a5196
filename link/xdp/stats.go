package xdp

import (
	"math/bits"
	"sync/atomic"
)

// BatchBuckets is the number of batch-size histogram buckets: bucket i
// counts batches of [2^i, 2^(i+1)) frames; the last one everything above.
const BatchBuckets = 8

// MaxSteerShards is how many shards the per-queue steering counts cover;
// higher shard numbers are counted in SteerOther.
const MaxSteerShards = 64

// counter is a uint64 with one writer: a Load and a Store (plain moves on
// amd64/arm64) instead of a locked add; readers may be on any goroutine.
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64) { c.v.Store(c.v.Load() + n) }
func (c *counter) load() uint64 { return c.v.Load() }
func bucket(n int) int          { return min(bits.Len(uint(n))-1, BatchBuckets-1) }
func (c *counter) inc()         { c.add(1) }
func loadAll(cs []counter) []uint64 {
	out := make([]uint64, len(cs))
	for i := range cs {
		out[i] = cs[i].load()
	}
	return out
}

// queueCounters are one queue's counters. RX ones are written by the
// queue's goroutine, TX ones under the socket's txMu.
type queueCounters struct {
	rxFrames, rxBytes, rxBursts counter
	rxNoDispatcher, rxBad       counter
	rxBatch                     [BatchBuckets]counter
	steerShard                  [MaxSteerShards]counter
	steerOther, steerNone       counter
	steerLocal                  counter

	txFrames, txBytes, txBursts counter
	txRingFull, txOversize      counter
	txKicks, txKickErrors       counter
	txBatch                     [BatchBuckets]counter
	_                           [64]byte
}

// QueueStats are one queue's counters.
type QueueStats struct {
	Queue int

	RxFrames, RxBytes uint64
	RxBursts          uint64   // RX passes that found frames
	RxBatch           []uint64 // histogram of frames per RX pass (BatchBuckets)
	RxNoDispatcher    uint64   // frames dropped: no stack attached
	RxBad             uint64   // frames dropped: bad descriptor or runt frame

	// Steering (only with Options.Steer): frames per owning shard, frames
	// whose shard number is above MaxSteerShards, frames Steer declined
	// (not TCP), and frames whose shard equals this queue's index.
	SteerShard []uint64
	SteerOther uint64
	SteerNone  uint64
	SteerLocal uint64

	TxFrames, TxBytes uint64
	TxBursts          uint64   // WritePackets calls that queued frames here
	TxBatch           []uint64 // histogram of frames per burst
	TxRingFull        uint64   // packets dropped: no free TX descriptor or UMEM frame
	TxOversize        uint64   // packets dropped: larger than a frame
	TxKicks           uint64   // sendto wake-ups
	TxKickErrors      uint64   // sendto wake-ups that failed (other than EAGAIN/EBUSY)

	Kernel KernelStats
}

// KernelStats are the kernel's XDP_STATISTICS for one socket.
type KernelStats struct {
	RxDropped       uint64 // frames the kernel dropped for this socket, all causes (too big, no FILL frame: we were too slow)
	RxInvalidDescs  uint64
	TxInvalidDescs  uint64
	RxRingFull      uint64 // of RxDropped: RX ring full (rare: with RingSize RX frames the FILL ring empties first)
	RxFillRingEmpty uint64 // of RxDropped: FILL ring empty; not to be added to RxDropped
	TxRingEmpty     uint64 // wake-ups that found the TX ring empty (not a drop)
}

// Stats is a snapshot of the endpoint's counters.
type Stats struct {
	Mode       Mode
	NeedWakeup bool
	Queues     []QueueStats
}

// Total sums the queues' frame and drop counters (histograms and steering
// included).
func (s Stats) Total() QueueStats {
	t := QueueStats{Queue: -1, RxBatch: make([]uint64, BatchBuckets), TxBatch: make([]uint64, BatchBuckets),
		SteerShard: make([]uint64, MaxSteerShards)}
	for _, q := range s.Queues {
		t.RxFrames += q.RxFrames
		t.RxBytes += q.RxBytes
		t.RxBursts += q.RxBursts
		t.RxNoDispatcher += q.RxNoDispatcher
		t.RxBad += q.RxBad
		t.SteerOther += q.SteerOther
		t.SteerNone += q.SteerNone
		t.SteerLocal += q.SteerLocal
		t.TxFrames += q.TxFrames
		t.TxBytes += q.TxBytes
		t.TxBursts += q.TxBursts
		t.TxRingFull += q.TxRingFull
		t.TxOversize += q.TxOversize
		t.TxKicks += q.TxKicks
		t.TxKickErrors += q.TxKickErrors
		for i := range t.RxBatch {
			t.RxBatch[i] += q.RxBatch[i]
			t.TxBatch[i] += q.TxBatch[i]
		}
		for i := range t.SteerShard {
			t.SteerShard[i] += q.SteerShard[i]
		}
		k := &t.Kernel
		k.RxDropped += q.Kernel.RxDropped
		k.RxInvalidDescs += q.Kernel.RxInvalidDescs
		k.TxInvalidDescs += q.Kernel.TxInvalidDescs
		k.RxRingFull += q.Kernel.RxRingFull
		k.RxFillRingEmpty += q.Kernel.RxFillRingEmpty
		k.TxRingEmpty += q.Kernel.TxRingEmpty
	}
	return t
}

// Stats returns a snapshot of the counters, the kernel's included (read
// while the sockets are open; zero after Close).
func (ep *Endpoint) Stats() Stats {
	s := Stats{Mode: ep.mode}
	for _, x := range ep.socks {
		c := &x.stats
		q := QueueStats{
			Queue:          x.queue,
			RxFrames:       c.rxFrames.load(),
			RxBytes:        c.rxBytes.load(),
			RxBursts:       c.rxBursts.load(),
			RxBatch:        loadAll(c.rxBatch[:]),
			RxNoDispatcher: c.rxNoDispatcher.load(),
			RxBad:          c.rxBad.load(),
			SteerShard:     loadAll(c.steerShard[:]),
			SteerOther:     c.steerOther.load(),
			SteerNone:      c.steerNone.load(),
			SteerLocal:     c.steerLocal.load(),
			TxFrames:       c.txFrames.load(),
			TxBytes:        c.txBytes.load(),
			TxBursts:       c.txBursts.load(),
			TxBatch:        loadAll(c.txBatch[:]),
			TxRingFull:     c.txRingFull.load(),
			TxOversize:     c.txOversize.load(),
			TxKicks:        c.txKicks.load(),
			TxKickErrors:   c.txKickErrors.load(),
		}
		x.txMu.Lock()
		if !x.closed {
			s.NeedWakeup = x.needWakeup
			if k, err := x.kernelStats(); err == nil {
				q.Kernel = KernelStats{
					RxDropped:       k.Rx_dropped,
					RxInvalidDescs:  k.Rx_invalid_descs,
					TxInvalidDescs:  k.Tx_invalid_descs,
					RxRingFull:      k.Rx_ring_full,
					RxFillRingEmpty: k.Rx_fill_ring_empty_descs,
					TxRingEmpty:     k.Tx_ring_empty_descs,
				}
			}
		}
		x.txMu.Unlock()
		s.Queues = append(s.Queues, q)
	}
	return s
}
