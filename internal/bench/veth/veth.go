// Package veth runs internal/bench's workloads (short, bulk, rr) across a
// veth pair between two network namespaces, with the server in one
// namespace in each of five configurations and Linux's TCP as the client in
// the other:
//
//	A  batchtcp on our link/xdp (AF_XDP)
//	B  stock gVisor: gVisor's transport/tcp on gVisor's link/xdp
//	C  Linux's TCP (a Go net server in the namespace)
//	D  batchtcp on gVisor's link/xdp      (A vs D: the link, for batchtcp)
//	E  gVisor's transport/tcp on our link (B vs E: the link, for gVisor's TCP)
//
// The client is a Go load generator using the standard net package in the
// same process (see client.go for how its sockets get into the peer
// namespace). Run alternates A, B, C, D, E within each round, builds a fresh
// namespace pair and server for every sub-run, and reports medians and
// ratios against B (stock gVisor) and C (Linux).
//
// Each TCP keeps its own transmit path on either link: batchtcp its
// per-shard transmit batcher (link/txbatch, adapter's default), gVisor's TCP
// the fifo queueing discipline runsc puts in front of every NIC. gVisor's
// link/xdp serves one RX queue only (runsc's program and socket are for
// queue 0), so B and D run on a one-queue veth; A, C and E on
// Settings.Queues queues (default 2). See gvxdp.go for what gVisor's link
// needs and the two defects worked around.
//
// CPU figures are the whole process's (server stack, load generator, and the
// kernel work charged to the process: the client's sockets, veth transmit in
// both directions, the XDP program and the AF_XDP copies); the Linux
// server's kernel work is charged the same way, except what ksoftirqd does.
// The figures are for comparison within one run on one machine; nothing
// here asserts a time.
package veth

import (
	"encoding/json"
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
	"github.com/xdptcp/xdptcp/internal/bench"
)

// LinkKind is the server's link.
type LinkKind int

// Links.
const (
	LinkOurs   LinkKind = iota // our link/xdp
	LinkGVisor                 // gVisor's link/xdp with runsc's XDP program
	LinkKernel                 // Linux's own stack on the veth
)

func (l LinkKind) String() string {
	switch l {
	case LinkOurs:
		return "link/xdp (ours)"
	case LinkGVisor:
		return "gVisor link/xdp"
	case LinkKernel:
		return "kernel"
	}
	return fmt.Sprintf("LinkKind(%d)", int(l))
}

// Config is one server configuration.
type Config struct {
	Letter    string            `json:"letter"`
	Name      string            `json:"name"` // column and JSON name
	Desc      string            `json:"description"`
	Transport adapter.Transport `json:"-"` // user-level TCP (not for LinkKernel)
	Link      LinkKind          `json:"-"`
}

// Configs are the five configurations, in the order each round runs them.
var Configs = []Config{
	{"A", "batchtcp", "batchtcp on our link/xdp", adapter.BatchTCP, LinkOurs},
	{"B", "gvisor", "stock gVisor: transport/tcp on gVisor's link/xdp (+ fifo qdisc)", adapter.GVisorTCP, LinkGVisor},
	{"C", "linux", "Linux TCP: Go net server in the namespace", 0, LinkKernel},
	{"D", "bt/gvlink", "batchtcp on gVisor's link/xdp", adapter.BatchTCP, LinkGVisor},
	{"E", "gv/ourlink", "gVisor's transport/tcp (+ fifo qdisc) on our link/xdp", adapter.GVisorTCP, LinkOurs},
}

// The reference columns of the ratios.
const (
	refGVisor = "gvisor"
	refLinux  = "linux"
)

// WorkloadNames are the workloads this package runs.
var WorkloadNames = []string{"short", "bulk", "rr"}

