package batchtcp

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp/internal/congestion"
	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// pawsIdle is RFC 7323 §5.5's 24 days after which TS.Recent is stale.
const pawsIdle = 24 * 24 * time.Hour

// handleSegment is SEGMENT ARRIVES (RFC 9293 §3.10.7) for one segment.
func (sh *shard) handleSegment(now monotime.Time, in *inSeg) {
	c := sh.flows[in.id]
	if in.direct != nil {
		if c == nil || sh.directFiltered(in.direct) {
			// Not ours to judge without the stack: is the destination one of
			// its addresses, is there a listener, what do its filters say
			// (DirectLink).
			sh.stats.DirectFallbacks++
			in.direct.fallback(in.pkt)
			return
		}
		sh.countDirect(in)
	}
	s := &sh.seg
	if !s.parse(in.pkt, in.id) {
		sh.stats.InvalidSegmentsReceived++
		return
	}
	sh.stats.ValidSegmentsReceived++
	if s.has(wire.FlagRST) {
		sh.stats.ResetsReceived++
	}
	if c != nil && sh.orphanedEmbryo(c) {
		c = nil // its listener was closed: as if it never existed
	}
	if c == nil {
		l := sh.p.listeners.lookup(s.netProto, s.id.LocalAddress, s.id.LocalPort)
		if l != nil {
			sh.listenInput(now, l, s, in.hash, nil)
		} else {
			sh.closedInput(s)
		}
		return
	}
	if c.owner != sh {
		sh.stats.OwnershipViolations++
	}
	if c.state == StateSynSent {
		sh.synSentInput(now, c, s)
	} else {
		sh.input(now, c, s)
	}
	if c.oooFin && !c.dead && !c.finRcvd && c.rcvNxt == c.oooFinQ {
		c.oooFin = false
		sh.receiveFin(now, c)
	}
}

// orphanedEmbryo destroys a passive SYN-RECEIVED connection whose listener
// was closed: in RFC 9293 it is the listen's own TCB, deleted by CLOSE
// (§3.10.4), so it sends nothing more and a late segment meets CLOSED.
func (sh *shard) orphanedEmbryo(c *conn) bool {
	if c.state != StateSynRecv || c.active || c.listener == nil || !c.listener.closed.Load() {
		return false
	}
	sh.setState(c, StateClose)
	sh.destroy(c)
	return true
}

// closedInput is RFC 9293 §3.10.7.1: no connection. A reset answers
// anything but a reset.
func (sh *shard) closedInput(s *segment) {
	if s.has(wire.FlagRST) {
		return
	}
	if s.has(wire.FlagACK) {
		sh.replyReset(s, s.ack, 0, wire.FlagRST)
		return
	}
	sh.replyReset(s, 0, s.seq.Add(s.seqLen()), wire.FlagRST|wire.FlagACK)
}

