package netconn

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/waiter"
)

// deadline is one direction's deadline. ns is read without the lock on
// every call; changed is made only when a caller blocks, and closed when
// the deadline is set so blocked callers re-check it.
type deadline struct {
	ns      atomic.Int64 // UnixNano of the deadline; 0: none
	mu      sync.Mutex
	changed chan struct{}
}

func (d *deadline) set(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
		if ns == 0 {
			ns = 1
		}
	}
	d.mu.Lock()
	d.ns.Store(ns)
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
	d.mu.Unlock()
}

// expired reports whether the deadline is set and has passed.
func (d *deadline) expired() bool {
	ns := d.ns.Load()
	return ns != 0 && time.Now().UnixNano() >= ns
}

// watch returns the current deadline and a channel closed when it changes.
func (d *deadline) watch() (int64, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.ns.Load(), d.changed
}

// eventWaiter waits for events on one endpoint's queue for one direction. Its
// users serialize on a mutex, so the entry is registered at most once.
type eventWaiter struct {
	q     *waiter.Queue
	mask  waiter.EventMask
	entry waiter.Entry
	ch    chan struct{}
	on    bool
}

func (w *eventWaiter) init(q *waiter.Queue, mask waiter.EventMask) {
	w.q, w.mask = q, mask
}

// register starts listening; events after it wake wait. The entry is made
// on first use: a call that never blocks costs no channel.
func (w *eventWaiter) register() {
	if w.ch == nil {
		w.entry, w.ch = waiter.NewChannelEntry(w.mask)
	}
	if !w.on {
		w.q.EventRegister(&w.entry)
		w.on = true
	}
}

func (w *eventWaiter) unregister() {
	if w.on {
		w.q.EventUnregister(&w.entry)
		w.on = false
	}
}

// wait blocks until an event, a deadline change (nil: retry), the deadline
// (os.ErrDeadlineExceeded) or done (net.ErrClosed). The timer exists only
// while blocked.
func (w *eventWaiter) wait(d *deadline, done <-chan struct{}) error {
	w.register()
	ns, changed := d.watch()
	var timeout <-chan time.Time
	if ns != 0 {
		dur := time.Until(time.Unix(0, ns))
		if dur <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(dur)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-w.ch:
		return nil
	case <-changed:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-done:
		return net.ErrClosed
	}
}
