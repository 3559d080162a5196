// Package sharding shows that batchtcp's sharding is real: flows spread over
// shards, every flow lives in exactly the shard its symmetric hash names
// (from either direction), no shard ever reaches another's connection, and
// a shard's batch leaves the NIC in one WritePackets call.
package sharding

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/memlink"
	"github.com/xdptcp/xdptcp/netconn"
)

const shards = 4

func pair(t *testing.T) (*adapter.Stack, *adapter.Stack) {
	t.Helper()
	a := []adapter.Option{adapter.WithShards(shards), adapter.WithAddress(netip.MustParsePrefix("198.18.0.1/24"))}
	b := []adapter.Option{adapter.WithShards(shards), adapter.WithAddress(netip.MustParsePrefix("198.18.0.2/24"))}
	sa, sb, err := adapter.NewPair(memlink.Options{}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close(); sa.Close() })
	return sa, sb
}

func proto(t *testing.T, s *adapter.Stack) *batchtcp.Protocol {
	p, ok := s.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol)
	if !ok {
		t.Fatal("stack does not run batchtcp")
	}
	return p
}

// openConns opens n echo connections from sb to sa and keeps them open
// until the returned function is called.
func openConns(t *testing.T, sa, sb *adapter.Stack, n int) func() {
	t.Helper()
	ln, err := netconn.New(sa.Stack()).Listen("tcp4", "198.18.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	dialer := netconn.New(sb.Stack())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var conns []io.Closer
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialer.DialContext(ctx, "tcp4", "198.18.0.1:7")
			if err != nil {
				errc <- err
				return
			}
			msg := []byte(fmt.Sprintf("flow %d", i))
			buf := make([]byte, len(msg))
			_, err = c.Write(msg)
			if err == nil {
				_, err = io.ReadFull(c, buf)
			}
			if err == nil && string(buf) != string(msg) {
				err = fmt.Errorf("echo %q, want %q", buf, msg)
			}
			if err != nil {
				errc <- err
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return func() {
		ln.Close()
		for _, c := range conns {
			c.Close()
		}
	}
}

func TestFlowsLiveInTheirHashShard(t *testing.T) {
	sa, sb := pair(t)
	const n = 256
	done := openConns(t, sa, sb, n)
	defer done()
	for _, s := range []*adapter.Stack{sa, sb} {
		p := proto(t, s)
		flows := p.Flows()
		if len(flows) != shards {
			t.Fatalf("%d shard tables, want %d", len(flows), shards)
		}
		seen := map[string]int{}
		total := 0
		for i, fl := range flows {
			if len(fl) == 0 {
				t.Errorf("shard %d owns no flow out of %d: flows do not spread", i, n)
			}
			for _, f := range fl {
				total++
				if f.Shard != i {
					t.Errorf("flow %v in shard %d's table but owned by %d", f.ID, i, f.Shard)
				}
				if got := p.ShardOf(f.ID); got != i {
					t.Errorf("flow %v in shard %d, hash says %d", f.ID, i, got)
				}
				// The hash is symmetric: the reverse tuple maps alike.
				if got := p.FlowShard(f.ID.RemoteAddress, f.ID.RemotePort, f.ID.LocalAddress, f.ID.LocalPort); got != i {
					t.Errorf("reverse of %v maps to shard %d, not %d", f.ID, got, i)
				}
				key := f.ID.LocalAddress.String() + fmt.Sprint(f.ID.LocalPort) + f.ID.RemoteAddress.String() + fmt.Sprint(f.ID.RemotePort)
				seen[key]++
			}
		}
		for k, c := range seen {
			if c != 1 {
				t.Errorf("flow %s in %d shard tables", k, c)
			}
		}
		if total != n {
			t.Errorf("%d flows in shard tables, want %d", total, n)
		}
		st := p.Stats()
		for i, segs := range st.PerShardSegments {
			if segs == 0 {
				t.Errorf("shard %d processed no segment", i)
			}
		}
		if st.OwnershipViolations != 0 {
			t.Errorf("%d ownership violations", st.OwnershipViolations)
		}
	}
}

// TestBatchLeavesInOneWritePackets checks that under load the shards'
// output reaches the link in multi-packet WritePackets calls.
func TestBatchLeavesInOneWritePackets(t *testing.T) {
	sa, sb := pair(t)
	done := openConns(t, sa, sb, 64)
	done()
	var calls, pkts uint64
	for _, s := range []*adapter.Stack{sa, sb} {
		q := s.TxBatcher()
		if q == nil {
			t.Fatal("no TX batcher installed")
		}
		for _, l := range q.Stats() {
			calls += l.Calls
			pkts += l.Packets
		}
	}
	if calls == 0 || pkts <= calls {
		t.Fatalf("%d packets in %d WritePackets calls: no batching", pkts, calls)
	}
	t.Logf("%d packets in %d WritePackets calls (%.2f per call)", pkts, calls, float64(pkts)/float64(calls))
}
