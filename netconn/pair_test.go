package netconn

import (
	"net/netip"
	"testing"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/memlink"
)

// Test addresses: 198.18.0.0/15 (benchmarking) and fd00::/8 (ULA).
var (
	addrA4 = netip.MustParseAddr("198.18.0.1")
	addrB4 = netip.MustParseAddr("198.18.0.2")
	addrA6 = netip.MustParseAddr("fd00::1")
	addrB6 = netip.MustParseAddr("fd00::2")
)

// pair is two stacks joined by a link; b usually serves, a dials.
type pair struct {
	a, b *Net
}

// bAddr returns b's address for the family, with port.
func (p *pair) bAddr(v6 bool, port int) string {
	if v6 {
		return netip.AddrPortFrom(addrB6, uint16(port)).String()
	}
	return netip.AddrPortFrom(addrB4, uint16(port)).String()
}

// transport is one TCP implementation under test.
type transport struct {
	name    string
	newPair func(t testing.TB) *pair
}

// transports lists the TCPs to run the suite over: ours and gVisor's, so
// every difference between them shows.
func transports() []transport {
	return []transport{
		{"gvisor", func(t testing.TB) *pair { return newAdapterPair(t, adapter.GVisorTCP) }},
		{"batchtcp", func(t testing.TB) *pair { return newAdapterPair(t, adapter.BatchTCP) }},
	}
}

// forEachTransport runs f as a subtest per transport.
func forEachTransport(t *testing.T, f func(t *testing.T, newPair func(testing.TB) *pair)) {
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			f(t, tr.newPair)
		})
	}
}

// newAdapterPair joins two adapter stacks using tr over an in-memory link.
func newAdapterPair(t testing.TB, tr adapter.Transport) *pair {
	t.Helper()
	opts := func(a4, a6 netip.Addr) []adapter.Option {
		return []adapter.Option{
			adapter.WithTransport(tr),
			adapter.WithAddress(netip.PrefixFrom(a4, 15)),
			adapter.WithAddress(netip.PrefixFrom(a6, 64)),
		}
	}
	sa, sb, err := adapter.NewPair(memlink.Options{}, opts(addrA4, addrA6), opts(addrB4, addrB6))
	if err != nil {
		t.Fatalf("adapter.NewPair(%v): %v", tr, err)
	}
	t.Cleanup(func() {
		sa.Close()
		sb.Close()
	})
	return &pair{a: New(sa.Stack()), b: New(sb.Stack())}
}

// listen listens on b's address of the family, on an ephemeral port.
func (p *pair) listen(t testing.TB, v6 bool) *TCPListener {
	t.Helper()
	l, err := p.b.Listen("tcp", p.bAddr(v6, 0))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l.(*TCPListener)
}

// connect returns a connected (client on a, server on b) pair of conns.
func (p *pair) connect(t testing.TB, v6 bool) (client, server *TCPConn) {
	t.Helper()
	l := p.listen(t, v6)
	type res struct {
		c   *TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.AcceptTCP()
		ch <- res{c, err}
	}()
	c, err := p.a.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() {
		c.Close()
		r.c.Close()
	})
	return c.(*TCPConn), r.c
}
