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
// every call. While a caller is blocked, wake is its waiter's channel: set
// sends on it so the caller re-checks (a spurious wake-up at worst), and no
// channel is made per wait.
type deadline struct {
	ns   atomic.Int64 // UnixNano of the deadline; 0: none
	mu   sync.Mutex
	wake chan struct{}
}

func (d *deadline) set(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
		if ns == 0 {
			ns = 1
		}
	}
	d.ns.Store(ns)
	d.mu.Lock()
	if d.wake != nil {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
}

// expired reports whether the deadline is set and has passed.
func (d *deadline) expired() bool {
	ns := d.ns.Load()
	return ns != 0 && time.Now().UnixNano() >= ns
}

// watch makes ch the channel set wakes and returns the current deadline.
func (d *deadline) watch(ch chan struct{}) int64 {
	d.mu.Lock()
	d.wake = ch
	d.mu.Unlock()
	return d.ns.Load()
}

func (d *deadline) unwatch() {
	d.mu.Lock()
	d.wake = nil
	d.mu.Unlock()
}

// timers are reused across waits (Go 1.23+ timers: after Stop no stale
// value is received, so a stopped timer can be Reset by the next user).
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
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
// (os.ErrDeadlineExceeded) or done (net.ErrClosed). A pooled timer runs only
// while blocked.
func (w *eventWaiter) wait(d *deadline, done <-chan struct{}) error {
	w.register()
	ns := d.watch(w.ch)
	defer d.unwatch()
	var timeout <-chan time.Time
	if ns != 0 {
		dur := time.Until(time.Unix(0, ns))
		if dur <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := getTimer(dur)
		defer putTimer(t)
		timeout = t.C
	}
	select {
	case <-w.ch: // an event or a deadline change: the caller re-checks
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-done:
		return net.ErrClosed
	}
}
