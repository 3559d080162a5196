package batchtcp

import (
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/internal/timerwheel"
)

// shard is one goroutine and everything it owns: a flow table, a timing
// wheel, a conn pool and counters. Nothing else reads or writes them.
type shard struct {
	p     *Protocol
	idx   int
	clock tcpip.Clock
	in    inbox
	done  chan struct{}

	flows map[stack.TransportEndpointID]*conn
	wheel *timerwheel.Wheel
	free  []*conn // per-shard conn pool

	// Clock timer armed for the wheel's earliest deadline.
	clkTimer tcpip.Timer
	armedAt  monotime.Time
	armed    bool

	// Per-batch scratch, reused.
	segs  []inSeg
	eps   []*endpoint
	dirty []*conn
	seg   segment

	stats     shardStats
	prevStats shardStats
	direct    directCount
	// Packet filters, asked at most once per batch (directFiltered).
	filterChecked, filterOn, iptablesOn bool
	inboxDrops                          atomic.Uint64

	// Published snapshot for Protocol.Stats (updated once per batch).
	pubMu    sync.Mutex
	pub      shardStats
	pubConns int

	// RFC 5961 §7 challenge-ACK budget.
	challengeSec   int64
	challengeCount int
}

func newShard(p *Protocol, idx int) *shard {
	sh := &shard{
		p:     p,
		idx:   idx,
		clock: p.stack.Clock(),
		done:  make(chan struct{}),
		flows: make(map[stack.TransportEndpointID]*conn),
	}
	sh.in.init()
	sh.wheel = timerwheel.New(wheelTick, wheelSlots, monotime.Now(sh.clock))
	return sh
}

// run is the shard's loop (mTCP's per-core loop): take a burst of input,
// process it, fire due timers, send one ACK per connection that needs one
// and the data the windows allow, flush the burst to the link, deliver
// waiter events, then sleep until input or the earliest deadline.
func (sh *shard) run() {
	for {
		select {
		case <-sh.in.wake:
		case <-sh.done:
			sh.shutdown()
			return
		}
		for _, f := range sh.in.takeFns() {
			f(sh)
		}
		for {
			sh.segs, sh.eps = sh.in.take(sh.segs, sh.eps)
			if len(sh.segs) == 0 && len(sh.eps) == 0 {
				sh.batch(nil, nil, true)
				break
			}
			// Bounded batches: at most maxBatch segments between flushes.
			segs := sh.segs
			eps := sh.eps
			for len(segs) > 0 || eps != nil {
				n := min(len(segs), maxBatch)
				sh.batch(segs[:n], eps, true)
				segs = segs[n:]
				eps = nil
			}
			clear(sh.segs)
			clear(sh.eps)
			select {
			case <-sh.done:
				sh.shutdown()
				return
			default:
			}
		}
		sh.armClock()
		for _, f := range sh.in.takeIdle() {
			f()
		}
	}
}

// batch processes one bounded batch and flushes what it produced.
func (sh *shard) batch(segs []inSeg, eps []*endpoint, timers bool) {
	now := monotime.Now(sh.clock)
	lane := sh.idx
	var txs []TxBatcher
	if p := sh.p.txBatchers.Load(); p != nil {
		txs = *p
	}
	for _, t := range txs {
		t.Hold(lane)
	}
	fallbacks := sh.stats.DirectFallbacks
	sh.filterChecked = false
	for i := range segs {
		sh.handleSegment(now, &segs[i])
		segs[i].pkt.DecRef()
		segs[i].pkt = nil
	}
	for _, e := range eps {
		sh.handleEvents(now, e)
	}
	if timers {
		sh.wheel.Advance(now, func(t *timerwheel.Timer) {
			c := t.Owner.(*conn)
			sh.onTimer(now, c)
		})
	}
	// Counters of the input phase (a refused connect, a reset) are
	// published before the output pass wakes the applications, so one that
	// wakes sees them; the rest follow at the batch's end.
	if len(sh.dirty) > 0 {
		tcpStats := sh.p.stack.Stats().TCP
		sh.stats.publish(&sh.prevStats, &tcpStats)
	}
	// Output: one pass per connection touched in this batch.
	for i := 0; i < len(sh.dirty); i++ {
		c := sh.dirty[i]
		c.dirty = false
		if !c.dead {
			sh.output(now, c)
			sh.armPTO(now, c)
			sh.rearm(c)
		}
		if c.notify != 0 && c.ep != nil {
			m := c.notify
			c.notify = 0
			c.ep.wq.Notify(m)
		}
		c.notify = 0
		if c.dead {
			sh.recycle(c)
		}
	}
	clear(sh.dirty)
	sh.dirty = sh.dirty[:0]
	if len(segs) > 0 || len(eps) > 0 {
		sh.stats.Batches++
		// Segments handed back to the stack come round again: count once.
		sh.stats.BatchSegments += uint64(len(segs)) - (sh.stats.DirectFallbacks - fallbacks)
	}
	// Counters first, then the held segments leave: a peer that reacts to
	// one (a refused connect, a reset) finds it already counted here.
	sh.flushDirect()
	tcpStats := sh.p.stack.Stats().TCP
	sh.stats.publish(&sh.prevStats, &tcpStats)
	sh.pubMu.Lock()
	sh.pub = sh.stats
	sh.pubConns = len(sh.flows)
	sh.pubMu.Unlock()
	for _, t := range txs {
		t.Flush(lane)
	}
}

