package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MsgSize is the request and response size of short and rr (mTCP's 64 B).
const MsgSize = 64

// ChunkSize is the size of one bulk write.
const ChunkSize = 64 << 10

// maxSamples bounds the latencies rr keeps (all are counted).
const maxSamples = 1 << 21

// Opts bounds a workload: it stops at Duration (if > 0) or after Count
// operations (if > 0), whichever comes first; one of them must be set.
// An operation is a connection (short), a ChunkSize write (bulk) or a
// round trip (rr).
type Opts struct {
	Duration time.Duration
	Count    int64
	// Clients is the number of concurrent connections (short, rr) or
	// streams (bulk).
	Clients int
}

func (o Opts) check() error {
	if o.Duration <= 0 && o.Count <= 0 {
		return errors.New("bench: need a duration or a count")
	}
	if o.Clients < 1 {
		return fmt.Errorf("bench: clients must be >= 1, got %d", o.Clients)
	}
	return nil
}

// limiter hands out operations until the deadline or the count runs out.
type limiter struct {
	deadline time.Time // zero: none
	left     atomic.Int64
	counted  bool
}

func newLimiter(o Opts) *limiter {
	l := &limiter{counted: o.Count > 0}
	if o.Duration > 0 {
		l.deadline = time.Now().Add(o.Duration)
	}
	l.left.Store(o.Count)
	return l
}

// next reports whether another operation may start.
func (l *limiter) next() bool {
	if !l.deadline.IsZero() && !time.Now().Before(l.deadline) {
		return false
	}
	return !l.counted || l.left.Add(-1) >= 0
}

// Cost is what a workload consumed between two samples.
type Cost struct {
	Elapsed    time.Duration `json:"elapsed_ns"`
	CPU        time.Duration `json:"cpu_ns"`      // user + system, whole process
	Mallocs    uint64        `json:"mallocs"`     // heap objects allocated
	AllocBytes uint64        `json:"alloc_bytes"` // heap bytes allocated
}

// ShortResult is one run of the short workload.
type ShortResult struct {
	Conns  int64 `json:"conns"`
	Errors int64 `json:"errors"`
	Cost
}

// Short runs mTCP's workload: each of o.Clients clients repeatedly
// connects, sends MsgSize bytes, reads MsgSize bytes back and closes. The
// server reads the request, answers, waits for the client's FIN and
// closes, so TIME-WAIT is on the client side as with mTCP's load
// generator.
func Short(p *Pair, o Opts) (ShortResult, error) {
	if err := o.check(); err != nil {
		return ShortResult{}, err
	}
	l, err := p.Listen()
	if err != nil {
		return ShortResult{}, err
	}
	srv := Serve(l, opTimeout, func(c net.Conn) {
		buf := msgBufs.Get().(*[MsgSize]byte) // escapes through net.Conn: pooled
		defer msgBufs.Put(buf)
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return
		}
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
		_, _ = c.Read(buf[:1]) // the client's FIN
	})
	defer srv.Stop()
	addr := l.Addr().String()

	var (
		conns atomic.Int64
		errs  ErrCount
		wg    sync.WaitGroup
	)
	u := StartMeter()
	lim := newLimiter(o)
	for range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req, resp [MsgSize]byte
			var dc dialCtx
			defer dc.close()
			for lim.next() {
				if err := shortOne(dc.get(), p, addr, req[:], resp[:]); err != nil {
					errs.Add(err)
					continue
				}
				conns.Add(1)
			}
		}()
	}
	wg.Wait()
	r := ShortResult{Conns: conns.Load(), Errors: errs.n, Cost: u.Cost()}
	if r.Conns == 0 {
		return r, fmt.Errorf("short: no connection completed (%d errors, first: %v)", errs.n, errs.first)
	}
	return r, nil
}

// msgBufs are the short server's message buffers.
var msgBufs = sync.Pool{New: func() any { return new([MsgSize]byte) }}

// dialCtx hands a client goroutine a context that leaves every dial at
// least opTimeout, renewed each second: the load generator allocates one
// context per second, not one per connection (its allocations count in the
// allocs workload, for both TCPs alike).
type dialCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
	until  time.Time
}

func (d *dialCtx) get() context.Context {
	if now := time.Now(); d.ctx == nil || now.After(d.until) {
		d.close()
		d.ctx, d.cancel = context.WithTimeout(context.Background(), opTimeout+time.Second)
		d.until = now.Add(time.Second)
	}
	return d.ctx
}

