package veth

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/internal/bench"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// TestMain removes namespaces left by crashed runs and closes every pair
// still open at the end or on SIGINT/SIGTERM.
func TestMain(m *testing.M) { os.Exit(netns.Main(m)) }

// TestSmoke runs every workload in every configuration for a few hundred
// milliseconds in one round and checks that the figures are sane. It
// asserts no speed. Each sub-run tears its namespaces and XDP programs down
// itself (also when it fails); TestMain closes whatever a panic left.
func TestSmoke(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("veth configurations need root, namespaces and AF_XDP: %v", err)
	}
	s := Settings{
		Workloads: WorkloadNames, Duration: 300 * time.Millisecond, Rounds: 1,
		Clients: []int{16}, Conns: []int{1, 4}, Streams: []int{1, 2},
	}
	var log strings.Builder
	rep, err := Run(s, &log)
	t.Logf("progress:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", table.String())

	if got, want := len(rep.Samples), len(WorkloadNames)*len(Configs); got != want {
		t.Fatalf("%d samples, want %d", got, want)
	}
	for _, smp := range rep.Samples {
		if len(smp.Metrics) == 0 {
			t.Errorf("%s/%s: no metrics", smp.Workload, smp.Config)
		}
		for _, m := range smp.Metrics {
			if !(m.Value > 0) || math.IsInf(m.Value, 0) {
				t.Errorf("%s/%s: %s = %v, want > 0", smp.Workload, smp.Config, m.Name, m.Value)
			}
		}
		for _, r := range smp.Raw {
			sub, ok := r.(Sub)
			if !ok {
				t.Errorf("%s/%s: raw %T", smp.Workload, smp.Config, r)
				continue
			}
			switch r := sub.Result.(type) {
			case bench.ShortResult:
				if r.Conns <= 0 || r.CPU <= 0 {
					t.Errorf("%s/%s: short %+v", smp.Workload, smp.Config, r)
				}
			case bench.BulkResult:
				if r.Bytes <= 0 || r.Errors != 0 {
					t.Errorf("%s/%s: bulk %+v", smp.Workload, smp.Config, r)
				}
			case bench.RRResult:
				if r.Trips <= 0 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 || r.P999 < r.P99 {
					t.Errorf("%s/%s: rr %+v", smp.Workload, smp.Config, r)
				}
			default:
				t.Errorf("%s/%s: result %T", smp.Workload, smp.Config, r)
			}
			if sub.Counters.Client["ActiveOpens"] <= 0 {
				t.Errorf("%s/%s: client TCP counters %v: no connection opened", smp.Workload, smp.Config, sub.Counters.Client)
			}
		}
	}
	for _, row := range rep.Rows {
		for _, c := range Configs {
			if v := float64(row.Medians[c.Name]); !(v > 0) {
				t.Errorf("%s: %s median %v", row.Metric, c.Name, v)
			}
		}
		if v := float64(row.VsGVisor[refGVisor]); math.Abs(v-1) > 1e-9 {
			t.Errorf("%s: gvisor/gvisor = %v", row.Metric, v)
		}
	}
	path := filepath.Join(t.TempDir(), "veth.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Rows    []Row          `json:"medians"`
		Samples []bench.Sample `json:"samples"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != len(rep.Rows) || len(back.Samples) != len(rep.Samples) {
		t.Errorf("JSON: %d rows, %d samples; want %d, %d", len(back.Rows), len(back.Samples), len(rep.Rows), len(rep.Samples))
	}
	assertNoLeftovers(t)
}

// assertNoLeftovers checks that no namespace of this process is left.
func assertNoLeftovers(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), netns.NamePrefix+"vethbench-") && strings.Contains(e.Name(), "-"+strconv.Itoa(os.Getpid())+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

// TestParseConfigs needs no privileges.
func TestParseConfigs(t *testing.T) {
	all, err := ParseConfigs("all")
	if err != nil || len(all) != 5 {
		t.Fatalf("all: %v, %v", all, err)
	}
	cs, err := ParseConfigs("a, gvisor,C,A")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "batchtcp,gvisor,linux" {
		t.Errorf("got %s", got)
	}
	if _, err := ParseConfigs("F"); err == nil {
		t.Error("F accepted")
	}
	if ws, err := ParseWorkloads("rr, short,rr"); err != nil || strings.Join(ws, ",") != "rr,short" {
		t.Errorf("ParseWorkloads: %v, %v", ws, err)
	}
	if _, err := ParseWorkloads("allocs"); err == nil {
		t.Error("allocs accepted")
	}
}

// TestMediansAndTable checks the ratios and the table's shape on made-up
// samples; it needs no privileges.
func TestMediansAndTable(t *testing.T) {
	var samples []bench.Sample
	for round, k := range []float64{1, 3, 2} {
		for i, c := range Configs {
			samples = append(samples, bench.Sample{Round: round + 1, Workload: "short", Config: c.Name,
				Metrics: []bench.Metric{{Name: "short c=1 conn/s", Value: k * float64(i+1), Higher: true}}})
		}
	}
	samples = append(samples, bench.Sample{Round: 4, Workload: "short", Config: "gvisor", Error: "boom",
		Metrics: []bench.Metric{{Name: "short c=1 conn/s", Value: 1e9, Higher: true}}})
	rows := medians(samples, Configs)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	// medians: batchtcp 2, gvisor 4, linux 6, bt/gvlink 8, gv/ourlink 10
	for name, want := range map[string]float64{"batchtcp": 2, "gvisor": 4, "linux": 6, "bt/gvlink": 8, "gv/ourlink": 10} {
		if got := float64(r.Medians[name]); got != want {
			t.Errorf("median %s = %v, want %v", name, got, want)
		}
	}
	if got := float64(r.VsGVisor["batchtcp"]); got != 0.5 {
		t.Errorf("A/B = %v", got)
	}
	if got := float64(r.VsLinux["gv/ourlink"]); math.Abs(got-10.0/6) > 1e-12 {
		t.Errorf("E/C = %v", got)
	}
	rep := &Report{Settings: Settings{Configs: Configs}, Rows: rows}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "A/B") || !strings.Contains(lines[0], "A/C") || !strings.Contains(lines[1], "0.50x") {
		t.Errorf("table:\n%s", b.String())
	}
}
