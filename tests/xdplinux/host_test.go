package xdplinux

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// TestHostTCPUnaffected: while our program is attached to IfA and our stack
// serves on AddrA, a kernel address added to IfA in NSA still serves Linux
// TCP: a kernel listener on it and our listener on AddrA are both reached
// from NSB at the same time (1 MiB echo each, plus 50 short connections
// each), and the kernel's frames never reach our sockets.
func TestHostTCPUnaffected(t *testing.T) {
	e := newEnv(t, netns.Config{})
	a4 := e.p.AddrA.Addr().As4()
	a4[3] = 100 // .100 in the pair's /24: neither AddrA (.1) nor AddrB (.2)
	kern := netip.AddrFrom4(a4)
	if !e.p.AddrA.Contains(kern) || kern == e.p.AddrB.Addr() {
		t.Fatalf("bad kernel address %v", kern)
	}
	if err := e.p.AddKernelAddr(e.p.NSA, e.p.IfA, netip.PrefixFrom(kern, e.p.AddrA.Bits())); err != nil {
		t.Fatal(err)
	}
	var kln net.Listener
	if err := e.p.Do(e.p.NSA, func() (err error) {
		kln, err = net.Listen("tcp4", netip.AddrPortFrom(kern, 7).String())
		return err
	}); err != nil {
		t.Fatalf("kernel listener in NSA: %v", err)
	}
	var kernelAccepted sync.Map
	serve(t, kln, func(c net.Conn) {
		kernelAccepted.Store(c.RemoteAddr().String(), true)
		shortOrEcho(c)
	})
	e.listen(t, 7, shortOrEcho)
	before := e.ep.Stats().Total().RxFrames

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, dst := range []netip.Addr{kern, e.p.AddrA.Addr()} {
		addr := netip.AddrPortFrom(dst, 7).String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.p.DialTCP(ctxT(t, 10*time.Second), addr)
			if err != nil {
				errs <- fmt.Errorf("%s: dial: %w", addr, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write([]byte("echo\n")); err != nil {
				errs <- fmt.Errorf("%s: %w", addr, err)
				return
			}
			if err := echoCheck(c, 5, 1<<20); err != nil {
				errs <- fmt.Errorf("%s: echo: %w", addr, err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				if err := shortExchange(e.p, addr, j); err != nil {
					errs <- fmt.Errorf("%s: short connection %d: %w", addr, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	kernelAccepted.Range(func(_, _ any) bool { n++; return true })
	if n != 51 {
		t.Errorf("kernel listener accepted %d connections, want 51", n)
	}
	// The program stayed attached, our link carried our connections, and
	// no frame for the kernel's address reached our stack (it would count
	// it as an invalid destination).
	var id uint32
	if err := e.p.Do(e.p.NSA, func() (err error) {
		id, err = xdp.XDPProgramID(e.p.IfA)
		return err
	}); err != nil || id == 0 {
		t.Errorf("XDP program id %d (%v): not attached during the test", id, err)
	}
	if got := e.ep.Stats().Total().RxFrames - before; got == 0 {
		t.Error("our link received nothing")
	}
	if n := e.st.Stack().Stats().IP.InvalidDestinationAddressesReceived.Value(); n != 0 {
		t.Errorf("%d frames for other addresses reached our stack", n)
	}
}

// shortOrEcho: a first line "echo" turns the connection into an echo;
// anything else is a short request answered by shortServer's rule.
func shortOrEcho(c net.Conn) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 64 {
		if _, err := c.Read(b); err != nil {
			return
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			break
		}
	}
	if string(line) == "echo\n" {
		tcpEcho(c)
		return
	}
	c.Write(append([]byte("ok "), line...))
}
