package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/xdptcp/xdptcp/internal/bench/veth"
)

// vethFlags are the bench flags -veth uses.
type vethFlags struct {
	workloads string
	duration  time.Duration
	rounds    int
	clients   string
	configs   string
	queues    int
	jsonPath  string
	quiet     bool
}

// runBenchVeth runs the veth configurations (internal/bench/veth): the
// server in one namespace as batchtcp on our link/xdp, stock gVisor, Linux,
// and the two mixed cells; Linux's TCP as the client in the peer namespace.
// Where namespaces or AF_XDP are missing it says why and returns nil.
func runBenchVeth(fs *flag.FlagSet, f vethFlags, stdout, stderr io.Writer) error {
	ws := veth.WorkloadNames
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["workloads"] {
		var err error
		if ws, err = veth.ParseWorkloads(f.workloads); err != nil {
			return &usageError{err.Error()}
		}
	}
	cs, err := parseInts(f.clients)
	if err != nil || f.duration <= 0 || f.rounds < 1 {
		return &usageError{"-duration must be > 0, -rounds >= 1, -clients a list of counts >= 1"}
	}
	cfgs, err := veth.ParseConfigs(f.configs)
	if err != nil {
		return &usageError{err.Error()}
	}
	s := veth.Settings{Workloads: ws, Duration: f.duration, Rounds: f.rounds, Clients: cs, Queues: f.queues, Configs: cfgs}
	if err := veth.Available(); err != nil {
		fmt.Fprintf(stdout, "xdptcp bench -veth: skipped: %v\n", err)
		return nil
	}
	var progress io.Writer = stderr
	if f.quiet {
		progress = nil
	}
	fmt.Fprintf(stdout, "xdptcp bench -veth: server in one namespace, Linux TCP client (Go net) in the peer namespace, veth MTU 1500, peer TX checksum offload off; configurations alternating each round:\n")
	for _, c := range cfgs {
		fmt.Fprintf(stdout, "  %s %-10s %s\n", c.Letter, c.Name, c.Desc)
	}
	fmt.Fprintf(stdout, "%d round(s) of %v per sub-run; short with %v clients, bulk 1 and 8 streams, rr 1 and 64 connections; veth queues %d (B, D: 1)\n",
		s.Rounds, s.Duration, s.Clients, f.queues)
	rep, runErr := veth.Run(s, progress)
	if rep == nil {
		return runErr
	}
	m := rep.Machine
	fmt.Fprintf(stdout, "machine: %s, kernel %s, %d CPUs, GOMAXPROCS %d, %s; medians of %d round(s); X/B = ratio to stock gVisor, X/C = ratio to Linux; CPU = whole process (server, load generator, kernel work charged to it)\n\n",
		m.CPU, m.Kernel, m.NumCPU, m.GOMAXPROCS, m.Go, s.Rounds)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if f.jsonPath != "" {
		if err := rep.WriteJSON(f.jsonPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nevery round: %s\n", f.jsonPath)
	}
	return runErr
}
