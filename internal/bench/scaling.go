package bench

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
)

// ErrNotApplicable is returned (wrapped) by RunWorkload for a workload that
// means nothing in a configuration, such as scaling for gVisor's TCP, which
// has no shards. Run records such a sample as skipped, not failed.
var ErrNotApplicable = errors.New("not applicable")

// MaxScalingShards caps the shard counts the scaling workload tries.
const MaxScalingShards = 16

// ScalingShards returns the server shard counts the scaling workload
// measures with gomaxprocs Ps: 1, 2, 3, 4, 6, 8, 12, 16 up to
// min(gomaxprocs, MaxScalingShards), and that bound itself.
func ScalingShards(gomaxprocs int) []int {
	top := max(1, min(gomaxprocs, MaxScalingShards))
	var out []int
	for _, n := range []int{1, 2, 3, 4, 6, 8, 12, 16} {
		if n <= top {
			out = append(out, n)
		}
	}
	if !slices.Contains(out, top) {
		out = append(out, top)
	}
	return out
}

// ScalingPoint is one point of the scaling workload: the sum of its two
// sub-runs.
type ScalingPoint struct {
	// Mode is "shard" (the server's shards vary, the load generator's
	// stack and GOMAXPROCS stay) or "core" (GOMAXPROCS and both stacks'
	// shards are the count).
	Mode         string `json:"mode"`
	ClientShards int    `json:"client_shards"`
	ServerShards int    `json:"server_shards"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	ShortResult
}

// Scaling runs the short workload with clients clients against a server
// stack of each shard count in shards, each on a fresh pair whose client
// stack (the load generator's TCP) has clientShards shards throughout and
// with GOMAXPROCS unchanged, so that only the server's shard count changes
// (mode "shard"). Each count runs twice for d, in the order ascending then
// descending (1, 2, .., 2, 1), so that drift in the machine's load over
// the run weighs on every count alike. The transport is batchtcp.
func Scaling(shards []int, clientShards, clients int, d time.Duration) ([]ScalingPoint, error) {
	if len(shards) == 0 || clientShards < 1 {
		return nil, fmt.Errorf("scaling: need shard counts and client shards >= 1")
	}
	pts := make([]ScalingPoint, len(shards))
	for i, n := range shards {
		pts[i] = ScalingPoint{Mode: "shard", ClientShards: clientShards, ServerShards: n}
	}
	return pts, scalingRuns(pts, clients, d)
}

// ScalingCores is Scaling with GOMAXPROCS and both stacks' shards set to
// each count in cores (mode "core"): the whole process, load generator
// included, gets n cores, so on a machine whose cores the load generator
// would otherwise share with the server this shows how the sharded stack
// turns added cores into connections. GOMAXPROCS is restored on return.
func ScalingCores(cores []int, clients int, d time.Duration) ([]ScalingPoint, error) {
	if len(cores) == 0 {
		return nil, fmt.Errorf("scaling: need core counts")
	}
	pts := make([]ScalingPoint, len(cores))
	for i, n := range cores {
		pts[i] = ScalingPoint{Mode: "core", ClientShards: n, ServerShards: n, GOMAXPROCS: n}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	return pts, scalingRuns(pts, clients, d)
}

// scalingRuns runs each point twice, ascending then descending, and adds
// the sub-runs into the points. A point's GOMAXPROCS of 0 leaves it.
func scalingRuns(pts []ScalingPoint, clients int, d time.Duration) error {
	procs := runtime.GOMAXPROCS(0)
	for k := range 2 * len(pts) {
		i := k
		if i >= len(pts) {
			i = 2*len(pts) - 1 - k
		}
		pt := &pts[i]
		if pt.GOMAXPROCS > 0 {
			runtime.GOMAXPROCS(pt.GOMAXPROCS)
		} else {
			pt.GOMAXPROCS = procs
		}
		runtime.GC()
		p, err := NewPair(adapter.BatchTCP, WithShards(pt.ClientShards, pt.ServerShards))
		if err != nil {
			return err
		}
		r, err := Short(p, Opts{Duration: d, Clients: clients})
		p.Close()
		pt.Conns += r.Conns
		pt.Errors += r.Errors
		pt.Elapsed += r.Elapsed
		pt.CPU += r.CPU
		pt.Mallocs += r.Mallocs
		pt.AllocBytes += r.AllocBytes
		if err != nil {
			return fmt.Errorf("scaling, %d %s: %w", pt.ServerShards, pt.Mode, err)
		}
	}
	return nil
}

// scalingMetrics are, per point, connections per second, the cores the
// process kept busy (CPU-seconds per second) and connections per
// CPU-second, and for each count above 1 the speed-up over 1, named
// "scaling N shard ..." or "scaling N core ..." after the points' mode.
func scalingMetrics(pts []ScalingPoint) []Metric {
	var ms []Metric
	var base float64
	for _, pt := range pts {
		secs := pt.Elapsed.Seconds()
		rate := float64(pt.Conns) / secs
		name := fmt.Sprintf("scaling %d %s", pt.ServerShards, pt.Mode)
		ms = append(ms,
			Metric{name + " conn/s", rate, true},
			Metric{name + " cores busy", pt.CPU.Seconds() / secs, false},
			Metric{name + " conn/CPU-s", float64(pt.Conns) / max(pt.CPU.Seconds(), 1e-9), true},
		)
		if pt.ServerShards == 1 {
			base = rate
		} else if base > 0 {
			ms = append(ms, Metric{fmt.Sprintf("scaling 1->%d %s speed-up", pt.ServerShards, pt.Mode), rate / base, true})
		}
	}
	return ms
}

// runScaling is RunWorkload's scaling, batchtcp only, with the first of
// clients: first the server's shards 1..GOMAXPROCS (up to
// MaxScalingShards) with the load generator's stack at the most, then
// GOMAXPROCS = shards on both stacks for 1..min(GOMAXPROCS, NumCPU). Each
// point runs for d in all (two sub-runs of d/2).
func runScaling(tr adapter.Transport, d time.Duration, clients []int) ([]Metric, []any, error) {
	if tr != adapter.BatchTCP {
		return nil, nil, fmt.Errorf("scaling: %v has no shards, so nothing scales; run only for batchtcp: %w", tr, ErrNotApplicable)
	}
	var raw []any
	shards := ScalingShards(runtime.GOMAXPROCS(0))
	pts, err := Scaling(shards, shards[len(shards)-1], clients[0], d/2)
	for _, pt := range pts {
		raw = append(raw, pt)
	}
	if err != nil {
		return nil, raw, err
	}
	ms := scalingMetrics(pts)
	cores := ScalingShards(min(runtime.GOMAXPROCS(0), runtime.NumCPU()))
	cpts, err := ScalingCores(cores, clients[0], d/2)
	for _, pt := range cpts {
		raw = append(raw, pt)
	}
	if err != nil {
		return nil, raw, err
	}
	return append(ms, scalingMetrics(cpts)...), raw, nil
}
