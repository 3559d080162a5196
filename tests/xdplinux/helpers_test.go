// Package xdplinux proves xdptcp's stack (batchtcp through adapter, on the
// AF_XDP link link/xdp) against Linux's own TCP across a veth pair: our
// stack owns IfA in namespace NSA, Linux TCP peers (Go's net package) run in
// NSB. Every test builds its own namespace pair (tests/netns) and skips when
// that or AF_XDP is unavailable (not root).
package xdplinux

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"
)

func TestMain(m *testing.M) { os.Exit(netns.Main(m)) }

var (
	afxdpOnce sync.Once
	afxdpErr  error
)

// requireAFXDP skips t unless this process can open AF_XDP sockets.
func requireAFXDP(t testing.TB) {
	t.Helper()
	afxdpOnce.Do(func() {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			afxdpErr = err
			return
		}
		unix.Close(fd)
	})
	if afxdpErr != nil {
		t.Skipf("AF_XDP unavailable here: %v", afxdpErr)
	}
}

// env is our stack (batchtcp on link/xdp) on p.IfA in p.NSA.
type env struct {
	p  *netns.Pair
	ep *xdp.Endpoint
	st *adapter.Stack
	n  *netconn.Net
}

// newEnv creates a namespace pair (2 queues unless cfg says otherwise) and
// starts our stack on it. netns.NewT skips t, with its own message, where
// namespaces cannot be made (not root); requireAFXDP where AF_XDP is
// missing.
func newEnv(t testing.TB, cfg netns.Config, opts ...adapter.Option) *env {
	t.Helper()
	if cfg.Queues == 0 {
		cfg.Queues = 2
	}
	p := netns.NewT(t, cfg)
	requireAFXDP(t)
	return startStack(t, p, opts...)
}

// startStack opens an AF_XDP endpoint on p.IfA (inside p.NSA) and builds our
// stack on it with p.AddrA. Cleanup closes the stack and the endpoint; it is
// registered after the pair's, so it runs before the namespaces go.
func startStack(t testing.TB, p *netns.Pair, opts ...adapter.Option) *env {
	t.Helper()
	var ep *xdp.Endpoint
	if err := p.Do(p.NSA, func() (err error) {
		ep, err = xdp.New(xdp.Options{Interface: p.IfA, Addresses: []netip.Addr{p.AddrA.Addr()}})
		return err
	}); err != nil {
		t.Fatalf("xdp.New on %s: %v", p.IfA, err)
	}
	st, err := adapter.New(ep, append([]adapter.Option{adapter.WithAddress(p.AddrA)}, opts...)...)
	if err != nil {
		ep.Close()
		t.Fatalf("adapter.New: %v", err)
	}
	if st.Transport() != adapter.BatchTCP {
		st.Close()
		ep.Close()
		t.Fatalf("transport %v, want batchtcp", st.Transport())
	}
	if bp, ok := st.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
		ep.SetSteer(bp.SteerIP)
	} else {
		st.Close()
		ep.Close()
		t.Fatal("TCP protocol instance is not batchtcp")
	}
	t.Cleanup(func() {
		st.Close()
		ep.Close()
	})
	return &env{p: p, ep: ep, st: st, n: netconn.New(st.Stack())}
}

// addrA is "AddrA:port", our stack's address.
func (e *env) addrA(port uint16) string {
	return netip.AddrPortFrom(e.p.AddrA.Addr(), port).String()
}

// listen listens on our stack and serves each connection with h in its own
// goroutine until the test ends; cleanup closes the listener and waits for
// the handlers.
func (e *env) listen(t testing.TB, port uint16, h func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := e.n.Listen("tcp", e.addrA(port))
	if err != nil {
		t.Fatalf("listen on our stack: %v", err)
	}
	serve(t, ln, h)
	return ln
}

