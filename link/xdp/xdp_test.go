package xdp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// helperEnv, when set, makes the test binary a helper process (see
// runHelper) instead of running tests.
const helperEnv = "XDPTCP_XDP_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(netns.Main(m))
}

// runHelper opens an endpoint in namespace $XDPTCP_NS on $XDPTCP_IF, prints
// "open", and then, by mode: "crash" exits without closing anything;
// "signal" installs CloseOnSignal and sends itself SIGTERM, printing
// "closed" from the handler's callback.
func runHelper(mode string) int {
	runtime.LockOSThread()
	fd, err := unix.Open("/run/netns/"+os.Getenv("XDPTCP_NS"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Setns(fd, unix.CLONE_NEWNET)
	}
	if err != nil {
		fmt.Println("setns:", err)
		return 2
	}
	ep, err := xdp.New(xdp.Options{Interface: os.Getenv("XDPTCP_IF"), Addresses: []netip.Addr{netip.MustParseAddr(os.Getenv("XDPTCP_ADDR"))}})
	if err != nil {
		fmt.Println("new:", err)
		return 2
	}
	fmt.Println("open")
	switch mode {
	case "crash":
		os.Exit(3) // no Close: the BPF link must go with the process
	case "signal":
		done := make(chan os.Signal, 1)
		xdp.CloseOnSignal(ep, func(s os.Signal) { done <- s })
		unix.Kill(os.Getpid(), unix.SIGTERM)
		select {
		case s := <-done:
			if id, err := xdp.XDPProgramID(os.Getenv("XDPTCP_IF")); err != nil || id != 0 {
				fmt.Println("still attached after Close:", id, err)
				return 2
			}
			fmt.Println("closed on", s)
			return 0
		case <-time.After(10 * time.Second):
			fmt.Println("no signal")
			return 2
		}
	}
	return 2
}

var (
	afxdpOnce sync.Once
	afxdpErr  error
)

// requireAFXDP skips unless this process can open AF_XDP sockets.
func requireAFXDP(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("AF_XDP tests need root (CAP_NET_ADMIN, CAP_BPF)")
	}
	afxdpOnce.Do(func() {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			afxdpErr = err
			return
		}
		unix.Close(fd)
	})
	if afxdpErr != nil {
		t.Skipf("AF_XDP unavailable here: %v", afxdpErr)
	}
}

// env is a namespace pair with our stack on IfA (in NSA) over an AF_XDP
// endpoint, and the kernel on IfB (in NSB).
type env struct {
	p  *netns.Pair
	ep *xdp.Endpoint
	st *adapter.Stack
	n  *netconn.Net
}

// newEnv builds the pair and the stack; cleanup closes both (the stack
// closes the endpoint) before the namespaces go.
func newEnv(t *testing.T, cfg netns.Config, mod func(*xdp.Options)) *env {
	t.Helper()
	requireAFXDP(t)
	if cfg.Queues == 0 {
		cfg.Queues = 2
	}
	p := netns.NewT(t, cfg)
	o := xdp.Options{Interface: p.IfA, Addresses: []netip.Addr{p.AddrA.Addr()}}
	if mod != nil {
		mod(&o)
	}
	var ep *xdp.Endpoint
	err := p.Do(p.NSA, func() error {
		var err error
		ep, err = xdp.New(o)
		return err
	})
	if err != nil {
		t.Fatalf("xdp.New: %v", err)
	}
	st, err := adapter.New(ep, adapter.WithAddress(p.AddrA))
	if err != nil {
		ep.Close()
		t.Fatalf("adapter.New: %v", err)
	}
	if bp, ok := st.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
		ep.SetSteer(bp.SteerIP)
	}
	t.Cleanup(func() {
		st.Close()
		ep.Close()
	})
	return &env{p: p, ep: ep, st: st, n: netconn.New(st.Stack())}
}