// ParseWorkloads parses a comma-separated list of workload names.
func ParseWorkloads(s string) ([]string, error) {
	var out []string
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if !slices.Contains(WorkloadNames, w) {
			return nil, fmt.Errorf("workload %q does not run across veth (want some of %s)", w, strings.Join(WorkloadNames, ","))
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

// ParseConfigs picks configurations by letter or name ("A,B,C" or "all").
func ParseConfigs(s string) ([]Config, error) {
	if s == "" || s == "all" {
		return slices.Clone(Configs), nil
	}
	var out []Config
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		i := slices.IndexFunc(Configs, func(c Config) bool { return strings.EqualFold(c.Letter, f) || c.Name == f })
		if i < 0 {
			return nil, fmt.Errorf("unknown veth configuration %q (want letters A-E or names)", f)
		}
		if !slices.ContainsFunc(out, func(c Config) bool { return c.Letter == Configs[i].Letter }) {
			out = append(out, Configs[i])
		}
	}
	return out, nil
}

// Settings are what Run measures.
type Settings struct {
	Workloads []string      `json:"workloads"`   // of WorkloadNames
	Duration  time.Duration `json:"duration_ns"` // per sub-run, per configuration, per round
	Rounds    int           `json:"rounds"`
	Clients   []int         `json:"clients"` // short's concurrent clients, one sub-run each
	Conns     []int         `json:"rr_conns"`
	Streams   []int         `json:"bulk_streams"`
	// Queues is the veth's queue count for A, C and E (default 2); B and D
	// always get 1 (gVisor's link serves queue 0 only).
	Queues  int      `json:"queues"`
	Configs []Config `json:"configs"` // default all five
}

func (s *Settings) defaults() error {
	if s.Rounds < 1 || s.Duration <= 0 || len(s.Clients) == 0 || slices.Min(s.Clients) < 1 {
		return fmt.Errorf("veth: rounds, duration and clients must be positive")
	}
	if len(s.Workloads) == 0 {
		s.Workloads = WorkloadNames
	}
	for _, w := range s.Workloads {
		if !slices.Contains(WorkloadNames, w) {
			return fmt.Errorf("veth: workload %q does not run across veth (want some of %s)", w, strings.Join(WorkloadNames, ","))
		}
	}
	if len(s.Conns) == 0 {
		s.Conns = []int{1, 64}
	}
	if len(s.Streams) == 0 {
		s.Streams = []int{1, 8}
	}
	if slices.Min(s.Conns) < 1 || slices.Min(s.Streams) < 1 {
		return fmt.Errorf("veth: rr connections and bulk streams must be positive")
	}
	if s.Queues == 0 {
		s.Queues = 2
	}
	if s.Queues < 1 || s.Queues > 64 {
		return fmt.Errorf("veth: queues %d out of range 1-64", s.Queues)
	}
	if len(s.Configs) == 0 {
		s.Configs = slices.Clone(Configs)
	}
	return nil
}

// Machine names where the run happened.
type Machine struct {
	bench.Machine
	Kernel string `json:"kernel"`
	CPU    string `json:"cpu_model"`
}

// Row is one metric's medians across rounds, per configuration, and their
// ratios to stock gVisor (B) and to Linux (C). Maps are keyed by
// configuration name; a configuration without a successful sample is null.
type Row struct {
	Metric   string               `json:"metric"`
	Higher   bool                 `json:"higher_is_better"`
	Medians  map[string]bench.Num `json:"medians"`
	VsGVisor map[string]bench.Num `json:"ratio_vs_gvisor"`
	VsLinux  map[string]bench.Num `json:"ratio_vs_linux"`
}

// Report is a whole run.
type Report struct {
	Started  time.Time      `json:"started"`
	Machine  Machine        `json:"machine"`
	Settings Settings       `json:"settings"`
	Samples  []bench.Sample `json:"samples"`
	Rows     []Row          `json:"medians"`
}

// Run runs every workload in every configuration, alternating the
// configurations within each round, and computes the medians. progress
// (may be nil) gets one line per sample. A sample that fails is recorded
// with its error and the run goes on; the returned error names the first
// failure. Run fails at once, with Available's reason, where namespaces or
// AF_XDP are missing.
func Run(s Settings, progress io.Writer) (*Report, error) {
	if err := s.defaults(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	rep := &Report{Started: time.Now(), Settings: s, Machine: Machine{
		Machine: bench.Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), Hostname: host},
		Kernel: kernel(), CPU: cpuModel(),
	}}
	var firstErr error
	for round := 1; round <= s.Rounds; round++ {
		for _, w := range s.Workloads {
			for _, cfg := range s.Configs {
				runtime.GC()
				ms, raw, err := RunWorkload(w, cfg, s)
				smp := bench.Sample{Round: round, Workload: w, Config: cfg.Name, Metrics: ms, Raw: raw}
				if err != nil {
					smp.Error = err.Error()
					if firstErr == nil {
						firstErr = fmt.Errorf("round %d, %s, %s: %w", round, w, cfg.Name, err)
					}
				}
				rep.Samples = append(rep.Samples, smp)
				if progress != nil {
					fmt.Fprintf(progress, "round %d/%d %-5s %s %-10s %s\n", round, s.Rounds, w, cfg.Letter, cfg.Name, bench.Brief(smp))
				}
			}
		}
	}
	rep.Rows = medians(rep.Samples, s.Configs)
	return rep, firstErr
}

// Sub is one sub-run's raw record: the workload's result and the counters.
type Sub struct {
	Result   any      `json:"result"`
	Counters Counters `json:"counters"`
	// MachineCPU is the busy CPU time of the whole machine (/proc/stat)
	// during the sub-run, for comparison with the process's own.
	MachineCPU time.Duration `json:"machine_cpu_ns"`
}