// listenInput is RFC 9293 §3.10.7.2: a segment for a listener.
// issFloor, when not nil, is the lowest ISS allowed (a TIME-WAIT reopen).
func (sh *shard) listenInput(now monotime.Time, l *listener, s *segment, hash uint32, issFloor *seqnum.Value) {
	switch {
	case s.has(wire.FlagRST):
		return
	case s.has(wire.FlagACK):
		sh.replyReset(s, s.ack, 0, wire.FlagRST)
		return
	case !s.has(wire.FlagSYN):
		return
	}
	// A SYN-FIN is a SYN (RFC 9293 §3.10.7.2 third, as gVisor): other
	// controls and text wait for SYN-RECEIVED, where a segment without ACK
	// is dropped, so the FIN is never processed.
	if !l.reserve() {
		sh.stats.ListenOverflowSynDrop++
		return
	}
	route, err := sh.p.stack.FindRoute(s.nic, s.id.LocalAddress, s.id.RemoteAddress, s.netProto, false)
	if err != nil {
		l.release()
		return
	}
	c := sh.newConn()
	c.listener = l
	c.id = s.id
	c.hash = hash
	c.netProto = s.netProto
	c.route = route
	c.state = StateSynRecv
	o := sh.p.options()
	lep := l.ep
	c.rtt = newRTT(o)
	c.irs = s.seq
	c.rcvNxt = s.seq + 1
	c.iss = sh.p.sec.isn(c.id, now)
	if issFloor != nil && c.iss.LessThan(*issFloor) {
		c.iss = *issFloor
	}
	c.sndUna = c.iss
	c.sndNxt = c.iss + 1
	c.sndMax = c.sndNxt
	c.sndBase = c.iss + 1
	c.userMSS = int(lep.userMSS.Load())
	c.negotiate(now, s, sh.p.sec.tsOffset(c.id), int(lep.ops.GetReceiveBufferSize()), true)
	c.sackOK = c.sackOK && sh.p.options().sack
	c.sndWnd = seqnum.Size(s.wnd) // RFC 7323 §2.2: a SYN's window is never scaled.
	c.sndWL1, c.sndWL2 = s.seq, c.iss
	c.owner = sh
	sh.flows[c.id] = c
	sh.sendSYN(now, c)
	// RFC 6298 §2.2/§3: the handshake's ACK gives the first RTT sample
	// (timed here unless timestamps give it; Karn drops it if the SYN-ACK
	// is retransmitted).
	c.rttTiming, c.rttSeq, c.rttStart = !c.tsOK, c.iss, now
	c.setRTO(now.Add(c.rtt.RTO()))
	c.wake(sh)
}

// negotiate applies a received SYN's options (RFC 9293 §3.7.1 MSS, RFC 7323
// §2.2 window scale, §3.2 timestamps). passive: we answer with the options
// the peer offered; active: the peer's SYN-ACK keeps what it echoes.
func (c *conn) negotiate(now monotime.Time, s *segment, tsOffset uint32, rcvBuf int, passive bool) {
	if s.opt.HasMSS && s.opt.MSS > 0 {
		c.peerMSS = int(s.opt.MSS)
	} else if c.netProto == ipv6Proto {
		c.peerMSS = defaultMSSv6
	} else {
		c.peerMSS = defaultMSSv4
	}
	if s.opt.WS >= 0 {
		c.wsOK = true
		c.sndWS = uint8(min(int(s.opt.WS), maxWindowShift))
		c.rcvWS = windowShift(rcvBuf)
	} else {
		c.wsOK, c.sndWS, c.rcvWS = false, 0, 0
	}
	c.sackOK = s.opt.SACKPermitted // RFC 2018 §2; the caller ANDs in our side
	if s.opt.HasTS {
		c.tsOK = true
		c.tsOffset = tsOffset
		c.tsRecent = s.opt.TSVal
		c.tsRecentAge = now
	} else {
		c.tsOK = false
	}
	c.mss = min(c.peerMSS, c.localMSS())
	if c.tsOK {
		c.mss -= 12 // RFC 6691: options come out of the MSS.
	}
	// A floor against tiny-segment floods (Linux tcp_min_snd_mss, the
	// CVE-2019-11479 fix); above it MUST-16 holds: never exceed the peer's MSS.
	c.mss = max(c.mss, minSendMSS)
	c.cc.Init(c.mss)
	c.rcvNxtInit(rcvBuf)
}

// rcvNxtInit sets the first advertised right edge (unscaled in a SYN).
func (c *conn) rcvNxtInit(rcvBuf int) {
	c.rcvAdv = c.rcvNxt.Add(seqnum.Size(min(rcvBuf, 0xffff)))
}

// localMSS is what the route lets us receive: MTU less IP and TCP headers,
// bounded by TCP_MAXSEG (announced in our SYN and capping the send MSS).
func (c *conn) localMSS() int {
	m := defaultMSSv4
	if c.route != nil {
		m = int(c.route.MTU()) - wire.HeaderLen
	}
	if c.userMSS > 0 {
		m = min(m, c.userMSS)
	}
	return m
}

// windowShift is the smallest RFC 7323 §2.3 shift that lets a 16-bit
// window cover buf.
func windowShift(buf int) uint8 {
	var s uint8
	for s < maxWindowShift && buf>>s > 0xffff {
		s++
	}
	return s
}