// serve accepts on ln until it is closed, running h per connection (which
// closes the connection afterwards). Cleanup closes ln and waits.
func serve(t testing.TB, ln net.Listener, h func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				h(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// tcpEcho is a handler that copies what it reads back until EOF.
func tcpEcho(c net.Conn) { io.Copy(c, c) }

// ctxT is a context bounded by d and by the test.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// prng is an endless deterministic byte stream from a seeded PCG.
type prng struct {
	r    *rand.PCG
	buf  [8]byte
	left int // unread bytes at the end of buf
}

func newPRNG(seed uint64) *prng { return &prng{r: rand.NewPCG(seed, 0x9e3779b97f4a7c15)} }

func (g *prng) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && g.left > 0 {
		p[0] = g.buf[8-g.left]
		p = p[1:]
		g.left--
	}
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, g.r.Uint64())
		p = p[8:]
	}
	if len(p) > 0 {
		binary.LittleEndian.PutUint64(g.buf[:], g.r.Uint64())
		g.left = 8
		for len(p) > 0 {
			p[0] = g.buf[8-g.left]
			p = p[1:]
			g.left--
		}
	}
	return n, nil
}

// stream is n bytes of the seeded stream.
func stream(seed uint64, n int64) io.Reader { return io.LimitReader(newPRNG(seed), n) }

// streamSum is the SHA-256 of n bytes of the seeded stream.
func streamSum(seed uint64, n int64) [32]byte {
	h := sha256.New()
	io.CopyBuffer(h, stream(seed, n), make([]byte, 64<<10))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// readSum reads r to EOF and returns the byte count and the SHA-256.
func readSum(r io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 64<<10))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return n, s, err
}

// summary formats the link's counters for logs.
func summary(s xdp.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %v need_wakeup %v", s.Mode, s.NeedWakeup)
	for _, q := range s.Queues {
		fmt.Fprintf(&b, "\n  q%d rx %d frames in %d bursts, tx %d frames in %d bursts, kicks %d (errors %d), tx-full %d, rx-bad %d, kernel %+v",
			q.Queue, q.RxFrames, q.RxBursts, q.TxFrames, q.TxBursts, q.TxKicks, q.TxKickErrors, q.TxRingFull, q.RxBad, q.Kernel)
	}
	return b.String()
}

// linkCounters are a veth end's kernel counters (ip -s -j link).
type linkCounters struct {
	RxPackets, RxDropped, TxPackets, TxDropped uint64
}

// vethStats reads ifname's counters in ns.
func vethStats(p *netns.Pair, ns, ifname string) (linkCounters, error) {
	out, err := p.Run(ns, "ip", "-s", "-j", "link", "show", "dev", ifname)
	if err != nil {
		return linkCounters{}, fmt.Errorf("ip -s link: %v: %s", err, out)
	}
	var v []struct {
		Stats64 struct {
			Rx struct{ Packets, Dropped uint64 } `json:"rx"`
			Tx struct{ Packets, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v) != 1 {
		return linkCounters{}, fmt.Errorf("ip -s -j link: %v: %s", err, out)
	}
	s := v[0].Stats64
	return linkCounters{s.Rx.Packets, s.Rx.Dropped, s.Tx.Packets, s.Tx.Dropped}, nil
}

// netipAddrPort is AddrA:port.
func netipAddrPort(e *env, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(e.p.AddrA.Addr(), port)
}

// logTCP logs our stack's TCP counters and the link's.
func logTCP(t testing.TB, e *env) {
	t.Helper()
	tc := e.st.Stack().Stats().TCP
	t.Logf("our TCP: segments sent %d received %d, retransmits %d (fast %d, timeouts %d), checksum errors %d, resets sent %d received %d",
		tc.SegmentsSent.Value(), tc.ValidSegmentsReceived.Value(), tc.Retransmits.Value(), tc.FastRetransmit.Value(),
		tc.Timeouts.Value(), tc.ChecksumErrors.Value(), tc.ResetsSent.Value(), tc.ResetsReceived.Value())
	t.Logf("link: %s", summary(e.ep.Stats()))
}
