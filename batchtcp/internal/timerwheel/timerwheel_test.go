package timerwheel

import (
	"slices"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"pgregory.net/rapid"
)

const ms = monotime.Time(time.Millisecond)

// recorder collects fired timers' Owner ints.
type recorder struct{ got []int }

func (r *recorder) fire(t *Timer) { r.got = append(r.got, t.Owner.(int)) }

func (r *recorder) take() []int {
	g := r.got
	r.got = nil
	return g
}

func newTimers(n int) []Timer {
	ts := make([]Timer, n)
	for i := range ts {
		ts[i].Owner = i
	}
	return ts
}

func TestOrdering(t *testing.T) {
	w := New(time.Millisecond, 64, 0)
	ts := newTimers(5)
	at := []monotime.Time{30 * ms, 5 * ms, 17*ms + 3, 2 * ms, 40 * ms}
	for i := range ts {
		w.Schedule(&ts[i], at[i])
	}
	if w.Len() != 5 {
		t.Fatalf("Len = %d", w.Len())
	}
	var r recorder
	w.Advance(50*ms, r.fire) // one Advance, less than a revolution: tick order
	if want := []int{3, 1, 2, 0, 4}; !slices.Equal(r.take(), want) {
		t.Fatalf("wrong firing order, want %v", want)
	}
	if w.Len() != 0 || ts[0].Pending() {
		t.Fatal("timers left pending")
	}
	// Within a tick, a timer fires only once its deadline is reached.
	w.Schedule(&ts[0], 60*ms+500)
	w.Advance(60*ms+499, r.fire)
	if len(r.take()) != 0 {
		t.Fatal("fired early")
	}
	w.Advance(60*ms+500, r.fire)
	if !slices.Equal(r.take(), []int{0}) {
		t.Fatal("did not fire at deadline")
	}
}

func TestReschedule(t *testing.T) {
	w := New(time.Millisecond, 64, 0)
	ts := newTimers(1)
	var r recorder
	w.Schedule(&ts[0], 10*ms)
	w.Schedule(&ts[0], 20*ms)
	if !ts[0].Pending() || ts[0].Deadline() != 20*ms || w.Len() != 1 {
		t.Fatal("reschedule later")
	}
	w.Advance(15*ms, r.fire)
	if len(r.take()) != 0 {
		t.Fatal("fired at old deadline")
	}
	w.Schedule(&ts[0], 16*ms)
	if d, ok := w.Next(); !ok || d != 16*ms {
		t.Fatalf("Next = %v %v", d, ok)
	}
	w.Advance(16*ms, r.fire)
	if !slices.Equal(r.take(), []int{0}) || ts[0].Pending() {
		t.Fatal("reschedule earlier")
	}
	w.Cancel(&ts[0]) // not pending: no-op
	if w.Len() != 0 {
		t.Fatal("Cancel of idle timer")
	}
}

func TestCallbacks(t *testing.T) {
	w := New(time.Millisecond, 64, 0)
	ts := newTimers(4)
	for i := range ts {
		w.Schedule(&ts[i], monotime.Time(i+1)*ms)
	}
	var got []int
	w.Advance(10*ms, func(tm *Timer) {
		i := tm.Owner.(int)
		got = append(got, i)
		switch i {
		case 0:
			w.Cancel(&ts[1])           // collected, not yet fired: must not fire
			w.Schedule(&ts[0], 5*ms)   // itself, in the past: next Advance
			w.Schedule(&ts[2], 100*ms) // collected one, moved out
		case 3:
			w.Schedule(&ts[3], 20*ms)
		}
	})
	if !slices.Equal(got, []int{0, 3}) {
		t.Fatalf("fired %v, want [0 3]", got)
	}
	if w.Len() != 3 || !ts[0].Pending() || ts[1].Pending() {
		t.Fatalf("Len %d", w.Len())
	}
	if d, _ := w.Next(); d != 5*ms {
		t.Fatalf("Next = %v, want 5ms", d)
	}
	var r recorder
	w.Advance(10*ms, r.fire)
	if !slices.Equal(r.take(), []int{0}) {
		t.Fatal("past reschedule did not fire at the next Advance")
	}
	w.Advance(100*ms, r.fire)
	if !slices.Equal(r.take(), []int{3, 2}) {
		t.Fatal("rescheduled timers")
	}
}

func TestFarFuture(t *testing.T) {
	w := New(time.Millisecond, 64, 0)
	ts := newTimers(3)
	w.Schedule(&ts[0], 1000*ms+1) // 15+ revolutions away
	w.Schedule(&ts[1], 64*ms)     // same slot as now, one revolution
	w.Schedule(&ts[2], 3*ms)
	var r recorder
	for now := monotime.Time(0); now <= 1001*ms; now += ms / 2 {
		w.Advance(now, r.fire)
		for _, i := range r.take() {
			if d := ts[i].Deadline(); now < d || now-ms/2 >= d {
				t.Fatalf("timer %d (deadline %v) fired at %v", i, d, now)
			}
		}
		if d, ok := w.Next(); ok && d <= now {
			t.Fatalf("Next %v <= now %v", d, now)
		}
	}
	if w.Len() != 0 {
		t.Fatal("not all fired")
	}
}