// synSentInput is RFC 9293 §3.10.7.3.
func (sh *shard) synSentInput(now monotime.Time, c *conn, s *segment) {
	ackOK := false
	if s.has(wire.FlagACK) {
		// First: an ACK must acknowledge our SYN.
		if s.ack.LessThanEq(c.iss) || c.sndMax.LessThan(s.ack) {
			if !s.has(wire.FlagRST) {
				sh.replyReset(s, s.ack, 0, wire.FlagRST)
			}
			return
		}
		ackOK = true
	}
	if s.has(wire.FlagRST) {
		// Second: RFC 5961 §3.2 keeps RFC 9293's rule here: a RST is
		// accepted only with an acceptable ACK.
		if ackOK {
			sh.fail(c, &tcpip.ErrConnectionRefused{})
			sh.stats.FailedConnectionAttempts++
		}
		return
	}
	if !s.has(wire.FlagSYN) {
		return
	}
	// Fourth: the SYN.
	c.irs = s.seq
	c.rcvNxt = s.seq + 1
	offeredTS, offeredSACK := c.tsOK, c.sackOK
	c.negotiate(now, s, c.tsOffset, c.ep.rcvBufSize(), false)
	c.tsOK = c.tsOK && offeredTS
	c.sackOK = c.sackOK && offeredSACK
	c.sndWnd = seqnum.Size(s.wnd)
	c.sndWL1, c.sndWL2 = s.seq, s.ack
	c.maxWnd = c.sndWnd
	if !ackOK {
		// Simultaneous open (RFC 9293 §3.5 Figure 7).
		sh.setState(c, StateSynRecv)
		c.active = true
		sh.sendSYN(now, c)
		c.setRTO(now.Add(c.rtt.RTO()))
		return
	}
	sh.rttSampleSYN(now, c, s)
	c.sndUna = s.ack
	c.setRTO(0)
	c.backoffs = 0
	sh.establish(now, c)
	c.ackNow = true
	if len(s.payload) > 0 {
		sh.receiveData(now, c, s.seq+1, s.payload)
	}
	if s.has(wire.FlagFIN) {
		if s.seq.Add(1+seqnum.Size(len(s.payload))) == c.rcvNxt {
			sh.receiveFin(now, c)
		}
	}
	c.wake(sh)
}

func (sh *shard) rttSampleSYN(now monotime.Time, c *conn, s *segment) {
	if c.tsOK && s.opt.HasTS && s.opt.TSEcr != 0 {
		c.sampleTS(now, s.opt.TSEcr)
	} else if c.synTries == 0 && c.rttTiming {
		c.rtt.Sample(now.Sub(c.rttStart))
	}
	c.rttTiming = false
}

// sampleTS takes an RTT sample from an echoed timestamp (RFC 7323 §4.1).
func (c *conn) sampleTS(now monotime.Time, ecr uint32) {
	d := int32(c.tsVal(now) - ecr)
	if d >= 0 {
		c.rtt.Sample(time.Duration(d) * time.Millisecond)
	}
}

// acceptable is RFC 9293 §3.10.7.4's first check, the segment
// acceptability table.
func (c *conn) acceptable(s *segment) bool {
	n := s.seqLen()
	wnd := c.rcvWnd()
	if wnd == 0 {
		// A zero window still accepts a segment at RCV.NXT so its ACK and
		// RST are processed; its text is trimmed away.
		return s.seq == c.rcvNxt
	}
	if n == 0 {
		return s.seq.InWindow(c.rcvNxt, wnd)
	}
	return s.seq.InWindow(c.rcvNxt, wnd) || s.seq.Add(n-1).InWindow(c.rcvNxt, wnd)
}

