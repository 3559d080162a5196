package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// errInterrupted ends a demo stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted by signal; everything created was removed")

// signalGrace is how long the demo may take to unwind after a signal
// before the watchdog removes everything and exits.
const signalGrace = 5 * time.Second

// xdpDemo is what the xdp demo creates: a namespace pair and our stack on
// IfA in NSA.
type xdpDemo struct {
	pair *netns.Pair
	xs   *netconn.XDPStack
	done chan struct{}
	wg   sync.WaitGroup
}

// probeAFXDP reports whether this process can open an AF_XDP socket.
func probeAFXDP() error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("AF_XDP socket: %w", err)
	}
	unix.Close(fd)
	return nil
}

// openXDPDemo builds the pair and the stack, or says in one line why it
// cannot (leaving nothing behind). After a signal (ctx done) the watchdog
// closes the stack at once (detaching the program), so the run fails fast
// and unwinds; if it has not
// within signalGrace, it removes everything and exits.
func openXDPDemo(ctx context.Context, transport string) (*xdpDemo, error) {
	tr, err := parseTransport(transport)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("not root: namespaces and AF_XDP need CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF")
	}
	if err := netns.Available(); err != nil {
		return nil, fmt.Errorf("network namespaces: %w", err)
	}
	if err := probeAFXDP(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := netns.New(netns.Config{Name: "demo", Queues: 2})
	if err != nil {
		return nil, fmt.Errorf("namespace pair: %w", err)
	}
	var xs *netconn.XDPStack
	err = p.Do(p.NSA, func() (err error) {
		xs, err = netconn.OpenXDP(netconn.EnvConfig{Iface: p.IfA, Addrs: []netip.Prefix{p.AddrA}}, adapter.WithTransport(tr))
		return err
	})
	if err == nil {
		err = ctx.Err()
		if err != nil {
			xs.Close()
		}
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	x := &xdpDemo{pair: p, xs: xs, done: make(chan struct{})}
	x.wg.Go(func() {
		select {
		case <-x.done:
			return
		case <-ctx.Done():
		}
		select {
		case <-x.done:
			return
		default:
		}
		x.xs.Close() // detach now; the run fails and unwinds
		select {
		case <-x.done:
		case <-time.After(signalGrace):
			x.pair.Close()
			fmt.Fprintln(os.Stderr, "xdptcp demo: did not stop in time after a signal; removed everything, exiting")
			os.Exit(1)
		}
	})
	return x, nil
}

// close removes the stack (detaching the XDP program) and the pair.
func (x *xdpDemo) close() {
	close(x.done)
	x.wg.Wait()
	x.xs.Close()
	x.pair.Close()
}

// demoXDP serves on our stack in NSA and fetches with Linux's TCP from NSB.
func demoXDP(ctx context.Context, cfg demoConfig, x *xdpDemo, out io.Writer) error {
	p := x.pair
	l, err := x.xs.Net.Listen("tcp", netip.AddrPortFrom(p.AddrA.Addr(), 80).String())
	if err != nil {
		return err
	}
	client := p.HTTPClient()
	client.Timeout = 60 * time.Second
	if tr, ok := client.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = cfg.concurrency
		defer tr.CloseIdleConnections()
	}
	st := x.xs.Link.Stats()
	fmt.Fprintf(out, "xdptcp demo: transport %s on link/xdp (AF_XDP %s mode, queues %v) on %s in namespace %s;\n"+
		"  net/http server on %s, Linux TCP client in %s (%s)\n",
		cfg.transport, st.Mode, x.xs.Link.Queues(), p.IfA, p.NSA, l.Addr(), p.NSB, p.AddrB.Addr())
	err = serveAndFetch(ctx, cfg, l, client, out)
	if ctx.Err() != nil {
		return errInterrupted
	}
	writeLinkStats(out, x.xs.Link.Stats())
	if bp, ok := x.xs.Stack.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
		writeBatchStats(out, bp.Stats())
	}
	return err
}
