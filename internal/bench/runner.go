package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
)

// Metric is one figure of one run.
type Metric struct {
	Name  string  `json:"name"` // e.g. "short conn/s"
	Value float64 `json:"value"`
	// Higher is true where a larger value is better.
	Higher bool `json:"higher_is_better"`
}

// WorkloadNames are the workloads Run knows, in the order it runs them.
var WorkloadNames = []string{"short", "bulk", "rr", "loss", "allocs", "scaling", "memory"}

// LossRates are the loss workload's drop probabilities (each direction).
var LossRates = []float64{0.01, 0.03}

// ParseWorkloads parses a comma-separated list of workload names.
func ParseWorkloads(s string) ([]string, error) {
	var out []string
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if !slices.Contains(WorkloadNames, w) {
			return nil, fmt.Errorf("unknown workload %q (want %s)", w, strings.Join(WorkloadNames, ","))
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload given (want some of %s)", strings.Join(WorkloadNames, ","))
	}
	return out, nil
}

// Settings are what Run measures.
type Settings struct {
	Workloads []string      `json:"workloads"`
	Duration  time.Duration `json:"duration_ns"` // per workload (per sub-run), per configuration, per round
	Rounds    int           `json:"rounds"`
	Clients   []int         `json:"clients"` // short's concurrent clients, one sub-run each
	// Conns are the memory workload's connection counts (empty:
	// DefaultMemoryConns).
	Conns []int `json:"conns,omitempty"`
}

// Sample is one workload run in one configuration in one round.
type Sample struct {
	Round    int      `json:"round"`
	Workload string   `json:"workload"`
	Config   string   `json:"config"`
	Metrics  []Metric `json:"metrics"`
	// Raw holds the workload's result structs.
	Raw   []any  `json:"raw"`
	Error string `json:"error,omitempty"`
	// Skipped says why a workload was not run in this configuration
	// (ErrNotApplicable); such a sample has no metrics.
	Skipped string `json:"skipped,omitempty"`
}

// Row is one metric's medians across rounds.
type Row struct {
	Metric   string `json:"metric"`
	Higher   bool   `json:"higher_is_better"`
	BatchTCP Num    `json:"batchtcp"`
	GVisor   Num    `json:"gvisor"`
	Ratio    Num    `json:"ratio"` // batchtcp / gvisor
}

