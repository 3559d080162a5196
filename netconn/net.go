// Package netconn provides net.Listener and net.Conn over a gVisor
// *stack.Stack. It uses only tcpip.Endpoint, waiter.Queue and tcpip types,
// so it works with any TCP the stack registers: gVisor's or batchtcp.
//
// Errors have package net's shape: *net.OpError with Err io.EOF,
// os.ErrDeadlineExceeded, net.ErrClosed or an *os.SyscallError wrapping a
// syscall.Errno, so errors.Is works as with the kernel's TCP.
package netconn

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// listenBacklog is the accept queue length, Linux's default somaxconn.
const listenBacklog = 4096

// Net opens TCP connections and listeners on one stack. The NIC is chosen
// by the stack's routes.
type Net struct {
	s *stack.Stack
}

// New returns a Net bound to s.
func New(s *stack.Stack) *Net { return &Net{s: s} }

// Stack returns the stack n is bound to.
func (n *Net) Stack() *stack.Stack { return n.s }

// opAddr avoids a typed nil in an OpError's net.Addr fields.
func opAddr(a *net.TCPAddr) net.Addr {
	if a == nil {
		return nil
	}
	return a
}

// newEndpoint makes a TCP endpoint. "tcp" over ipv6 is dual-stack, or
// falls back to ipv4 on a stack without ipv6; "tcp6" is v6-only.
func (n *Net) newEndpoint(network string, proto tcpip.NetworkProtocolNumber) (tcpip.Endpoint, *waiter.Queue, tcpip.Error) {
	if proto == header.IPv6ProtocolNumber && network == "tcp" && !n.s.CheckNetworkProtocol(proto) {
		proto = header.IPv4ProtocolNumber
	}
	wq := new(waiter.Queue)
	ep, err := n.s.NewEndpoint(header.TCPProtocolNumber, proto, wq)
	if err != nil {
		return nil, nil, err
	}
	if network == "tcp6" {
		ep.SocketOptions().SetV6Only(true)
	}
	return ep, wq, nil
}

// Listen listens on address ("host:port", host an IP literal or empty for
// all addresses; port 0 picks one).
func (n *Net) Listen(network, address string) (net.Listener, error) {
	laddr, err := parseAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l, err := n.ListenTCP(network, laddr)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ListenTCP listens on laddr; a nil or unspecified IP binds all addresses.
func (n *Net) ListenTCP(network string, laddr *net.TCPAddr) (*TCPListener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: opAddr(laddr), Err: err}
	}
	if err := checkNetwork(network); err != nil {
		return nil, opErr(err)
	}
	fa, proto, err := toFull(network, laddr)
	if err != nil {
		return nil, opErr(err)
	}
	ep, wq, terr := n.newEndpoint(network, proto)
	if terr != nil {
		return nil, opErr(sysErr("socket", terr))
	}
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, opErr(sysErr("bind", terr))
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, opErr(sysErr("listen", terr))
	}
	bound, terr := ep.GetLocalAddress()
	if terr != nil {
		ep.Close()
		return nil, opErr(sysErr("getsockname", terr))
	}
	return newListener(ep, wq, fromFull(bound)), nil
}

// Dial connects to address ("ip:port").
func (n *Net) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext connects to address; if ctx ends first, the attempt is
// aborted and the error is net's: "i/o timeout" (errors.Is
// context.DeadlineExceeded and os.ErrDeadlineExceeded) or "operation was
// canceled".
func (n *Net) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	raddr, err := parseAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	c, err := n.dial(ctx, network, nil, raddr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialTCP connects to raddr from laddr (nil: chosen by the stack).
func (n *Net) DialTCP(network string, laddr, raddr *net.TCPAddr) (*TCPConn, error) {
	return n.dial(context.Background(), network, laddr, raddr)
}

func (n *Net) dial(ctx context.Context, network string, laddr, raddr *net.TCPAddr) (*TCPConn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Source: opAddr(laddr), Addr: opAddr(raddr), Err: err}
	}
	if err := checkNetwork(network); err != nil {
		return nil, opErr(err)
	}
	if raddr == nil {
		return nil, opErr(&net.AddrError{Err: "missing address"})
	}
	rfa, proto, err := toFull(network, raddr)
	if err != nil {
		return nil, opErr(err)
	}
	var lfa tcpip.FullAddress
	if laddr != nil {
		var lproto tcpip.NetworkProtocolNumber
		if lfa, lproto, err = toFull(network, laddr); err != nil {
			return nil, opErr(err)
		}
		if lfa.Addr.BitLen() != 0 && lproto != proto {
			return nil, opErr(&net.AddrError{Err: "mismatched local address type", Addr: laddr.String()})
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(ctxErr(err))
	}
	ep, wq, terr := n.newEndpoint(network, proto)
	if terr != nil {
		return nil, opErr(sysErr("socket", terr))
	}
	// The connection is made first so that its write waiter (EventOut,
	// EventHUp, EventErr) serves the connect: no waiter per dial.
	c := newConn(ep, wq, tcpip.FullAddress{}, tcpip.FullAddress{})
	w := &c.ww
	w.register()
	defer w.unregister()
	if laddr != nil {
		if terr := ep.Bind(lfa); terr != nil {
			ep.Close()
			return nil, opErr(sysErr("bind", terr))
		}
	}
	terr = ep.Connect(rfa)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		for ep.Readiness(w.mask) == 0 {
			select {
			case <-w.ch:
			case <-ctx.Done():
				ep.Close()
				return nil, opErr(ctxErr(ctx.Err()))
			}
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, opErr(sysErr("connect", terr))
	}
	local, terr := ep.GetLocalAddress()
	if terr != nil {
		ep.Close()
		return nil, opErr(sysErr("getsockname", terr))
	}
	remote, terr := ep.GetRemoteAddress()
	if terr != nil {
		ep.Close()
		return nil, opErr(sysErr("getpeername", terr))
	}
	c.lfull, c.rfull = local, remote
	return c, nil
}

// ErrNoDefault is what the errors of Default, Listen and Dial wrap
// (errors.Is) when no default Net has been set and the environment does not
// configure one (see Default).
var ErrNoDefault = errors.New("netconn: no default stack (call netconn.SetDefault)")

var defaultNet atomic.Pointer[Net]

// SetDefault sets the Net used by the package-level Listen and Dial.
func SetDefault(n *Net) { defaultNet.Store(n) }

// Listen listens on the default Net.
func Listen(network, address string) (net.Listener, error) {
	n, err := Default()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return n.Listen(network, address)
}

// Dial connects on the default Net.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// DialContext connects on the default Net.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	n, err := Default()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	return n.DialContext(ctx, network, address)
}
