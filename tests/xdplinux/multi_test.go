package xdplinux

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/tests/netns"
)

// TestTwoStacksTwoInterfaces: two namespace pairs, one of our stacks on
// each IfA, both running at once in this process. Each stack serves its own
// Linux peer (an 8 MiB echo and 100 short connections from NSB) and dials
// its own Linux server (an 8 MiB echo), all in parallel; everything
// matches, and each link carried its own traffic.
func TestTwoStacksTwoInterfaces(t *testing.T) {
	var envs [2]*env
	for i := range envs {
		envs[i] = newEnv(t, netns.Config{Name: fmt.Sprintf("%s_%d", t.Name(), i)})
	}
	if envs[0].p.AddrA == envs[1].p.AddrA {
		t.Fatalf("both pairs use %v", envs[0].p.AddrA)
	}
	const echoSize = 8 << 20
	const shorts = 100
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i, e := range envs {
		if err := e.p.Sysctl(e.p.NSB, "net/ipv4/tcp_tw_reuse", "1"); err != nil {
			t.Fatal(err)
		}
		e.listen(t, 7, tcpEcho)
		e.listen(t, 8, shortServer)
		lln, err := e.p.ListenTCP("")
		if err != nil {
			t.Fatal(err)
		}
		serve(t, lln, tcpEcho)

		seed := uint64(100 + i)
		wg.Add(3)
		// Linux client -> our server: echo.
		go func() {
			defer wg.Done()
			c, err := e.p.DialTCP(ctxT(t, 10*time.Second), e.addrA(7))
			if err != nil {
				errs <- fmt.Errorf("stack %d: Linux dial: %w", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if err := echoCheck(c, seed, echoSize); err != nil {
				errs <- fmt.Errorf("stack %d: Linux client echo: %w", i, err)
			}
		}()
		// Linux clients -> our server: short connections.
		go func() {
			defer wg.Done()
			for j := range shorts {
				if err := shortExchange(e.p, e.addrA(8), j); err != nil {
					errs <- fmt.Errorf("stack %d: short connection %d: %w", i, j, err)
					return
				}
			}
		}()
		// Our client -> Linux server: echo.
		go func() {
			defer wg.Done()
			c, err := e.n.DialContext(ctxT(t, 10*time.Second), "tcp", lln.Addr().String())
			if err != nil {
				errs <- fmt.Errorf("stack %d: our dial: %w", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if err := echoCheck(c, seed+10, echoSize); err != nil {
				errs <- fmt.Errorf("stack %d: our client echo: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, e := range envs {
		tot := e.ep.Stats().Total()
		// Two 8 MiB streams each way: at least 2*8 MiB / 1500 B frames.
		if floor := uint64(2 * echoSize / 1500); tot.RxFrames < floor || tot.TxFrames < floor {
			t.Errorf("stack %d: link rx %d, tx %d frames, want at least %d each", i, tot.RxFrames, tot.TxFrames, floor)
		}
	}
}

// echoCheck writes n bytes of the seeded stream to an echoing c while
// reading them back, and compares.
func echoCheck(c net.Conn, seed uint64, n int64) error {
	werr := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(c, stream(seed, n), make([]byte, 64<<10))
		werr <- err
	}()
	got, sum, err := readSum(io.LimitReader(c, n))
	if err != nil || got != n {
		return fmt.Errorf("read %d of %d bytes: %v", got, n, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if sum != streamSum(seed, n) {
		return fmt.Errorf("echoed bytes differ")
	}
	return nil
}
