package veth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xdptcp/xdptcp/internal/bench"
)

// The workloads are internal/bench's (same sizes, same shapes, same result
// types), written against a net.Listener on the server side and the NSB
// dialer on the client side instead of internal/bench's in-memory Pair.

// opTimeout bounds any single dial, read or write.
const opTimeout = 10 * time.Second

// maxSamples bounds the latencies rr keeps (all are counted).
const maxSamples = 1 << 21

// target is what a workload runs against.
type target struct {
	listen func() (net.Listener, error)
	dial   func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
}

// usage is process CPU time and heap counters at one instant.
type usage struct {
	at      time.Time
	cpu     time.Duration
	mallocs uint64
	bytes   uint64
}

func sample() usage {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	var cpu time.Duration
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return usage{at: time.Now(), cpu: cpu, mallocs: ms.Mallocs, bytes: ms.TotalAlloc}
}

func since(u usage) bench.Cost {
	v := sample()
	return bench.Cost{Elapsed: v.at.Sub(u.at), CPU: v.cpu - u.cpu, Mallocs: v.mallocs - u.mallocs, AllocBytes: v.bytes - u.bytes}
}

// errCount keeps the first error and counts all.
type errCount struct {
	mu    sync.Mutex
	n     int64
	first error
}

func (e *errCount) add(err error) {
	e.mu.Lock()
	if e.first == nil {
		e.first = err
	}
	e.n++
	e.mu.Unlock()
}

func (e *errCount) get() (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, e.first
}

// server accepts on l and runs handle on each connection in its own
// goroutine; stop closes the listener and waits for the handlers.
type server struct {
	l  net.Listener
	wg sync.WaitGroup
}

func serve(l net.Listener, handle func(net.Conn)) *server {
	s := &server{l: l}
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
				_ = c.SetDeadline(time.Now().Add(opTimeout))
				handle(c)
			}()
		}
	}()
	return s
}

func (s *server) stop() {
	s.l.Close()
	s.wg.Wait()
}

func listenAddr(l net.Listener) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(l.Addr().String())
	if err != nil {
		return a, fmt.Errorf("veth: listener address %v: %w", l.Addr(), err)
	}
	return a, nil
}

// deadline is when a workload of duration d stops handing out operations.
func deadline(d time.Duration) time.Time { return time.Now().Add(d) }

// short runs mTCP's workload for d with n clients: connect, send 64 B,
// read 64 B, close (the client closes first, as in internal/bench).
func short(t target, d time.Duration, n int) (bench.ShortResult, error) {
	l, err := t.listen()
	if err != nil {
		return bench.ShortResult{}, err
	}
	srv := serve(l, func(c net.Conn) {
		var buf [bench.MsgSize]byte
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return
		}
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
		_, _ = c.Read(buf[:1]) // the client's FIN
	})
	defer srv.stop()
	addr, err := listenAddr(l)
	if err != nil {
		return bench.ShortResult{}, err
	}
	var (
		conns atomic.Int64
		errs  errCount
		wg    sync.WaitGroup
	)
	u := sample()
	end := deadline(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req, resp [bench.MsgSize]byte
			for time.Now().Before(end) {
				if err := shortOne(t, addr, req[:], resp[:]); err != nil {
					errs.add(err)
					continue
				}
				conns.Add(1)
			}
		}()
	}
	wg.Wait()
	ne, first := errs.get()
	r := bench.ShortResult{Conns: conns.Load(), Errors: ne, Cost: since(u)}
	if r.Conns == 0 {
		return r, fmt.Errorf("short: no connection completed (%d errors, first: %v)", ne, first)
	}
	return r, nil
}

func shortOne(t target, addr netip.AddrPort, req, resp []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := t.dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(opTimeout)); err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	_, err = io.ReadFull(c, resp)
	return err
}

