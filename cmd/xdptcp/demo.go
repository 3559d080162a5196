package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/xdptcp/xdptcp/netconn"
)

// demoConfig holds the demo's flags.
type demoConfig struct {
	transport   string
	requests    int
	concurrency int
	bigMiB      int
}

// runDemo serves an unmodified net/http handler on one stack and fetches
// from it with net/http on the other: requests, half sequential and half
// concurrent, then one large body checked by SHA-256.
func runDemo(args []string, stdout, stderr io.Writer) error {
	var cfg demoConfig
	fs := newFlagSet("demo", stderr)
	fs.StringVar(&cfg.transport, "transport", "batchtcp", "TCP implementation: batchtcp or gvisor")
	fs.IntVar(&cfg.requests, "requests", 400, "number of small requests")
	fs.IntVar(&cfg.concurrency, "concurrency", 8, "concurrent clients for the second half of the requests")
	fs.IntVar(&cfg.bigMiB, "big", 16, "size of the large body in MiB (0: skip)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.requests < 0 || cfg.concurrency < 1 || cfg.bigMiB < 0 {
		return &usageError{"-requests and -big must be >= 0, -concurrency >= 1"}
	}
	return demo(cfg, stdout)
}

func demo(cfg demoConfig, out io.Writer) error {
	sp, err := newStackPair(cfg.transport)
	if err != nil {
		return err
	}
	defer sp.close()
	cn, sn := netconn.New(sp.client), netconn.New(sp.server)

	l, err := sn.Listen("tcp", net.JoinHostPort(serverPrefix.Addr().String(), "80"))
	if err != nil {
		return err
	}
	big := bigBody(cfg.bigMiB << 20)
	bigSum := sha256.Sum256(big)
	srv := &http.Server{Handler: demoHandler(big, bigSum), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(out, "server: %v\n", err)
		}
	}()

	tr := &http.Transport{DialContext: cn.DialContext, MaxIdleConnsPerHost: cfg.concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	base := "http://" + l.Addr().String()
	fmt.Fprintf(out, "xdptcp demo: transport %s over an in-memory link; net/http server on %s, client on %s\n",
		cfg.transport, l.Addr(), clientPrefix.Addr())

	seq := cfg.requests / 2
	start := time.Now()
	lat, err := getSmall(client, base, seq, 1)
	if err != nil {
		return err
	}
	more, err := getSmall(client, base, cfg.requests-seq, cfg.concurrency)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	lat = append(lat, more...)
	if len(lat) > 0 {
		slices.Sort(lat)
		fmt.Fprintf(out, "requests: %d ok (%d sequential, %d over %d clients) in %v: %.0f req/s, latency p50 %v p99 %v\n",
			len(lat), seq, cfg.requests-seq, cfg.concurrency, elapsed.Round(time.Millisecond),
			float64(len(lat))/elapsed.Seconds(), percentile(lat, 50), percentile(lat, 99))
	}

	if cfg.bigMiB > 0 {
		d, err := getBig(client, base, len(big), bigSum)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "large body: %d MiB, sha256 %s ok, in %v: %.1f MiB/s\n",
			cfg.bigMiB, hex.EncodeToString(bigSum[:8]), d.Round(time.Millisecond), float64(cfg.bigMiB)/d.Seconds())
	}
	fmt.Fprintln(out, "demo: PASS")
	return nil
}

// demoHandler is a plain net/http handler: /hello?i=N echoes N, /big
// serves the large body.
func demoHandler(big []byte, sum [32]byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Query().Get("i"))
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Header().Set("X-Sha256", hex.EncodeToString(sum[:]))
		w.Write(big)
	})
	return mux
}

// getSmall makes n GET /hello requests from conc goroutines, checks each
// reply and returns the latencies.
func getSmall(client *http.Client, base string, n, conc int) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	for range min(conc, max(n, 1)) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				t0 := time.Now()
				err := getHello(client, base, i)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return lat, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func getHello(client *http.Client, base string, i int) error {
	resp, err := client.Get(fmt.Sprintf("%s/hello?i=%d", base, i))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("request %d: reading body: %w", i, err)
	}
	if want := fmt.Sprintf("hello %d\n", i); resp.StatusCode != http.StatusOK || string(b) != want {
		return fmt.Errorf("request %d: got %s %q, want 200 %q", i, resp.Status, b, want)
	}
	return nil
}

// getBig fetches /big, checks length and SHA-256, and returns the time.
func getBig(client *http.Client, base string, size int, want [32]byte) (time.Duration, error) {
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/big", nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("large body: read %d bytes: %w", n, err)
	}
	if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		return 0, fmt.Errorf("large body: got %d bytes sha256 %x, want %d bytes sha256 %x", n, h.Sum(nil), size, want)
	}
	if got := resp.Header.Get("X-Sha256"); got != hex.EncodeToString(want[:]) {
		return 0, fmt.Errorf("large body: server sha256 header %q", got)
	}
	return d, nil
}

// bigBody returns n deterministic, incompressible-looking bytes.
func bigBody(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// percentile returns the p-th percentile of sorted d (nearest rank).
func percentile(d []time.Duration, p int) time.Duration {
	i := (len(d)*p+99)/100 - 1
	return d[max(i, 0)].Round(time.Microsecond)
}
