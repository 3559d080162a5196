package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/memlink"
	"github.com/xdptcp/xdptcp/netconn"
)

// The memory workload: N idle ESTABLISHED connections between two stacks
// in one process, joined by link/memlink as in the other workloads (the
// same TCP on both ends), what each costs, and how long establishing them
// takes (64 concurrent dialers; first dial to last accept, garbage
// collection of the growing heap included).
//
// Method. Both ends live in one Go heap, so a plain before/after difference
// is the cost of a connection PAIR (client end + server end). To give the
// cost of one END, the run measures the live heap (MemStats.HeapAlloc, each
// time after two GCs and debug.FreeOSMemory) four times:
//
//	H0  both stacks built, the server listening, no connection;
//	H1  N connections established and idle (no data, no pending
//	    reads: the application only holds each net.Conn);
//	H2  the server stack torn down: its link endpoint closed first (so
//	    its aborts reach no one and the client's connections stay
//	    ESTABLISHED), then the stack closed and every reference to it,
//	    its listener and its accepted net.Conns dropped;
//	H3  the client stack torn down too (a leak check: H3 <= H0 once
//	    both stacks' own memory is gone).
//
// The server end's cost per connection is (H1 - H2 - B) / N, where B is
// what an idle server stack with a listener and no connection frees when
// torn down the same way (measured just before, on a throw-away pair);
// the client end's is the rest of the pair, (H2 - H0 + B) / N. The
// resident set (/proc/self/statm, R0 and R1 beside H0 and H1) is given for
// the pair only, (R1 - R0) / N: the server's freed objects share pages
// with the client's, so tearing the server down does not return its pages
// and RSS does not split by end.
//
// The server end (a passively opened, accepted connection) is the figure
// the target (<= 4 KiB per idle established connection) is about:
// what a server holding many idle clients pays per client. The client end
// also pays gVisor's port manager for its explicitly bound (address, port),
// since a million connections to one server port need distinct 4-tuples:
// the client dials from up to 64,512 ports (1024-65535) on each of
// ceil(N/64,512) addresses in 198.18.0.0/15.
//
// Both ends' figures include netconn's net.Conn wrapper (*netconn.TCPConn,
// its done channel and waiter queue): the cost a Go program using net.Conn
// pays. The slices holding the conns are allocated before H0 and kept past
// H2, so they count nowhere. No goroutine per connection is running (a
// server blocked in Read on each would add a goroutine stack of at least
// 2 KiB per connection, for either TCP).
//
// A memory budget bounds the run: dialing stops once the live heap passes
// it, and the result says how many connections were reached and why; and
// gVisor's TCP is capped by count (see MemoryMaxConns).

// DefaultMemoryConns are the connection counts of the memory workload in a
// default run (1,000,000 is for -conns).
var DefaultMemoryConns = []int{10_000, 100_000}

// DefaultMemoryBudget is the live heap above which the memory workload
// stops dialing.
const DefaultMemoryBudget = 8 << 30

// MemoryMaxConns caps the connection count per transport: gVisor's TCP at
// 100,000 (at about 11.7 KB per pair a million would hold some 12 GB of
// live heap, and nearly twice that while the GC runs, on a machine with
// 24 GiB shared). A point above the cap is skipped and reported as such.
var MemoryMaxConns = map[adapter.Transport]int{adapter.GVisorTCP: 100_000}

// memDialers is the number of concurrent dialers establishing connections.
const memDialers = 64

// memPortsPerAddr is the client ports used per client address.
const (
	memFirstPort    = 1024
	memPortsPerAddr = 65536 - memFirstPort
)

// MemoryOpts configures Memory.
type MemoryOpts struct {
	Conns int // connections to establish
	// Budget is the live heap at which dialing stops (0: DefaultMemoryBudget).
	Budget uint64
	// HeapProfile, if set, is a file to write a pprof heap profile to at
	// H1 (the connections idle).
	HeapProfile string
}

