package interop

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/fault"
)

// closedPort has no listener in these tests.
const closedPort = 9

// rawConnect connects a tcpip endpoint on s to addr and returns the
// connect's tcpip.Error, keeping its type (gonet flattens it to a string).
func rawConnect(ctx context.Context, s *stack.Stack, addr tcpip.FullAddress) tcpip.Error {
	var wq waiter.Queue
	ep, err := s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		return err
	}
	defer ep.Close()
	we, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	err = ep.Connect(addr)
	if _, ok := err.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ch:
			err = ep.LastError()
		case <-ctx.Done():
			return &tcpip.ErrAborted{}
		}
	}
	return err
}

func fullAddr(port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{Addr: tcpip.AddrFromSlice(serverAddr.AsSlice()), Port: port}
}

// TestConnectRefused: a SYN to a port nobody listens on draws a RST, and the
// dial fails at once with connection refused, through netconn (errno),
// gonet (its message) and a raw tcpip endpoint (the error type).
func TestConnectRefused(t *testing.T) {
	forEachPairing(t, func(t *testing.T, pr pairing) {
		e := newEnv(t, pr, envOpts{})
		e.listen(t) // a listener on another port must not matter
		const quick = 2 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		start := time.Now()
		c, err := e.cn.DialContext(ctx, "tcp", net.JoinHostPort(serverAddr.String(), "9"))
		if err == nil {
			c.Close()
			t.Fatal("netconn Dial to a closed port succeeded")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("netconn Dial: %v; want ECONNREFUSED", err)
		}
		if d := time.Since(start); d > quick {
			t.Errorf("netconn refused after %v, want < %v", d, quick)
		}

		start = time.Now()
		gc, err := gonet.DialContextTCP(ctx, e.client.Stack(), fullAddr(closedPort), ipv4.ProtocolNumber)
		if err == nil {
			gc.Close()
			t.Fatal("gonet Dial to a closed port succeeded")
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Err.Error() != (&tcpip.ErrConnectionRefused{}).String() {
			t.Errorf("gonet Dial: %v; want an OpError of %q", err, (&tcpip.ErrConnectionRefused{}).String())
		}
		if d := time.Since(start); d > quick {
			t.Errorf("gonet refused after %v, want < %v", d, quick)
		}

		start = time.Now()
		terr := rawConnect(ctx, e.client.Stack(), fullAddr(closedPort))
		if _, ok := terr.(*tcpip.ErrConnectionRefused); !ok {
			t.Errorf("tcpip Connect: %v (%T); want *tcpip.ErrConnectionRefused", terr, terr)
		}
		if d := time.Since(start); d > quick {
			t.Errorf("tcpip refused after %v, want < %v", d, quick)
		}

		// Counters are published per batch (batchtcp) or per segment
		// (gVisor); a stack without a transmit batcher may send the RST
		// before its batch's counters are published: allow a moment.
		st := e.server.Stack().Stats().TCP
		for end := time.Now().Add(time.Second); st.ResetsSent.Value() < 3 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
		if got := st.ResetsSent.Value(); got < 3 {
			t.Errorf("server (%v) ResetsSent = %d, want >= 3 (one per dial)", pr.server, got)
		}
		// gVisor's TCP does not count a refused connect here; ours does.
		if got := e.client.Stack().Stats().TCP.FailedConnectionAttempts.Value(); pr.client == adapter.BatchTCP && got < 3 {
			t.Errorf("client (%v) FailedConnectionAttempts = %d, want >= 3", pr.client, got)
		}
	})
}

// silentEnv is a pair whose link drops every frame; static neighbor
// entries keep ARP out of it, so the SYNs themselves vanish.
func silentEnv(t *testing.T, pr pairing) *env {
	cfg := fault.Config{Seed: 1, Drop: 1, Direction: fault.Both}
	return newEnv(t, pr, envOpts{fault: &cfg, staticNeighbors: true})
}

// TestConnectDeadline: DialContext to a peer that never answers returns
// os.ErrDeadlineExceeded when the context's deadline passes, promptly.
func TestConnectDeadline(t *testing.T) {
	t.Parallel() // timer-bound: overlap with the other waiting tests
	forEachPairing(t, func(t *testing.T, pr pairing) {
		t.Parallel()
		e := silentEnv(t, pr)
		const d = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		c, err := e.cn.DialContext(ctx, "tcp", net.JoinHostPort(serverAddr.String(), "80"))
		took := time.Since(start)
		if err == nil {
			c.Close()
			t.Fatal("Dial to a silent peer succeeded")
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Dial: %v; want os.ErrDeadlineExceeded", err)
		}
		if took < d || took > d+time.Second {
			t.Errorf("Dial returned after %v; want about %v", took, d)
		}
		if fs := e.fault.Stats(); fs.Dropped == 0 {
			t.Errorf("fault stats %+v: the SYN was not dropped", fs)
		}
	})
}

// TestConnectSynRetries: with TCPSynRetriesOption(1) on the dialing stack,
// a connect to a silent peer gives up by itself after the SYN and one
// retransmission: RTO 1 s then 2 s, so about 3 s. It fails with ETIMEDOUT
// through netconn and *tcpip.ErrTimeout on a raw endpoint.
func TestConnectSynRetries(t *testing.T) {
	t.Parallel() // timer-bound: overlap with the other waiting tests
	forEachPairing(t, func(t *testing.T, pr pairing) {
		for _, api := range []string{"netconn", "tcpip"} {
			t.Run(api, func(t *testing.T) {
				if pr.client == adapter.GVisorTCP {
					t.Skip("gVisor's transport/tcp ignores TCPSynRetriesOption in its handshake (connect.go backoffTimer stops only past MaxRTO); not a batchtcp bug")
				}
				t.Parallel()
				e := silentEnv(t, pr)
				opt := tcpip.TCPSynRetriesOption(1)
				setTCPOption(t, e.client, &opt)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				start := time.Now()
				if api == "netconn" {
					c, err := e.cn.DialContext(ctx, "tcp", net.JoinHostPort(serverAddr.String(), "80"))
					if err == nil {
						c.Close()
						t.Fatal("Dial to a silent peer succeeded")
					}
					if !errors.Is(err, syscall.ETIMEDOUT) {
						t.Errorf("Dial: %v; want ETIMEDOUT", err)
					}
				} else {
					terr := rawConnect(ctx, e.client.Stack(), fullAddr(80))
					if _, ok := terr.(*tcpip.ErrTimeout); !ok {
						t.Errorf("tcpip Connect: %v (%T); want *tcpip.ErrTimeout", terr, terr)
					}
				}
				took := time.Since(start)
				if took < 2500*time.Millisecond || took > 6*time.Second {
					t.Errorf("connect failed after %v; want about 3s (1 SYN retry, initial RTO 1s)", took)
				}
				fs := e.fault.Stats()
				t.Logf("failed after %v; fault %+v", took, fs)
				if fs.Dropped != 2 {
					t.Errorf("fault dropped %d frames; want 2: the SYN and its one retransmission", fs.Dropped)
				}
			})
		}
	})
}