// Num is a float64 that encodes NaN and infinities (a configuration with
// no successful sample) as JSON null.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// Report is a whole run.
type Report struct {
	Started  time.Time `json:"started"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Samples  []Sample  `json:"samples"`
	Rows     []Row     `json:"medians"`
}

// Machine names where the run happened.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	Hostname   string `json:"hostname"`
}

// Run runs every workload in both configurations, alternating
// batchtcp, gvisor, batchtcp, gvisor, ... round by round, and computes the
// medians. progress (may be nil) gets one line per sample. A sample that
// fails is recorded with its error and the run goes on; the returned error
// names the first failure.
func Run(s Settings, progress io.Writer) (*Report, error) {
	if s.Rounds < 1 || s.Duration <= 0 || len(s.Clients) == 0 || slices.Min(s.Clients) < 1 || (len(s.Conns) > 0 && slices.Min(s.Conns) < 1) {
		return nil, fmt.Errorf("bench: rounds, duration, clients and conns must be positive")
	}
	host, _ := os.Hostname()
	rep := &Report{Started: time.Now(), Settings: s, Machine: Machine{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), Hostname: host,
	}}
	var firstErr error
	for round := 1; round <= s.Rounds; round++ {
		for _, w := range s.Workloads {
			for _, cfg := range Configs {
				runtime.GC()
				ms, raw, err := runOne(w, cfg.Transport, s)
				smp := Sample{Round: round, Workload: w, Config: cfg.Name, Metrics: ms, Raw: raw}
				if errors.Is(err, ErrNotApplicable) {
					smp.Skipped = err.Error()
				} else if err != nil {
					smp.Error = err.Error()
					if firstErr == nil {
						firstErr = fmt.Errorf("round %d, %s, %s: %w", round, w, cfg.Name, err)
					}
				}
				rep.Samples = append(rep.Samples, smp)
				if progress != nil {
					fmt.Fprintf(progress, "round %d/%d %-6s %-8s %s\n", round, s.Rounds, w, cfg.Name, Brief(smp))
				}
			}
		}
	}
	rep.Rows = medians(rep.Samples)
	return rep, firstErr
}

// RunWorkload runs workload w once on a fresh stack pair per sub-run and
// returns its metrics. d is the duration of each sub-run; clients are
// short's concurrencies (one sub-run each; allocs uses the first).
func RunWorkload(w string, tr adapter.Transport, d time.Duration, clients []int) ([]Metric, []any, error) {
	var (
		ms  []Metric
		raw []any
	)
	withPairOpts := func(opts []PairOption, f func(p *Pair) error) error {
		p, err := NewPair(tr, opts...)
		if err != nil {
			return err
		}
		defer p.Close()
		return f(p)
	}
	withPair := func(f func(p *Pair) error) error { return withPairOpts(nil, f) }
	var err error
	switch w {
	case "short":
		for _, n := range clients {
			if err = withPair(func(p *Pair) error {
				r, err := Short(p, Opts{Duration: d, Clients: n})
				raw = append(raw, r)
				ms = append(ms, ShortMetrics(fmt.Sprintf("short c=%d", n), r)...)
				return err
			}); err != nil {
				break
			}
		}
	case "bulk":
		for _, n := range []int{1, 8} {
			if err = withPair(func(p *Pair) error {
				r, err := Bulk(p, Opts{Duration: d, Clients: n})
				raw = append(raw, r)
				ms = append(ms, BulkMetrics(fmt.Sprintf("bulk %d stream", n), r)...)
				return err
			}); err != nil {
				break
			}
		}
	case "rr":
		for _, n := range []int{1, 64} {
			if err = withPair(func(p *Pair) error {
				r, err := RR(p, Opts{Duration: d, Clients: n})
				raw = append(raw, r)
				ms = append(ms, RRMetrics(fmt.Sprintf("rr %d conn", n), r)...)
				return err
			}); err != nil {
				break
			}
		}
		if err == nil {
			// The floor, in every configuration's slot (it does not depend
			// on the TCP): see HopRing.
			r, ferr := HopRing(FloorHops, FloorWork, d/2)
			raw = append(raw, r)
			ms = append(ms, RRMetrics(fmt.Sprintf("rr %d-hop floor", FloorHops), r)...)
			err = ferr
		}
	case "loss":
		for _, drop := range LossRates {
			if err = withPairOpts([]PairOption{WithDrop(drop)}, func(p *Pair) error {
				r, err := Bulk(p, Opts{Duration: d, Clients: 1})
				raw = append(raw, r)
				ms = append(ms, Metric{fmt.Sprintf("bulk 1 stream, %g%% loss Gb/s", drop*100), float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e9, true})
				return err
			}); err != nil {
				break
			}
		}
	case "allocs":
		err = withPair(func(p *Pair) error {
			r, err := Short(p, Opts{Duration: d / 2, Clients: clients[0]})
			raw = append(raw, r)
			ms = append(ms, AllocsPerConn(r)...)
			return err
		})
		if err == nil {
			err = withPair(func(p *Pair) error {
				r, err := Bulk(p, Opts{Duration: d / 2, Clients: 1})
				raw = append(raw, r)
				ms = append(ms, AllocsPerMiB(r)...)
				return err
			})
		}
	case "scaling":
		ms, raw, err = runScaling(tr, d, clients)
	case "memory":
		ms, raw, err = runMemory(tr, DefaultMemoryConns)
	default:
		err = fmt.Errorf("unknown workload %q", w)
	}
	return ms, raw, err
}

// AllocsPerConn is heap allocations and bytes per short connection.
func AllocsPerConn(r ShortResult) []Metric {
	n := float64(max(r.Conns, 1))
	return []Metric{
		{"allocs/short conn", float64(r.Mallocs) / n, false},
		{"alloc bytes/short conn", float64(r.AllocBytes) / n, false},
	}
}

// AllocsPerMiB is heap allocations and bytes per bulk MiB.
func AllocsPerMiB(r BulkResult) []Metric {
	mib := max(float64(r.Bytes)/(1<<20), 1e-9)
	return []Metric{
		{"allocs/bulk MiB", float64(r.Mallocs) / mib, false},
		{"alloc bytes/bulk MiB", float64(r.AllocBytes) / mib, false},
	}
}

// medians groups samples by metric, in first-seen order.
func medians(samples []Sample) []Row {
	groups := GroupMetrics(samples)
	rows := make([]Row, 0, len(groups))
	for _, gr := range groups {
		b, g := Median(gr.Values["batchtcp"]), Median(gr.Values["gvisor"])
		rows = append(rows, Row{Metric: gr.Name, Higher: gr.Higher, BatchTCP: Num(b), GVisor: Num(g), Ratio: Num(b / g)})
	}
	return rows
}

// WriteTable writes the medians as a plain table: one row per metric,
// columns batchtcp, gvisor and their ratio.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\tbatchtcp\tgvisor\tratio\tbetter\t\n")
	for _, row := range r.Rows {
		better := "lower"
		if row.Higher {
			better = "higher"
		}
		ratio := "-" // a configuration without the metric (scaling: batchtcp only)
		if r := float64(row.Ratio); !math.IsNaN(r) && !math.IsInf(r, 0) {
			ratio = fmt.Sprintf("%.2fx", r)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", row.Metric, Format(float64(row.BatchTCP)), Format(float64(row.GVisor)), ratio, better)
	}
	return tw.Flush()
}

// WriteJSON writes the whole report, every sample included, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
