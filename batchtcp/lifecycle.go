package batchtcp

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/internal/rtt"
)

const ipv6Proto = header.IPv6ProtocolNumber

func newRTT(o opts) rtt.Estimator { return rtt.New(initialRTO, o.minRTO, o.maxRTO) }

// estab reports RFC 4022 tcpCurrEstab's states.
func estab(s State) bool { return s == StateEstablished || s == StateCloseWait }

// setState moves c to s, keeps the stack's gauges (as gVisor does) and
// publishes the state to the endpoint.
func (sh *shard) setState(c *conn, s State) {
	old := c.state
	if old == s {
		return
	}
	if estab(s) && !estab(old) {
		sh.stats.CurrentEstablished++
	} else if estab(old) && !estab(s) {
		sh.stats.CurrentEstablished--
	}
	if s.connected() && !old.connected() {
		sh.stats.CurrentConnected++
	} else if old.connected() && !s.connected() {
		sh.stats.CurrentConnected--
	}
	if estab(old) && (s == StateClose || s == StateError) {
		sh.stats.EstablishedClosed++
	}
	c.state = s
	if c.ep != nil {
		c.ep.state.Store(uint32(s))
		c.notify |= waiter.EventIn | waiter.EventOut
	}
}

// establish completes an active open (SYN-SENT or simultaneous open).
func (sh *shard) establish(now monotime.Time, c *conn) {
	c.afterHandshake()
	sh.setState(c, StateEstablished)
	c.lastRcv = now
	c.notify |= waiter.WritableEvents
	c.wake(sh)
}

// afterHandshake applies what a retransmitted SYN or SYN-ACK implies once
// the connection is established: the RTO restarts at 3 s if no RTT sample
// was possible (RFC 6298 §5.7) and the initial window is one segment (RFC
// 5681 §3.1).
func (c *conn) afterHandshake() {
	if c.synTries == 0 {
		return
	}
	c.rtt.Restart(synLossRTO)
	c.cc.OnSynLoss()
}

// establishPassive completes a passive open: the child gets its endpoint
// and joins this shard's accept queue of the listener. false: the listener
// is gone and the child was reset.
func (sh *shard) establishPassive(now monotime.Time, c *conn) bool {
	if c.active {
		sh.establish(now, c)
		return true
	}
	c.afterHandshake()
	l := c.listener
	ep := newChildEndpoint(l.ep, sh, c)
	c.ep = ep
	sh.setState(c, StateEstablished)
	c.lastRcv = now
	sh.stats.PassiveConnectionOpenings++
	if !l.push(sh.idx, ep) {
		sh.sendReset(now, c)
		sh.fail(c, &tcpip.ErrConnectionAborted{})
		return false
	}
	c.listener = nil // the backlog slot now belongs to the accept queue
	l.ep.wq.Notify(waiter.ReadableEvents)
	return true
}

// enterTimeWait starts the 2 MSL wait (RFC 9293 §3.10.7.4).
func (sh *shard) enterTimeWait(now monotime.Time, c *conn) {
	sh.setState(c, StateTimeWait)
	c.rtoAt, c.persistAt, c.kaAt, c.delackAt = 0, 0, 0, 0
	c.tlpArmed = false
	tw := sh.p.options().timeWait
	c.closeAt = now.Add(tw)
	if tw == 0 {
		c.closeAt = now
	}
	c.notify |= waiter.EventHUp
	c.wake(sh)
}

// fail ends c with err for the application (reset, refused, timeout).
func (sh *shard) fail(c *conn, err tcpip.Error) {
	if c.ep != nil {
		c.ep.fail(err, StateError)
	}
	old := c.state
	c.state = StateError
	if estab(old) {
		sh.stats.CurrentEstablished--
	}
	if old.connected() {
		sh.stats.CurrentConnected--
	}
	c.notify |= waiter.EventHUp | waiter.EventErr | waiter.ReadableEvents | waiter.WritableEvents
	sh.destroy(c)
}

// destroy removes c from the shard; its memory returns to the pool at the
// end of the batch.
func (sh *shard) destroy(c *conn) {
	if c.dead {
		return
	}
	c.dead = true
	if sh.flows[c.id] == c {
		delete(sh.flows, c.id)
	}
	sh.wheel.Cancel(&c.timer)
	if c.route != nil {
		c.route.Release()
	}
	if c.listener != nil {
		c.listener.release()
		c.listener = nil
	}
	c.reasm.Reset()
	if c.ep != nil {
		if c.state != StateError {
			c.ep.state.Store(uint32(StateClose))
		}
		c.notify |= waiter.EventHUp | waiter.ReadableEvents | waiter.WritableEvents
		c.ep.c = nil
		c.ep.shardDone()
	}
	c.wake(sh)
}