// input is RFC 9293 §3.10.7.4: SYN-RECEIVED and the synchronized states.
func (sh *shard) input(now monotime.Time, c *conn, s *segment) {
	// RFC 7323 §5.3 PAWS, before the sequence check.
	if c.tsOK && s.opt.HasTS && !s.has(wire.FlagRST) &&
		int32(s.opt.TSVal-c.tsRecent) < 0 && now.Sub(c.tsRecentAge) < pawsIdle {
		sh.stats.PAWSDrops++
		c.ackNow = true
		c.wake(sh)
		return
	}
	// RFC 9293 §3.10.7.4 / RFC 6191: a new SYN may reopen a TIME-WAIT
	// connection if its sequence (or timestamp) is beyond the old one.
	if c.state == StateTimeWait && s.has(wire.FlagSYN) && !s.has(wire.FlagACK|wire.FlagRST) {
		newer := c.rcvNxt.LessThan(s.seq) || (c.tsOK && s.opt.HasTS && int32(s.opt.TSVal-c.tsRecent) > 0)
		if l := sh.p.listeners.lookup(s.netProto, s.id.LocalAddress, s.id.LocalPort); newer && l != nil {
			// RFC 9293 §3.6.1 (MAY-2 condition 1): the new ISS must be
			// above every sequence number of the old incarnation
			// (Linux: tw_snd_nxt + 65535 + 2).
			floor := c.sndMax.Add(65535 + 2)
			sh.destroy(c)
			sh.listenInput(now, l, s, c.hash, &floor)
			return
		}
	}
	// SYN-RECEIVED and a SYN at IRS, which the acceptability test would
	// reject (it lies just left of RCV.NXT). Alone it is a retransmitted
	// SYN: our SYN-ACK was lost, so resend it (as Linux and gVisor). With
	// an ACK on an active open it is the peer's SYN-ACK of a simultaneous
	// open (RFC 9293 §3.5 Figure 8 line 6; Linux tcp_validate_incoming):
	// drop the SYN and go on to the ACK.
	if c.state == StateSynRecv && s.has(wire.FlagSYN) && !s.has(wire.FlagRST) && s.seq == c.irs {
		if !s.has(wire.FlagACK) || !c.active {
			sh.sendSYN(now, c)
			return
		}
		s.flags &^= wire.FlagSYN
		s.seq++
	}
	// First: sequence number.
	if !c.acceptable(s) {
		sh.stats.OutOfWindowDrops++
		if !s.has(wire.FlagRST) {
			if s.has(wire.FlagSYN) && !sh.challengeOK(now) {
				return
			}
			if end := s.seq.Add(seqnum.Size(len(s.payload))); c.sackOK && len(s.payload) > 0 &&
				!s.has(wire.FlagSYN|wire.FlagFIN) && end.LessThanEq(c.rcvNxt) {
				sh.sendDSACK(now, c, s.seq, end) // a duplicate: RFC 2883 §4
				return
			}
			c.ackNow = true
			if c.state == StateTimeWait && s.has(wire.FlagFIN) {
				// A retransmitted FIN restarts the 2 MSL wait.
				c.closeAt = now.Add(sh.p.options().timeWait)
			}
			c.wake(sh)
		}
		return
	}
	c.lastRcv = now
	c.kaProbes = 0
	c.probesOut = 0
	// Second: RST (RFC 5961 §3.2: only an exact match resets).
	if s.has(wire.FlagRST) {
		if s.seq != c.rcvNxt {
			if sh.challengeOK(now) {
				c.ackNow = true
				c.wake(sh)
			}
			return
		}
		sh.resetReceived(c)
		return
	}
	// RFC 7323 §4.3: remember the timestamp to echo.
	if c.tsOK && s.opt.HasTS && s.seq.LessThanEq(c.lastAckSent) && int32(s.opt.TSVal-c.tsRecent) >= 0 {
		c.tsRecent = s.opt.TSVal
		c.tsRecentAge = now
	}
	// Fourth: SYN. In SYN-RECEIVED of a passive open it returns the
	// connection to LISTEN (RFC 9293 §3.10.7.4): forget the child, send
	// nothing. Otherwise RFC 5961 §4: a challenge ACK.
	if s.has(wire.FlagSYN) {
		if c.state == StateSynRecv && !c.active {
			sh.destroy(c)
			return
		}
		if sh.challengeOK(now) {
			c.ackNow = true
			c.wake(sh)
		}
		return
	}
	// Fifth: ACK.
	if !s.has(wire.FlagACK) {
		return
	}
	if c.state == StateSynRecv {
		if !s.ack.InRange(c.sndUna+1, c.sndMax+1) {
			sh.replyReset(s, s.ack, 0, wire.FlagRST)
			return
		}
		c.sndWnd = seqnum.Size(s.wnd) << c.sndWS
		c.sndWL1, c.sndWL2 = s.seq, s.ack
		c.maxWnd = max(c.maxWnd, c.sndWnd)
		if !sh.establishPassive(now, c) {
			return
		}
	}
	if !sh.processACK(now, c, s) {
		return
	}
	// Seventh: segment text.
	if len(s.payload) > 0 {
		switch c.state {
		case StateEstablished, StateFinWait1, StateFinWait2:
			if c.state != StateEstablished && (c.appGone || c.ep.rcvShut.Load()) &&
				c.rcvNxt.LessThan(s.seq.Add(seqnum.Size(len(s.payload)))) {
				// RFC 9293 §3.6.1 (SHLD-3): new data after CLOSE (or
				// after shutdown for reading) cannot be delivered:
				// reset to show it was lost, as gVisor and Linux do.
				sh.sendReset(now, c)
				if c.appGone {
					sh.setState(c, StateClose)
					sh.destroy(c)
				} else {
					sh.fail(c, &tcpip.ErrConnectionAborted{})
				}
				return
			}
			sh.receiveData(now, c, s.seq, s.payload)
		}
	}
	// Eighth: FIN. Not again once a FIN was received (CLOSE-WAIT,
	// CLOSING, LAST-ACK, TIME-WAIT remain; RFC 9293 §3.10.7.4): a second
	// FIN at RCV.NXT must not consume sequence space.
	if s.has(wire.FlagFIN) && !c.dead && !c.finRcvd {
		fin := s.seq.Add(seqnum.Size(len(s.payload)))
		switch {
		case fin == c.rcvNxt:
			sh.receiveFin(now, c)
		case c.rcvNxt.LessThan(fin):
			c.oooFin, c.oooFinQ = true, fin
			if len(s.payload) == 0 {
				// Out of order like data: a duplicate ACK at once (RFC
				// 5681 §4.2; receiveData sent it if text came along).
				sh.sendACK(now, c)
				c.wake(sh)
			}
		}
	}
}

