package xdplinux

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// bulkSize is what each side sends in TestDialLinuxBulkBothWays.
const bulkSize = 64 << 20

// TestDialLinuxBulkBothWays: our client connects to a Linux server in NSB;
// both send 64 MiB at once (distinct seeded streams), each half-closes when
// done, and each side's SHA-256 of what it read must match the other's
// stream.
func TestDialLinuxBulkBothWays(t *testing.T) {
	e := newEnv(t, netns.Config{})
	const seedUs, seedLinux = 1, 2
	wantFromUs, wantFromLinux := streamSum(seedUs, bulkSize), streamSum(seedLinux, bulkSize)

	ln, err := e.p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	srvErr := make(chan error, 1)
	go func() {
		srvErr <- func() error {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(80 * time.Second))
			werr := make(chan error, 1)
			go func() {
				_, err := io.CopyBuffer(c, stream(seedLinux, bulkSize), make([]byte, 256<<10))
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			n, sum, err := readSum(c)
			if err != nil {
				return err
			}
			if n != bulkSize || sum != wantFromUs {
				return errors.New("Linux server: bytes from our client differ")
			}
			return <-werr
		}()
	}()

	c, err := e.n.DialContext(ctxT(t, 10*time.Second), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial Linux server: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(80 * time.Second))
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(c, stream(seedUs, bulkSize), make([]byte, 256<<10))
		if err == nil {
			err = c.(*netconn.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	n, sum, err := readSum(c)
	if err != nil {
		t.Fatalf("our client read after %d bytes: %v", n, err)
	}
	if n != bulkSize || sum != wantFromLinux {
		t.Fatalf("our client read %d bytes, sha256 %x; want %d, %x", n, sum, bulkSize, wantFromLinux)
	}
	if err := <-werr; err != nil {
		t.Fatalf("our client write: %v", err)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("Linux server: %v", err)
	}
	el := time.Since(start)
	t.Logf("2 x 64 MiB in %v (%.0f Mb/s each way)", el.Round(time.Millisecond), float64(bulkSize)*8/el.Seconds()/1e6)
	logTCP(t, e)
}

// TestDialLinuxHalfClose: our client sends a request and CloseWrite; the
// Linux server reads it to EOF, only then replies and closes; our client
// reads the whole reply and then EOF.
func TestDialLinuxHalfClose(t *testing.T) {
	e := newEnv(t, netns.Config{})
	ln, err := e.p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	request := make([]byte, 300<<10) // several windows' worth of segments
	io.ReadFull(newPRNG(7), request)
	reply := []byte("got it all; here is the answer after your FIN")
	srvErr := make(chan error, 1)
	go func() {
		srvErr <- func() error {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c) // returns at our FIN
			if err != nil {
				return err
			}
			if string(got) != string(request) {
				return errors.New("Linux server: request differs")
			}
			if _, err := c.Write(reply); err != nil {
				return err
			}
			return nil // Close sends the FIN
		}()
	}()
	nc, err := e.n.DialContext(ctxT(t, 10*time.Second), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*netconn.TCPConn)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(request); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got := make([]byte, len(reply))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(reply) {
		t.Fatalf("reply %q (%v), want %q", got, err, reply)
	}
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("after the reply: %d bytes, %v; want 0, io.EOF", n, err)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("Linux server: %v", err)
	}
	// Writing after CloseWrite fails.
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write after CloseWrite succeeded")
	}
}

// TestDialLinuxClosedPort: our client dials a port nobody listens on at
// AddrB; Linux answers RST: ECONNREFUSED, promptly.
func TestDialLinuxClosedPort(t *testing.T) {
	e := newEnv(t, netns.Config{})
	ln, err := e.p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the port is now closed
	start := time.Now()
	c, err := e.n.DialContext(ctxT(t, 10*time.Second), "tcp", addr)
	if err == nil {
		c.Close()
		t.Fatal("connected to a closed port")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("got %v, want ECONNREFUSED", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("refused after %v: RST not prompt", el)
	}
}

// TestDialSilentPeerTimeout: our client dials an address in the pair's
// subnet that nobody owns, with a static neighbour entry (no ARP), so the
// SYNs go out and nothing answers; DialContext with a 1 s deadline fails
// with os.ErrDeadlineExceeded, promptly.
func TestDialSilentPeerTimeout(t *testing.T) {
	e := newEnv(t, netns.Config{})
	// AddrB's subnet, host .200: neither AddrA (.1) nor AddrB (.2).
	a4 := e.p.AddrB.Addr().As4()
	a4[3] = 200
	silent := netip.AddrFrom4(a4)
	if !e.p.AddrB.Contains(silent) || !netns.AllowedNet.Contains(silent) {
		t.Fatalf("%v outside %v", silent, e.p.AddrB)
	}
	// A locally administered MAC nobody has: IfB drops the frames.
	if err := e.st.Stack().AddStaticNeighbor(e.st.NIC(), header.IPv4ProtocolNumber,
		tcpip.AddrFrom4(a4), tcpip.LinkAddress("\x02\x00\x5e\x12\x34\x56")); err != nil {
		t.Fatalf("static neighbour: %s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	c, err := e.n.DialContext(ctx, "tcp", netip.AddrPortFrom(silent, 80).String())
	el := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("connected to a silent address")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%v is not a net.Error with Timeout()", err)
	}
	if el < 900*time.Millisecond || el > 2500*time.Millisecond {
		t.Errorf("dial returned after %v, want about 1 s", el)
	}
	// The SYNs did leave on the link (not refused locally).
	if tx := e.ep.Stats().Total().TxFrames; tx == 0 {
		t.Error("no frame sent")
	}
}
