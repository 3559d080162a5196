package bench

import (
	"fmt"
	"slices"
	"time"
)

// The rr floor: what a chain of goroutine hand-offs costs by itself, with no
// TCP. One in-process rr round trip wakes FloorHops goroutines in turn: the
// client, its stack's shard, the server link's receive goroutine, the
// server's shard, the server's handler, its shard again, the client link's
// receive goroutine, the client's shard, and the client. HopRing passes a
// token around a ring of that many goroutines over one-slot channels, each
// busy for FloorWork per pass, so that its median lands near batchtcp's rr
// median on the same machine; its p99/p50 is then the tail the Go scheduler
// adds to such a chain whatever the TCP does (the rr target, p99 <= 2x p50,
// is judged against it).
const (
	FloorHops = 8
	FloorWork = 2500 * time.Nanosecond
)

// HopRing measures d of round trips around a ring of hops goroutines, each
// spinning work per pass (d <= 0: one second).
func HopRing(hops int, work, d time.Duration) (RRResult, error) {
	if hops < 1 || work < 0 {
		return RRResult{}, fmt.Errorf("hop ring: need hops >= 1 and work >= 0")
	}
	if d <= 0 {
		d = time.Second
	}
	chs := make([]chan struct{}, hops+1)
	for i := range chs {
		chs[i] = make(chan struct{}, 1)
	}
	for i := range hops {
		go func(in, out chan struct{}) {
			for range in {
				spin(work)
				out <- struct{}{}
			}
			close(out)
		}(chs[i], chs[i+1])
	}
	defer close(chs[0])
	lats := make([]time.Duration, 0, 1<<16)
	u := StartMeter()
	end := time.Now().Add(d)
	for t := time.Now(); t.Before(end); t = time.Now() {
		chs[0] <- struct{}{}
		<-chs[hops]
		if len(lats) < maxSamples {
			lats = append(lats, time.Since(t))
		}
	}
	r := RRResult{Conns: 1, Trips: int64(len(lats)), Cost: u.Cost()}
	if len(lats) == 0 {
		return r, fmt.Errorf("hop ring: no round trip in %v", d)
	}
	slices.Sort(lats)
	r.P50, r.P99, r.P999 = Quantile(lats, 0.50), Quantile(lats, 0.99), Quantile(lats, 0.999)
	return r, nil
}

// spin keeps the goroutine on its CPU for d.
func spin(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
}
