package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"
)

func TestServeFlags(t *testing.T) {
	cfg, err := parseServeFlags([]string{"--iface", "eth1", "--addr", "198.18.0.1/24,fd00::1/64", "--gateway", "198.18.0.254",
		"--queues", "0,1", "--shards", "4", "--http", "198.18.0.1:8080"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := netconn.EnvConfig{
		Iface:    "eth1",
		Addrs:    []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd00::1/64")},
		Gateways: []netip.Addr{netip.MustParseAddr("198.18.0.254")},
		Queues:   []int{0, 1},
		Shards:   4,
	}
	eq := []cmp.Option{cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}
	if d := cmp.Diff(want, cfg.stack, eq...); d != "" || cfg.http != "198.18.0.1:8080" {
		t.Fatalf("config (-want +got):\n%s\nhttp %q", d, cfg.http)
	}
	def, err := parseServeFlags([]string{"-iface", "eth1", "-addr", "198.18.0.1/24"}, io.Discard)
	if err != nil || def.http != ":80" || def.stack.Queues != nil || def.stack.Shards != 0 || def.stack.Gateways != nil {
		t.Fatalf("defaults: %+v, %v", def, err)
	}
}

func TestServeFlagErrors(t *testing.T) {
	base := []string{"-iface", "eth1", "-addr", "198.18.0.1/24"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-iface is required"},
		{[]string{"-iface", "eth1"}, "-addr is required"},
		{[]string{"-iface", "eth1", "-addr", "198.18.0.1"}, "-addr"},
		{[]string{"-iface", "eth1", "-addr", "0.0.0.0/0"}, "-addr"},
		{append(base, "-gateway", "gw"), "-gateway"},
		{append(base, "-queues", "one"), "-queues"},
		{append(base, "-queues", ","), "-queues"},
		{append(base, "-shards", "-2"), "-shards"},
		{append(base, "-http", "80"), "-http"},
		{append(base, "-http", ":http"), "-http"},
		{append(base, "-http", ":0"), "-http"},
		{append(base, "-http", "localhost:80"), "not an IP address"},
		{append(base, "-http", "198.18.0.9:80"), "not one of -addr"},
		{append(base, "extra"), "unexpected arguments"},
		{[]string{"-nosuch"}, "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"serve"}, tc.args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("serve %q: exit %d, stderr %q; want 2 containing %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// An interface that is not there: exit 1 with xdp's reason.
func TestServeNoInterface(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"serve", "-iface", "xdptcp-nope0", "-addr", "198.18.0.1/24"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "xdptcp-nope0") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// serve on IfA in NSA of a namespace pair, in-process; a Linux client in
// NSB fetches /bytes and the status page; cancelling the context stops it
// and detaches the program.
func TestServeNamespace(t *testing.T) {
	requireXDP(t)
	p := netns.NewT(t, netns.Config{Queues: 2})
	cfg, err := parseServeFlags([]string{"-iface", p.IfA, "-addr", p.AddrA.String(), "-gateway", p.AddrB.Addr().String(),
		"-queues", "0,1", "-shards", "2", "-http", ":80"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := startServe(t, p, ctx, cfg, &out)

	client := p.HTTPClient()
	client.Timeout = 20 * time.Second
	base := "http://" + netip.AddrPortFrom(p.AddrA.Addr(), 80).String()
	const n = 1 << 20
	resp, err := client.Get(base + "/bytes?n=1048576")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(body) != n {
		t.Fatalf("/bytes: %s, %d bytes, %v", resp.Status, len(body), err)
	}
	var want bytes.Buffer
	writePattern(&want, n)
	if sha256.Sum256(body) != sha256.Sum256(want.Bytes()) {
		t.Fatal("/bytes: wrong content")
	}

	resp, err = client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{"tcp: ", "passive opens", "batchtcp: 2 shards", "link/xdp: copy mode", "drops: 0"} {
		if !strings.Contains(string(status), w) {
			t.Errorf("status page lacks %q:\n%s", w, status)
		}
	}
	if resp, err := client.Get(base + "/bytes?n=-1"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/bytes?n=-1: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	cancel()
	waitServe(t, p, done, &out, "stopped; XDP program detached")
}

// SIGTERM while serving: the stack is closed, serve returns without an
// error, the program is detached, and the process lives on.
func TestServeSignal(t *testing.T) {
	requireXDP(t)
	p := netns.NewT(t, netns.Config{Queues: 2})
	cfg, err := parseServeFlags([]string{"-iface", p.IfA, "-addr", p.AddrA.String(), "-http", ":8080"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	done := startServe(t, p, context.Background(), cfg, &out)
	if err := unix.Kill(os.Getpid(), unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitServe(t, p, done, &out, "stopped on terminated; XDP program detached")
}

// startServe runs serve inside NSA and waits until it serves.
func startServe(t *testing.T, p *netns.Pair, ctx context.Context, cfg serveConfig, out io.Writer) <-chan error {
	t.Helper()
	ready := make(chan net.Addr, 1)
	cfg.ready = func(a net.Addr) { ready <- a }
	done := make(chan error, 1)
	go func() { done <- p.Do(p.NSA, func() error { return serve(ctx, cfg, out) }) }()
	select {
	case a := <-ready:
		t.Logf("serving on %v", a)
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start")
	}
	return done
}

// waitServe waits for serve to return nil, printing want, with the
// program gone from IfA.
func waitServe(t *testing.T, p *netns.Pair, done <-chan error, out *syncBuffer, want string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	t.Logf("output:\n%s", out.String())
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q", want)
	}
	var id uint32
	if err := p.Do(p.NSA, func() (err error) {
		id, err = xdp.XDPProgramID(p.IfA)
		return err
	}); err != nil || id != 0 {
		t.Errorf("XDP program %d on %s after serve returned (%v)", id, p.IfA, err)
	}
}
