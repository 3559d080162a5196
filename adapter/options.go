package adapter

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Transport selects the stack's TCP implementation.
type Transport int

// Transports.
const (
	// BatchTCP is xdptcp's sharded, batched TCP.
	BatchTCP Transport = iota
	// GVisorTCP is gVisor's transport/tcp, for interop tests and benchmarks.
	GVisorTCP
)

func (t Transport) String() string {
	switch t {
	case BatchTCP:
		return "batchtcp"
	case GVisorTCP:
		return "gvisor"
	default:
		return fmt.Sprintf("Transport(%d)", int(t))
	}
}

// Option configures New.
type Option func(*config)

type route struct {
	dst netip.Prefix
	gw  netip.Addr
}

type config struct {
	transport     Transport
	shards        int // 0: GOMAXPROCS
	sndBuf        int // 0: transport default
	rcvBuf        int
	timeWait      time.Duration
	timeWaitSet   bool
	addrs         []netip.Prefix
	routes        []route
	clock         tcpip.Clock
	pcap          io.Writer
	snaplen       uint32
	txBatching    bool
	txBatchingSet bool
	direct        bool
	directSet     bool
	errs          []error
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("adapter: "+format, args...))
}

// WithTransport selects the TCP implementation (default BatchTCP).
func WithTransport(t Transport) Option {
	return func(c *config) {
		if t != BatchTCP && t != GVisorTCP {
			c.fail("unknown transport %v", t)
			return
		}
		c.transport = t
	}
}

// WithShards sets the number of batchtcp shards (default GOMAXPROCS).
func WithShards(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("shards must be at least 1, got %d", n)
			return
		}
		c.shards = n
	}
}

// WithSendBufferSize sets the default TCP send buffer size in bytes.
func WithSendBufferSize(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("send buffer size must be positive, got %d", n)
			return
		}
		c.sndBuf = n
	}
}

// WithReceiveBufferSize sets the default TCP receive buffer size in bytes.
func WithReceiveBufferSize(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("receive buffer size must be positive, got %d", n)
			return
		}
		c.rcvBuf = n
	}
}

// WithTimeWait sets the TIME-WAIT duration.
func WithTimeWait(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("negative TIME-WAIT %v", d)
			return
		}
		c.timeWait, c.timeWaitSet = d, true
	}
}

// WithAddress adds an IPv4 or IPv6 address with its prefix to the NIC.
// Repeatable.
func WithAddress(p netip.Prefix) Option {
	return func(c *config) {
		if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Addr().IsUnspecified() {
			c.fail("bad address %v", p)
			return
		}
		c.addrs = append(c.addrs, p)
	}
}

// WithRoute adds a route to dst via gw; an invalid (zero) gw means dst is
// on-link. Repeatable. Without any, New adds an on-link route per address's
// subnet.
func WithRoute(dst netip.Prefix, gw netip.Addr) Option {
	return func(c *config) {
		if !dst.IsValid() || dst.Addr().Is4In6() {
			c.fail("bad route destination %v", dst)
			return
		}
		if gw.IsValid() && (gw.Is4() != dst.Addr().Is4() || gw.Is4In6() || gw.Zone() != "") {
			c.fail("bad gateway %v for %v", gw, dst)
			return
		}
		c.routes = append(c.routes, route{dst: dst.Masked(), gw: gw})
	}
}

// WithClock sets the stack's clock (tests use gVisor's faketime).
func WithClock(clk tcpip.Clock) Option {
	return func(c *config) {
		if clk == nil {
			c.fail("nil clock")
			return
		}
		c.clock = clk
	}
}

// WithPcap records every frame crossing the NIC to w in pcap format,
// truncated to snaplen bytes. It turns off gVisor's process-wide sniffer
// packet logging (sniffer.LogPackets).
func WithPcap(w io.Writer, snaplen uint32) Option {
	return func(c *config) {
		if w == nil {
			c.fail("nil pcap writer")
			return
		}
		c.pcap, c.snaplen = w, snaplen
	}
}

// WithTxBatching turns the batchtcp transmit batcher (link/txbatch as the
// NIC's queueing discipline, one lane per shard) on or off. Default on for
// BatchTCP; GVisorTCP never uses it.
func WithTxBatching(on bool) Option {
	return func(c *config) { c.txBatching, c.txBatchingSet = on, true }
}

// WithDirectTCP turns batchtcp's direct delivery (batchtcp.DirectLink) on
// or off: TCP segments of existing flows go from the link to their shard
// without gVisor's IP layer, which then neither filters (iptables/nftables:
// the path switches itself off when they are configured) nor sees them.
// Default on for BatchTCP; GVisorTCP never uses it.
func WithDirectTCP(on bool) Option {
	return func(c *config) { c.direct, c.directSet = on, true }
}

func buildConfig(opts []Option) (*config, error) {
	c := &config{}
	for _, o := range opts {
		if o == nil {
			c.fail("nil option")
			continue
		}
		o(c)
	}
	if !c.txBatchingSet {
		c.txBatching = c.transport == BatchTCP
	}
	if !c.directSet {
		c.direct = c.transport == BatchTCP
	}
	if c.transport == GVisorTCP {
		c.txBatching = false
		c.direct = false
	}
	return c, errors.Join(c.errs...)
}