// bulk sends bench.ChunkSize writes on n streams from the client to the
// server for d, then closes them; it ends when the server has read every
// stream to its end.
func bulk(t target, d time.Duration, n int) (bench.BulkResult, error) {
	l, err := t.listen()
	if err != nil {
		return bench.BulkResult{}, err
	}
	var (
		received atomic.Int64
		errs     errCount
	)
	srv := serve(l, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(d + opTimeout))
		buf := make([]byte, 256<<10)
		for {
			k, err := c.Read(buf)
			received.Add(int64(k))
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errs.add(fmt.Errorf("bulk server: %w", err))
				}
				return
			}
		}
	})
	defer srv.stop()
	addr, err := listenAddr(l)
	if err != nil {
		return bench.BulkResult{}, err
	}
	conns, err := dialN(t, addr, n)
	defer closeAll(conns)
	if err != nil {
		return bench.BulkResult{}, err
	}
	var wg sync.WaitGroup
	u := sample()
	end := deadline(d)
	for _, c := range conns {
		_ = c.SetDeadline(time.Now().Add(d + opTimeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := make([]byte, bench.ChunkSize)
			for time.Now().Before(end) {
				if _, err := c.Write(chunk); err != nil {
					errs.add(fmt.Errorf("bulk client: %w", err))
					break
				}
			}
			if err := c.Close(); err != nil {
				errs.add(err)
			}
		}()
	}
	wg.Wait()
	srv.l.Close()
	srv.wg.Wait()
	ne, first := errs.get()
	r := bench.BulkResult{Streams: n, Bytes: received.Load(), Errors: ne, Cost: since(u)}
	if r.Bytes == 0 {
		return r, fmt.Errorf("bulk: no bytes received (%d errors, first: %v)", ne, first)
	}
	return r, nil
}

// rr runs 64-byte ping-pong on n persistent connections for d, one request
// outstanding per connection, and reports latency percentiles.
func rr(t target, d time.Duration, n int) (bench.RRResult, error) {
	l, err := t.listen()
	if err != nil {
		return bench.RRResult{}, err
	}
	srv := serve(l, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(d + opTimeout))
		var buf [bench.MsgSize]byte
		for {
			if _, err := io.ReadFull(c, buf[:]); err != nil {
				return
			}
			if _, err := c.Write(buf[:]); err != nil {
				return
			}
		}
	})
	defer srv.stop()
	addr, err := listenAddr(l)
	if err != nil {
		return bench.RRResult{}, err
	}
	conns, err := dialN(t, addr, n)
	defer closeAll(conns)
	if err != nil {
		return bench.RRResult{}, err
	}
	var (
		trips atomic.Int64
		errs  errCount
		wg    sync.WaitGroup
	)
	lats := make([][]time.Duration, len(conns))
	keep := maxSamples / len(conns)
	u := sample()
	end := deadline(d)
	for i, c := range conns {
		_ = c.SetDeadline(end.Add(opTimeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req, resp [bench.MsgSize]byte
			mine := make([]time.Duration, 0, min(keep, 1<<16))
			for time.Now().Before(end) {
				t0 := time.Now()
				if _, err := c.Write(req[:]); err != nil {
					errs.add(err)
					break
				}
				if _, err := io.ReadFull(c, resp[:]); err != nil {
					errs.add(err)
					break
				}
				if len(mine) < keep {
					mine = append(mine, time.Since(t0))
				}
				trips.Add(1)
			}
			lats[i] = mine
		}()
	}
	wg.Wait()
	ne, first := errs.get()
	r := bench.RRResult{Conns: len(conns), Trips: trips.Load(), Errors: ne, Cost: since(u)}
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return r, fmt.Errorf("rr: no round trip completed (%d errors, first: %v)", ne, first)
	}
	slices.Sort(all)
	r.P50, r.P99, r.P999 = quantile(all, 0.50), quantile(all, 0.99), quantile(all, 0.999)
	return r, nil
}

// quantile returns the q-quantile of sorted d (nearest rank).
func quantile(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// dialN opens n persistent connections. On error it returns those opened.
func dialN(t target, addr netip.AddrPort, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		c, err := t.dial(ctx, addr)
		cancel()
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
