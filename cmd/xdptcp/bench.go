package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/xdptcp/xdptcp/internal/bench"
	"github.com/xdptcp/xdptcp/internal/bench/plot"
)

// runBench runs the in-process benchmarks: batchtcp<->batchtcp against
// gVisor TCP<->gVisor TCP over an in-memory link, alternating round by
// round, and prints the medians and their ratio (batchtcp/gvisor).
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	workloads := fs.String("workloads", strings.Join(bench.WorkloadNames, ","), "comma-separated workloads: short (connect, 64 B each way, close), bulk (1 and 8 streams), rr (64 B ping-pong on 1 and 64 connections, and the 8-hop goroutine-ring floor no TCP can go below), loss (bulk, 1 stream, over a link dropping 1% and 3% of frames each way), allocs (heap allocations per short connection and per bulk MiB), scaling (short with the first -clients count, batchtcp only, server shards 1..GOMAXPROCS up to 16, the load generator's stack at the most), memory (bytes per idle established connection: server end, client end, pair; and the time to establish them; at each -conns count)")
	duration := fs.Duration("duration", 3*time.Second, "duration of each workload (each sub-run: bulk 1 and 8 streams, rr 1 and 64 connections) per configuration per round")
	rounds := fs.Int("rounds", 3, "rounds; each runs every workload in batchtcp then gvisor")
	clients := fs.String("clients", "64,1024", "concurrent clients of the short workload, comma-separated (one sub-run each; allocs uses the first)")
	conns := fs.String("conns", "10000,100000", "connection counts of the memory workload, comma-separated (e.g. 10000,100000,1000000; gVisor's TCP is capped at 100000)")
	jsonPath := fs.String("json", "", "write every round and the medians as JSON to this file")
	plotDir := fs.String("plot", "", "after the run, write charts (PNG and SVG: ratios, rr-latency, scaling, memory, as the workloads allow) into this directory")
	replot := fs.String("replot", "", "run nothing: read this JSON file (from -json) and write its charts into the -plot directory")
	quiet := fs.Bool("q", false, "do not print a line per round to stderr")
	vethMode := fs.Bool("veth", false, "run the veth configurations instead (root, namespaces and AF_XDP; says why and skips otherwise): server A batchtcp on our link/xdp, B stock gVisor (its TCP on its link/xdp), C Linux TCP, D batchtcp on gVisor's link/xdp, E gVisor's TCP on our link/xdp; client Linux TCP in the peer namespace; workloads short, bulk, rr")
	vethConfigs := fs.String("veth-configs", "all", "with -veth: the configurations to run, letters or names, e.g. A,B,C")
	vethQueues := fs.Int("veth-queues", 2, "with -veth: veth queues for A, C and E (B and D use 1: gVisor's link serves queue 0 only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *vethMode {
		return runBenchVeth(fs, vethFlags{workloads: *workloads, duration: *duration, rounds: *rounds, clients: *clients,
			configs: *vethConfigs, queues: *vethQueues, jsonPath: *jsonPath, quiet: *quiet}, stdout, stderr)
	}
	if *replot != "" {
		if *plotDir == "" {
			return &usageError{"-replot needs -plot DIR"}
		}
		rep, err := bench.ReadJSON(*replot)
		if err != nil {
			return err
		}
		return writePlots(rep, *plotDir, stdout)
	}
	ws, err := bench.ParseWorkloads(*workloads)
	if err != nil {
		return &usageError{err.Error()}
	}
	cs, err := parseInts(*clients)
	if err != nil || *duration <= 0 || *rounds < 1 {
		return &usageError{"-duration must be > 0, -rounds >= 1, -clients a list of counts >= 1"}
	}
	ns, err := parseInts(*conns)
	if err != nil {
		return &usageError{"-conns must be a list of counts >= 1"}
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	s := bench.Settings{Workloads: ws, Duration: *duration, Rounds: *rounds, Clients: cs, Conns: ns}
	fmt.Fprintf(stdout, "xdptcp bench: in-process, two stacks over link/memlink (MTU %d), batchtcp<->batchtcp vs gvisor<->gvisor alternating; %d round(s) of %v per workload; short with %v clients; memory at %v connections\n",
		1500, s.Rounds, s.Duration, s.Clients, s.Conns)
	rep, runErr := bench.Run(s, progress)
	if rep == nil {
		return runErr
	}
	fmt.Fprintf(stdout, "machine: %s/%s, %d CPUs, GOMAXPROCS %d, %s; medians of %d round(s), ratio = batchtcp/gvisor\n\n",
		rep.Machine.GOOS, rep.Machine.GOARCH, rep.Machine.NumCPU, rep.Machine.GOMAXPROCS, rep.Machine.Go, s.Rounds)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	for _, n := range rep.MemoryNotes() {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if *jsonPath != "" {
		if err := rep.WriteJSON(*jsonPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nevery round: %s\n", *jsonPath)
	}
	if *plotDir != "" {
		if err := writePlots(rep, *plotDir, stdout); err != nil {
			return err
		}
	}
	return runErr
}

// writePlots writes rep's charts into dir and lists them.
func writePlots(rep *bench.Report, dir string, stdout io.Writer) error {
	paths, err := plot.Write(rep, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "plots: %s\n", strings.Join(paths, " "))
	return nil
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