// RunWorkload runs workload w in configuration cfg once: one sub-run per
// client count (short), stream count (bulk) or connection count (rr), each
// on a fresh namespace pair and server.
func RunWorkload(w string, cfg Config, s Settings) ([]bench.Metric, []any, error) {
	if err := s.defaults(); err != nil {
		return nil, nil, err
	}
	var (
		ms  []bench.Metric
		raw []any
	)
	one := func(f func(t target) (any, []bench.Metric, error)) error {
		e, err := newEnv(cfg, s.Queues)
		if err != nil {
			return err
		}
		m0 := machineBusy()
		r, m, err := f(e.target())
		sub := Sub{Result: r, Counters: e.counters(), MachineCPU: machineBusy() - m0}
		raw = append(raw, sub)
		if err == nil {
			ms = append(ms, m...)
		}
		if cerr := e.close(); err == nil {
			err = cerr
		}
		return err
	}
	var err error
	switch w {
	case "short":
		for _, n := range s.Clients {
			if err = one(func(t target) (any, []bench.Metric, error) {
				r, err := short(t, s.Duration, n)
				return r, bench.ShortMetrics(fmt.Sprintf("short c=%d", n), r), err
			}); err != nil {
				break
			}
		}
	case "bulk":
		for _, n := range s.Streams {
			if err = one(func(t target) (any, []bench.Metric, error) {
				r, err := bulk(t, s.Duration, n)
				return r, bench.BulkMetrics(fmt.Sprintf("bulk %d stream", n), r), err
			}); err != nil {
				break
			}
		}
	case "rr":
		for _, n := range s.Conns {
			if err = one(func(t target) (any, []bench.Metric, error) {
				r, err := rr(t, s.Duration, n)
				return r, bench.RRMetrics(fmt.Sprintf("rr %d conn", n), r), err
			}); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("veth: unknown workload %q", w)
	}
	return ms, raw, err
}

// The metrics have internal/bench's names.

// medians groups samples by metric, in first-seen order.
func medians(samples []bench.Sample, cfgs []Config) []Row {
	groups := bench.GroupMetrics(samples)
	rows := make([]Row, 0, len(groups))
	for _, gr := range groups {
		r := Row{Metric: gr.Name, Higher: gr.Higher, Medians: map[string]bench.Num{},
			VsGVisor: map[string]bench.Num{}, VsLinux: map[string]bench.Num{}}
		g, l := bench.Median(gr.Values[refGVisor]), bench.Median(gr.Values[refLinux])
		for _, c := range cfgs {
			v := bench.Median(gr.Values[c.Name])
			r.Medians[c.Name] = bench.Num(v)
			r.VsGVisor[c.Name] = bench.Num(v / g)
			r.VsLinux[c.Name] = bench.Num(v / l)
		}
		rows = append(rows, r)
	}
	return rows
}

// ratioCols are the ratio columns of the table: the configuration and its
// reference.
var ratioCols = []struct{ cfg, ref string }{
	{"batchtcp", refGVisor}, {"batchtcp", refLinux},
	{"bt/gvlink", refGVisor}, {"gv/ourlink", refGVisor}, {"linux", refGVisor},
}

// WriteTable writes the medians as a plain table: one row per metric, one
// column per configuration, then ratios (A/B, A/C, D/B, E/B, C/B; every
// ratio is in the JSON).
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	letter := map[string]string{}
	for _, c := range Configs {
		letter[c.Name] = c.Letter
	}
	fmt.Fprintf(tw, "metric\t")
	for _, c := range r.Settings.Configs {
		fmt.Fprintf(tw, "%s %s\t", c.Letter, c.Name)
	}
	var cols []struct{ cfg, ref string }
	has := func(n string) bool {
		return slices.ContainsFunc(r.Settings.Configs, func(c Config) bool { return c.Name == n })
	}
	for _, rc := range ratioCols {
		if has(rc.cfg) && has(rc.ref) {
			cols = append(cols, rc)
			fmt.Fprintf(tw, "%s/%s\t", letter[rc.cfg], letter[rc.ref])
		}
	}
	fmt.Fprintf(tw, "better\t\n")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t", row.Metric)
		for _, c := range r.Settings.Configs {
			fmt.Fprintf(tw, "%s\t", bench.Format(float64(row.Medians[c.Name])))
		}
		for _, rc := range cols {
			var v float64
			if rc.ref == refGVisor {
				v = float64(row.VsGVisor[rc.cfg])
			} else {
				v = float64(row.VsLinux[rc.cfg])
			}
			fmt.Fprintf(tw, "%s\t", ratio(v))
		}
		better := "lower"
		if row.Higher {
			better = "higher"
		}
		fmt.Fprintf(tw, "%s\t\n", better)
	}
	return tw.Flush()
}

func ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// WriteJSON writes the whole report, every sample included, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// machineBusy is the machine's busy CPU time so far: every CPU's user,
// nice, system, irq, softirq and steal time from /proc/stat (USER_HZ
// ticks, taken as 100 Hz).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fs := strings.Fields(line)
	if len(fs) < 9 || fs[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		var v int64
		fmt.Sscan(fs[i], &v)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
