package batchtcp

import (
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/batchtcp/internal/congestion"
	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// output is a conn's end-of-batch send pass: data and FIN as the windows
// and Nagle allow, then at most one pure ACK if nothing else carried it
// (event batching: one ACK per connection per batch).
func (sh *shard) output(now monotime.Time, c *conn) {
	sent := false
	switch c.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateLastAck, StateClosing:
		sent = sh.sendData(now, c)
	}
	if c.dead {
		return
	}
	// Window updates are decided when the application reads
	// (handleEvents); the jump from the unscaled SYN window to the scaled
	// one is not announced on its own, as Linux does not.
	if !sent && (c.ackNow || (c.ackPending && c.delackAt != 0 && c.delackAt <= now)) {
		sh.sendACK(now, c)
	}
	sh.armKeepalive(now, c)
	c.publishInfo()
}

// publishInfo stores the TCP_INFO figures for the application.
func (c *conn) publishInfo() {
	e := c.ep
	if e == nil {
		return
	}
	e.infoRTT.Store(int64(c.rtt.SRTT()))
	e.infoRTTVar.Store(int64(c.rtt.RTTVar()))
	e.infoRTO.Store(int64(c.rtt.RTO()))
	mss := uint64(max(c.mss, 1))
	e.infoMSS.Store(int32(c.mss))
	e.infoCwnd.Store(uint64(c.cc.Window())/mss<<32 | min(uint64(c.cc.Ssthresh())/mss, 0xffffffff))
	e.infoCC.Store(uint32(ccState(c.cc.State())))
}

// sendData sends what SND.WND and the congestion window allow; true if a
// segment left (it carries the ACK).
func (sh *shard) sendData(now monotime.Time, c *conn) bool {
	if c.ep == nil {
		return false
	}
	sent := false
	nagle := c.ep.ops.GetDelayOption()
	dataEnd := c.sndBase.Add(seqnum.Size(c.ep.sndq.Len()))
	for c.sndNxt.LessThan(dataEnd) {
		wnd := min(int(c.sndWnd), c.cc.Window()+c.limitedTransmit())
		usable := wnd - c.inFlight()
		remaining := int(c.sndNxt.Size(dataEnd))
		n := min(c.mss, remaining, usable)
		if n <= 0 {
			break
		}
		fresh := !c.sndNxt.LessThan(c.sndMax)
		// RFC 9293 §3.7.4 (Nagle): hold a small segment while data is
		// unacknowledged, unless TCP_NODELAY or the FIN follows it.
		if fresh && n < c.mss && n == remaining && nagle && c.sndUna != c.sndNxt && !c.finQ {
			break
		}
		// RFC 9293 §3.8.6.2.1 sender SWS avoidance: do not send a
		// window-limited runt; the persist timer covers a stuck window.
		if fresh && n < c.mss && n < remaining && n < int(c.maxWnd)/2 && c.sndUna != c.sndNxt {
			break
		}
		fin := c.finQ && n == remaining
		seq := c.sndNxt
		sh.sendSegment(now, c, wire.FlagACK|pshIf(n == remaining), seq, n, fin)
		if !fresh {
			sh.stats.Retransmits++
			if c.cc.State() != 0 {
				sh.stats.SlowStartRetransmits++
			}
		} else if !c.tsOK && !c.rttTiming {
			c.rttTiming, c.rttSeq, c.rttStart = true, seq, now
		}
		c.sndNxt = seq.Add(seqnum.Size(n))
		if fin {
			c.finSeq, c.finSent = c.sndNxt, true
			c.sndNxt++
		}
		if c.sndMax.LessThan(c.sndNxt) {
			c.sndMax = c.sndNxt
		}
		if c.rtoAt == 0 || c.tlpArmed {
			// A probe timeout restarts with new data (RFC 8985 §7.2);
			// the output pass arms it again from now (armPTO).
			c.setRTO(now.Add(c.rtt.RTO()))
		}
		sent = true
	}
	// A FIN with no data before it, or after the last data segment left.
	if c.finQ && !c.finSent && c.sndNxt == dataEnd {
		sh.sendSegment(now, c, wire.FlagACK|wire.FlagFIN, c.sndNxt, 0, false)
		c.finSeq, c.finSent = c.sndNxt, true
		c.sndNxt++
		if c.sndMax.LessThan(c.sndNxt) {
			c.sndMax = c.sndNxt
		}
		if c.rtoAt == 0 {
			c.setRTO(now.Add(c.rtt.RTO()))
		}
		sent = true
	}
	// RFC 9293 §3.8.6.1: a zero window with data waiting arms the persist
	// timer when nothing is in flight to elicit a window update.
	if c.sndNxt.LessThan(dataEnd) && c.sndWnd == 0 && c.sndUna == c.sndNxt && c.persistAt == 0 {
		c.persistAt = now.Add(c.persistInterval())
	}
	if sent {
		c.lastSend = now
	}
	return sent
}

