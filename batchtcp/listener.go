package batchtcp

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// listenKey is what a listener is bound to: a port on an address (the zero
// address: all addresses) for one network protocol.
type listenKey struct {
	netProto tcpip.NetworkProtocolNumber
	addr     tcpip.Address
	port     uint16
}

// listenerTable maps bound ports to listeners. Shards consult it only when a
// segment misses their own flow table (a SYN for a new connection), through
// an atomically swapped copy-on-write map: lookups take no lock.
type listenerTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[listenKey]*listener]
}

func (t *listenerTable) init() {
	m := map[listenKey]*listener{}
	t.m.Store(&m)
}

func (t *listenerTable) add(k listenKey, l *listener) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.m.Load()
	if _, dup := old[k]; dup {
		return false
	}
	m := make(map[listenKey]*listener, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	m[k] = l
	t.m.Store(&m)
	return true
}

func (t *listenerTable) remove(k listenKey, l *listener) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.m.Load()
	if old[k] != l {
		return
	}
	m := make(map[listenKey]*listener, len(old))
	for kk, v := range old {
		if kk != k {
			m[kk] = v
		}
	}
	t.m.Store(&m)
}

// lookup finds the listener for a segment to (addr, port): an exact address
// first, then a wildcard.
func (t *listenerTable) lookup(netProto tcpip.NetworkProtocolNumber, addr tcpip.Address, port uint16) *listener {
	m := *t.m.Load()
	if len(m) == 0 {
		return nil
	}
	if l := m[listenKey{netProto, addr, port}]; l != nil {
		return l
	}
	return m[listenKey{netProto, tcpip.Address{}, port}]
}

func (t *listenerTable) closeAll() {
	for _, l := range *t.m.Load() {
		l.ep.closeListener()
	}
}

// listener is a listening endpoint's shared part. Each shard has its own
// accept queue (mTCP's per-core accept queue): a shard appends the children
// it completes to its own queue, and Accept takes from them in turn.
type listener struct {
	ep      *endpoint
	key     listenKey
	backlog atomic.Int32
	// pending counts children in SYN-RECEIVED plus those queued for
	// Accept, bounded by backlog.
	pending atomic.Int32
	closed  atomic.Bool
	queues  []acceptQueue
	next    atomic.Uint32 // round-robin start for Accept
}

type acceptQueue struct {
	mu sync.Mutex
	q  []*endpoint
	_  [40]byte // keep shards' queues on separate cache lines
}

func newListener(ep *endpoint, key listenKey, backlog, shards int) *listener {
	l := &listener{ep: ep, key: key, queues: make([]acceptQueue, shards)}
	l.backlog.Store(int32(backlog))
	return l
}

// reserve claims room for one more child; false if the backlog is full.
func (l *listener) reserve() bool {
	for {
		n := l.pending.Load()
		if n >= l.backlog.Load() || l.closed.Load() {
			return false
		}
		if l.pending.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (l *listener) release() { l.pending.Add(-1) }

// push queues an established child on shard i's queue.
func (l *listener) push(i int, child *endpoint) bool {
	q := &l.queues[i]
	q.mu.Lock()
	if l.closed.Load() {
		q.mu.Unlock()
		return false
	}
	q.q = append(q.q, child)
	q.mu.Unlock()
	return true
}

// pop takes one established child, visiting shards round-robin.
func (l *listener) pop() *endpoint {
	n := len(l.queues)
	start := int(l.next.Add(1)) % n
	for k := 0; k < n; k++ {
		q := &l.queues[(start+k)%n]
		q.mu.Lock()
		if len(q.q) > 0 {
			e := q.q[0]
			copy(q.q, q.q[1:])
			q.q[len(q.q)-1] = nil
			q.q = q.q[:len(q.q)-1]
			q.mu.Unlock()
			l.release()
			return e
		}
		q.mu.Unlock()
	}
	return nil
}

// ready reports whether a child is waiting.
func (l *listener) ready() bool {
	for i := range l.queues {
		q := &l.queues[i]
		q.mu.Lock()
		n := len(q.q)
		q.mu.Unlock()
		if n > 0 {
			return true
		}
	}
	return false
}

// drain empties the queues (on close) and returns the children.
func (l *listener) drain() []*endpoint {
	var out []*endpoint
	for i := range l.queues {
		q := &l.queues[i]
		q.mu.Lock()
		out = append(out, q.q...)
		q.q = nil
		q.mu.Unlock()
	}
	return out
}