// ping sends ICMP echo requests to addr from NSB's kernel (a raw socket
// opened there; no ping binary needed) until three replies arrive.
func (e *env) ping(addr netip.Addr) error {
	var c *icmp.PacketConn
	if err := e.p.Do(e.p.NSB, func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	dst := &net.IPAddr{IP: addr.AsSlice()}
	buf := make([]byte, 1500)
	replies := 0
	for seq := 1; seq <= 20 && replies < 3; seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("xdptcp")}}
		b, err := m.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, dst); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // time-out: send the next one
			}
			r, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || r.Type != ipv4.ICMPTypeEchoReply || from.String() != addr.String() {
				continue
			}
			if echo, ok := r.Body.(*icmp.Echo); ok && echo.ID == id && echo.Seq == seq {
				replies++
				break
			}
		}
	}
	if replies < 3 {
		return fmt.Errorf("%d of 3 echo replies from %v", replies, addr)
	}
	return nil
}

// xdpAttached reports whether `ip link show` in NSA shows an XDP program
// on IfA ("prog/xdp id N"; the interface names themselves contain "xdp").
func (e *env) xdpAttached(t *testing.T) bool {
	t.Helper()
	out, err := e.p.Run(e.p.NSA, "ip", "link", "show", "dev", e.p.IfA)
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	return strings.Contains(string(out), "prog/xdp")
}

// TestPing: the kernel in NSB pings our address; gVisor's stack answers
// (ARP and ICMP both go through the XDP program and the sockets).
func TestPing(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	if err := e.ping(e.p.AddrA.Addr()); err != nil {
		t.Fatalf("ping %v: %v", e.p.AddrA.Addr(), err)
	}
	s := e.ep.Stats()
	tot := s.Total()
	if s.Mode != xdp.Copy || tot.RxFrames == 0 || tot.TxFrames == 0 {
		t.Errorf("stats after ping: mode %v, %+v", s.Mode, tot)
	}
	if !e.xdpAttached(t) {
		t.Error("no XDP program shown on IfA while the endpoint is open")
	}
}

// TestLinuxClientEcho: a Linux TCP client in NSB sends 1 MiB to a listener
// on our stack, which echoes it; both directions' SHA-256 must match.
func TestLinuxClientEcho(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	ln, err := e.n.Listen("tcp", netip.AddrPortFrom(e.p.AddrA.Addr(), 7).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := e.p.DialTCP(ctx, netip.AddrPortFrom(e.p.AddrA.Addr(), 7).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	echo(t, c, 1<<20)
	s := e.ep.Stats()
	t.Logf("stats: %s", summary(s))
	var steered uint64
	for _, n := range s.Total().SteerShard {
		steered += n
	}
	if steered == 0 {
		t.Error("no frame counted per shard with Steer set")
	}
}

// TestDialLinuxServer: our client connects to a Linux TCP server in NSB,
// which echoes 1 MiB.
func TestDialLinuxServer(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	ln, err := e.p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := e.n.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	echo(t, c, 1<<20)
}

// echo writes n random bytes to c while reading the echo back, and
// compares SHA-256 sums.
func echo(t *testing.T, c net.Conn, n int) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, c, int64(n)); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("echoed bytes differ")
	}
}

// TestCloseDetaches: Close removes the program from IfA, the sockets go
// (the queues can be bound again), and the kernel no longer hears about
// our address.
func TestCloseDetaches(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	if !e.xdpAttached(t) {
		t.Fatal("no XDP program while open")
	}
	e.st.Close()
	e.ep.Close()
	if e.xdpAttached(t) {
		t.Fatal("XDP program still attached after Close")
	}
	var id uint32
	if err := e.p.Do(e.p.NSA, func() (err error) {
		id, err = xdp.XDPProgramID(e.p.IfA)
		return err
	}); err != nil || id != 0 {
		t.Fatalf("program id %d after Close (err %v)", id, err)
	}
	// Every queue can be bound again.
	var ep2 *xdp.Endpoint
	if err := e.p.Do(e.p.NSA, func() (err error) {
		ep2, err = xdp.New(xdp.Options{Interface: e.p.IfA, Addresses: []netip.Addr{e.p.AddrA.Addr()}})
		return err
	}); err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	ep2.Close()
	ep2.Close() // idempotent
}