// limitedTransmit is RFC 3042 §2: on the first two duplicate ACKs, up to
// two new segments beyond cwnd, so that a small window still produces the
// three duplicate ACKs fast retransmit needs.
func (c *conn) limitedTransmit() int {
	if c.cc.State() != congestion.Disorder {
		return 0
	}
	return min(c.dupAcks, 2) * c.mss
}

func pshIf(b bool) uint8 {
	if b {
		return wire.FlagPSH
	}
	return 0
}

// persistInterval is the RTO backed off per probe, within bounds.
func (c *conn) persistInterval() (d time.Duration) {
	d = c.rtt.RTO() << min(c.persistN, 10)
	return max(minPersist, min(d, maxPersist))
}

// wantWindowUpdate reports whether the application has read enough since
// the last advertisement to announce the larger window (RFC 9293
// §3.8.6.2.2: only by a full MSS or half the buffer).
func (c *conn) wantWindowUpdate() bool {
	if c.ep == nil || !c.state.synchronized() || c.finRcvd {
		return false
	}
	// The window field cannot say more than 65535 << shift (RFC 7323
	// §2.3): room beyond that is no update to announce.
	free := min(c.ep.rcvq.Free(), 0xffff<<c.rcvWS)
	cur := int(c.rcvWnd())
	thresh := min(c.ep.rcvq.Limit()/2, 2*c.mss)
	return free-cur >= thresh
}

// advertise computes the window field, never moving the right edge left
// (RFC 9293 §3.8.6.2.2) and avoiding receiver SWS.
func (c *conn) advertise() uint16 {
	cur := int(c.rcvWnd()) // RCV.WND as last offered, less what arrived
	free := cur
	if c.ep != nil {
		free = min(c.ep.rcvq.Free(), 0xffff<<c.rcvWS)
		// RFC 9293 §3.8.6.2.2 receiver SWS avoidance: move the right edge
		// only by at least min(RCV.BUFF/2, Eff.snd.MSS). Between such
		// moves the edge stays put, so successive ACKs (duplicate ACKs
		// above all, RFC 5681 §2) carry the same window.
		if free-cur < min(c.ep.rcvq.Limit()/2, c.mss) {
			free = cur
		}
	}
	edge := c.rcvNxt.Add(seqnum.Size(free))
	if edge.LessThan(c.rcvAdv) {
		edge = c.rcvAdv
	}
	wnd := int(c.rcvNxt.Size(edge)) >> c.rcvWS
	if c.rcvNxt.Add(seqnum.Size(wnd << c.rcvWS)).LessThan(c.rcvAdv) {
		// RFC 9293 §3.8.6.2.2 (SHLD-14), RFC 7323 §2.4: rounding down to
		// the scale granularity must not retract the edge already
		// offered; round up instead (as Linux's tcp_select_window).
		wnd++
	}
	if wnd > 0xffff {
		wnd = 0xffff
	}
	c.rcvAdv = c.rcvNxt.Add(seqnum.Size(wnd << c.rcvWS))
	if c.ep != nil {
		c.ep.advWnd.Store(int64(wnd << c.rcvWS))
	}
	return uint16(wnd)
}

// sendACK sends a pure ACK.
func (sh *shard) sendACK(now monotime.Time, c *conn) {
	sh.sendSegment(now, c, wire.FlagACK, c.sndNxt, 0, false)
}

