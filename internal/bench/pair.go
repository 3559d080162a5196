// Package bench holds xdptcp's in-process benchmarks: mTCP's short-connection
// workload, bulk transfer, request/response latency and allocation counts,
// each run over two stacks joined by link/memlink in one process (server on
// one stack, load generator on the other, both through netconn), and a
// runner that alternates batchtcp<->batchtcp with gVisor TCP<->gVisor TCP
// round by round and reports medians and ratios.
//
// The figures are for comparison within one run on one machine; nothing
// here asserts a time.
package bench

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/fault"
	"github.com/xdptcp/xdptcp/link/memlink"
	"github.com/xdptcp/xdptcp/netconn"
)

// Addresses of the two stacks (198.18.0.0/15 is for benchmarking).
var (
	ClientPrefix = netip.MustParsePrefix("198.18.0.1/15")
	ServerPrefix = netip.MustParsePrefix("198.18.0.2/15")
)

// TimeWait is the TIME-WAIT duration both configurations use. The load
// generator closes first, so its ephemeral ports sit in TIME-WAIT; at tens
// of thousands of connections per second the RFC's 2 MSL would exhaust the
// port range within seconds, as it does for Linux without tcp_tw_reuse.
const TimeWait = 500 * time.Millisecond

// opTimeout bounds any single dial, read or write, so a stuck connection
// ends a workload with an error instead of hanging it.
const opTimeout = 10 * time.Second

// Config is one configuration: the same TCP on both stacks.
type Config struct {
	Name      string
	Transport adapter.Transport
}

// Configs are the in-process configurations, A then B.
var Configs = []Config{
	{"batchtcp", adapter.BatchTCP},
	{"gvisor", adapter.GVisorTCP},
}

// Pair is two stacks joined by an in-memory link: Client dials, Server
// listens.
type Pair struct {
	Client, Server *netconn.Net
	cs, ss         *adapter.Stack
}

// PairOption configures NewPair.
type PairOption func(*pairConfig)

type pairConfig struct {
	clientShards, serverShards int     // 0: the adapter's default (GOMAXPROCS)
	drop                       float64 // link/fault drop probability, each direction
}

// WithDrop puts a link/fault wrapper on both ends of the link that drops
// each frame with probability p (seeded, so every run loses alike).
func WithDrop(p float64) PairOption {
	return func(c *pairConfig) { c.drop = p }
}

// WithShards sets the number of batchtcp shards on the client and the
// server stack; 0 keeps the adapter's default (GOMAXPROCS). gVisor's TCP
// has no shards: for it the option does nothing.
func WithShards(client, server int) PairOption {
	return func(c *pairConfig) { c.clientShards, c.serverShards = client, server }
}

// NewPair builds a pair with transport tr on both stacks.
func NewPair(tr adapter.Transport, opts ...PairOption) (*Pair, error) {
	var pc pairConfig
	for _, o := range opts {
		o(&pc)
	}
	co := []adapter.Option{adapter.WithTransport(tr), adapter.WithAddress(ClientPrefix), adapter.WithTimeWait(TimeWait)}
	so := []adapter.Option{adapter.WithTransport(tr), adapter.WithAddress(ServerPrefix), adapter.WithTimeWait(TimeWait)}
	if tr == adapter.BatchTCP {
		if pc.clientShards != 0 {
			co = append(co, adapter.WithShards(pc.clientShards))
		}
		if pc.serverShards != 0 {
			so = append(so, adapter.WithShards(pc.serverShards))
		}
	}
	var c, s *adapter.Stack
	var err error
	if pc.drop > 0 {
		c, s, err = lossyPair(pc.drop, co, so)
	} else {
		c, s, err = adapter.NewPair(memlink.Options{}, co, so)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: stack pair (%v): %w", tr, err)
	}
	return &Pair{Client: netconn.New(c.Stack()), Server: netconn.New(s.Stack()), cs: c, ss: s}, nil
}

// lossyPair is adapter.NewPair with a link/fault wrapper on each end.
func lossyPair(drop float64, co, so []adapter.Option) (c, s *adapter.Stack, err error) {
	if err := (fault.Config{Drop: drop}).Validate(); err != nil {
		return nil, nil, err
	}
	la, lb := memlink.Pair(memlink.Options{})
	return adapter.NewPairOn(fault.New(la, fault.Config{Seed: 1, Drop: drop}),
		fault.New(lb, fault.Config{Seed: 2, Drop: drop}), co, so)
}

// Listen listens on the server stack on an ephemeral port.
func (p *Pair) Listen() (net.Listener, error) {
	return p.Server.Listen("tcp", net.JoinHostPort(ServerPrefix.Addr().String(), "0"))
}

// Close closes both stacks and waits for their goroutines.
func (p *Pair) Close() {
	p.cs.Close()
	p.ss.Close()
}
