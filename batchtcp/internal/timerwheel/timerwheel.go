// Package timerwheel is a hashed timing wheel (Varghese & Lauck, scheme 6;
// mTCP's RTO wheel) owned by one goroutine, a shard. Timers are intrusive:
// embed a Timer in the connection and scheduling allocates nothing.
//
// A timer lives in the slot of its deadline's tick. Timers more than one
// revolution away share slots with nearer ones and are skipped by comparing
// deadlines, so Advance over any gap visits at most every slot once.
package timerwheel

import (
	"math/bits"
	"time"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
)

// expiredSlot marks a timer collected by Advance and not yet fired.
const expiredSlot = -1

// Timer is an intrusive wheel entry. The zero value is not pending.
type Timer struct {
	// Owner is set by the user, typically to the embedding connection; the
	// wheel never touches it.
	Owner any

	deadline   monotime.Time
	next, prev *Timer
	slot       int32 // slot index, or expiredSlot
	pending    bool
}

// Pending reports whether t is scheduled and has not fired or been cancelled.
func (t *Timer) Pending() bool { return t.pending }

// Deadline returns the time t was last scheduled for.
func (t *Timer) Deadline() monotime.Time { return t.deadline }

// Wheel is a hashed timing wheel. It is not safe for concurrent use.
type Wheel struct {
	tick    int64 // nanoseconds per slot
	mask    int64
	heads   []*Timer
	nonzero []uint64 // bitmap of non-empty slots
	cur     int64    // tick of the last Advance; its slot is rescanned next time
	now     monotime.Time
	count   int
	expired *Timer // collected by Advance, fired in order

	min   monotime.Time // cached Next, valid if minOK
	minOK bool
}

// New returns a wheel of slots slots (rounded up to a power of two, at least
// 64) of tick each, with its clock at now.
func New(tick time.Duration, slots int, now monotime.Time) *Wheel {
	if tick <= 0 || slots <= 0 {
		panic("timerwheel: non-positive tick or slots")
	}
	n := max(1<<bits.Len(uint(slots-1)), 64) // whole bitmap words
	w := &Wheel{
		tick:    int64(tick),
		mask:    int64(n - 1),
		heads:   make([]*Timer, n),
		nonzero: make([]uint64, n/64),
		now:     now,
	}
	w.cur = w.tickOf(now)
	return w
}

// tickOf returns floor(t / tick).
func (w *Wheel) tickOf(t monotime.Time) int64 {
	q := int64(t) / w.tick
	if int64(t)%w.tick < 0 {
		q--
	}
	return q
}

// Len returns the number of pending timers.
func (w *Wheel) Len() int { return w.count }

// Schedule arms t for at, moving it if pending. A deadline at or before the
// wheel's clock fires at the next Advance.
func (w *Wheel) Schedule(t *Timer, at monotime.Time) {
	if t.pending {
		w.unlink(t)
	}
	// Past ticks go to the current slot, which the next Advance scans first.
	s := int32(max(w.tickOf(at), w.cur) & w.mask)
	t.deadline, t.slot, t.pending, t.prev = at, s, true, nil
	t.next = w.heads[s]
	if t.next != nil {
		t.next.prev = t
	}
	w.heads[s] = t
	w.nonzero[s>>6] |= 1 << (s & 63)
	if w.count == 0 || (w.minOK && at < w.min) {
		w.min, w.minOK = at, true
	}
	w.count++
}

// Cancel disarms t; it is a no-op if t is not pending.
func (w *Wheel) Cancel(t *Timer) {
	if t.pending {
		w.unlink(t)
	}
}

func (w *Wheel) unlink(t *Timer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else if t.slot == expiredSlot {
		w.expired = t.next
	} else {
		w.heads[t.slot] = t.next
		if t.next == nil {
			w.nonzero[t.slot>>6] &^= 1 << (t.slot & 63)
		}
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.next, t.prev, t.pending = nil, nil, false
	w.count--
	if w.minOK && t.deadline == w.min {
		w.minOK = false
	}
}

// Advance moves the clock to now and fires, in tick order, every timer with
// deadline <= now, unlinking each before calling fire. fire may Schedule or
// Cancel any timer; a timer it schedules at or before now fires at the next
// Advance. Cost is O(min(elapsed ticks, slots) + timers visited).
func (w *Wheel) Advance(now monotime.Time, fire func(*Timer)) {
	if now < w.now {
		now = w.now
	}
	w.now = now
	end := w.tickOf(now)
	n := min(end-w.cur+1, w.mask+1)
	var tail *Timer
	for i := int64(0); i < n; i++ {
		s := (w.cur + i) & w.mask
		if w.nonzero[s>>6]&(1<<(s&63)) == 0 {
			// Skip empty words quickly.
			if w.nonzero[s>>6] == 0 {
				i += 63 - s&63
			}
			continue
		}
		tail = w.collect(s, now, tail)
	}
	w.cur = end
	for w.expired != nil {
		t := w.expired
		w.unlink(t)
		fire(t)
	}
}

// collect moves the due timers of slot s to the expired list after tail and
// returns the new tail.
func (w *Wheel) collect(s int64, now monotime.Time, tail *Timer) *Timer {
	var keep, keepTail *Timer
	for t := w.heads[s]; t != nil; {
		next := t.next
		if t.deadline <= now {
			t.slot, t.prev, t.next = expiredSlot, tail, nil
			if tail == nil {
				w.expired = t
			} else {
				tail.next = t
			}
			tail = t
		} else {
			t.prev, t.next = keepTail, nil
			if keepTail == nil {
				keep = t
			} else {
				keepTail.next = t
			}
			keepTail = t
		}
		t = next
	}
	w.heads[s] = keep
	if keep == nil {
		w.nonzero[s>>6] &^= 1 << (s & 63)
	}
	return tail
}

// Next returns the earliest pending deadline, exactly, and false if no timer
// is pending. The result is cached until a change could invalidate it.
func (w *Wheel) Next() (monotime.Time, bool) {
	if w.count == 0 {
		return 0, false
	}
	if w.minOK {
		return w.min, true
	}
	first := true
	var best monotime.Time
	for t := w.expired; t != nil; t = t.next {
		if first || t.deadline < best {
			best, first = t.deadline, false
		}
	}
	// Visit non-empty slots in tick order. The first slot holding a timer due
	// in its own revolution holds the minimum of all timers not yet seen:
	// every later slot and every far-future timer is due later.
	n := w.mask + 1
	for i := int64(0); i < n; {
		s := (w.cur + i) & w.mask
		word := w.nonzero[s>>6] >> (s & 63)
		if word == 0 {
			i += 64 - s&63
			continue
		}
		skip := int64(bits.TrailingZeros64(word))
		if i += skip; i >= n {
			break
		}
		s += skip
		due := false
		for t := w.heads[s]; t != nil; t = t.next {
			if first || t.deadline < best {
				best, first = t.deadline, false
			}
			due = due || w.tickOf(t.deadline) <= w.cur+i
		}
		if due {
			break
		}
		i++
	}
	w.min, w.minOK = best, true
	return best, true
}