// sendSYN sends our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), with
// options (RFC 9293 §3.7.1 MSS, RFC 7323 WS and TS, RFC 2018 SACK-permitted).
func (sh *shard) sendSYN(now monotime.Time, c *conn) {
	flags := wire.FlagSYN
	if c.state == StateSynRecv {
		flags |= wire.FlagACK
	}
	var o wire.Options
	o.HasMSS = true
	o.MSS = uint16(min(c.localMSS(), 0xffff))
	o.WS = -1
	if c.state == StateSynSent || c.wsOK {
		o.WS = int8(c.rcvWS)
	}
	if c.state == StateSynSent || c.tsOK {
		o.HasTS = true
		o.TSVal = c.tsVal(now)
		o.TSEcr = c.tsRecent
	}
	o.SACKPermitted = c.sackOK // RFC 2018 §2: offered, or agreed
	sh.emit(c, flags, c.iss, &o, 0, 0, c.synWindow())
	if flags&wire.FlagACK != 0 {
		c.lastAckSent = c.rcvNxt // RFC 7323 §4.3 Last.ACK.sent
	}
	c.lastSend = now
}

// synWindow is the unscaled window of a SYN (RFC 7323 §2.2).
func (c *conn) synWindow() uint16 {
	w := int(c.rcvWnd())
	if c.state == StateSynSent {
		w = c.ep.rcvBufSize()
	}
	return uint16(min(w, 0xffff))
}

// sendSegment sends a non-SYN segment of n data octets from the send
// queue at seq (plus FIN when fin).
func (sh *shard) sendSegment(now monotime.Time, c *conn, flags uint8, seq seqnum.Value, n int, fin bool) {
	sh.sendSegmentDSACK(now, c, flags, seq, n, fin, nil)
}

// sendSegmentDSACK is sendSegment; a pure ACK given dsack reports it as its
// first SACK block (RFC 2883 §4).
func (sh *shard) sendSegmentDSACK(now monotime.Time, c *conn, flags uint8, seq seqnum.Value, n int, fin bool, dsack *wire.SACKBlock) {
	if fin {
		flags |= wire.FlagFIN
	}
	var o wire.Options
	o.WS = -1
	if c.tsOK {
		o.HasTS = true
		o.TSVal = c.tsVal(now)
		o.TSEcr = c.tsRecent
	}
	off := 0
	if n > 0 {
		off = int(c.sndBase.Size(seq))
	} else if flags&wire.FlagACK != 0 {
		// Pure ACKs only: data segments are sized to the MSS less the
		// fixed options, with no room for blocks.
		if dsack != nil {
			o.SACK[0], o.NumSACK = *dsack, 1
		}
		c.addSACK(&o)
	}
	wnd := c.advertise()
	sh.emit(c, flags, seq, &o, off, n, wnd)
	if flags&wire.FlagACK != 0 {
		c.lastAckSent = c.rcvNxt
		c.ackNow, c.ackPending, c.unacked, c.delackAt = false, false, 0, 0
	}
}

// emit builds one segment and hands it to the route; the NIC's batching
// queueing discipline holds it until the shard's batch ends.
func (sh *shard) emit(c *conn, flags uint8, seq seqnum.Value, o *wire.Options, off, n int, wnd uint16) {
	h := wire.Header{
		SrcPort: c.id.LocalPort,
		DstPort: c.id.RemotePort,
		Seq:     uint32(seq),
		Flags:   flags,
		Window:  wnd,
	}
	if flags&wire.FlagACK != 0 {
		h.Ack = uint32(c.rcvNxt)
	}
	var payload buffer.Buffer
	if n > 0 {
		v := buffer.NewViewSize(n)
		c.ep.sndq.Peek(off, v.AsSlice())
		payload = buffer.MakeWithView(v)
	}
	sh.write(c.route, c.hash, &h, o, payload)
}

