package batchtcp

// Tail loss probe (RFC 8985 §7). When the last segments of a flight are
// lost no duplicate ACKs come back and only the RTO (200 ms at least) would
// repair them. With SACK agreed (as Linux requires) and no recovery under
// way, the retransmission timer is first armed for a probe timeout of two
// smoothed RTTs (plus the worst-case delayed ACK while less than two full
// segments are in flight, at least 10 ms, never beyond the RTO); when it fires the last
// segment is sent again, which draws an ACK: either it repairs a single
// tail loss, or its SACK blocks start fast recovery. The probe then arms
// the real RTO. A repaired loss (no D-SACK for the probe) halves cwnd as
// fast recovery would (§7.4.2). batchtcp has no RACK: losses the probe's
// ACK reveals are recovered by duplicate ACKs or the RTO as before.

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/xdptcp/xdptcp/batchtcp/internal/congestion"
	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

const (
	minPTO      = 10 * time.Millisecond  // Linux TCP_TIMEOUT_MIN for TLP
	maxAckDelay = 200 * time.Millisecond // RFC 8985 §7.2 WCDelAckT
)

// armPTO turns a pending RTO into a probe timeout where §7.2 allows one.
func (sh *shard) armPTO(now monotime.Time, c *conn) {
	if !c.sackOK || c.tlpOut || c.tlpArmed || c.rtoAt == 0 || c.sndUna == c.sndMax ||
		c.cc.State() != congestion.Open || !c.rtt.HasSample() || (c.sb != nil && !c.sb.Empty()) ||
		(c.state != StateEstablished && c.state != StateCloseWait) {
		return
	}
	pto := 2 * c.rtt.SRTT()
	if c.inFlight() < 2*c.mss {
		// §7.2 adds the delayed-ACK allowance for a one-segment flight;
		// a receiver may delay its ACK for anything short of two full
		// segments (RFC 1122 §4.2.3.2; batchtcp's own does), and a probe
		// sent before that ACK is spurious.
		pto += maxAckDelay
	}
	at := now.Add(max(pto, minPTO))
	if at < c.rtoAt {
		c.rtoAt, c.tlpArmed = at, true
	}
}

// onPTO sends the probe: the last segment sent, again (§7.3: new data is
// preferred, but the output pass has already sent what the windows allow).
func (sh *shard) onPTO(now monotime.Time, c *conn) {
	if c.sndUna == c.sndMax || c.ep == nil {
		return
	}
	// Whatever happens, the real RTO stays armed (onTimer cleared it).
	c.setRTO(now.Add(c.rtt.RTO()))
	if c.cc.State() != congestion.Open {
		return // recovery began meanwhile: no probe (§7.2)
	}
	end := c.sndNxt
	fin := c.finSent && end == c.finSeq+1
	dataEnd := end
	if fin {
		dataEnd = c.finSeq
	}
	n := 0
	if c.sndUna.LessThan(dataEnd) {
		n = min(c.mss, int(c.sndUna.Size(dataEnd)))
	}
	if n == 0 && !fin {
		return
	}
	seq := dataEnd - seqnum.Value(n)
	sh.sendSegment(now, c, wire.FlagACK, seq, n, fin)
	sh.stats.Retransmits++
	sh.stats.TailLossProbes++
	c.rttTiming = false
	c.tlpOut, c.tlpEnd, c.tlpDSACK = true, end, false
}

// onProbeACK ends a probe episode once an ACK covers the probe (§7.4):
// without a D-SACK saying the original had arrived too, the probe repaired
// a loss and congestion control responds. flight is the bytes outstanding
// before the ACK.
func (sh *shard) onProbeACK(c *conn, s *segment, ack seqnum.Value, flight int) {
	if !c.tlpOut {
		return
	}
	for _, b := range s.opt.SACK[:s.opt.NumSACK] {
		if seqnum.Value(b.End).LessThanEq(ack) { // RFC 2883 D-SACK
			c.tlpDSACK = true
		}
	}
	if ack.LessThan(c.tlpEnd) {
		return
	}
	c.tlpOut = false
	if !c.tlpDSACK {
		c.cc.OnLossRepaired(flight)
		sh.stats.TailLossRecoveries++
	}
}
