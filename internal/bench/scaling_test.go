package bench

import (
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
)

func TestScalingShards(t *testing.T) {
	for _, c := range []struct {
		procs int
		want  []int
	}{
		{0, []int{1}},
		{1, []int{1}},
		{2, []int{1, 2}},
		{5, []int{1, 2, 3, 4, 5}},
		{8, []int{1, 2, 3, 4, 6, 8}},
		{16, []int{1, 2, 3, 4, 6, 8, 12, 16}},
		{64, []int{1, 2, 3, 4, 6, 8, 12, 16}},
	} {
		if got := ScalingShards(c.procs); !slices.Equal(got, c.want) {
			t.Errorf("ScalingShards(%d) = %v, want %v", c.procs, got, c.want)
		}
	}
}

func TestScalingMetrics(t *testing.T) {
	pt := func(n int, conns int64) ScalingPoint {
		return ScalingPoint{Mode: "shard", ClientShards: 2, ServerShards: n, ShortResult: ShortResult{Conns: conns, Cost: Cost{Elapsed: time.Second, CPU: 2 * time.Second}}}
	}
	ms := scalingMetrics([]ScalingPoint{pt(1, 1000), pt(2, 1800)})
	got := map[string]float64{}
	for _, m := range ms {
		got[m.Name] = m.Value
	}
	for name, want := range map[string]float64{
		"scaling 1 shard conn/s":      1000,
		"scaling 2 shard conn/s":      1800,
		"scaling 2 shard cores busy":  2,
		"scaling 2 shard conn/CPU-s":  900,
		"scaling 1->2 shard speed-up": 1.8,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// TestScalingGVisorSkipped: gVisor's TCP has no shards, so the workload
// is not applicable there, and Run records it as skipped.
func TestScalingGVisorSkipped(t *testing.T) {
	ms, _, err := RunWorkload("scaling", adapter.GVisorTCP, 100*time.Millisecond, []int{4})
	if !errors.Is(err, ErrNotApplicable) || len(ms) != 0 {
		t.Errorf("gvisor scaling: %v, %v", ms, err)
	}
}

// TestScaling runs two shard counts briefly and checks the points.
func TestScaling(t *testing.T) {
	pts, err := Scaling([]int{1, 2}, 2, 8, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pts {
		if p.Mode != "shard" || p.ServerShards != i+1 || p.ClientShards != 2 || p.Conns <= 0 || p.Errors != 0 || p.Elapsed < 150*time.Millisecond {
			t.Errorf("point %d: %+v", i, p)
		}
	}
}

// TestScalingCores runs GOMAXPROCS = shards = 1 and 2 briefly and checks
// that GOMAXPROCS comes back.
func TestScalingCores(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	pts, err := ScalingCores([]int{1, 2}, 8, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS %d after, want %d", got, procs)
	}
	for i, p := range pts {
		n := i + 1
		if p.Mode != "core" || p.ServerShards != n || p.ClientShards != n || p.GOMAXPROCS != n || p.Conns <= 0 || p.Errors != 0 {
			t.Errorf("point %d: %+v", i, p)
		}
	}
	ms := scalingMetrics(pts)
	if len(ms) != 7 || ms[0].Name != "scaling 1 core conn/s" || ms[6].Name != "scaling 1->2 core speed-up" {
		t.Errorf("metrics %v", ms)
	}
}
