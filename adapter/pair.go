package adapter

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/link/memlink"
)

// Addresses NewPair gives a side whose options add none.
var (
	DefaultPairAddrsA = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd00::1/64")}
	DefaultPairAddrsB = []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("fd00::2/64")}
)

// NewPair builds two stacks joined by a link/memlink pair. A side given no
// WithAddress gets DefaultPairAddrsA or DefaultPairAddrsB.
func NewPair(opts memlink.Options, a, b []Option) (sa, sb *Stack, err error) {
	la, lb := memlink.Pair(opts)
	return NewPairOn(la, lb, a, b)
}

// NewPairOn is NewPair on two given link endpoints that reach each other
// (a memlink pair wrapped in link/fault, say). On error both links are
// closed.
func NewPairOn(la, lb stack.LinkEndpoint, a, b []Option) (sa, sb *Stack, err error) {
	if sa, err = New(la, withDefaultAddrs(a, DefaultPairAddrsA)...); err != nil {
		la.Close()
		lb.Close()
		return nil, nil, err
	}
	if sb, err = New(lb, withDefaultAddrs(b, DefaultPairAddrsB)...); err != nil {
		sa.Close()
		lb.Close()
		return nil, nil, err
	}
	return sa, sb, nil
}

func withDefaultAddrs(opts []Option, def []netip.Prefix) []Option {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if len(c.addrs) > 0 {
		return opts
	}
	out := append([]Option(nil), opts...)
	for _, p := range def {
		out = append(out, WithAddress(p))
	}
	return out
}
