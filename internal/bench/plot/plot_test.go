package plot

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/internal/bench"
)

func row(metric string, higher bool, b, g float64) bench.Row {
	return bench.Row{Metric: metric, Higher: higher, BatchTCP: bench.Num(b), GVisor: bench.Num(g), Ratio: bench.Num(b / g)}
}

// synthetic is a small report with every chart's metrics; scaling and
// one memory point have no gVisor figure (NaN, null in JSON).
func synthetic() *bench.Report {
	nan := math.NaN()
	return &bench.Report{
		Started:  time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Machine:  bench.Machine{GOOS: "linux", GOARCH: "amd64", NumCPU: 2, GOMAXPROCS: 2, Go: "go1.26"},
		Settings: bench.Settings{Workloads: []string{"short", "rr", "scaling", "memory"}, Duration: time.Second, Rounds: 1, Clients: []int{64}},
		Samples: []bench.Sample{
			{Round: 1, Workload: "scaling", Config: "batchtcp", Metrics: []bench.Metric{
				{Name: "scaling 1 shard conn/s", Value: 10000, Higher: true},
				{Name: "scaling 2 shard conn/s", Value: 15000, Higher: true},
				{Name: "scaling 1 core conn/s", Value: 9000, Higher: true},
				{Name: "scaling 2 core conn/s", Value: 17000, Higher: true},
			}, Raw: []any{bench.ScalingPoint{Mode: "shard", ClientShards: 2, ServerShards: 1}}},
			{Round: 1, Workload: "scaling", Config: "gvisor", Skipped: "not applicable"},
		},
		Rows: []bench.Row{
			row("short c=64 conn/s", true, 30000, 10000),
			row("short c=64 CPU-s/1k conn", false, 0.05, 0.15),
			row("allocs/short conn", false, 49, 300),
			row("bulk 1 stream Gb/s", true, 5, 6),
			row("rr 1 conn p50 µs", false, 20, 30),
			row("rr 1 conn p99 µs", false, 40, 90),
			row("rr 1 conn p999 µs", false, 200, 900),
			row("rr 64 conn p50 µs", false, 300, 500),
			row("rr 64 conn p99 µs", false, 900, 2000),
			row("rr 64 conn p999 µs", false, 3000, 8000),
			row("scaling 1 shard conn/s", true, 10000, nan),
			row("scaling 2 shard conn/s", true, 15000, nan),
			row("scaling 1->2 shard speed-up", true, 1.5, nan),
			row("scaling 1 core conn/s", true, 9000, nan),
			row("scaling 2 core conn/s", true, 17000, nan),
			row("memory 10k B/conn heap", false, 3000, 9000),
			row("memory 100k B/conn heap", false, 2900, 9100),
			row("memory 1M B/conn heap", false, 2800, nan),
			row("memory 10k B/conn RSS", false, 4000, 12000),
			row("memory 10k establish s", false, 0.5, 1.5),
		},
	}
}

func checkFiles(t *testing.T, dir string, paths []string, want []string) {
	t.Helper()
	var got []string
	for _, p := range paths {
		got = append(got, filepath.Base(p))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 500 {
			t.Errorf("%s: %d bytes", p, len(b))
		}
		switch filepath.Ext(p) {
		case ".png":
			if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("%s: not a PNG", p)
			}
		case ".svg":
			if !bytes.Contains(b, []byte("<svg")) {
				t.Errorf("%s: not an SVG", p)
			}
		}
		if filepath.Dir(p) != dir {
			t.Errorf("%s: not in %s", p, dir)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("wrote %v, want %v", got, want)
	}
}

func TestWriteSynthetic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plots")
	paths, err := Write(synthetic(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"ratios", "rr-latency", "scaling", "memory"} {
		want = append(want, n+".png", n+".svg")
	}
	checkFiles(t, dir, paths, want)
}

// TestWriteFromJSON plots a report read back from JSON (NaN as null), and
// skips the charts whose metrics are absent.
func TestWriteFromJSON(t *testing.T) {
	rep := synthetic()
	var rows []bench.Row
	for _, r := range rep.Rows {
		if r.Metric[:2] != "rr" && r.Metric[:6] != "memory" {
			rows = append(rows, r)
		}
	}
	rep.Rows = rows
	tmp := t.TempDir()
	path := filepath.Join(tmp, "bench.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := bench.ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range back.Rows {
		if r.Metric == "scaling 2 shard conn/s" && (!math.IsNaN(float64(r.GVisor)) || float64(r.BatchTCP) != 15000) {
			t.Errorf("read back %+v, want gvisor NaN", r)
		}
	}
	paths, err := Write(back, tmp)
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tmp, paths, []string{"ratios.png", "ratios.svg", "scaling.png", "scaling.svg"})
}

func TestWriteEmpty(t *testing.T) {
	paths, err := Write(&bench.Report{}, t.TempDir())
	if err != nil || len(paths) != 0 {
		t.Errorf("empty report: %v, %v", paths, err)
	}
}
