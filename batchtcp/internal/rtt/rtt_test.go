package rtt

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

const (
	ms = time.Millisecond
	s  = time.Second
)

func newDefault() Estimator { return New(1*s, 200*ms, 120*s) }

// RFC 6298 §2.1: before any sample the RTO is the initial value.
func TestInitialRTO_RFC6298_2_1(t *testing.T) {
	e := newDefault()
	if got := e.RTO(); got != 1*s {
		t.Errorf("RTO = %v, want 1s", got)
	}
	if e.HasSample() || e.SRTT() != 0 || e.RTTVar() != 0 {
		t.Errorf("fresh estimator has state: %+v", e)
	}
}

// RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR).
func TestFirstSample_RFC6298_2_2(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       time.Duration
		srtt    time.Duration
		rttvar  time.Duration
		wantRTO time.Duration
	}{
		{"100ms", 100 * ms, 100 * ms, 50 * ms, 300 * ms},
		{"1s", 1 * s, 1 * s, 500 * ms, 3 * s},
		// §2.4: below min rounds up to min.
		{"10ms", 10 * ms, 10 * ms, 5 * ms, 200 * ms},
		// A zero sample is valid; the RTO rounds up to min.
		{"zero", 0, 0, 0, 200 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDefault()
			e.Sample(tc.r)
			if !e.HasSample() || e.SRTT() != tc.srtt || e.RTTVar() != tc.rttvar {
				t.Errorf("SRTT, RTTVAR = %v, %v; want %v, %v", e.SRTT(), e.RTTVar(), tc.srtt, tc.rttvar)
			}
			if got := e.RTO(); got != tc.wantRTO {
				t.Errorf("RTO = %v, want %v", got, tc.wantRTO)
			}
		})
	}
}

// RFC 6298 §2.2: the clock granularity G bounds the variance term from below.
func TestGranularity_RFC6298_2_2(t *testing.T) {
	e := New(1*s, 0, 120*s)
	e.Sample(100 * time.Microsecond)
	// 4*RTTVAR = 200us < G = 1ms.
	if got, want := e.RTO(), 100*time.Microsecond+granule; got != want {
		t.Errorf("RTO = %v, want %v", got, want)
	}
}

// RFC 6298 §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| (old SRTT),
// SRTT = 7/8 SRTT + 1/8 R'.
func TestSubsequentSamples_RFC6298_2_3(t *testing.T) {
	e := New(1*s, 0, 120*s)
	e.Sample(100 * ms) // SRTT 100, RTTVAR 50
	e.Sample(180 * ms) // RTTVAR = 37.5 + 20 = 57.5; SRTT = 87.5 + 22.5 = 110
	if e.RTTVar() != 57500*time.Microsecond || e.SRTT() != 110*ms {
		t.Fatalf("SRTT, RTTVAR = %v, %v; want 110ms, 57.5ms", e.SRTT(), e.RTTVar())
	}
	if got := e.RTO(); got != 340*ms {
		t.Errorf("RTO = %v, want 340ms", got)
	}
	e.Sample(110 * ms) // RTTVAR = 43.125; SRTT = 110
	if e.RTTVar() != 43125*time.Microsecond || e.SRTT() != 110*ms {
		t.Errorf("SRTT, RTTVAR = %v, %v; want 110ms, 43.125ms", e.SRTT(), e.RTTVar())
	}
}

// RFC 6298 §2.3: steady samples converge to SRTT = R, RTO = R + G.
func TestConverges_RFC6298_2_3(t *testing.T) {
	e := New(1*s, 0, 120*s)
	for range 200 {
		e.Sample(50 * ms)
	}
	if e.SRTT() != 50*ms || e.RTTVar() > 10*time.Microsecond {
		t.Errorf("SRTT, RTTVAR = %v, %v", e.SRTT(), e.RTTVar())
	}
	if got := e.RTO(); got < 50*ms+granule || got > 51*ms {
		t.Errorf("RTO = %v, want ~51ms", got)
	}
}

