package adapter

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/memlink"
)

func TestBatchTCPStackBuilds(t *testing.T) {
	for _, batching := range []bool{true, false} {
		a, b := memlink.Pair(memlink.Options{})
		st, err := New(a, WithShards(3), WithTxBatching(batching), WithAddress(DefaultPairAddrsA[0]))
		if err != nil {
			t.Fatal(err)
		}
		p, ok := st.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol)
		if !ok || p.Shards() != 3 || st.Transport() != BatchTCP {
			t.Errorf("TCP protocol %T, transport %v", p, st.Transport())
		}
		if q := st.TxBatcher(); batching && (q == nil || q.Lanes() != 3) || !batching && q != nil {
			t.Errorf("batching %v: batcher %v", batching, q)
		}
		st.Close()
		b.Close()
	}
}

// TestEchoBatchTCPToGVisor dials from a batchtcp stack to a gVisor one.
func TestEchoBatchTCPToGVisor(t *testing.T) {
	sa, sb, err := NewPair(memlink.Options{}, []Option{WithShards(2)}, gvisor())
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	defer sb.Close()
	echoOnce(t, sa, sb)
}

// echoOnce dials from sa to an echo server on sb and checks one echo.
func echoOnce(t *testing.T, sa, sb *Stack) {
	t.Helper()
	dst := DefaultPairAddrsB[0].Addr()
	ln, err := gonet.ListenTCP(sb.Stack(), fullAddr(sb, dst, 7), ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	wg := serve(t, ln, func(c net.Conn) { io.Copy(c, c) })
	defer func() { ln.Close(); wg.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, sa.Stack(), fullAddr(sa, dst, 7), ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	c.Write(msg)
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo %q, %v", got, err)
	}
	c.Close()
}

// Direct delivery is on by default for batchtcp and off on request.
func TestDirectTCPOption(t *testing.T) {
	for _, opts := range [][]Option{{WithShards(2)}, {WithShards(2), WithDirectTCP(false)}} {
		sa, sb, err := NewPair(memlink.Options{}, opts, gvisor())
		if err != nil {
			t.Fatal(err)
		}
		echoOnce(t, sa, sb)
		p := sa.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol)
		p.Sync()
		on := len(opts) == 1
		if n := p.Stats().DirectSegments; on != (n > 0) {
			t.Errorf("direct %v: %d segments went direct", on, n)
		}
		sa.Close()
		sb.Close()
	}
}