// TestOtherFramesPassed: a kernel address on IfA in NSA still answers
// ping while our program is attached, and so does our stack.
func TestOtherFramesPassed(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	kern := e.p.AddrA.Addr().Next().Next().Next().Next()
	if kern == e.p.AddrB.Addr() {
		kern = kern.Next()
	}
	if err := e.p.AddKernelAddr(e.p.NSA, e.p.IfA, netip.PrefixFrom(kern, e.p.AddrA.Bits())); err != nil {
		t.Fatal(err)
	}
	if err := e.ping(kern); err != nil {
		t.Fatalf("kernel address %v on IfA: %v", kern, err)
	}
	if err := e.ping(e.p.AddrA.Addr()); err != nil {
		t.Fatalf("our address %v: %v", e.p.AddrA.Addr(), err)
	}
	if !e.xdpAttached(t) {
		t.Fatal("program not attached")
	}
}

// TestErrors: the set-up errors name the fix.
func TestErrors(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	cases := []struct {
		name string
		o    xdp.Options
		want string
	}{
		{"no such interface", xdp.Options{Interface: "nope0", Addresses: []netip.Addr{e.p.AddrA.Addr()}}, "no interface"},
		{"queues already bound", xdp.Options{Interface: e.p.IfA, Addresses: []netip.Addr{e.p.AddrA.Addr()}}, "already has an AF_XDP socket"},
		{"queue out of range", xdp.Options{Interface: e.p.IfB, Addresses: []netip.Addr{e.p.AddrA.Addr()}, Queues: []int{5}}, "out of range"},
		{"MTU above frame", xdp.Options{Interface: "lo", Addresses: []netip.Addr{e.p.AddrA.Addr()}, MTU: 3000}, "FrameSize 4096"},
	}
	for _, c := range cases {
		ns := e.p.NSA
		if c.o.Interface == e.p.IfB {
			ns = e.p.NSB
		}
		err := e.p.Do(ns, func() error {
			ep, err := xdp.New(c.o)
			if err == nil {
				ep.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestQueueBusy: binding a queue that already has a socket fails with
// EBUSY and says so; an interface with another program is refused.
func TestQueueBusy(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	var first *xdp.Endpoint
	err := e.p.Do(e.p.NSB, func() (err error) {
		first, err = xdp.New(xdp.Options{Interface: e.p.IfB, Addresses: []netip.Addr{e.p.AddrB.Addr()}, Queues: []int{0}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	err = e.p.Do(e.p.NSB, func() error {
		ep, err := xdp.New(xdp.Options{Interface: e.p.IfB, Addresses: []netip.Addr{e.p.AddrB.Addr()}, Queues: []int{0}})
		if err == nil {
			ep.Close()
		}
		return err
	})
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "choose other Queues") {
		t.Fatalf("got %v, want EBUSY naming the fix", err)
	}
	// Queue 1 is free, but IfB has first's program: refused, naming it.
	err = e.p.Do(e.p.NSB, func() error {
		ep, err := xdp.New(xdp.Options{Interface: e.p.IfB, Addresses: []netip.Addr{e.p.AddrB.Addr()}, Queues: []int{1}})
		if err == nil {
			ep.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "xdp off") {
		t.Fatalf("got %v, want the attached-program error", err)
	}
}

func summary(s xdp.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %v need_wakeup %v", s.Mode, s.NeedWakeup)
	for _, q := range s.Queues {
		fmt.Fprintf(&b, "\n  q%d rx %d frames/%d B in %d bursts %v, tx %d frames/%d B in %d bursts %v, kicks %d, tx-full %d, steer local %d of %v (none %d), kernel %+v",
			q.Queue, q.RxFrames, q.RxBytes, q.RxBursts, q.RxBatch, q.TxFrames, q.TxBytes, q.TxBursts, q.TxBatch, q.TxKicks, q.TxRingFull,
			q.SteerLocal, q.SteerShard[:4], q.SteerNone, q.Kernel)
	}
	return b.String()
}

// helper runs the test binary as a helper process against IfA.
func helper(t *testing.T, p *netns.Pair, mode string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "XDPTCP_NS="+p.NSA, "XDPTCP_IF="+p.IfA,
		"XDPTCP_ADDR="+p.AddrA.Addr().String())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCrashDetaches: a process that dies without Close leaves no program
// on the interface (BPF link), so the host keeps its traffic.
func TestCrashDetaches(t *testing.T) {
	requireAFXDP(t)
	p := netns.NewT(t, netns.Config{Queues: 2})
	out, err := helper(t, p, "crash")
	if !strings.Contains(out, "open") {
		t.Fatalf("helper: %v: %s", err, out)
	}
	e := &env{p: p}
	if e.xdpAttached(t) {
		t.Fatal("XDP program left attached by a dead process")
	}
}

// TestCloseOnSignal: SIGTERM closes the endpoint through CloseOnSignal.
func TestCloseOnSignal(t *testing.T) {
	requireAFXDP(t)
	p := netns.NewT(t, netns.Config{Queues: 2})
	out, err := helper(t, p, "signal")
	if err != nil || !strings.Contains(out, "closed on terminated") {
		t.Fatalf("helper: %v: %s", err, out)
	}
}

// TestTrustRXChecksum: with the peer's TX checksum offload on, veth hands
// over frames with partial checksums; TrustRXChecksum lets TCP work anyway.
func TestTrustRXChecksum(t *testing.T) {
	e := newEnv(t, netns.Config{NoPeerTxChecksumOff: true}, func(o *xdp.Options) { o.TrustRXChecksum = true })
	if on, err := e.p.TxChecksum(e.p.NSB, e.p.IfB); err != nil || !on {
		t.Fatalf("peer TX checksum offload on = %v (%v), want on", on, err)
	}
	if e.ep.Capabilities()&stack.CapabilityRXChecksumOffload == 0 {
		t.Fatal("capability not set")
	}
	ln, err := e.p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := e.n.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	echo(t, c, 256<<10)
}

// BenchmarkBulkReceive: a Linux client in NSB streams to a sink on our
// stack; reports Gb/s. Bounded by veth copy mode (see ANCHORS).
func BenchmarkBulkReceive(b *testing.B) {
	for _, tr := range []adapter.Transport{adapter.BatchTCP, adapter.GVisorTCP} {
		b.Run(tr.String(), func(b *testing.B) { bulkReceive(b, tr) })
	}
}

func bulkReceive(b *testing.B, tr adapter.Transport) {
	requireAFXDPB(b)
	p := netns.NewT(b, netns.Config{Queues: 2})
	var ep *xdp.Endpoint
	if err := p.Do(p.NSA, func() (err error) {
		ep, err = xdp.New(xdp.Options{Interface: p.IfA, Addresses: []netip.Addr{p.AddrA.Addr()}})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	st, err := adapter.New(ep, adapter.WithAddress(p.AddrA), adapter.WithTransport(tr))
	if err != nil {
		ep.Close()
		b.Fatal(err)
	}
	defer st.Close()
	n := netconn.New(st.Stack())
	ln, err := n.Listen("tcp", netip.AddrPortFrom(p.AddrA.Addr(), 9).String())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	c, err := p.DialTCP(context.Background(), netip.AddrPortFrom(p.AddrA.Addr(), 9).String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	b.ReportMetric(float64(b.N)*float64(len(buf))*8/time.Since(start).Seconds()/1e9, "Gb/s")
	if testing.Verbose() {
		b.Logf("%s", summary(ep.Stats()))
	}
}

func requireAFXDPB(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Skipf("AF_XDP unavailable: %v", err)
	}
	unix.Close(fd)
}

// TestCloseEndpointUnderLiveStack: closing the endpoint while a stack owns
// it (a signal handler's path) runs the stack's close action, which closes
// the endpoint again: it must finish, not deadlock, and detach the program.
func TestCloseEndpointUnderLiveStack(t *testing.T) {
	e := newEnv(t, netns.Config{}, nil)
	done := make(chan struct{})
	go func() {
		e.ep.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Endpoint.Close under a live stack did not return (deadlock)")
	}
	var id uint32
	if err := e.p.Do(e.p.NSA, func() (err error) {
		id, err = xdp.XDPProgramID(e.p.IfA)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if id != 0 {
		t.Fatalf("XDP program %d still attached after Close", id)
	}
}
