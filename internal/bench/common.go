package bench

import (
	"fmt"
	"math"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The measuring pieces every benchmark (in process here, across veth in
// internal/bench/veth) shares: cost meters, error counting, a server loop,
// quantiles, the metric rows of each workload, and number formatting.

// Meter is process CPU time and heap counters at one instant.
type Meter struct {
	at      time.Time
	cpu     time.Duration
	mallocs uint64
	bytes   uint64
}

// StartMeter reads the counters now.
func StartMeter() Meter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	var cpu time.Duration
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return Meter{at: time.Now(), cpu: cpu, mallocs: ms.Mallocs, bytes: ms.TotalAlloc}
}

// Cost is what was consumed since m.
func (m Meter) Cost() Cost {
	v := StartMeter()
	return Cost{Elapsed: v.at.Sub(m.at), CPU: v.cpu - m.cpu, Mallocs: v.mallocs - m.mallocs, AllocBytes: v.bytes - m.bytes}
}

// ErrCount keeps the first error and counts all; safe for concurrent use.
type ErrCount struct {
	mu    sync.Mutex
	n     int64
	first error
}

// Add counts err.
func (e *ErrCount) Add(err error) {
	e.mu.Lock()
	if e.first == nil {
		e.first = err
	}
	e.n++
	e.mu.Unlock()
}

// Get returns the count and the first error.
func (e *ErrCount) Get() (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, e.first
}

// Server accepts on a listener and runs a handler per connection, each in
// its own goroutine with a deadline of timeout.
type Server struct {
	l  net.Listener
	wg sync.WaitGroup
}

// Serve starts accepting on l.
func Serve(l net.Listener, timeout time.Duration, handle func(net.Conn)) *Server {
	s := &Server{l: l}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(timeout))
				handle(c)
			}()
		}
	}()
	return s
}

// Stop closes the listener and waits for the handlers.
func (s *Server) Stop() {
	s.l.Close()
	s.wg.Wait()
}

// Quantile returns the q-quantile of sorted d (nearest rank).
func Quantile(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// CloseAll closes every connection.
func CloseAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// ShortMetrics are the short workload's rows.
func ShortMetrics(name string, r ShortResult) []Metric {
	n := float64(max(r.Conns, 1))
	return []Metric{
		{name + " conn/s", float64(r.Conns) / r.Elapsed.Seconds(), true},
		{name + " CPU-s/1k conn", r.CPU.Seconds() / n * 1000, false},
	}
}

// BulkMetrics are the bulk workload's rows.
func BulkMetrics(name string, r BulkResult) []Metric {
	gib := max(float64(r.Bytes)/(1<<30), 1e-12)
	return []Metric{
		{name + " Gb/s", float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e9, true},
		{name + " CPU-s/GiB", r.CPU.Seconds() / gib, false},
	}
}

// RRMetrics are the rr workload's rows.
func RRMetrics(name string, r RRResult) []Metric {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return []Metric{
		{name + " p50 µs", us(r.P50), false},
		{name + " p99 µs", us(r.P99), false},
		{name + " p999 µs", us(r.P999), false},
		{name + " trips/s", float64(r.Trips) / r.Elapsed.Seconds(), true},
	}
}

// Brief is a sample on one line, for progress output.
func Brief(s Sample) string {
	if s.Error != "" {
		return "ERROR: " + s.Error
	}
	if s.Skipped != "" {
		return "skipped: " + s.Skipped
	}
	var b strings.Builder
	for i, m := range s.Metrics {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", m.Name, Format(m.Value))
	}
	return b.String()
}

// MetricGroup is one metric's values across samples, by configuration.
type MetricGroup struct {
	Name   string
	Higher bool
	Values map[string][]float64 // configuration name -> one value per round
}

// GroupMetrics groups the metrics of the samples that did not fail, in
// first-seen order.
func GroupMetrics(samples []Sample) []MetricGroup {
	var out []MetricGroup
	idx := map[string]int{}
	for _, s := range samples {
		if s.Error != "" {
			continue
		}
		for _, m := range s.Metrics {
			i, ok := idx[m.Name]
			if !ok {
				i = len(out)
				idx[m.Name] = i
				out = append(out, MetricGroup{Name: m.Name, Higher: m.Higher, Values: map[string][]float64{}})
			}
			out[i].Values[s.Config] = append(out[i].Values[s.Config], m.Value)
		}
	}
	return out
}

// Median of v (NaN if empty); v is not modified.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Format prints v with about four significant digits ("-" for NaN).
func Format(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "-"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}
