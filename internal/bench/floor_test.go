package bench

import (
	"github.com/xdptcp/xdptcp/adapter"
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

// A lossy pair refuses a probability outside [0, 1] and still carries
// data at 3 % loss each way.
func TestLossyPair(t *testing.T) {
	if p, err := NewPair(adapter.BatchTCP, WithDrop(1.5)); err == nil {
		p.Close()
		t.Fatal("drop 1.5 accepted")
	}
	p, err := NewPair(adapter.BatchTCP, WithDrop(0.03))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := Bulk(p, Opts{Duration: 300 * time.Millisecond, Clients: 1})
	if err != nil || r.Bytes == 0 {
		t.Fatalf("bulk over 3%% loss: %d bytes, %v", r.Bytes, err)
	}
	if rt := p.cs.Stack().Stats().TCP.Retransmits.Value(); rt == 0 {
		t.Error("no retransmissions at 3% loss")
	}
}