// MemoryResult is one run of the memory workload.
type MemoryResult struct {
	Transport string `json:"transport"`
	Target    int    `json:"target_conns"`
	Conns     int    `json:"conns"` // established; below Target only when capped
	// Capped says why Conns < Target ("" if not).
	Capped      string        `json:"capped,omitempty"`
	ClientAddrs int           `json:"client_addrs"`
	Establish   time.Duration `json:"establish_ns"` // first dial to last accept

	// Per connection, in bytes: the server end, the client end and the pair.
	// Resident memory is given for the pair only: after the server's
	// teardown its freed objects share pages with the client's (both were
	// allocated together), so RSS does not split by end.
	ServerHeap float64 `json:"server_heap_per_conn"`
	ClientHeap float64 `json:"client_heap_per_conn"`
	PairHeap   float64 `json:"pair_heap_per_conn"`
	PairRSS    float64 `json:"pair_rss_per_conn"`

	// The raw measurements (bytes), see the method above.
	Heap         [4]uint64 `json:"heap_h0_h3"`
	RSS          [4]uint64 `json:"rss_h0_h3"`
	BaseHeap     int64     `json:"server_stack_base_heap"`
	PreHeap      uint64    `json:"heap_before_stacks"`
	Goroutines   int       `json:"goroutines_added"` // at H1, vs H0
	PeakHeapSeen uint64    `json:"peak_heap_seen"`
	// While establishing (both stacks): TCP retransmissions, listen-queue
	// drops and frames the link dropped.
	Retransmits uint64 `json:"retransmits"`
	ListenDrops uint64 `json:"listen_drops"`
	LinkDrops   uint64 `json:"link_drops"`
}

// memSnap is a settled measurement.
type memSnap struct{ heap, rss uint64 }

// settle collects garbage (twice: sync.Pool contents survive one cycle),
// returns freed pages to the OS and measures.
func settle() memSnap {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnap{heap: ms.HeapAlloc, rss: rssBytes()}
}

// rssBytes is the process's resident set size (0 where unknown).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// liveHeap reads the heap's object bytes (live, and dead but not yet
// swept: an overestimate, which suits a budget) without stopping the world.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// memPair is a client and a server stack over memlink, built here rather
// than with NewPair so that the server's link can be cut on its own.
type memPair struct {
	client, server *adapter.Stack
	clientLink     *memlink.Endpoint
	serverLink     *memlink.Endpoint
	clientAddrs    []netip.Addr
}

func newMemPair(tr adapter.Transport, nAddrs int) (*memPair, error) {
	la, lb := memlink.NewPair(memlink.Options{})
	copts := []adapter.Option{adapter.WithTransport(tr), adapter.WithAddress(ClientPrefix), adapter.WithTimeWait(TimeWait)}
	addrs := memClientAddrs(nAddrs)
	for _, a := range addrs[1:] {
		copts = append(copts, adapter.WithAddress(netip.PrefixFrom(a, ClientPrefix.Bits())))
	}
	c, err := adapter.New(la, copts...)
	if err != nil {
		la.Close()
		lb.Close()
		return nil, err
	}
	s, err := adapter.New(lb, adapter.WithTransport(tr), adapter.WithAddress(ServerPrefix), adapter.WithTimeWait(TimeWait))
	if err != nil {
		c.Close()
		lb.Close()
		return nil, err
	}
	return &memPair{client: c, server: s, clientLink: la, serverLink: lb, clientAddrs: addrs}, nil
}

// memClientAddrs returns n client addresses: ClientPrefix's, then
// 198.18.1.1, 198.18.1.2, ... (all inside 198.18.0.0/15).
func memClientAddrs(n int) []netip.Addr {
	out := []netip.Addr{ClientPrefix.Addr()}
	a := netip.MustParseAddr("198.18.1.0")
	for len(out) < n {
		a = a.Next()
		out = append(out, a)
	}
	return out
}

// closeServer cuts the server's link, then closes its stack: nothing it
// sends on the way down (RSTs of aborted connections) reaches the client.
func (m *memPair) closeServer() {
	m.serverLink.Close()
	m.server.Close()
	m.server = nil
}

func (m *memPair) closeClient() {
	if m.client != nil {
		m.client.Close()
		m.client = nil
	}
}

// listen listens on the server stack.
func (m *memPair) listen() (net.Listener, error) {
	return netconn.New(m.server.Stack()).Listen("tcp", net.JoinHostPort(ServerPrefix.Addr().String(), "0"))
}

// serverBase measures what an idle server stack with a listener frees when
// torn down as Memory tears it down: the constant Memory subtracts.
func serverBase(tr adapter.Transport) (int64, error) {
	m, err := newMemPair(tr, 1)
	if err != nil {
		return 0, err
	}
	defer m.closeClient()
	l, err := m.listen()
	if err != nil {
		m.closeServer()
		return 0, err
	}
	a := settle()
	l.Close()
	m.closeServer()
	b := settle()
	return int64(a.heap) - int64(b.heap), nil
}