// resetReceived applies an acceptable RST (RFC 9293 §3.10.7.4 second).
func (sh *shard) resetReceived(c *conn) {
	switch c.state {
	case StateSynRecv:
		if !c.active {
			// Passive open: back to LISTEN, i.e. forget the child.
			sh.destroy(c)
			return
		}
		sh.fail(c, &tcpip.ErrConnectionRefused{})
	case StateEstablished, StateFinWait1, StateFinWait2:
		sh.stats.EstablishedResets++
		sh.fail(c, &tcpip.ErrConnectionReset{})
	case StateCloseWait:
		// RFC 9293 §3.10.7.4 second: enter CLOSED. The error is gVisor's
		// (handleReset) and Linux's for CLOSE-WAIT: ErrAborted (EPIPE),
		// the endpoint CLOSED rather than in error.
		sh.stats.EstablishedResets++
		if c.ep != nil {
			c.ep.fail(&tcpip.ErrAborted{}, StateClose)
		}
		sh.setState(c, StateClose)
		sh.destroy(c)
	default: // CLOSING, LAST-ACK, TIME-WAIT
		sh.setState(c, StateClose)
		sh.destroy(c)
	}
}

// processACK is the fifth check for a synchronized connection; false means
// drop the rest of the segment.
func (sh *shard) processACK(now monotime.Time, c *conn, s *segment) bool {
	ack := s.ack
	if c.sndMax.LessThan(ack) {
		// RFC 9293: an ACK for something not yet sent: ACK and drop.
		c.ackNow = true
		c.wake(sh)
		return false
	}
	if ack.LessThan(c.sndUna - seqnum.Value(c.maxWnd)) {
		// RFC 5961 §5.2: too old.
		c.ackNow = true
		c.wake(sh)
		return false
	}
	wnd := seqnum.Size(s.wnd) << c.sndWS
	if !ack.LessThan(c.sndUna) {
		c.onSACK(s, ack)
		sh.onProbeACK(c, s, ack, c.inFlight())
	}
	if c.sndUna.LessThan(ack) {
		sh.newAck(now, c, s, ack)
	} else if ack == c.sndUna && len(s.payload) == 0 && !s.has(wire.FlagFIN) &&
		wnd == c.sndWnd && c.sndUna != c.sndMax {
		// RFC 5681 §2 duplicate ACK.
		c.dupAcks++
		switch c.cc.OnDupAck(c.inFlight(), ack, c.sndMax) {
		case congestion.FastRetransmit:
			sh.stats.FastRetransmit++
			if c.sb != nil && !c.sb.Empty() {
				sh.stats.SACKRecovery++
			} else {
				sh.stats.FastRecovery++
			}
			if c.sb != nil {
				c.sb.Next = c.sndUna // a new recovery: nothing resent yet
			}
			c.tlpOut = false // recovery's own cwnd reduction replaces the probe's
			sh.retransmitFirst(now, c)
		case congestion.RetransmitNext:
			sh.retransmitFirst(now, c)
		default:
			if c.cc.State() == congestion.Recovery {
				sh.retransmitHole(now, c)
			}
		}
		c.wake(sh)
	}
	// Window update (RFC 9293 §3.10.7.4, fifth check): only from an
	// acceptable ACK (SND.UNA =< SEG.ACK), then by SND.WL1/SND.WL2.
	if !ack.LessThan(c.sndUna) && (c.sndWL1.LessThan(s.seq) || (c.sndWL1 == s.seq && c.sndWL2.LessThanEq(ack))) {
		if wnd > c.sndWnd {
			c.wake(sh)
		}
		c.sndWnd = wnd
		c.sndWL1, c.sndWL2 = s.seq, ack
		c.maxWnd = max(c.maxWnd, wnd)
		if wnd > 0 {
			c.persistAt, c.persistN = 0, 0
		}
	}
	finAcked := c.finSent && c.sndUna == c.finSeq+1
	switch c.state {
	case StateFinWait1:
		if finAcked {
			sh.setState(c, StateFinWait2)
			if c.appGone {
				c.closeAt = now.Add(c.finWait2Wait(sh.p.options().lingerTimeout))
			}
		}
	case StateClosing:
		if finAcked {
			sh.enterTimeWait(now, c)
		}
	case StateLastAck:
		if finAcked {
			sh.setState(c, StateClose)
			sh.destroy(c)
			return false
		}
	}
	return true
}