// RFC 6298 §2.4 (min) and §2.5 (max).
func TestBounds_RFC6298_2_4_2_5(t *testing.T) {
	e := newDefault()
	e.Sample(100 * s)
	if got := e.RTO(); got != 120*s {
		t.Errorf("RTO = %v, want max 120s", got)
	}
	e.SetBounds(1*s, 60*s)
	if got := e.RTO(); got != 60*s {
		t.Errorf("after SetBounds, RTO = %v, want 60s", got)
	}
	e2 := newDefault()
	e2.Sample(1 * ms)
	e2.SetBounds(1*s, 60*s)
	if got := e2.RTO(); got != 1*s {
		t.Errorf("RTO = %v, want min 1s", got)
	}
	// The initial RTO is clamped too.
	e3 := New(3*s, 200*ms, 2*s)
	if got := e3.RTO(); got != 2*s {
		t.Errorf("initial RTO = %v, want 2s", got)
	}
}

// RFC 6298 §5.5: each expiry doubles the RTO, capped at max.
func TestBackoff_RFC6298_5_5(t *testing.T) {
	e := newDefault()
	want := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 64 * s, 120 * s, 120 * s}
	for i, w := range want {
		if e.Backoffs() != i {
			t.Fatalf("Backoffs = %d, want %d", e.Backoffs(), i)
		}
		if got := e.RTO(); got != w {
			t.Errorf("after %d backoffs RTO = %v, want %v", i, got, w)
		}
		e.Backoff()
	}
	for range 1000 {
		e.Backoff()
	}
	if got := e.RTO(); got != 120*s {
		t.Errorf("after many backoffs RTO = %v, want 120s", got)
	}
}

// A huge max must not overflow the doubling.
func TestBackoffNoOverflow(t *testing.T) {
	e := New(1*s, 0, time.Duration(1<<63-1))
	for range 200 {
		e.Backoff()
	}
	if got := e.RTO(); got <= 0 {
		t.Errorf("RTO = %v, overflowed", got)
	}
}

// RFC 6298 §5 (after 5.7) and Karn: a valid sample after backoff gives a
// fresh RTO from SRTT and RTTVAR.
func TestSampleClearsBackoff_RFC6298_5(t *testing.T) {
	e := newDefault()
	e.Sample(100 * ms)
	e.Backoff()
	e.Backoff()
	if got := e.RTO(); got != 1200*ms {
		t.Fatalf("backed-off RTO = %v, want 1.2s", got)
	}
	e.Sample(100 * ms)
	if e.Backoffs() != 0 {
		t.Errorf("Backoffs = %d, want 0", e.Backoffs())
	}
	if got := e.RTO(); got != 100*ms+4*e.RTTVar() {
		t.Errorf("RTO = %v", got)
	}
}

func TestNegativeSampleIgnored(t *testing.T) {
	e := newDefault()
	e.Sample(-1)
	if e.HasSample() {
		t.Error("negative sample accepted")
	}
}

// Properties: RTO within [min, max]; SRTT within the sample range.
func TestProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo := time.Duration(rapid.Int64Range(0, int64(2*s)).Draw(t, "min"))
		hi := lo + time.Duration(rapid.Int64Range(0, int64(200*s)).Draw(t, "span"))
		e := New(time.Duration(rapid.Int64Range(0, int64(5*s)).Draw(t, "initial")), lo, hi)
		var minR, maxR time.Duration = 1<<63 - 1, 0
		for range rapid.IntRange(0, 50).Draw(t, "n") {
			if rapid.Bool().Draw(t, "backoff") {
				e.Backoff()
			} else {
				r := time.Duration(rapid.Int64Range(0, int64(10*s)).Draw(t, "r"))
				e.Sample(r)
				minR, maxR = min(minR, r), max(maxR, r)
			}
			if rto := e.RTO(); rto < lo || rto > hi {
				t.Fatalf("RTO %v outside [%v, %v]", rto, lo, hi)
			}
			if e.HasSample() && (e.SRTT() < minR || e.SRTT() > maxR) {
				t.Fatalf("SRTT %v outside samples [%v, %v]", e.SRTT(), minR, maxR)
			}
		}
	})
}

func TestAllocs(t *testing.T) {
	e := newDefault()
	if n := testing.AllocsPerRun(100, func() {
		e.Sample(10 * ms)
		e.Backoff()
		_ = e.RTO()
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}
