package xdplinux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/tests/netns"
)

// httpBodySize is the body the Linux HTTP client fetches from our server.
const httpBodySize = 64 << 20

// TestLinuxHTTPClientGet: net/http served by our stack (netconn listener);
// Linux's HTTP client in NSB GETs a 64 MiB body generated from a seeded
// PRNG; length and SHA-256 must match.
func TestLinuxHTTPClientGet(t *testing.T) {
	e := newEnv(t, netns.Config{})
	ln, err := e.n.Listen("tcp", e.addrA(80))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seed, err := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64)
			if err != nil {
				http.Error(w, "bad seed", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(httpBodySize))
			io.CopyBuffer(w, stream(seed, httpBodySize), make([]byte, 256<<10))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})

	const seed = 20260701
	want := streamSum(seed, httpBodySize)
	cl := e.p.HTTPClient()
	cl.Timeout = 60 * time.Second
	start := time.Now()
	resp, err := cl.Get(fmt.Sprintf("http://%s/blob?seed=%d", e.addrA(80), seed))
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != httpBodySize {
		t.Fatalf("status %s, content length %d", resp.Status, resp.ContentLength)
	}
	n, sum, err := readSum(resp.Body)
	if err != nil {
		t.Fatalf("read body after %d bytes: %v", n, err)
	}
	el := time.Since(start)
	if n != httpBodySize || sum != want {
		t.Fatalf("body: %d bytes, sha256 %x; want %d bytes, %x", n, sum, httpBodySize, want)
	}
	t.Logf("64 MiB in %v (%.0f Mb/s)", el.Round(time.Millisecond), float64(n)*8/el.Seconds()/1e6)
	logTCP(t, e)
}

// shortServer serves one request per connection: it reads a line and
// answers "ok <line>\n", then closes (our stack sends the first FIN).
func shortServer(c net.Conn) {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	io.WriteString(c, "ok "+line)
}

// shortExchange dials addr from NSB with Linux TCP, sends a line, and checks
// the reply and the EOF after it.
func shortExchange(p *netns.Pair, addr string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.DialTCP(ctx, addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("req %d\n", i)
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := io.ReadAll(c) // reply, then our FIN
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if string(got) != "ok "+req {
		return fmt.Errorf("reply %q, want %q", got, "ok "+req)
	}
	return nil
}

// TestLinuxClientShortConnections: 1,000 sequential and then 200 concurrent
// short connections from Linux clients (connect, one line each way, close)
// to our stack all succeed. tcp_tw_reuse=1 in NSB, as ANCHORS advises for
// Linux clients doing many short connections.
func TestLinuxClientShortConnections(t *testing.T) {
	e := newEnv(t, netns.Config{})
	if err := e.p.Sysctl(e.p.NSB, "net/ipv4/tcp_tw_reuse", "1"); err != nil {
		t.Fatal(err)
	}
	e.listen(t, 7, shortServer)
	addr := e.addrA(7)

	const sequential = 1000
	start := time.Now()
	for i := range sequential {
		if err := shortExchange(e.p, addr, i); err != nil {
			t.Fatalf("sequential connection %d: %v", i, err)
		}
	}
	t.Logf("%d sequential connections in %v", sequential, time.Since(start).Round(time.Millisecond))

	const concurrent = 200
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, concurrent)
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := shortExchange(e.p, addr, sequential+i); err != nil {
				errs <- fmt.Errorf("concurrent connection %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 5 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent connections failed", failed, concurrent)
	}
	t.Logf("%d concurrent connections in %v", concurrent, time.Since(start).Round(time.Millisecond))
	logTCP(t, e)
}

// TestLinuxClientRefused: a Linux client connecting to a port nobody
// listens on at our stack gets our RST: ECONNREFUSED, promptly.
func TestLinuxClientRefused(t *testing.T) {
	e := newEnv(t, netns.Config{})
	ctx := ctxT(t, 10*time.Second)
	start := time.Now()
	c, err := e.p.DialTCP(ctx, e.addrA(9))
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