// newAck handles an ACK that advances SND.UNA.
func (sh *shard) newAck(now monotime.Time, c *conn, s *segment, ack seqnum.Value) {
	flight := c.inFlight()
	acked := int(c.sndUna.Size(ack))
	// Data octets acknowledged: those in [sndBase, ack) up to the end of
	// the queue; the one octet beyond it is our FIN (even if an RTO had
	// rewound SND.NXT below it and the ACK for it arrived late).
	dataEnd := ack
	if c.ep != nil {
		if q := c.sndBase.Add(seqnum.Size(c.ep.sndq.Len())); q.LessThan(ack) {
			dataEnd = q
			if c.finQ {
				c.finSent, c.finSeq = true, q
			}
		}
	} else {
		dataEnd = c.sndBase
	}
	if c.sndBase.LessThan(dataEnd) && c.ep != nil {
		n := int(c.sndBase.Size(dataEnd))
		c.ep.sndq.Discard(n)
		c.sndBase = dataEnd
		c.notify |= waiter.WritableEvents
	}
	// RTT: timestamps give a sample per ACK (RFC 7323 §4.1); otherwise
	// the one timed segment, never a retransmitted one (Karn).
	if c.tsOK && s.opt.HasTS && s.opt.TSEcr != 0 {
		c.sampleTS(now, s.opt.TSEcr)
		c.backoffs = 0
	} else if c.rttTiming && c.rttSeq.LessThan(ack) {
		c.rtt.Sample(now.Sub(c.rttStart))
		c.rttTiming = false
		c.backoffs = 0
	}
	c.sndUna = ack
	if c.sndNxt.LessThan(ack) {
		c.sndNxt = ack
	}
	if c.sb != nil {
		c.sb.Ack(ack)
	}
	c.dupAcks = 0
	if c.cc.OnAck(acked, ack, flight) == congestion.RetransmitNext &&
		(c.sb == nil || !c.sndUna.LessThan(c.sb.Next)) {
		// RFC 6582 partial ACK: resend the first unacknowledged segment,
		// unless SACK recovery already resent it (RFC 6675: once per
		// recovery).
		sh.retransmitFirst(now, c)
	}
	// RFC 6298 §5.2-5.3: stop or restart the timer.
	if c.sndUna == c.sndMax {
		c.setRTO(0)
	} else {
		c.setRTO(now.Add(c.rtt.RTO()))
	}
	c.wake(sh)
}

