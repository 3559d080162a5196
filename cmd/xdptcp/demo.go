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
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/xdptcp/xdptcp/netconn"
)

// demoConfig holds the demo's flags.
type demoConfig struct {
	mode        string
	transport   string
	requests    int
	concurrency int
	bigMiB      int
}

// Demo modes.
const (
	modeAuto   = "auto"
	modeXDP    = "xdp"
	modeMemory = "memory"
)

// runDemo serves an unmodified net/http handler on our stack and fetches
// from it with net/http: requests, half sequential and half concurrent,
// then one large body checked by SHA-256. In xdp mode the server runs on
// link/xdp in a namespace pair and the client is Linux's TCP; in memory
// mode both sides are our stacks on an in-memory link; auto tries xdp and
// falls back to memory, saying why.
func runDemo(args []string, stdout, stderr io.Writer) error {
	var cfg demoConfig
	fs := newFlagSet("demo", stderr)
	fs.StringVar(&cfg.mode, "mode", modeAuto, "auto (xdp where possible, else memory), xdp (namespace pair, AF_XDP, Linux client) or memory (two stacks on an in-memory link)")
	fs.StringVar(&cfg.transport, "transport", "batchtcp", "TCP implementation: batchtcp or gvisor")
	fs.IntVar(&cfg.requests, "requests", 4000, "number of small requests")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "concurrent clients for the second half of the requests")
	fs.IntVar(&cfg.bigMiB, "big", 16, "size of the large body in MiB (0: skip)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.requests < 0 || cfg.concurrency < 1 || cfg.bigMiB < 0 {
		return &usageError{"-requests and -big must be >= 0, -concurrency >= 1"}
	}
	switch cfg.mode {
	case modeAuto, modeXDP, modeMemory:
	default:
		return &usageError{fmt.Sprintf("unknown mode %q (want auto, xdp or memory)", cfg.mode)}
	}
	if _, err := parseTransport(cfg.transport); err != nil {
		return err
	}
	return demo(cfg, stdout)
}

func demo(cfg demoConfig, out io.Writer) error {
	err := demoRun(cfg, out)
	if err == nil {
		fmt.Fprintln(out, "demo: PASS")
	}
	return err
}

func demoRun(cfg demoConfig, out io.Writer) error {
	if cfg.mode == modeMemory {
		return demoMemory(cfg, out)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	x, why := openXDPDemo(ctx, cfg.transport)
	if why != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		if cfg.mode == modeXDP {
			return fmt.Errorf("xdp mode: %w", why)
		}
		fmt.Fprintf(out, "xdptcp demo: no AF_XDP demo here (%v); running the in-memory demo\n", why)
		stop()
		return demoMemory(cfg, out)
	}
	defer x.close()
	return demoXDP(ctx, cfg, x, out)
}

// demoMemory runs the demo on two stacks joined by an in-memory link.
func demoMemory(cfg demoConfig, out io.Writer) error {
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
	tr := &http.Transport{DialContext: cn.DialContext, MaxIdleConnsPerHost: cfg.concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	fmt.Fprintf(out, "xdptcp demo: transport %s over an in-memory link; net/http server on %s, client on %s\n",
		cfg.transport, l.Addr(), clientPrefix.Addr())
	return serveAndFetch(context.Background(), cfg, l, client, out)
}

// serveAndFetch serves demoHandler on l and runs the requests with client,
// printing the figures. It closes l.
func serveAndFetch(ctx context.Context, cfg demoConfig, l net.Listener, client *http.Client, out io.Writer) (err error) {
	big := bigBody(cfg.bigMiB << 20)
	bigSum := sha256.Sum256(big)
	srv := &http.Server{Handler: demoHandler(big, bigSum), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = fmt.Errorf("server: %w", serr)
		}
	}()
	base := "http://" + l.Addr().String()

	seq := cfg.requests / 2
	start := time.Now()
	lat, err := getSmall(ctx, client, base, seq, 1)
	if err != nil {
		return err
	}
	more, err := getSmall(ctx, client, base, cfg.requests-seq, cfg.concurrency)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	lat = append(lat, more...)
	if len(lat) > 0 {
		slices.Sort(lat)
		fmt.Fprintf(out, "requests: %d ok (%d sequential, %d over %d clients) in %v: %.0f req/s, latency p50 %v p99 %v p999 %v\n",
			len(lat), seq, cfg.requests-seq, cfg.concurrency, elapsed.Round(time.Millisecond),
			float64(len(lat))/elapsed.Seconds(), percentile(lat, 500), percentile(lat, 990), percentile(lat, 999))
	}

	if cfg.bigMiB > 0 {
		d, err := getBig(ctx, client, base, len(big), bigSum)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "large body: %d MiB, sha256 %s ok, in %v: %.1f MiB/s\n",
			cfg.bigMiB, hex.EncodeToString(bigSum[:8]), d.Round(time.Millisecond), float64(cfg.bigMiB)/d.Seconds())
	}
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
func getSmall(ctx context.Context, client *http.Client, base string, n, conc int) ([]time.Duration, error) {
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
				err := getHello(ctx, client, base, i)
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

func getHello(ctx context.Context, client *http.Client, base string, i int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/hello?i=%d", base, i), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
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
func getBig(ctx context.Context, client *http.Client, base string, size int, want [32]byte) (time.Duration, error) {
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

// percentile returns the q-th per-mille of sorted d (nearest rank):
// 500 is the median, 999 p99.9.
func percentile(d []time.Duration, q int) time.Duration {
	i := (len(d)*q+999)/1000 - 1
	return d[min(max(i, 0), len(d)-1)].Round(time.Microsecond)
}
