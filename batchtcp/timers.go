package batchtcp

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
)

// onTimer runs a conn's expired deadlines; the shard's wheel calls it.
func (sh *shard) onTimer(now monotime.Time, c *conn) {
	if c.dead {
		return
	}
	if c.owner != sh {
		sh.stats.OwnershipViolations++
	}
	if sh.orphanedEmbryo(c) {
		return
	}
	if c.closeAt != 0 && c.closeAt <= now {
		// TIME-WAIT's 2 MSL (RFC 9293 §3.10.7.4) or an orphaned
		// FIN-WAIT-2's limit has passed.
		c.closeAt = 0
		sh.setState(c, StateClose)
		sh.destroy(c)
		return
	}
	if c.rtoAt != 0 && c.rtoAt <= now {
		probe := c.tlpArmed
		c.setRTO(0)
		if probe {
			sh.onPTO(now, c)
		} else {
			sh.onRTO(now, c)
		}
		if c.dead {
			return
		}
	}
	if c.delackAt != 0 && c.delackAt <= now {
		c.delackAt = 0
		if c.ackPending {
			c.ackNow = true
		}
	}
	if c.persistAt != 0 && c.persistAt <= now {
		c.persistAt = 0
		if c.sndWnd == 0 && c.state.synchronized() {
			if uint32(c.probesOut) >= sh.p.options().maxRetries {
				// RFC 1122 §4.2.2.17 keeps the connection open only while
				// the receiver answers the probes; unanswered ones end it
				// after the retransmission limit (gVisor: ErrTimeout when
				// unackZeroWindowProbes >= maxRetries; Linux
				// tcp_probe_timer), else it (and an orphan) lives forever.
				sh.stats.EstablishedTimedout++
				sh.fail(c, &tcpip.ErrTimeout{})
				return
			}
			c.probesOut++
			sh.stats.ZeroWindowProbes++
			sh.sendProbe(now, c)
			c.persistN++
			c.persistAt = now.Add(c.persistInterval())
		}
	}
	if c.kaAt != 0 && c.kaAt <= now {
		c.kaAt = 0
		sh.onKeepalive(now, c)
		if c.dead {
			return
		}
	}
	c.wake(sh)
}

// onRTO is the retransmission timer's expiry (RFC 6298 §5.4-5.6).
func (sh *shard) onRTO(now monotime.Time, c *conn) {
	o := sh.p.options()
	switch c.state {
	case StateSynSent, StateSynRecv:
		c.synTries++
		if c.synTries > int(o.synRetries) {
			if c.state == StateSynSent || c.active {
				sh.stats.FailedConnectionAttempts++
				sh.fail(c, &tcpip.ErrTimeout{})
			} else {
				sh.destroy(c)
			}
			return
		}
		c.rtt.Backoff()
		c.rttTiming = false
		sh.stats.Retransmits++
		sh.sendSYN(now, c)
		c.setRTO(now.Add(c.rtt.RTO()))
		return
	}
	if c.sndUna == c.sndMax {
		return
	}
	c.backoffs++
	if uint32(c.backoffs) > o.maxRetries {
		sh.stats.EstablishedTimedout++
		sh.fail(c, &tcpip.ErrTimeout{})
		return
	}
	sh.stats.Timeouts++
	c.tlpOut = false // RFC 8985 §7.4: an RTO ends the probe episode
	c.cc.OnRetransmitTimeout(c.inFlight(), c.sndMax)
	if c.sb != nil {
		c.sb.Reset() // RFC 2018 §8: the receiver may have reneged
	}
	c.rtt.Backoff()
	c.rttTiming = false // Karn: never time a retransmission.
	// Go back to SND.UNA and resend from there as the (now one-segment)
	// window allows (RFC 5681 §3.1, RFC 6298 §5.4).
	c.sndNxt = c.sndUna
	if c.finSent && !c.finSeq.LessThan(c.sndUna) {
		c.finSent = false
	}
	c.setRTO(now.Add(c.rtt.RTO()))
	if c.ep != nil && c.sndBase.Add(seqnum.Size(c.ep.sndq.Len())) == c.sndUna && !c.finQ {
		return
	}
	sh.sendData(now, c)
	if c.sndNxt == c.sndUna {
		// Nothing could be sent (zero window): probe instead.
		sh.sendProbe(now, c)
	}
}

// armKeepalive keeps the keepalive deadline (RFC 1122 §4.2.3.6) idle time
// after the last segment received, when SO_KEEPALIVE is on.
func (sh *shard) armKeepalive(now monotime.Time, c *conn) {
	if c.ep == nil || !c.ep.ops.GetKeepAlive() {
		c.kaAt = 0
		return
	}
	switch c.state {
	case StateEstablished, StateCloseWait:
	default:
		c.kaAt = 0
		return
	}
	if c.lastRcv == 0 {
		c.lastRcv = now
	}
	if c.kaProbes == 0 {
		c.kaAt = c.lastRcv.Add(c.ep.kaIdle())
	} else if c.kaAt == 0 {
		c.kaAt = now.Add(c.ep.kaInterval())
	}
}

func (sh *shard) onKeepalive(now monotime.Time, c *conn) {
	if c.ep == nil || !c.ep.ops.GetKeepAlive() {
		return
	}
	// RFC 1122 §4.2.3.6: probe only after the idle time without a
	// segment. One received since the deadline was set (it reset
	// kaProbes without re-arming) pushes it back, as Linux's
	// tcp_keepalive_timer does.
	if at := c.lastRcv.Add(c.ep.kaIdle()); c.kaProbes == 0 && now < at {
		c.kaAt = at
		return
	}
	// RFC 9293 §3.8.4 (MUST-26): no keep-alive while sent data is
	// outstanding (the retransmission timer watches the peer then);
	// look again an idle time later, as Linux does.
	if c.sndUna != c.sndMax {
		c.kaAt = now.Add(c.ep.kaIdle())
		return
	}
	if c.kaProbes >= c.ep.kaCount() {
		sh.stats.EstablishedTimedout++
		sh.fail(c, &tcpip.ErrTimeout{})
		return
	}
	c.kaProbes++
	sh.stats.KeepalivesSent++
	sh.sendProbe(now, c)
	c.kaAt = now.Add(c.ep.kaInterval())
}