// receiveData is the seventh check: text at seq.
func (sh *shard) receiveData(now monotime.Time, c *conn, seq seqnum.Value, data []byte) {
	if c.ep == nil {
		return
	}
	if seq.LessThan(c.rcvNxt) {
		d := int(seq.Size(c.rcvNxt))
		if d >= len(data) {
			c.ackNow = true
			c.wake(sh)
			return
		}
		data, seq = data[d:], c.rcvNxt
	}
	if edge := c.rcvNxt.Add(c.rcvWnd()); edge.LessThan(seq.Add(seqnum.Size(len(data)))) {
		if !seq.LessThan(edge) {
			c.ackNow = true
			c.wake(sh)
			return
		}
		data = data[:seq.Size(edge)]
	}
	if len(data) == 0 {
		return
	}
	if seq != c.rcvNxt {
		// Out of order: keep it and send a duplicate ACK now, one per
		// segment (RFC 5681 §4.2). Deliberately not coalesced with the
		// batch's other ACKs: without SACK, the sender counts duplicate
		// ACKs to detect the loss (§3.2 fast retransmit).
		c.reasm.Insert(seq, data)
		c.noteSACK(seq)
		sh.sendACK(now, c)
		c.wake(sh)
		return
	}
	deliver := c.ep.rcvq.Write
	if c.ep.rcvShut.Load() {
		// After shutdown(SHUT_RD) text is still acknowledged, then
		// discarded (as Linux and gVisor): dropping it unacknowledged
		// would leave the peer retransmitting until it gives up.
		deliver = discard
	}
	n := deliver(data)
	c.rcvNxt = c.rcvNxt.Add(seqnum.Size(n))
	if !c.reasm.Empty() {
		// Filling a hole: ACK at once (RFC 5681 §4.2).
		c.rcvNxt = c.reasm.Pop(c.rcvNxt, deliver)
		c.ackNow = true
	}
	c.notify |= waiter.ReadableEvents
	c.unacked += n
	c.ackPending = true
	// RFC 9293 §3.8.6.3 / RFC 1122 §4.2.3.2: ACK every second full-sized
	// segment, otherwise within the delayed-ACK time; TCP_QUICKACK (kept
	// on until cleared, as the socket option reads) turns the delay off.
	if c.unacked >= 2*c.mss || c.ep.ops.GetQuickAck() {
		c.ackNow = true
	} else if c.delackAt == 0 {
		c.delackAt = now.Add(delayedACKTimeout)
	}
	c.wake(sh)
}

// discard consumes text nobody will read.
func discard(b []byte) int { return len(b) }

// receiveFin is the eighth check: the FIN at RCV.NXT.
func (sh *shard) receiveFin(now monotime.Time, c *conn) {
	c.rcvNxt++
	c.finRcvd = true
	c.ackNow = true
	if c.ep != nil {
		c.ep.rcvClosed.Store(true)
	}
	c.notify |= waiter.ReadableEvents | waiter.EventRdHUp
	switch c.state {
	case StateSynRecv, StateEstablished:
		sh.setState(c, StateCloseWait)
	case StateFinWait1:
		if c.finSent && c.sndUna == c.finSeq+1 {
			sh.enterTimeWait(now, c)
		} else {
			sh.setState(c, StateClosing)
		}
	case StateFinWait2:
		sh.enterTimeWait(now, c)
	}
	c.wake(sh)
}