// write encodes h and o in front of payload and sends it on r.
func (sh *shard) write(r *stack.Route, hash uint32, h *wire.Header, o *wire.Options, payload buffer.Buffer) {
	hl := wire.HeaderLen + wire.OptionsLen(o)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: hl + int(r.MaxHeaderLength()),
		Payload:            payload,
	})
	defer pkt.DecRef()
	b := pkt.TransportHeader().Push(hl)
	wire.Put(b, h, o)
	pkt.TransportProtocolNumber = ProtocolNumber
	pkt.Hash = hash
	if r.RequiresTXTransportChecksum() {
		xsum := r.PseudoHeaderChecksum(ProtocolNumber, uint16(pkt.Size()))
		xsum = checksum.Combine(xsum, pkt.Data().Checksum())
		wire.SetChecksum(b, ^header.TCP(b).CalculateChecksum(xsum))
	}
	if err := r.WritePacket(stack.NetworkHeaderParams{Protocol: ProtocolNumber, TTL: r.DefaultTTL(), TOS: 0, DF: true}, pkt); err != nil {
		sh.stats.SegmentSendErrors++
		return
	}
	sh.stats.SegmentsSent++
	if h.Flags&wire.FlagRST != 0 {
		sh.stats.ResetsSent++
	}
}

// replyReset answers a segment that has no acceptable connection with a
// RST (RFC 9293 §3.10.7.1 and §3.5.2), routed back to its sender.
func (sh *shard) replyReset(s *segment, seq, ack seqnum.Value, flags uint8) {
	r, err := sh.p.stack.FindRoute(s.nic, s.id.LocalAddress, s.id.RemoteAddress, s.netProto, false)
	if err != nil {
		return
	}
	defer r.Release()
	h := wire.Header{SrcPort: s.id.LocalPort, DstPort: s.id.RemotePort, Seq: uint32(seq), Ack: uint32(ack), Flags: flags}
	o := wire.Options{WS: -1}
	sh.write(r, sh.p.hasher.hashID(s.id), &h, &o, buffer.Buffer{})
}

// sendReset sends a RST on a connection (ABORT, RFC 9293 §3.10.5), with
// timestamps once negotiated (RFC 7323 §3.2, as Linux).
func (sh *shard) sendReset(now monotime.Time, c *conn) {
	o := wire.Options{WS: -1}
	if c.tsOK {
		o.HasTS, o.TSVal, o.TSEcr = true, c.tsVal(now), c.tsRecent
	}
	h := wire.Header{SrcPort: c.id.LocalPort, DstPort: c.id.RemotePort, Seq: uint32(c.sndMax), Ack: uint32(c.rcvNxt), Flags: wire.FlagRST | wire.FlagACK}
	if c.state == StateSynSent {
		return
	}
	sh.write(c.route, c.hash, &h, &o, buffer.Buffer{})
}

// sendProbe sends a zero-window or keepalive probe: an empty segment one
// below SND.NXT that the peer must ACK (RFC 1122 §4.2.3.6, as Linux).
func (sh *shard) sendProbe(now monotime.Time, c *conn) {
	sh.sendSegment(now, c, wire.FlagACK, c.sndUna-1, 0, false)
}

// retransmitFirst resends the segment at SND.UNA (fast retransmit, RFC
// 5681 §3.2; partial ACK, RFC 6582 §3.2 step 4).
func (sh *shard) retransmitFirst(now monotime.Time, c *conn) {
	if c.ep == nil {
		return
	}
	dataEnd := c.sndBase.Add(seqnum.Size(c.ep.sndq.Len()))
	if c.sndUna.LessThan(dataEnd) {
		n := min(c.mss, int(c.sndUna.Size(dataEnd)))
		fin := c.finSent && c.sndUna.Add(seqnum.Size(n)) == c.finSeq
		sh.sendSegment(now, c, wire.FlagACK, c.sndUna, n, fin)
		if next := c.sndUna.Add(seqnum.Size(n)); c.sb != nil && c.sb.Next.LessThan(next) {
			c.sb.Next = next // holes after it next
		}
	} else if c.finSent {
		sh.sendSegment(now, c, wire.FlagACK|wire.FlagFIN, c.finSeq, 0, false)
	} else {
		return
	}
	sh.stats.Retransmits++
	c.rttTiming = false
	c.setRTO(now.Add(c.rtt.RTO()))
}

// ccState maps our congestion state to gVisor's TCP_INFO numbering.
func ccState(s congestion.State) tcpip.CongestionControlState {
	switch s {
	case congestion.Recovery:
		return tcpip.FastRecovery
	case congestion.Loss:
		return tcpip.RTORecovery
	case congestion.Disorder:
		return tcpip.Disorder
	}
	return tcpip.Open
}
