package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xdptcp/xdptcp/adapter"
)

// TestMemorySmoke establishes 2,000 idle connections with each TCP and
// checks that the figures are sane (positive, the ends adding up to the
// pair, nothing capped). It asserts no size: the figures are for
// `xdptcp bench -workloads memory`. XDPTCP_MEMORY_CONNS overrides the count
// and XDPTCP_MEMORY_PROFILE_DIR writes a heap profile per TCP there (for a
// look at a larger size).
func TestMemorySmoke(t *testing.T) {
	n := 2000
	if v := os.Getenv("XDPTCP_MEMORY_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range []adapter.Transport{adapter.BatchTCP, adapter.GVisorTCP} {
		t.Run(tr.String(), func(t *testing.T) {
			o := MemoryOpts{Conns: n}
			if dir := os.Getenv("XDPTCP_MEMORY_PROFILE_DIR"); dir != "" {
				o.HeapProfile = filepath.Join(dir, "memory-"+tr.String()+".pprof")
			}
			r, err := Memory(tr, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d conns in %v: server %.0f B/conn heap, client %.0f heap, pair %.0f heap (%.0f RSS); heap H0..H3 %v, server stack base %d B; %d goroutines added; %d retransmits, %d listen drops, %d link drops",
				tr, r.Conns, r.Establish, r.ServerHeap, r.ClientHeap, r.PairHeap, r.PairRSS, r.Heap, r.BaseHeap, r.Goroutines, r.Retransmits, r.ListenDrops, r.LinkDrops)
			if r.Conns != n || r.Capped != "" {
				t.Fatalf("%d of %d connections (%s)", r.Conns, n, r.Capped)
			}
			if !(r.ServerHeap > 0 && r.ClientHeap > 0 && r.PairHeap > 0 && r.Establish > 0) {
				t.Errorf("figures not positive: %+v", r)
			}
			// Everything a connection holds is freed with its stacks.
			if r.Heap[3] > r.Heap[0] {
				t.Errorf("heap after both stacks closed %d > with both idle %d", r.Heap[3], r.Heap[0])
			}
			if ms := memoryMetrics(r); len(ms) == 0 {
				t.Error("no metrics")
			}
		})
	}
}

func TestCountLabel(t *testing.T) {
	for n, want := range map[int]string{10_000: "10k", 1_000_000: "1M", 2500: "2500", 100_000: "100k"} {
		if got := countLabel(n); got != want {
			t.Errorf("countLabel(%d) = %q, want %q", n, got, want)
		}
	}
}
