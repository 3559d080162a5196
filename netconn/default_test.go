package netconn

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// Unset variables: ErrNoDefault, with a message naming what to set.
func TestDefaultFromEnvMissing(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"nothing":      {},
		"no address":   {EnvIface: "eth1"},
		"no interface": {EnvAddr: "198.18.0.1/24", EnvGateway: "198.18.0.254"},
		"blank":        {EnvIface: " ", EnvAddr: ""},
	} {
		_, err := defaultFromEnv(envOf(env))
		if !errors.Is(err, ErrNoDefault) {
			t.Errorf("%s: %v, want ErrNoDefault", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, EnvIface) || !strings.Contains(msg, EnvAddr) {
			t.Errorf("%s: %q does not name %s and %s", name, msg, EnvIface, EnvAddr)
		}
	}
}

// Set but wrong: an error naming the variables that is not ErrNoDefault (a
// caller falling back to the kernel on ErrNoDefault must not hide it).
func TestDefaultFromEnvMalformed(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"bad address": {EnvIface: "eth1", EnvAddr: "198.18.0.1"},
		"bad shards":  {EnvIface: "eth1", EnvAddr: "198.18.0.1/24", EnvShards: "-1"},
	} {
		_, err := defaultFromEnv(envOf(env))
		if err == nil || errors.Is(err, ErrNoDefault) {
			t.Errorf("%s: %v, want a configuration error other than ErrNoDefault", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, EnvIface) || !strings.Contains(msg, EnvAddr) {
			t.Errorf("%s: %q does not name %s and %s", name, msg, EnvIface, EnvAddr)
		}
	}
}

// The process's own Default, with the variables unset, is ErrNoDefault,
// and so are the package-level Listen and Dial.
func TestDefaultUnsetEnv(t *testing.T) {
	if os.Getenv(EnvIface) != "" || os.Getenv(EnvAddr) != "" {
		t.Skipf("%s or %s set in this environment", EnvIface, EnvAddr)
	}
	_, err := Default()
	if !errors.Is(err, ErrNoDefault) || !strings.Contains(err.Error(), EnvIface) {
		t.Fatalf("Default() = %v, want ErrNoDefault naming %s", err, EnvIface)
	}
	if _, err := Listen("tcp", ":80"); !errors.Is(err, ErrNoDefault) {
		t.Errorf("Listen = %v, want ErrNoDefault", err)
	}
}

// A link that cannot be opened (no such interface here, or not root) is an
// error naming the variable, wrapping xdp's.
func TestNewFromEnvNoInterface(t *testing.T) {
	_, _, err := newFromEnv(EnvConfig{Iface: "xdptcp-nope0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}})
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); !strings.Contains(msg, EnvIface+"=xdptcp-nope0") || !strings.Contains(msg, "xdp:") {
		t.Fatalf("%q: want %s named and xdp's error", msg, EnvIface)
	}
	if errors.Is(err, ErrNoDefault) {
		t.Errorf("%v is ErrNoDefault", err)
	}
}

// The environment's stack on IfA in NSA of a namespace pair: a Linux TCP
// client in NSB reaches a listener on it; Close detaches the program.
func TestNewFromEnvNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_XDP needs root")
	}
	if fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		t.Skipf("AF_XDP unavailable: %v", err)
	} else {
		unix.Close(fd)
	}
	p := netns.NewT(t, netns.Config{Queues: 2})
	// The gateway adds a default route; the on-link route to NSB must stay.
	gw := p.AddrA.Addr().Next().Next().Next()
	env := map[string]string{
		EnvIface: p.IfA, EnvAddr: p.AddrA.String(), EnvGateway: gw.String(), EnvQueues: "0,1", EnvShards: "2",
	}
	cfg, err := ConfigFromEnv(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	var (
		n      *Net
		closer io.Closer
	)
	if err := p.Do(p.NSA, func() (err error) {
		n, closer, err = newFromEnv(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			closer.Close()
		}
	}()
	var haveDefault bool
	for _, r := range n.Stack().GetRouteTable() {
		if r.Destination.Prefix() == 0 && r.Gateway.String() == gw.String() {
			haveDefault = true
		}
	}
	if !haveDefault {
		t.Errorf("no default route via %v in %v", gw, n.Stack().GetRouteTable())
	}
	if n.Stack().TransportProtocolInstance(header.TCPProtocolNumber) == nil {
		t.Fatal("no TCP")
	}

	addr := netip.AddrPortFrom(p.AddrA.Addr(), 7).String()
	ln, err := n.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		served <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := p.DialTCP(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := strings.Repeat("xdptcp default stack ", 5000)
	go func() {
		c.Write([]byte(msg))
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != msg {
		t.Fatalf("echo: %d of %d bytes, %v", len(got), len(msg), err)
	}
	if err := <-served; err != nil {
		t.Errorf("server: %v", err)
	}
	ln.Close()

	closer.Close()
	closed = true
	var id uint32
	if err := p.Do(p.NSA, func() (err error) {
		id, err = xdp.XDPProgramID(p.IfA)
		return err
	}); err != nil || id != 0 {
		t.Errorf("XDP program %d still on %s after Close (%v)", id, p.IfA, err)
	}
}