// armClock sets the one clock timer of the shard to the wheel's earliest
// deadline; it wakes the loop, which fires what is due.
func (sh *shard) armClock() {
	at, ok := sh.wheel.Next()
	if !ok {
		if sh.armed && sh.clkTimer != nil {
			sh.clkTimer.Stop()
		}
		sh.armed = false
		return
	}
	if sh.armed && sh.armedAt == at {
		return
	}
	now := monotime.Now(sh.clock)
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	// Round up to the wheel's tick so the wheel finds the timer due.
	d += wheelTick - d%wheelTick
	if sh.clkTimer == nil {
		sh.clkTimer = sh.clock.AfterFunc(d, sh.in.signal)
	} else {
		sh.clkTimer.Stop()
		sh.clkTimer.Reset(d)
	}
	sh.armed, sh.armedAt = true, at
}

// rearm schedules the conn's wheel entry at its earliest deadline.
func (sh *shard) rearm(c *conn) {
	var at monotime.Time
	for _, d := range [...]monotime.Time{c.rtoAt, c.delackAt, c.persistAt, c.kaAt, c.closeAt} {
		if d != 0 && (at == 0 || d < at) {
			at = d
		}
	}
	if at == 0 {
		sh.wheel.Cancel(&c.timer)
		return
	}
	if !c.timer.Pending() || c.timer.Deadline() != at {
		sh.wheel.Schedule(&c.timer, at)
	}
}

// newConn takes a conn from the shard's pool.
func (sh *shard) newConn() *conn {
	var c *conn
	if n := len(sh.free); n > 0 {
		c = sh.free[n-1]
		sh.free[n-1] = nil
		sh.free = sh.free[:n-1]
		c.reset()
	} else {
		c = &conn{}
		c.init()
	}
	return c
}

// recycle returns a destroyed conn to the pool (bounded).
func (sh *shard) recycle(c *conn) {
	if len(sh.free) < 1024 {
		c.ep = nil
		c.listener = nil
		c.route = nil
		sh.free = append(sh.free, c)
	}
}

// shutdown aborts every connection when the protocol closes.
func (sh *shard) shutdown() {
	for _, c := range sh.flows {
		if c.ep != nil {
			c.ep.fail(&tcpip.ErrAborted{}, StateError)
			c.ep.wq.Notify(waiter.EventHUp | waiter.EventErr | waiter.ReadableEvents | waiter.WritableEvents)
		}
		sh.destroy(c)
	}
	if sh.clkTimer != nil {
		sh.clkTimer.Stop()
	}
	// Release segments still queued; later ones are refused.
	segs, eps := sh.in.close()
	for _, s := range segs {
		s.pkt.DecRef()
	}
	for _, e := range eps {
		e.shardGone()
	}
}

// challengeOK enforces RFC 5961 §7's limit on challenge ACKs per second.
func (sh *shard) challengeOK(now monotime.Time) bool {
	sec := int64(now) / int64(time.Second)
	if sec != sh.challengeSec {
		sh.challengeSec, sh.challengeCount = sec, 0
	}
	if sh.challengeCount >= challengeACKLimit {
		sh.stats.ChallengeLimited++
		return false
	}
	sh.challengeCount++
	sh.stats.ChallengeACKs++
	return true
}
