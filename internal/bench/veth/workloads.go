package veth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
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
	srv := bench.Serve(l, opTimeout, func(c net.Conn) {
		var buf [bench.MsgSize]byte
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return
		}
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
		_, _ = c.Read(buf[:1]) // the client's FIN
	})
	defer srv.Stop()
	addr, err := listenAddr(l)
	if err != nil {
		return bench.ShortResult{}, err
	}
	var (
		conns atomic.Int64
		errs  bench.ErrCount
		wg    sync.WaitGroup
	)
	u := bench.StartMeter()
	end := deadline(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req, resp [bench.MsgSize]byte
			for time.Now().Before(end) {
				if err := shortOne(t, addr, req[:], resp[:]); err != nil {
					errs.Add(err)
					continue
				}
				conns.Add(1)
			}
		}()
	}
	wg.Wait()
	ne, first := errs.Get()
	r := bench.ShortResult{Conns: conns.Load(), Errors: ne, Cost: u.Cost()}
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
		errs     bench.ErrCount
	)
	srv := bench.Serve(l, opTimeout, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(d + opTimeout))
		buf := make([]byte, 256<<10)
		for {
			k, err := c.Read(buf)
			received.Add(int64(k))
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errs.Add(fmt.Errorf("bulk server: %w", err))
				}
				return
			}
		}
	})
	defer srv.Stop()
	addr, err := listenAddr(l)
	if err != nil {
		return bench.BulkResult{}, err
	}
	conns, err := dialN(t, addr, n)
	defer bench.CloseAll(conns)
	if err != nil {
		return bench.BulkResult{}, err
	}
	var wg sync.WaitGroup
	u := bench.StartMeter()
	end := deadline(d)
	for _, c := range conns {
		_ = c.SetDeadline(time.Now().Add(d + opTimeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := make([]byte, bench.ChunkSize)
			for time.Now().Before(end) {
				if _, err := c.Write(chunk); err != nil {
					errs.Add(fmt.Errorf("bulk client: %w", err))
					break
				}
			}
			if err := c.Close(); err != nil {
				errs.Add(err)
			}
		}()
	}
	wg.Wait()
	srv.Stop()
	ne, first := errs.Get()
	r := bench.BulkResult{Streams: n, Bytes: received.Load(), Errors: ne, Cost: u.Cost()}
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
	srv := bench.Serve(l, opTimeout, func(c net.Conn) {
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
	defer srv.Stop()
	addr, err := listenAddr(l)
	if err != nil {
		return bench.RRResult{}, err
	}
	conns, err := dialN(t, addr, n)
	defer bench.CloseAll(conns)
	if err != nil {
		return bench.RRResult{}, err
	}
	var (
		trips atomic.Int64
		errs  bench.ErrCount
		wg    sync.WaitGroup
	)
	lats := make([][]time.Duration, len(conns))
	keep := maxSamples / len(conns)
	u := bench.StartMeter()
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
					errs.Add(err)
					break
				}
				if _, err := io.ReadFull(c, resp[:]); err != nil {
					errs.Add(err)
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
	ne, first := errs.Get()
	r := bench.RRResult{Conns: len(conns), Trips: trips.Load(), Errors: ne, Cost: u.Cost()}
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return r, fmt.Errorf("rr: no round trip completed (%d errors, first: %v)", ne, first)
	}
	slices.Sort(all)
	r.P50, r.P99, r.P999 = bench.Quantile(all, 0.50), bench.Quantile(all, 0.99), bench.Quantile(all, 0.999)
	return r, nil
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
