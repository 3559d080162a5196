package runner

import (
	"container/heap"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// vclock is the stack's tcpip.Clock: virtual time that moves only when the
// runner advances it. Unlike faketime.ManualClock it exposes the earliest
// deadline, so the runner can step from timer to timer and stamp every
// segment with the exact virtual time it was sent.
type vclock struct {
	mu     sync.Mutex
	now    int64 // nanoseconds since the script started
	seq    uint64
	timers timerHeap
}

// epoch is the wall-clock time of virtual zero (fixed: runs repeat).
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var _ tcpip.Clock = (*vclock)(nil)

func (c *vclock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return epoch.Add(time.Duration(c.now))
}

func (c *vclock) NowMonotonic() tcpip.MonotonicTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t tcpip.MonotonicTime
	// A non-zero base: some code treats the zero MonotonicTime as unset.
	return t.Add(time.Duration(c.now) + time.Hour)
}

// nanos returns virtual nanoseconds since the start.
func (c *vclock) nanos() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *vclock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &vtimer{c: c, f: f, idx: -1}
	t.Reset(d)
	return t
}

// next returns the earliest pending deadline.
func (c *vclock) next() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	return c.timers[0].at, true
}

// fireDue sets the clock to the earliest deadline if it is <= limit, runs
// every timer due then (outside the lock: callbacks re-arm timers) and
// reports whether it did anything.
func (c *vclock) fireDue(limit int64) bool {
	c.mu.Lock()
	if len(c.timers) == 0 || c.timers[0].at > limit {
		c.mu.Unlock()
		return false
	}
	at := c.timers[0].at
	if at > c.now {
		c.now = at
	}
	var due []func()
	for len(c.timers) > 0 && c.timers[0].at <= c.now {
		t := heap.Pop(&c.timers).(*vtimer)
		due = append(due, t.f)
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
	return true
}

// set moves the clock to at (never backwards) without firing timers; the
// caller fires them first with fireDue.
func (c *vclock) set(at int64) {
	c.mu.Lock()
	if at > c.now {
		c.now = at
	}
	c.mu.Unlock()
}

type vtimer struct {
	c   *vclock
	f   func()
	at  int64
	seq uint64
	idx int // heap index, -1 when not pending
}

func (t *vtimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	heap.Remove(&t.c.timers, t.idx)
	return true
}

func (t *vtimer) Reset(d time.Duration) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.idx >= 0 {
		heap.Remove(&c.timers, t.idx)
	}
	if d < 0 {
		d = 0
	}
	c.seq++
	t.at, t.seq = c.now+int64(d), c.seq
	heap.Push(&c.timers, t)
}

type timerHeap []*vtimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*vtimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