func TestBigJump(t *testing.T) {
	w := New(time.Millisecond, 4096, 0)
	ts := newTimers(1000)
	for i := range ts {
		w.Schedule(&ts[i], monotime.Time(i)*120*ms) // 0..120 s
	}
	var r recorder
	w.Advance(monotime.Time(60*time.Second), r.fire)
	got := r.take()
	if len(got) != 501 {
		t.Fatalf("fired %d, want 501", len(got))
	}
	for _, i := range got {
		if i > 500 {
			t.Fatalf("timer %d fired early", i)
		}
	}
	if d, _ := w.Next(); d != 501*120*ms {
		t.Fatalf("Next = %v", d)
	}
	w.Advance(monotime.Time(time.Hour), r.fire)
	if len(r.take()) != 499 || w.Len() != 0 {
		t.Fatal("second jump")
	}
}

func TestPastDeadline(t *testing.T) {
	w := New(time.Millisecond, 64, 10*monotime.Time(time.Second))
	ts := newTimers(2)
	w.Schedule(&ts[0], 0)
	w.Schedule(&ts[1], 10*monotime.Time(time.Second)+5*ms)
	if d, _ := w.Next(); d != 0 {
		t.Fatalf("Next = %v, want 0", d)
	}
	var r recorder
	w.Advance(10*monotime.Time(time.Second), r.fire)
	if !slices.Equal(r.take(), []int{0}) {
		t.Fatal("past deadline did not fire")
	}
	w.Advance(0, r.fire) // clock going back is ignored
	if len(r.take()) != 0 {
		t.Fatal("fired on backwards clock")
	}
}

func TestNextEmpty(t *testing.T) {
	w := New(time.Millisecond, 64, 0)
	if _, ok := w.Next(); ok {
		t.Fatal("Next on empty wheel")
	}
	var tm Timer
	w.Schedule(&tm, 5*ms)
	w.Cancel(&tm)
	if _, ok := w.Next(); ok || tm.Pending() || w.Len() != 0 {
		t.Fatal("after Cancel")
	}
}

// TestRapidModel compares the wheel with a map of pending deadlines.
func TestRapidModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tick := time.Duration(rapid.IntRange(1, 1000).Draw(t, "tick"))
		slots := rapid.SampledFrom([]int{1, 64, 128}).Draw(t, "slots")
		span := int64(tick) * int64(max(slots, 64))
		now := monotime.Time(rapid.Int64Range(-span, span).Draw(t, "start"))
		w := New(tick, slots, now)
		ts := newTimers(rapid.IntRange(1, 40).Draw(t, "timers"))
		model := map[int]monotime.Time{}
		for range rapid.IntRange(1, 200).Draw(t, "ops") {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 5:
				i := rapid.IntRange(0, len(ts)-1).Draw(t, "i")
				at := now + monotime.Time(rapid.Int64Range(-2*int64(tick), 3*span).Draw(t, "at"))
				w.Schedule(&ts[i], at)
				model[i] = at
			case op < 7:
				i := rapid.IntRange(0, len(ts)-1).Draw(t, "i")
				w.Cancel(&ts[i])
				delete(model, i)
			default:
				d := rapid.Int64Range(0, 2*span).Draw(t, "advance")
				if rapid.IntRange(0, 9).Draw(t, "jump") == 0 {
					d *= 50
				}
				now += monotime.Time(d)
				var got, want []int
				w.Advance(now, func(tm *Timer) { got = append(got, tm.Owner.(int)) })
				for i, at := range model {
					if at <= now {
						want = append(want, i)
						delete(model, i)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("Advance(%v) fired %v, want %v", now, got, want)
				}
			}
			if w.Len() != len(model) {
				t.Fatalf("Len = %d, want %d", w.Len(), len(model))
			}
			for i := range ts {
				if _, ok := model[i]; ts[i].Pending() != ok {
					t.Fatalf("timer %d Pending = %v", i, !ok)
				}
			}
			next, ok := w.Next()
			if ok != (len(model) > 0) {
				t.Fatalf("Next ok = %v with %d pending", ok, len(model))
			}
			if ok {
				m := slices.Min(slices.Collect(mapValues(model)))
				if next > m || next < m-monotime.Time(tick) {
					t.Fatalf("Next = %v, true minimum %v", next, m)
				}
			}
		}
	})
}

func mapValues(m map[int]monotime.Time) func(func(monotime.Time) bool) {
	return func(yield func(monotime.Time) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func TestAllocs(t *testing.T) {
	w := New(time.Millisecond, 4096, 0)
	ts := newTimers(100)
	now := monotime.Time(0)
	fire := func(tm *Timer) { w.Schedule(tm, now+200*ms) }
	for i := range ts {
		w.Schedule(&ts[i], monotime.Time(i)*ms)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		w.Schedule(&ts[0], now+50*ms)
		w.Cancel(&ts[1])
		w.Schedule(&ts[1], now+3*ms)
		now += ms
		w.Advance(now, fire)
		w.Next()
	})
	if allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}

// BenchmarkRTO models a shard: 10k connections re-arming an RTO on every
// ACK, with the clock advancing 1 ms per 100 ACKs.
func BenchmarkRTO(b *testing.B) {
	const conns = 10000
	w := New(time.Millisecond, 4096, 0)
	ts := newTimers(conns)
	now := monotime.Time(0)
	fire := func(tm *Timer) { w.Schedule(tm, now+200*ms) }
	for i := range ts {
		w.Schedule(&ts[i], monotime.Time(i%200)*ms+200*ms)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Schedule(&ts[i%conns], now+200*ms)
		if i++; i%100 == 0 {
			now += ms
			w.Advance(now, fire)
			w.Next()
		}
	}
}

func BenchmarkScheduleCancel(b *testing.B) {
	w := New(time.Millisecond, 4096, 0)
	var tm Timer
	b.ReportAllocs()
	for b.Loop() {
		w.Schedule(&tm, 300*ms)
		w.Cancel(&tm)
	}
}