// Memory establishes o.Conns idle connections over a fresh pair running tr
// and measures their cost per connection; see the method above.
func Memory(tr adapter.Transport, o MemoryOpts) (MemoryResult, error) {
	r := MemoryResult{Transport: tr.String(), Target: o.Conns}
	if o.Conns < 1 {
		return r, errors.New("memory: conns must be >= 1")
	}
	budget := o.Budget
	if budget == 0 {
		budget = DefaultMemoryBudget
	}
	// Let the GC work harder rather than let the heap double past the
	// budget while dialing (the machine is shared).
	prevLimit := debug.SetMemoryLimit(int64(budget + budget/2))
	defer debug.SetMemoryLimit(prevLimit)

	baseHeap, err := serverBase(tr)
	if err != nil {
		return r, err
	}
	r.BaseHeap = baseHeap

	nAddrs := (o.Conns + memPortsPerAddr - 1) / memPortsPerAddr
	r.ClientAddrs = nAddrs
	// Allocated before H0 and kept past H2: they count nowhere.
	clientConns := make([]net.Conn, o.Conns)
	serverConns := make([]net.Conn, 0, o.Conns)
	r.PreHeap = settle().heap

	m, err := newMemPair(tr, nAddrs)
	if err != nil {
		return r, err
	}
	defer m.closeClient()
	serverUp := true
	defer func() {
		if serverUp {
			m.closeServer()
		}
	}()
	l, err := m.listen()
	if err != nil {
		return r, err
	}
	raddr := l.Addr().(*net.TCPAddr)
	g0 := runtime.NumGoroutine()
	s0 := settle()

	// Server: accept until the listener closes; accepted is closed once
	// want connections are in.
	var (
		acceptMu   sync.Mutex
		want       = o.Conns
		signalled  bool
		accepted   = make(chan struct{})
		acceptDone = make(chan struct{})
	)
	go func() {
		defer close(acceptDone)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			acceptMu.Lock()
			serverConns = append(serverConns, c)
			if !signalled && len(serverConns) >= want {
				signalled = true
				close(accepted)
			}
			acceptMu.Unlock()
		}
	}()

	// Budget watch: stop dialing once the live heap passes the budget.
	var (
		stop     atomic.Bool
		peak     atomic.Uint64
		watchEnd = make(chan struct{})
		watchWG  sync.WaitGroup
	)
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-watchEnd:
				return
			case <-t.C:
			}
			h := liveHeap()
			if h > peak.Load() {
				peak.Store(h)
			}
			if h > budget {
				stop.Store(true)
			}
		}
	}()

	clientNet := netconn.New(m.client.Stack())
	var (
		next   atomic.Int64
		dialed atomic.Int64
		errs   ErrCount
		wg     sync.WaitGroup
	)
	t0 := time.Now()
	for range memDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= o.Conns {
					return
				}
				laddr := &net.TCPAddr{
					IP:   m.clientAddrs[i/memPortsPerAddr].AsSlice(),
					Port: memFirstPort + i%memPortsPerAddr,
				}
				c, err := clientNet.DialTCP("tcp", laddr, raddr)
				if err != nil {
					errs.Add(err)
					stop.Store(true)
					return
				}
				clientConns[i] = c
				dialed.Add(1)
			}
		}()
	}
	wg.Wait()
	n := int(dialed.Load())
	if n < o.Conns {
		// Some slots stayed empty: compact, and wait for n accepts.
		k := 0
		for _, c := range clientConns {
			if c != nil {
				clientConns[k] = c
				k++
			}
		}
		clear(clientConns[k:])
		acceptMu.Lock()
		want = n
		if !signalled && len(serverConns) >= want {
			signalled = true
			close(accepted)
		}
		acceptMu.Unlock()
	}
	if n > 0 {
		select {
		case <-accepted:
		case <-time.After(opTimeout):
			acceptMu.Lock()
			got := len(serverConns)
			acceptMu.Unlock()
			errs.Add(fmt.Errorf("memory: %d of %d connections accepted after %v", got, n, opTimeout))
		}
	}
	r.Establish = time.Since(t0)
	close(watchEnd)
	watchWG.Wait()
	r.PeakHeapSeen = peak.Load()
	r.Conns = n
	if errs.first != nil {
		return r, fmt.Errorf("memory: %d connections established, then: %w", n, errs.first)
	}
	if n < o.Conns {
		r.Capped = fmt.Sprintf("stopped at %d of %d connections: live heap above the %d MiB budget", n, o.Conns, budget>>20)
	}
	if n == 0 {
		return r, errors.New("memory: no connection established")
	}

	// Idle: let the last handshake ACKs and window updates settle.
	time.Sleep(200 * time.Millisecond)
	r.Goroutines = runtime.NumGoroutine() - g0
	for _, st := range []*adapter.Stack{m.client, m.server} {
		tcp := st.Stack().Stats().TCP
		r.Retransmits += tcp.Retransmits.Value()
		r.ListenDrops += tcp.ListenOverflowSynDrop.Value() + tcp.ListenOverflowAckDrop.Value()
	}
	r.LinkDrops = m.clientLink.Stats().Dropped + m.serverLink.Stats().Dropped
	s1 := settle()
	if o.HeapProfile != "" {
		if err := writeHeapProfile(o.HeapProfile); err != nil {
			return r, err
		}
	}

	// Tear the server down and drop every reference to it.
	l.Close()
	<-acceptDone
	serverUp = false
	m.closeServer()
	acceptMu.Lock()
	clear(serverConns[:cap(serverConns)])
	acceptMu.Unlock()
	s2 := settle()

	m.closeClient()
	clear(clientConns)
	s3 := settle()
	runtime.KeepAlive(clientConns)
	runtime.KeepAlive(serverConns)

	r.Heap = [4]uint64{s0.heap, s1.heap, s2.heap, s3.heap}
	r.RSS = [4]uint64{s0.rss, s1.rss, s2.rss, s3.rss}
	per := func(v int64) float64 { return float64(v) / float64(n) }
	r.PairHeap = per(int64(s1.heap) - int64(s0.heap))
	r.ServerHeap = per(int64(s1.heap) - int64(s2.heap) - baseHeap)
	r.ClientHeap = r.PairHeap - r.ServerHeap
	r.PairRSS = per(int64(s1.rss) - int64(s0.rss))
	return r, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// countLabel writes a connection count short: 10k, 1M, 2500.
func countLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// memoryMetrics names a result's figures "memory 10k B/conn server heap"
// and so on: bytes per connection of the server end, the client end and the
// pair, and the pair's resident set; then "memory 10k establish s".
func memoryMetrics(r MemoryResult) []Metric {
	name := "memory " + countLabel(r.Target)
	return []Metric{
		{name + " B/conn server heap", r.ServerHeap, false},
		{name + " B/conn client heap", r.ClientHeap, false},
		{name + " B/conn pair heap", r.PairHeap, false},
		{name + " B/conn pair RSS", r.PairRSS, false},
		{name + " establish s", r.Establish.Seconds(), false},
	}
}

// runMemory runs the memory workload at each count, skipping counts above
// the transport's cap (MemoryMaxConns); a skipped or capped point is
// recorded in raw with its reason.
func runMemory(tr adapter.Transport, counts []int) ([]Metric, []any, error) {
	var (
		ms  []Metric
		raw []any
	)
	for _, n := range counts {
		if lim, ok := MemoryMaxConns[tr]; ok && n > lim {
			raw = append(raw, MemoryResult{Transport: tr.String(), Target: n,
				Capped: fmt.Sprintf("skipped: %v is capped at %d connections (MemoryMaxConns)", tr, lim)})
			continue
		}
		r, err := Memory(tr, MemoryOpts{Conns: n})
		raw = append(raw, r)
		if err != nil {
			return ms, raw, err
		}
		if r.Capped == "" {
			ms = append(ms, memoryMetrics(r)...)
		}
	}
	return ms, raw, nil
}

// runOne runs workload w as Run does: memory with s.Conns, the others
// through RunWorkload.
func runOne(w string, tr adapter.Transport, s Settings) ([]Metric, []any, error) {
	if w == "memory" {
		counts := s.Conns
		if len(counts) == 0 {
			counts = DefaultMemoryConns
		}
		return runMemory(tr, counts)
	}
	return RunWorkload(w, tr, s.Duration, s.Clients)
}

// MemoryNotes lists, once each, the memory workload's points that were
// skipped or stopped early (a cap or the memory budget), for the output.
func (r *Report) MemoryNotes() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range r.Samples {
		for _, x := range s.Raw {
			m, ok := x.(MemoryResult)
			if !ok || m.Capped == "" {
				continue
			}
			note := fmt.Sprintf("memory %s %s: %s", countLabel(m.Target), m.Transport, m.Capped)
			if !seen[note] {
				seen[note] = true
				out = append(out, note)
			}
		}
	}
	return out
}
