package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/xdptcp/xdptcp/internal/bench"
)

// runBench runs the in-process benchmarks: batchtcp<->batchtcp against
// gVisor TCP<->gVisor TCP over an in-memory link, alternating round by
// round, and prints the medians and their ratio (batchtcp/gvisor).
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	workloads := fs.String("workloads", "short,bulk,rr,allocs", "comma-separated workloads: short (connect, 64 B each way, close), bulk (1 and 8 streams), rr (64 B ping-pong on 1 and 64 connections), allocs (heap allocations per short connection and per bulk MiB)")
	duration := fs.Duration("duration", 3*time.Second, "duration of each workload (each sub-run: bulk 1 and 8 streams, rr 1 and 64 connections) per configuration per round")
	rounds := fs.Int("rounds", 3, "rounds; each runs every workload in batchtcp then gvisor")
	clients := fs.String("clients", "64,1024", "concurrent clients of the short workload, comma-separated (one sub-run each; allocs uses the first)")
	jsonPath := fs.String("json", "", "write every round and the medians as JSON to this file")
	quiet := fs.Bool("q", false, "do not print a line per round to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ws, err := bench.ParseWorkloads(*workloads)
	if err != nil {
		return &usageError{err.Error()}
	}
	cs, err := parseInts(*clients)
	if err != nil || *duration <= 0 || *rounds < 1 {
		return &usageError{"-duration must be > 0, -rounds >= 1, -clients a list of counts >= 1"}
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	s := bench.Settings{Workloads: ws, Duration: *duration, Rounds: *rounds, Clients: cs}
	fmt.Fprintf(stdout, "xdptcp bench: in-process, two stacks over link/memlink (MTU %d), batchtcp<->batchtcp vs gvisor<->gvisor alternating; %d round(s) of %v per workload; short with %v clients\n",
		1500, s.Rounds, s.Duration, s.Clients)
	rep, runErr := bench.Run(s, progress)
	if rep == nil {
		return runErr
	}
	fmt.Fprintf(stdout, "machine: %s/%s, %d CPUs, GOMAXPROCS %d, %s; medians of %d round(s), ratio = batchtcp/gvisor\n\n",
		rep.Machine.GOOS, rep.Machine.GOARCH, rep.Machine.NumCPU, rep.Machine.GOMAXPROCS, rep.Machine.Go, s.Rounds)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := rep.WriteJSON(*jsonPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nevery round: %s\n", *jsonPath)
	}
	return runErr
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
