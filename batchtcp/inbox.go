package batchtcp

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// inSeg is one inbound segment queued for a shard: the packet (a reference
// the shard releases) and its flow. direct is set when it came from a
// DirectLink (size: its bytes as the NIC received them).
type inSeg struct {
	pkt    *stack.PacketBuffer
	id     stack.TransportEndpointID
	hash   uint32
	size   uint32
	direct *DirectLink
}

// inbox is a shard's input: segments from link goroutines and endpoints with
// pending application events. Producers append under the shard's own mutex
// (never a lock shared between shards); the shard swaps whole slices out, so
// it takes the lock once per batch, not once per segment. Both slices are
// double-buffered and reused: steady state allocates nothing.
type inbox struct {
	mu   sync.Mutex
	segs []inSeg
	eps  []*endpoint
	// fns are control requests run on the shard (snapshots, shutdown).
	fns []func(*shard)
	// idle are requests run once the shard has drained its input (Sync).
	idle []func()
	// wake has one slot: a send that finds it full is dropped, since the
	// shard is already due to run.
	wake chan struct{}
	// closed: the shard has stopped; segments are refused (the caller
	// releases them) rather than left queued forever.
	closed bool
}

func (b *inbox) init() {
	b.wake = make(chan struct{}, 1)
	b.segs = make([]inSeg, 0, maxBatch)
}

func (b *inbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// pushSeg queues a segment; false if the inbox is full (the caller drops).
func (b *inbox) pushSeg(s inSeg) bool {
	b.mu.Lock()
	if b.closed || len(b.segs) >= inboxLimit {
		b.mu.Unlock()
		return false
	}
	first := len(b.segs) == 0 && len(b.eps) == 0
	b.segs = append(b.segs, s)
	b.mu.Unlock()
	if first {
		b.signal()
	}
	return true
}

// pushEP queues an endpoint whose pending-event bits went from zero to
// non-zero; the endpoint coalesces further events until the shard runs.
func (b *inbox) pushEP(e *endpoint) {
	b.mu.Lock()
	first := len(b.segs) == 0 && len(b.eps) == 0
	b.eps = append(b.eps, e)
	b.mu.Unlock()
	if first {
		b.signal()
	}
}

// pushFn queues f to run on the shard goroutine.
func (b *inbox) pushFn(f func(*shard)) {
	b.mu.Lock()
	b.fns = append(b.fns, f)
	b.mu.Unlock()
	b.signal()
}

// takeFns returns queued control requests.
func (b *inbox) takeFns() []func(*shard) {
	b.mu.Lock()
	f := b.fns
	b.fns = nil
	b.mu.Unlock()
	return f
}

// pushIdle queues f to run on the shard once everything queued before it
// has been processed.
func (b *inbox) pushIdle(f func()) {
	b.mu.Lock()
	b.idle = append(b.idle, f)
	b.mu.Unlock()
	b.signal()
}

// takeIdle returns the idle requests if no input is queued; otherwise none
// (the shard runs again first: input pending means a wake is pending).
func (b *inbox) takeIdle() []func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.idle) == 0 || len(b.segs) > 0 || len(b.eps) > 0 || len(b.fns) > 0 {
		return nil
	}
	f := b.idle
	b.idle = nil
	return f
}

// close refuses further segments and returns those queued.
func (b *inbox) close() ([]inSeg, []*endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	segs, eps := b.segs, b.eps
	b.segs, b.eps = nil, nil
	return segs, eps
}

// take swaps the queued work into the caller's (empty) slices and returns
// them filled.
func (b *inbox) take(segs []inSeg, eps []*endpoint) ([]inSeg, []*endpoint) {
	b.mu.Lock()
	segs, b.segs = b.segs, segs[:0]
	eps, b.eps = b.eps, eps[:0]
	b.mu.Unlock()
	return segs, eps
}
