package bench

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestHopRing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := HopRing(3, time.Microsecond, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Trips == 0 || r.P50 < 3*time.Microsecond || r.P50 > r.P99 || r.P99 > r.P999 {
		t.Fatalf("%d trips, p50 %v p99 %v p999 %v", r.Trips, r.P50, r.P99, r.P999)
	}
	if _, err := HopRing(0, 0, time.Millisecond); err == nil {
		t.Fatal("HopRing(0 hops) succeeded")
	}
}