func (d *dialCtx) close() {
	if d.cancel != nil {
		d.cancel()
	}
}

func shortOne(ctx context.Context, p *Pair, addr string, req, resp []byte) error {
	c, err := p.Client.DialContext(ctx, "tcp", addr)
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

// BulkResult is one run of the bulk workload.
type BulkResult struct {
	Streams int   `json:"streams"`
	Bytes   int64 `json:"bytes"` // received by the server
	Errors  int64 `json:"errors"`
	Cost
}

// Bulk sends ChunkSize writes on o.Clients streams from client to server
// until the limit, then closes them; the run ends when the server has read
// every stream to its end.
func Bulk(p *Pair, o Opts) (BulkResult, error) {
	if err := o.check(); err != nil {
		return BulkResult{}, err
	}
	l, err := p.Listen()
	if err != nil {
		return BulkResult{}, err
	}
	var (
		received atomic.Int64
		errs     ErrCount
	)
	srv := Serve(l, opTimeout, func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			received.Add(int64(n))
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errs.Add(fmt.Errorf("bulk server: %w", err))
				}
				return
			}
		}
	})
	defer srv.Stop()
	addr := l.Addr().String()

	conns, err := dialN(p, addr, o.Clients, time.Time{})
	defer CloseAll(conns)
	if err != nil {
		return BulkResult{}, err
	}
	limit := o.Duration
	if limit <= 0 {
		limit = time.Hour
	}
	var wg sync.WaitGroup
	u := StartMeter()
	lim := newLimiter(o)
	for _, c := range conns {
		_ = c.SetDeadline(time.Now().Add(limit + opTimeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := make([]byte, ChunkSize)
			for lim.next() {
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
	// The run ends when the server has read everything.
	srv.l.Close()
	srv.wg.Wait()
	r := BulkResult{Streams: o.Clients, Bytes: received.Load(), Errors: errs.n, Cost: u.Cost()}
	if r.Bytes == 0 {
		return r, fmt.Errorf("bulk: no bytes received (%d errors, first: %v)", errs.n, errs.first)
	}
	return r, nil
}

// RRResult is one run of the request/response workload.
type RRResult struct {
	Conns  int           `json:"conns"`
	Trips  int64         `json:"round_trips"`
	Errors int64         `json:"errors"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	P999   time.Duration `json:"p999_ns"`
	Cost
}

// RR runs MsgSize-byte ping-pong on o.Clients persistent connections, each
// with one request outstanding, and reports latency percentiles.
func RR(p *Pair, o Opts) (RRResult, error) {
	if err := o.check(); err != nil {
		return RRResult{}, err
	}
	l, err := p.Listen()
	if err != nil {
		return RRResult{}, err
	}
	limit := o.Duration
	if limit <= 0 {
		limit = time.Hour
	}
	srv := Serve(l, opTimeout, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(limit + opTimeout))
		var buf [MsgSize]byte
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
	addr := l.Addr().String()

	conns, err := dialN(p, addr, o.Clients, time.Now().Add(limit+opTimeout))
	defer CloseAll(conns)
	if err != nil {
		return RRResult{}, err
	}
	var (
		trips atomic.Int64
		errs  ErrCount
		wg    sync.WaitGroup
	)
	lats := make([][]time.Duration, len(conns))
	keep := maxSamples / len(conns)
	u := StartMeter()
	lim := newLimiter(o)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req, resp [MsgSize]byte
			mine := make([]time.Duration, 0, min(keep, 1<<16))
			for lim.next() {
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
	r := RRResult{Conns: len(conns), Trips: trips.Load(), Errors: errs.n, Cost: u.Cost()}
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return r, fmt.Errorf("rr: no round trip completed (%d errors, first: %v)", errs.n, errs.first)
	}
	slices.Sort(all)
	r.P50, r.P99, r.P999 = Quantile(all, 0.50), Quantile(all, 0.99), Quantile(all, 0.999)
	return r, nil
}

// dialN opens n persistent connections to addr from the client stack, each
// with the given deadline (zero: none). On error it returns those opened.
func dialN(p *Pair, addr string, n int, deadline time.Time) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := p.Client.Dial("tcp", addr)
		if err != nil {
			return conns, err
		}
		if !deadline.IsZero() {
			_ = c.SetDeadline(deadline)
		}
		conns = append(conns, c)
	}
	return conns, nil
}
