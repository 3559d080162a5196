package netconn

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/xdp"
)

// The default stack built from the environment, once per process.
var envDefault struct {
	once sync.Once
	n    *Net
	err  error
}

// Default returns the Net set by SetDefault. Without one, the first call
// builds a stack on an AF_XDP link from the environment (XDPTCP_IFACE,
// XDPTCP_ADDR, and optionally XDPTCP_GATEWAY, XDPTCP_QUEUES,
// XDPTCP_SHARDS; see ConfigFromEnv), installs xdp.CloseOnSignal so the
// XDP program is detached on SIGINT and SIGTERM, and returns it to this
// and every later call; the stack lives as long as the process. The result,
// error included, is cached.
//
// The error is ErrNoDefault (errors.Is) when XDPTCP_IFACE or XDPTCP_ADDR is
// unset; a malformed variable or a failure to open the link (not root, no
// such interface, ...) is a different error that names the variable.
func Default() (*Net, error) {
	if n := defaultNet.Load(); n != nil {
		return n, nil
	}
	envDefault.once.Do(func() {
		envDefault.n, envDefault.err = defaultFromEnv(os.Getenv)
	})
	if n := defaultNet.Load(); n != nil { // set while we were building
		return n, nil
	}
	return envDefault.n, envDefault.err
}

// noDefaultError is ConfigFromEnv's message for unset variables, with
// ErrNoDefault underneath.
type noDefaultError struct{ msg string }

func (e *noDefaultError) Error() string { return e.msg }
func (e *noDefaultError) Unwrap() error { return ErrNoDefault }

// defaultFromEnv builds the process-wide default stack from getenv and
// installs the signal handler that detaches it.
func defaultFromEnv(getenv func(string) string) (*Net, error) {
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		if strings.TrimSpace(getenv(EnvIface)) == "" || strings.TrimSpace(getenv(EnvAddr)) == "" {
			return nil, &noDefaultError{err.Error()}
		}
		return nil, err
	}
	xs, err := openXDP(cfg)
	if err != nil {
		return nil, envLinkError(cfg, err)
	}
	xs.CloseOnSignal(nil)
	return xs.Net, nil
}

// envLinkError says which variables the failed stack came from.
func envLinkError(cfg EnvConfig, err error) error {
	addrs := make([]string, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		addrs[i] = a.String()
	}
	return fmt.Errorf("netconn: default stack from %s=%s %s=%s: %w", EnvIface, cfg.Iface, EnvAddr, strings.Join(addrs, ","), err)
}

// newFromEnv is Default's constructor without the process-wide state: the
// stack described by cfg, its Net, and the Closer that takes it down
// (detaching the XDP program). Errors name the variables, as Default's do.
func newFromEnv(cfg EnvConfig) (*Net, io.Closer, error) {
	xs, err := openXDP(cfg)
	if err != nil {
		return nil, nil, envLinkError(cfg, err)
	}
	return xs.Net, xs, nil
}

// XDPStack is a stack on an AF_XDP link, as Default builds it from the
// environment: link/xdp on an interface, batchtcp with steering, the
// addresses, on-link routes for their subnets and default routes through the
// gateways.
type XDPStack struct {
	Net   *Net
	Stack *adapter.Stack
	Link  *xdp.Endpoint
}

// OpenXDP builds the stack cfg describes (the configuration Default reads
// from the environment, here given directly). It opens AF_XDP sockets and
// attaches the XDP program in the calling thread's network namespace; extra
// adapter options (e.g. adapter.WithTransport) are applied after cfg's. The
// caller must Close it; CloseOnSignal also closes it on SIGINT and SIGTERM.
func OpenXDP(cfg EnvConfig, extra ...adapter.Option) (*XDPStack, error) {
	xs, err := openXDP(cfg, extra...)
	if err != nil {
		return nil, fmt.Errorf("netconn: stack on %s: %w", cfg.Iface, err)
	}
	return xs, nil
}

func openXDP(cfg EnvConfig, extra ...adapter.Option) (*XDPStack, error) {
	if cfg.Iface == "" || len(cfg.Addrs) == 0 {
		return nil, errors.New("an interface and at least one address are required")
	}
	if cfg.Shards < 0 {
		return nil, fmt.Errorf("shards %d: want a positive number (0: GOMAXPROCS)", cfg.Shards)
	}
	addrs := make([]netip.Addr, len(cfg.Addrs))
	opts := make([]adapter.Option, 0, 2*len(cfg.Addrs)+len(cfg.Gateways)+1+len(extra))
	for i, p := range cfg.Addrs {
		addrs[i] = p.Addr()
		opts = append(opts, adapter.WithAddress(p))
	}
	if len(cfg.Gateways) > 0 {
		// Routes given, adapter adds no on-link ones: add them first.
		seen := map[netip.Prefix]bool{}
		for _, p := range cfg.Addrs {
			if m := p.Masked(); !seen[m] {
				seen[m] = true
				opts = append(opts, adapter.WithRoute(m, netip.Addr{}))
			}
		}
		for _, gw := range cfg.Gateways {
			dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if gw.Is6() {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			opts = append(opts, adapter.WithRoute(dst, gw))
		}
	}
	if cfg.Shards > 0 {
		opts = append(opts, adapter.WithShards(cfg.Shards))
	}
	opts = append(opts, extra...)

	ep, err := xdp.New(xdp.Options{Interface: cfg.Iface, Queues: cfg.Queues, Addresses: addrs})
	if err != nil {
		return nil, err
	}
	st, err := adapter.New(ep, opts...)
	if err != nil {
		ep.Close()
		return nil, err
	}
	if bp, ok := st.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
		ep.SetSteer(bp.SteerIP)
	}
	return &XDPStack{Net: New(st.Stack()), Stack: st, Link: ep}, nil
}

// Close closes the stack and the link: the XDP program is detached and the
// sockets closed. Idempotent, and safe to call concurrently (e.g. from a
// signal handler while the stack runs). Close the XDPStack rather than Link
// alone: the stack owns the link.
func (s *XDPStack) Close() error {
	s.Stack.Close()
	s.Link.Close()
	return nil
}

// CloseOnSignal is xdp.CloseOnSignal for the whole stack: on the first
// SIGINT or SIGTERM it closes s (detaching the XDP program), then calls then,
// or with then nil re-raises the signal. The returned function removes the
// handler.
func (s *XDPStack) CloseOnSignal(then func(os.Signal)) (stop func()) {
	return xdp.CloseOnSignal(closeFunc(func() { s.Close() }), then)
}

// closeFunc adapts a function to xdp.CloseOnSignal's interface{ Close() }.
type closeFunc func()

func (f closeFunc) Close() { f() }
