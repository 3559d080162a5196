package main

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/memlink"
)

// Addresses of the two in-memory stacks (198.18.0.0/15, benchmarking).
var (
	clientPrefix = netip.MustParsePrefix("198.18.0.1/15")
	serverPrefix = netip.MustParsePrefix("198.18.0.2/15")
)

// parseTransport maps a -transport value to the adapter's Transport.
func parseTransport(name string) (adapter.Transport, error) {
	for _, tr := range []adapter.Transport{adapter.BatchTCP, adapter.GVisorTCP} {
		if tr.String() == name {
			return tr, nil
		}
	}
	return 0, &usageError{fmt.Sprintf("unknown transport %q (want batchtcp or gvisor)", name)}
}

// stackPair is two stacks joined by an in-memory link.
type stackPair struct {
	client, server *stack.Stack
	close          func()
}

// newStackPair builds the pair with the named transport.
func newStackPair(transport string) (*stackPair, error) {
	tr, err := parseTransport(transport)
	if err != nil {
		return nil, err
	}
	c, s, err := adapter.NewPair(memlink.Options{},
		[]adapter.Option{adapter.WithTransport(tr), adapter.WithAddress(clientPrefix)},
		[]adapter.Option{adapter.WithTransport(tr), adapter.WithAddress(serverPrefix)})
	if err != nil {
		return nil, err
	}
	return &stackPair{client: c.Stack(), server: s.Stack(), close: func() {
		c.Close()
		s.Close()
	}}, nil
}
