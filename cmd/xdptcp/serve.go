package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/netconn"
)

// maxBytes bounds /bytes?n=N.
const maxBytes = 1 << 40

// serveConfig is serve's command line.
type serveConfig struct {
	stack netconn.EnvConfig
	http  string // listen address on our stack, "host:port" (host empty: all addresses)
	// ready, if set, is called with the listener's address once serving
	// (tests).
	ready func(net.Addr)
}

// runServe parses serve's flags and serves until SIGINT or SIGTERM.
func runServe(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	return serve(context.Background(), cfg, stdout)
}

// parseServeFlags builds serveConfig from the command line; every error is
// a *usageError naming the flag.
func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	var (
		cfg                   serveConfig
		iface, addrs, gws, qs string
		shards                int
		usage                 = func(f string, a ...any) error { return &usageError{fmt.Sprintf(f, a...)} }
		splitList             = func(s string) []string {
			return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
		}
	)
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&iface, "iface", "", "interface to serve on (required); the kernel keeps all traffic not for -addr")
	fs.StringVar(&addrs, "addr", "", "our address/prefix, comma-separated for several (required), e.g. 198.18.0.1/24")
	fs.StringVar(&gws, "gateway", "", "default gateway(s), comma-separated (optional)")
	fs.StringVar(&qs, "queues", "all", `RX queues to serve: "all" or a list such as 0,1`)
	fs.IntVar(&shards, "shards", 0, "batchtcp shards (0: GOMAXPROCS)")
	fs.StringVar(&cfg.http, "http", ":80", "HTTP listen address on our stack, [ip]:port")
	if err := parseFlags(fs, args); err != nil {
		return cfg, err
	}
	if iface == "" {
		return cfg, usage("-iface is required (the interface to serve on)")
	}
	cfg.stack.Iface = iface
	if addrs == "" {
		return cfg, usage("-addr is required (our address/prefix, e.g. 198.18.0.1/24)")
	}
	for _, f := range splitList(addrs) {
		p, err := netip.ParsePrefix(f)
		if err != nil || p.Addr().Is4In6() || p.Addr().IsUnspecified() {
			return cfg, usage("-addr %q: %q is not an address/prefix such as 198.18.0.1/24", addrs, f)
		}
		cfg.stack.Addrs = append(cfg.stack.Addrs, p)
	}
	for _, f := range splitList(gws) {
		a, err := netip.ParseAddr(f)
		if err != nil || a.IsUnspecified() {
			return cfg, usage("-gateway %q: %q is not an IP address", gws, f)
		}
		cfg.stack.Gateways = append(cfg.stack.Gateways, a)
	}
	if qs != "all" {
		fields := splitList(qs)
		if len(fields) == 0 {
			return cfg, usage(`-queues %q: want "all" or queue numbers such as 0,1`, qs)
		}
		for _, f := range fields {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 {
				return cfg, usage(`-queues %q: want "all" or queue numbers such as 0,1`, qs)
			}
			cfg.stack.Queues = append(cfg.stack.Queues, n)
		}
	}
	if shards < 0 {
		return cfg, usage("-shards %d: want a positive number (0: GOMAXPROCS)", shards)
	}
	cfg.stack.Shards = shards
	host, port, err := net.SplitHostPort(cfg.http)
	if err != nil {
		return cfg, usage("-http %q: want [ip]:port, e.g. :80", cfg.http)
	}
	if pn, err := strconv.ParseUint(port, 10, 16); err != nil || pn == 0 {
		return cfg, usage("-http %q: port %q is not a number from 1 to 65535", cfg.http, port)
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return cfg, usage("-http %q: host %q is not an IP address (names are not resolved)", cfg.http, host)
		}
		if !a.IsUnspecified() && !hasAddr(cfg.stack.Addrs, a) {
			return cfg, usage("-http %q: %v is not one of -addr %s", cfg.http, a, addrs)
		}
	}
	return cfg, nil
}

// urls lists the base URLs a listener on la serves: one per address when
// la's host is unspecified.
func urls(la net.Addr, addrs []netip.Prefix) []string {
	ap, err := netip.ParseAddrPort(la.String())
	if err == nil && !ap.Addr().IsUnspecified() {
		return []string{"http://" + ap.String()}
	}
	port := uint16(0)
	if ta, ok := la.(*net.TCPAddr); ok {
		port = uint16(ta.Port)
	}
	var u []string
	for _, p := range addrs {
		u = append(u, "http://"+netip.AddrPortFrom(p.Addr(), port).String())
	}
	return u
}

func hasAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// serve builds the stack (AF_XDP on the interface, in the calling thread's
// network namespace), serves the handler until ctx ends or SIGINT/SIGTERM
// arrives, and takes everything down, detaching the XDP program. A signal
// closes the stack at once (detaching the program) and ends serve without
// an error.
func serve(ctx context.Context, cfg serveConfig, out io.Writer) error {
	xs, err := netconn.OpenXDP(cfg.stack)
	if err != nil {
		return err
	}
	defer xs.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sig atomic.Value
	stopSig := xs.CloseOnSignal(func(s os.Signal) {
		sig.Store(s)
		cancel()
	})
	defer stopSig()

	l, err := xs.Net.Listen("tcp", cfg.http)
	if err != nil {
		return err
	}
	started := time.Now()
	srv := &http.Server{Handler: serveHandler(cfg, xs, started), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	fmt.Fprintf(out, "xdptcp serve: %s on %s (AF_XDP %s mode, queues %v); Ctrl-C stops and detaches\n",
		strings.Join(urls(l.Addr(), cfg.stack.Addrs), " "), cfg.stack.Iface, xs.Link.Mode(), xs.Link.Queues())
	if cfg.ready != nil {
		cfg.ready(l.Addr())
	}
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		xs.Close()
		return fmt.Errorf("http: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if sig.Load() != nil || srv.Shutdown(sctx) != nil {
		srv.Close() // the link is gone, or connections linger: cut them
	}
	<-serveErr
	xs.Close()
	if s, ok := sig.Load().(os.Signal); ok {
		fmt.Fprintf(out, "xdptcp serve: stopped on %v; XDP program detached from %s\n", s, cfg.stack.Iface)
	} else {
		fmt.Fprintf(out, "xdptcp serve: stopped; XDP program detached from %s\n", cfg.stack.Iface)
	}
	return nil
}

// serveHandler is serve's plain net/http handler: / is a status page with
// the stack's counters, /bytes?n=N streams N bytes.
func serveHandler(cfg serveConfig, xs *netconn.XDPStack, started time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "xdptcp serve on %s, addresses %v, up %v\n\n", cfg.stack.Iface, cfg.stack.Addrs, time.Since(started).Round(time.Second))
		s := xs.Stack.Stack()
		writeTCPStats(w, s)
		if bp, ok := s.TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
			writeBatchStats(w, bp.Stats())
		}
		writeLinkStats(w, xs.Link.Stats())
		fmt.Fprintf(w, "\nGET /bytes?n=N streams N bytes (up to %d)\n", int64(maxBytes))
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, fmt.Sprintf("want /bytes?n=N with 0 <= N <= %d", int64(maxBytes)), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		if r.Method == http.MethodHead {
			return
		}
		writePattern(w, n)
	})
	return mux
}

// bytesBlock is what /bytes repeats.
var bytesBlock = bigBody(64 << 10)

// writePattern writes the first n bytes of bytesBlock repeated.
func writePattern(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(bytesBlock)))
		if _, err := w.Write(bytesBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
