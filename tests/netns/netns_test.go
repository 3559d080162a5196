package netns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const helperEnv = "XDPTCP_NETNS_HELPER"

func TestMain(m *testing.M) {
	code := Main(m)
	if code == 0 && os.Getenv(helperEnv) == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func nsList(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(ipPath, "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func nsExists(t testing.TB, name string) bool {
	t.Helper()
	for _, l := range strings.Split(nsList(t), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func skipIfUnavailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
}

func TestNewClose(t *testing.T) {
	skipIfUnavailable(t)
	p, err := New(Config{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, ns := range []string{p.NSA, p.NSB} {
		if !strings.HasPrefix(ns, NamePrefix) || !nsExists(t, ns) {
			t.Errorf("namespace %q missing from ip netns list:\n%s", ns, nsList(t))
		}
	}
	if p.IfIndexA <= 0 || p.IfIndexB <= 0 || len(p.MACA) != 6 || len(p.MACB) != 6 {
		t.Errorf("ifindex %d/%d mac %v/%v", p.IfIndexA, p.IfIndexB, p.MACA, p.MACB)
	}
	for _, a := range []netip.Prefix{p.AddrA, p.AddrB} {
		if !AllowedNet.Contains(a.Addr()) || a.Bits() != 24 {
			t.Errorf("address %v not a /24 in %v", a, AllowedNet)
		}
	}
	if p.AddrA.Masked() != p.AddrB.Masked() || p.AddrA.Addr() == p.AddrB.Addr() {
		t.Errorf("AddrA %v AddrB %v not two hosts of one subnet", p.AddrA, p.AddrB)
	}

	// Kernel addresses: AddrB on IfB, nothing IPv4 (and no IPv6) on IfA.
	out, err := p.Run(p.NSB, ipPath, "-o", "addr", "show", "dev", p.IfB)
	if err != nil || !strings.Contains(string(out), " "+p.AddrB.String()+" ") {
		t.Errorf("IfB addresses: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "inet6") {
		t.Errorf("IfB has IPv6 addresses:\n%s", out)
	}
	out, err = p.Run(p.NSA, ipPath, "-o", "addr", "show", "dev", p.IfA)
	if err != nil || strings.Contains(string(out), "inet") {
		t.Errorf("IfA has kernel addresses: %v\n%s", err, out)
	}
	// Queues, MTU, up.
	for _, s := range []struct{ ns, ifn string }{{p.NSA, p.IfA}, {p.NSB, p.IfB}} {
		out, err := p.Run(s.ns, ipPath, "-d", "link", "show", "dev", s.ifn)
		o := string(out)
		if err != nil || !strings.Contains(o, "numtxqueues 2 numrxqueues 2") || !strings.Contains(o, "mtu 1500") ||
			!strings.Contains(o, "state UP") || !strings.Contains(o, "veth") {
			t.Errorf("%s in %s: %v\n%s", s.ifn, s.ns, err, o)
		}
	}
	// tcp_tw_reuse=1 in NSB.
	if err := p.Do(p.NSB, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_tw_reuse")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "1" {
			return fmt.Errorf("tcp_tw_reuse = %q", b)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, ns := range []string{p.NSA, p.NSB} {
		if nsExists(t, ns) {
			t.Errorf("namespace %s left behind", ns)
		}
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("%s still in %s", ns, netnsDir)
		}
	}
	if err := p.Do(p.NSA, func() error { return nil }); err == nil {
		t.Error("Do after Close succeeded")
	}
}

func TestConfig(t *testing.T) {
	p := NewT(t, Config{Name: "cfg", Queues: 4, MTU: 3000, NoPeerTxChecksumOff: true, AssignKernelAddrA: true})
	out, err := p.Run(p.NSA, ipPath, "-d", "-o", "addr", "show", "dev", p.IfA)
	if err != nil || !strings.Contains(string(out), " "+p.AddrA.String()+" ") {
		t.Errorf("IfA addresses: %v\n%s", err, out)
	}
	out, err = p.Run(p.NSB, ipPath, "-d", "link", "show", "dev", p.IfB)
	if err != nil || !strings.Contains(string(out), "numtxqueues 4 numrxqueues 4") || !strings.Contains(string(out), "mtu 3000") {
		t.Errorf("IfB: %v\n%s", err, out)
	}
	for _, s := range []struct{ ns, ifn string }{{p.NSA, p.IfA}, {p.NSB, p.IfB}} {
		on, err := p.TxChecksum(s.ns, s.ifn)
		if err != nil || !on {
			t.Errorf("%s: tx checksum on=%v err=%v, want on (kernel default kept)", s.ifn, on, err)
		}
	}
}

func TestChecksumOffloadOff(t *testing.T) {
	p := NewT(t, Config{})
	for _, s := range []struct{ ns, ifn string }{{p.NSA, p.IfA}, {p.NSB, p.IfB}} {
		on, err := p.TxChecksum(s.ns, s.ifn)
		if err != nil || on {
			t.Errorf("%s: tx checksum on=%v err=%v, want off", s.ifn, on, err)
		}
	}
	// And it can be turned back on.
	if err := p.SetTxChecksum(p.NSB, p.IfB, true); err != nil {
		t.Fatal(err)
	}
	if on, err := p.TxChecksum(p.NSB, p.IfB); err != nil || !on {
		t.Errorf("after SetTxChecksum(true): on=%v err=%v", on, err)
	}
}

func TestTwoPairs(t *testing.T) {
	skipIfUnavailable(t)
	var ps [2]*Pair
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := New(Config{Name: "two"})
			if err != nil {
				t.Error(err)
				return
			}
			ps[i] = p
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, p := range ps {
			p.Close()
		}
	})
	if ps[0] == nil || ps[1] == nil {
		t.FailNow()
	}
	a, b := ps[0], ps[1]
	if a.NSA == b.NSA || a.NSB == b.NSB || a.NSA == b.NSB || a.NSA == a.NSB {
		t.Errorf("namespace names collide: %s %s %s %s", a.NSA, a.NSB, b.NSA, b.NSB)
	}
	if a.AddrA.Masked() == b.AddrA.Masked() {
		t.Errorf("subnets collide: %v %v", a.AddrA, b.AddrA)
	}
	// The pairs are separate links: each B reaches its own A only (the
	// other subnet has no route in NSB, so nothing is sent).
	var lns [2]net.Listener
	for i, p := range ps {
		if err := p.AddKernelAddr(p.NSA, p.IfA, p.AddrA); err != nil {
			t.Fatal(err)
		}
		if err := p.Do(p.NSA, func() error {
			var err error
			lns[i], err = net.Listen("tcp4", net.JoinHostPort(p.AddrA.Addr().String(), "0"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer lns[i].Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, p := range ps {
		c, err := p.DialTCP(ctx, lns[i].Addr().String())
		if err != nil {
			t.Errorf("pair %d: dial own A: %v", i, err)
		} else {
			c.Close()
		}
		if c, err := p.DialTCP(ctx, lns[1-i].Addr().String()); err == nil {
			c.Close()
			t.Errorf("pair %d reached the other pair's A", i)
		}
	}
}

// Close removes the veth even while a socket keeps the namespace alive.
func TestCloseWithOpenSocket(t *testing.T) {
	skipIfUnavailable(t)
	p, err := New(Config{Name: "opensock"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var fd int
	if err := p.Do(p.NSA, func() error {
		var err error
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if nsExists(t, p.NSA) {
		t.Fatalf("%s still listed", p.NSA)
	}
	// Look into the still-alive namespace through the socket's netns.
	var names []string
	nsfd, err := ioctlSKNS(fd)
	if err != nil {
		t.Skipf("SIOCGSKNS: %v", err)
	}
	defer syscall.Close(nsfd)
	if err := withNetns(fmt.Sprintf("/proc/self/fd/%d", nsfd), func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "lo" {
		t.Errorf("interfaces left in closed NSA: %v", names)
	}
}

func ioctlSKNS(fd int) (int, error) {
	const siocgskns = 0x894C
	r, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), siocgskns, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func TestKernelTCPEchoAcrossVeth(t *testing.T) {
	p := NewT(t, Config{})
	if err := p.AddKernelAddr(p.NSA, p.IfA, p.AddrA); err != nil {
		t.Fatal(err)
	}
	// Listening on AddrA only succeeds in NSA (elsewhere the address is
	// not local: EADDRNOTAVAIL), so this also shows Do picked NSA.
	var ln net.Listener
	if err := p.Do(p.NSA, func() error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(p.AddrA.Addr().String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := net.Listen("tcp4", net.JoinHostPort(p.AddrA.Addr().String(), "0")); err == nil {
		t.Fatal("AddrA is local outside NSA")
	}
	srvDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept() // after Do returned, from another thread
		if err != nil {
			srvDone <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		srvDone <- err
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.DialTCP(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if la := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); la != p.AddrB.Addr() {
		t.Errorf("client local address %v, want %v", la, p.AddrB.Addr())
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := strings.Repeat("xdptcp echo ", 1000)
	go func() { io.WriteString(c, msg); c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Fatalf("echo: %d bytes, err %v", len(got), err)
	}
	select {
	case err := <-srvDone:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish")
	}
}

func TestLinuxPeerHelpers(t *testing.T) {
	p := NewT(t, Config{})
	if err := p.AddKernelAddr(p.NSA, p.IfA, p.AddrA); err != nil {
		t.Fatal(err)
	}
	// HTTP server in NSA, client dialing from NSB.
	var ln net.Listener
	if err := p.Do(p.NSA, func() error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(p.AddrA.Addr().String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.RemoteAddr)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	cl := p.HTTPClient()
	resp, err := cl.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "hello "+p.AddrB.Addr().String()+":") {
		t.Errorf("body %q", body)
	}

	// ListenTCP in NSB, dialed from NSA.
	lb, err := p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	if a := lb.Addr().(*net.TCPAddr).AddrPort().Addr(); a != p.AddrB.Addr() {
		t.Errorf("ListenTCP address %v", a)
	}
	go func() {
		c, err := lb.Accept()
		if err == nil {
			io.WriteString(c, "from B\n")
			c.Close()
		}
	}()
	var c net.Conn
	if err := p.Do(p.NSA, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", lb.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if line != "from B\n" {
		t.Errorf("read %q, %v", line, err)
	}
	// Run works inside NSB.
	if out, err := p.Run(p.NSB, ipPath, "-o", "addr"); err != nil || !strings.Contains(string(out), p.AddrB.String()) {
		t.Errorf("Run: %v\n%s", err, out)
	}
}

func TestAddKernelAddrRejectsOtherRanges(t *testing.T) {
	p := NewT(t, Config{})
	for _, s := range []string{"10.0.0.1/24", "192.168.1.1/24", "198.20.0.1/24", "198.18.0.1/8", "fd00::1/64"} {
		if err := p.AddKernelAddr(p.NSA, p.IfA, netip.MustParsePrefix(s)); err == nil {
			t.Errorf("AddKernelAddr(%s) accepted", s)
		}
	}
}

// threadNetns returns the set of network namespaces of all our threads.
func threadNetns(t *testing.T) map[string]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, e := range tasks {
		l, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net")
		if err == nil {
			m[l]++
		}
	}
	return m
}

func TestDoRestoresNamespace(t *testing.T) {
	p := NewT(t, Config{})
	home, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	errBoom := fmt.Errorf("boom")
	for i := 0; i < 50; i++ {
		err := p.Do(p.NSB, func() error {
			inside, _ = os.Readlink("/proc/thread-self/ns/net")
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("Do returned %v", err)
		}
		func() {
			defer func() {
				if r := recover(); r != "panic in f" {
					t.Fatalf("recovered %v", r)
				}
			}()
			p.Do(p.NSA, func() error { panic("panic in f") })
		}()
	}
	if inside == "" || inside == home {
		t.Fatalf("inside Do netns %q, home %q", inside, home)
	}
	if err := p.Do(p.NSA, func() error { runGoexit(); return nil }); err == nil {
		t.Error("Goexit in f not reported")
	}
	if err := p.Do("no-such-netns-xdptcp", func() error { return nil }); err == nil {
		t.Error("Do into a missing namespace succeeded")
	}
	if m := threadNetns(t); len(m) != 1 || m[home] == 0 {
		t.Errorf("threads in namespaces %v, want all in %s", m, home)
	}
}

func runGoexit() { runtime.Goexit() }

// Subprocess helper: creates a pair, prints its namespace names, then fails,
// panics, or waits to be killed, depending on the environment.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper for TestCleanupAfterFailure")
	}
	t.Run("sub", func(t *testing.T) {
		p := NewT(t, Config{Name: "helper"})
		fmt.Printf("NS %s %s\n", p.NSA, p.NSB)
		os.Stdout.Sync()
		switch mode {
		case "fatal":
			t.Fatal("deliberate failure")
		case "panic":
			panic("deliberate panic")
		case "hang":
			time.Sleep(30 * time.Second)
		}
	})
}

func TestCleanupAfterFailure(t *testing.T) {
	skipIfUnavailable(t)
	for _, mode := range []string{"fatal", "panic", "hang"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(stdout)
			var names []string
			for len(names) == 0 {
				line, err := br.ReadString('\n')
				if f := strings.Fields(line); len(f) == 3 && f[0] == "NS" {
					names = f[1:]
				}
				if err != nil {
					break
				}
			}
			if len(names) == 0 {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("helper printed no names; stderr:\n%s", stderr.String())
			}
			if mode == "hang" {
				for _, ns := range names {
					if !nsExists(t, ns) {
						t.Errorf("%s missing while helper runs", ns)
					}
				}
				// A live owner's namespaces are not stale.
				CleanupStale("helper")
				for _, ns := range names {
					if !nsExists(t, ns) {
						t.Fatalf("CleanupStale removed live process's %s", ns)
					}
				}
				cmd.Process.Signal(syscall.SIGKILL)
			}
			io.Copy(io.Discard, br)
			err = cmd.Wait()
			if err == nil {
				t.Fatalf("helper (%s) succeeded; want failure", mode)
			}
			if mode == "hang" {
				for _, ns := range names {
					if !nsExists(t, ns) {
						t.Errorf("%s gone before CleanupStale after SIGKILL (unexpected)", ns)
					}
				}
				CleanupStale("helper")
			}
			for _, ns := range names {
				if nsExists(t, ns) {
					t.Errorf("%s left behind after %s", ns, mode)
				}
			}
		})
	}
}
