package interop

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/fault"
	"github.com/xdptcp/xdptcp/link/memlink"
	"github.com/xdptcp/xdptcp/netconn"
)

// Addresses of the two sides: 198.18.0.0/15 (benchmarking), as adapter's pair defaults.
var (
	clientAddr = netip.MustParseAddr("198.18.0.1")
	serverAddr = netip.MustParseAddr("198.18.0.2")
)

// pairing is which TCP each side runs.
type pairing struct {
	name           string
	client, server adapter.Transport
}

// pairings are the combinations every test covers: ours against ours and
// ours against gVisor's in both roles.
var pairings = []pairing{
	{"batchtcp-batchtcp", adapter.BatchTCP, adapter.BatchTCP},
	{"batchtcp-gvisor", adapter.BatchTCP, adapter.GVisorTCP},
	{"gvisor-batchtcp", adapter.GVisorTCP, adapter.BatchTCP},
}

// forEachPairing runs f as a subtest per pairing.
func forEachPairing(t *testing.T, f func(t *testing.T, pr pairing)) {
	for _, pr := range pairings {
		t.Run(pr.name, func(t *testing.T) { f(t, pr) })
	}
}

// env is a client stack and a server stack on one in-memory link, the
// client's end optionally wrapped in link/fault (faults apply to frames in
// both directions).
type env struct {
	pr             pairing
	client, server *adapter.Stack
	cn, sn         *netconn.Net
	fault          *fault.Endpoint // nil without faults
}

type envOpts struct {
	link  memlink.Options
	fault *fault.Config
	// staticNeighbors pre-populates both neighbor caches, so a test whose
	// link drops everything fails in TCP, not in ARP.
	staticNeighbors bool
	client, server  []adapter.Option
}

// newEnv builds the pair; t.Cleanup closes both stacks.
func newEnv(t testing.TB, pr pairing, o envOpts) *env {
	t.Helper()
	la, lb := memlink.Pair(o.link)
	e := &env{pr: pr}
	if o.fault != nil {
		e.fault = fault.New(la, *o.fault)
		la = e.fault
	}
	var err error
	e.client, err = adapter.New(la, append([]adapter.Option{
		adapter.WithTransport(pr.client),
		adapter.WithAddress(netip.PrefixFrom(clientAddr, 24)),
	}, o.client...)...)
	if err != nil {
		la.Close()
		lb.Close()
		t.Fatalf("adapter.New(client %v): %v", pr.client, err)
	}
	e.server, err = adapter.New(lb, append([]adapter.Option{
		adapter.WithTransport(pr.server),
		adapter.WithAddress(netip.PrefixFrom(serverAddr, 24)),
	}, o.server...)...)
	if err != nil {
		e.client.Close()
		lb.Close()
		t.Fatalf("adapter.New(server %v): %v", pr.server, err)
	}
	t.Cleanup(func() {
		e.client.Close()
		e.server.Close()
	})
	if o.staticNeighbors {
		addNeighbor(t, e.client, serverAddr, memlink.DefaultAddrB)
		addNeighbor(t, e.server, clientAddr, memlink.DefaultAddrA)
	}
	e.cn = netconn.New(e.client.Stack())
	e.sn = netconn.New(e.server.Stack())
	return e
}

func addNeighbor(t testing.TB, st *adapter.Stack, a netip.Addr, mac tcpip.LinkAddress) {
	t.Helper()
	if err := st.Stack().AddStaticNeighbor(st.NIC(), ipv4.ProtocolNumber, tcpip.AddrFromSlice(a.AsSlice()), mac); err != nil {
		t.Fatalf("AddStaticNeighbor(%v): %v", a, err)
	}
}

// setTCPOption sets a transport option for protocol 6 on st.
func setTCPOption(t testing.TB, st *adapter.Stack, opt tcpip.SettableTransportProtocolOption) {
	t.Helper()
	if err := st.Stack().SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
		t.Fatalf("SetTransportProtocolOption(%T): %v", opt, err)
	}
}

// listen listens on the server on an ephemeral port; t.Cleanup closes it.
func (e *env) listen(t testing.TB) *netconn.TCPListener {
	t.Helper()
	l, err := e.sn.ListenTCP("tcp", &net.TCPAddr{IP: serverAddr.AsSlice()})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// connect returns one connected client/server pair of conns, both closed by
// t.Cleanup. It bounds the handshake by a deadline.
func (e *env) connect(t testing.TB) (client, server *netconn.TCPConn) {
	t.Helper()
	l := e.listen(t)
	type res struct {
		c   *netconn.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.AcceptTCP()
		ch <- res{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.cn.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		l.Close() // unblocks the Accept
		<-ch
		t.Fatalf("Dial: %v", err)
	}
	var r res
	select {
	case r = <-ch:
	case <-time.After(30 * time.Second):
		l.Close()
		r = <-ch
	}
	if r.err != nil {
		c.Close()
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() {
		c.Close()
		r.c.Close()
	})
	return c.(*netconn.TCPConn), r.c
}

// stream is a deterministic byte stream from a seeded ChaCha8, produced in
// chunks so a transfer never holds its data whole.
type stream struct {
	rng  *rand.ChaCha8
	left int64
}

func newStream(seed uint64, n int64) *stream {
	var s [32]byte
	for i := range 4 {
		s[i*8] = byte(seed >> (8 * i))
		s[i*8+1] = byte(i)
	}
	return &stream{rng: rand.NewChaCha8(s), left: n}
}

// Read implements io.Reader.
func (s *stream) Read(b []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > s.left {
		b = b[:s.left]
	}
	s.rng.Read(b)
	s.left -= int64(len(b))
	return len(b), nil
}

type digest struct {
	n   int64
	sum [sha256.Size]byte
}

func (d digest) String() string { return fmt.Sprintf("%d bytes sha256 %x", d.n, d.sum[:8]) }

// sendStream writes n bytes of the seeded stream to w, hashing them.
func sendStream(w io.Writer, seed uint64, n int64) (digest, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	got, err := io.CopyBuffer(io.MultiWriter(w, h), newStream(seed, n), buf)
	var d digest
	d.n = got
	h.Sum(d.sum[:0])
	return d, err
}

// recvStream reads r to EOF, hashing it.
func recvStream(r io.Reader) (digest, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	got, err := io.CopyBuffer(h, r, buf)
	var d digest
	d.n = got
	h.Sum(d.sum[:0])
	return d, err
}

// transfer sends n seeded bytes from src to dst, src half-closing at the
// end, and checks dst got exactly them. The whole transfer is bounded by
// limit (conn deadlines), so a stall fails rather than hangs.
func transfer(t *testing.T, src, dst *netconn.TCPConn, seed uint64, n int64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	src.SetDeadline(deadline)
	dst.SetDeadline(deadline)
	type res struct {
		d   digest
		err error
	}
	rc := make(chan res, 1)
	go func() {
		d, err := recvStream(dst)
		rc <- res{d, err}
	}()
	sent, err := sendStream(src, seed, n)
	if err == nil {
		err = src.CloseWrite()
	}
	if err != nil {
		src.Close() // the receiver then sees an error or EOF and returns
		<-rc
		t.Fatalf("send after %d of %d bytes: %v", sent.n, n, err)
	}
	r := <-rc
	if r.err != nil {
		t.Fatalf("receive after %d of %d bytes: %v", r.d.n, n, r.err)
	}
	if sent.n != n || r.d != sent {
		t.Fatalf("received %v, sent %v", r.d, sent)
	}
}
