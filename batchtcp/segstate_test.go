package batchtcp_test

// Segment arrival per connection state, RFC 9293 §3.10.7: CLOSED, LISTEN,
// SYN-SENT, SYN-RECEIVED and the closing states.

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// RFC 9293 §3.10.7.1: CLOSED. A SYN gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><RST,ACK>.
func TestClosedSYNGetsRSTACK(t *testing.T) {
	h := newHarness(t, hopt{})
	h.inject(seg{src: 5000, dst: 81, flags: fSYN, seq: 100, wnd: 1000})
	h.expect(fRST|fACK, 0, 101)
}

// RFC 9293 §3.10.7.1: SEG.LEN counts the text and the FIN.
func TestClosedDataFINGetsRSTACK(t *testing.T) {
	h := newHarness(t, hopt{})
	h.inject(seg{src: 5000, dst: 81, flags: fFIN | fPSH, seq: 100, wnd: 1000, payload: []byte("hello")})
	h.expect(fRST|fACK, 0, 106)
}

// RFC 9293 §3.10.7.1: an ACK gets <SEQ=SEG.ACK><CTL=RST>.
func TestClosedACKGetsRST(t *testing.T) {
	h := newHarness(t, hopt{})
	h.inject(seg{src: 5000, dst: 81, flags: fACK, seq: 100, ack: 5555, wnd: 1000})
	s := h.expect(fRST, 5555, 0)
	if s.src != 81 || s.dst != 5000 {
		t.Fatalf("RST on ports %d>%d", s.src, s.dst)
	}
}

// RFC 9293 §3.10.7.1: an incoming RST is discarded.
func TestClosedRSTIgnored(t *testing.T) {
	h := newHarness(t, hopt{})
	h.inject(seg{src: 5000, dst: 81, flags: fRST, seq: 100})
	h.inject(seg{src: 5000, dst: 81, flags: fRST | fACK, seq: 100, ack: 7})
	h.recvNothing()
}

// RFC 9293 §3.10.7.2 first: a RST to a listener is ignored.
func TestListenRSTIgnored(t *testing.T) {
	h, _ := listen(t)
	h.inject(seg{src: 5000, dst: listenPort, flags: fRST, seq: 100})
	h.recvNothing()
}

// RFC 9293 §3.10.7.2 second: an ACK to a listener gets <SEQ=SEG.ACK><RST>.
func TestListenACKGetsRST(t *testing.T) {
	h, _ := listen(t)
	h.inject(seg{src: 5000, dst: listenPort, flags: fACK, seq: 100, ack: 777, wnd: 100})
	h.expect(fRST, 777, 0)
}

// RFC 9293 §3.10.7.2 third: a SYN gets a SYN-ACK carrying MSS (§3.7.1), and
// window scale and timestamps only because the SYN offered them (RFC 7323
// §1.3: WS and TS are sent in a SYN-ACK only in reply to them).
func TestListenSYNOptionsOffered(t *testing.T) {
	h, _ := listen(t)
	h.inject(seg{src: 5000, dst: listenPort, flags: fSYN, seq: 100, wnd: 100,
		opt: wire.Options{HasMSS: true, MSS: 1400, WS: 7, HasTS: true, TSVal: 42}})
	s := h.recv()
	if s.flags != fSYN|fACK || s.ack != 101 {
		t.Fatalf("got %v, want SYN-ACK ack=101", s)
	}
	if !s.opt.HasMSS || s.opt.MSS != linkMTU-40 {
		t.Errorf("MSS option %v/%d, want %d", s.opt.HasMSS, s.opt.MSS, linkMTU-40)
	}
	if s.opt.WS < 0 || s.opt.WS > wire.MaxWindowShift {
		t.Errorf("window scale %d, want an RFC 7323 shift", s.opt.WS)
	}
	if !s.opt.HasTS || s.opt.TSEcr != 42 {
		t.Errorf("timestamps %v ecr=%d, want echo of 42", s.opt.HasTS, s.opt.TSEcr)
	}
}

func TestListenSYNNoOptions(t *testing.T) {
	h, _ := listen(t)
	h.inject(seg{src: 5000, dst: listenPort, flags: fSYN, seq: 100, wnd: 100})
	s := h.recv()
	if s.flags != fSYN|fACK || s.ack != 101 {
		t.Fatalf("got %v, want SYN-ACK ack=101", s)
	}
	if !s.opt.HasMSS {
		t.Errorf("SYN-ACK without MSS")
	}
	if s.opt.WS >= 0 || s.opt.HasTS {
		t.Errorf("SYN-ACK %v has WS/TS the SYN did not offer", s)
	}
}

// RFC 9293 §3.10.7.2 third (and gVisor): a SYN carrying FIN to a listener
// is a SYN; the FIN is not processed (it would wait for SYN-RECEIVED, where
// a segment without ACK is dropped), so the SYN-ACK acknowledges the SYN only.
func TestListenSYNFINIsSYN(t *testing.T) {
	h, _ := listen(t)
	h.inject(seg{src: 5000, dst: listenPort, flags: fSYN | fFIN, seq: 100, wnd: 100})
	s := h.recv()
	if s.flags != fSYN|fACK || s.ack != 101 {
		t.Fatalf("got %v, want SYN-ACK ack=101", s)
	}
}

// A full backlog drops the SYN (as Linux and gVisor), counted in
// ListenOverflowSynDrop; the peer retransmits later.
func TestListenBacklogFullDropsSYN(t *testing.T) {
	h := newHarness(t, hopt{})
	lep := h.listen(1)
	h.synRcvdOn(lep, h.newConn())
	before := h.s.Stats().TCP.ListenOverflowSynDrop.Value()
	h.inject(seg{src: 6000, dst: listenPort, flags: fSYN, seq: 100, wnd: 100})
	h.recvNothing()
	waitFor(t, "ListenOverflowSynDrop", func() bool {
		return h.s.Stats().TCP.ListenOverflowSynDrop.Value() == before+1
	})
}

// RFC 9293 §3.10.7.3 first: an unacceptable ACK (SEG.ACK =< ISS or
// SEG.ACK > SND.NXT) gets <SEQ=SEG.ACK><CTL=RST>; the state is unchanged.
func TestSynSentBadAckRST(t *testing.T) {
	c, _ := synSent(t)
	for _, ack := range []uint32{c.iss, c.iss + 2, c.iss - 1000} {
		c.sendAt(fSYN|fACK, c.seq, ack, nil)
		c.harness.expect(fRST, ack, 0)
	}
	if c.state() != stSynSent {
		t.Fatalf("state %d, want SYN-SENT", c.state())
	}
	// A bad ACK with RST is dropped silently.
	c.sendAt(fRST|fACK, c.seq, c.iss, nil)
	c.recvNothing()
	if c.state() != stSynSent {
		t.Fatalf("state %d, want SYN-SENT", c.state())
	}
}

// RFC 9293 §3.10.7.3 second: a RST with an acceptable ACK refuses the
// connection.
func TestSynSentRSTGoodAckRefused(t *testing.T) {
	c, _ := synSent(t)
	c.sendAt(fRST|fACK, 0, c.iss+1, nil)
	c.waitState(stError)
	if err := c.ep.LastError(); !isErr[*tcpip.ErrConnectionRefused](err) {
		t.Fatalf("LastError = %v, want ErrConnectionRefused", err)
	}
	c.recvNothing()
}

// RFC 9293 §3.10.7.3 second: a RST without ACK is dropped (RFC 5961 §3.2
// keeps this for SYN-SENT).
func TestSynSentRSTNoAckIgnored(t *testing.T) {
	c, _ := synSent(t)
	c.sendAt(fRST, c.seq, 0, nil)
	c.recvNothing()
	if c.state() != stSynSent {
		t.Fatalf("state %d, want SYN-SENT", c.state())
	}
	c.sendAt(fSYN|fACK, c.seq, c.ack, nil)
	c.seq++
	c.expectACK()
	c.waitState(stEstablished)
}

// RFC 9293 §3.10.7.3 fourth: SYN-ACK acknowledging our SYN: ACK it and
// enter ESTABLISHED. Our SYN offered MSS, WS and TS (RFC 7323 §2.2, §3.2).
func TestSynSentSynAckEstablishes(t *testing.T) {
	c, syn := synSent(t)
	if !syn.opt.HasMSS || syn.opt.WS < 0 || !syn.opt.HasTS {
		t.Errorf("SYN %v lacks MSS/WS/TS", syn)
	}
	c.sendAt(fSYN|fACK, c.seq, c.ack, nil)
	c.seq++
	c.expectACK()
	c.waitState(stEstablished)
	// Data flows both ways.
	c.write([]byte("ping"))
	c.expect(fACK|fPSH, c.ack, c.seq)
	c.ack += 4
	c.send(fACK|fPSH, []byte("pong"))
	c.seq += 4
	if got := c.readN(4); string(got) != "pong" {
		t.Fatalf("read %q", got)
	}
}

// RFC 9293 §3.5 Figure 8: a bare SYN in SYN-SENT is a simultaneous open:
// SYN-ACK, SYN-RECEIVED; the peer's SYN-ACK then completes it.
func TestSynSentSimultaneousOpen(t *testing.T) {
	c, _ := synSent(t)
	c.sendAt(fSYN, c.seq, 0, nil)
	c.seq++
	c.expect(fSYN|fACK, c.iss, c.seq)
	c.waitState(stSynRecv)
	c.sendAt(fSYN|fACK, c.seq-1, c.ack, nil)
	c.waitState(stEstablished)
	c.send(fACK|fPSH, []byte("x"))
	c.seq++
	if got := c.readN(1); string(got) != "x" {
		t.Fatalf("read %q", got)
	}
}

// Simultaneous open completed by a plain ACK (RFC 9293 §3.10.7.4 fifth).
func TestSynSentSimultaneousOpenACK(t *testing.T) {
	c, _ := synSent(t)
	c.sendAt(fSYN, c.seq, 0, nil)
	c.seq++
	c.expect(fSYN|fACK, c.iss, c.seq)
	c.send(fACK, nil)
	c.waitState(stEstablished)
}

// SYN-RECEIVED, RFC 9293 §3.10.7.4 fifth: the ACK of our SYN establishes
// the connection and Accept returns it.
func TestSynRcvdACKCompletes(t *testing.T) {
	c := synRcvd(t)
	if _, _, err := c.lep.Accept(nil); !isErr[*tcpip.ErrWouldBlock](err) {
		t.Fatalf("Accept before the ACK = %v, want ErrWouldBlock", err)
	}
	c.accept()
	c.recvNothing() // a pure ACK is not acknowledged
}

// RFC 9293 §3.10.7.4 fifth, SYN-RECEIVED: an unacceptable ACK gets
// <SEQ=SEG.ACK><CTL=RST>.
func TestSynRcvdBadAckRST(t *testing.T) {
	c := synRcvd(t)
	for _, ack := range []uint32{c.iss, c.iss + 2} {
		c.sendAt(fACK, c.seq, ack, nil)
		c.harness.expect(fRST, ack, 0)
	}
	c.accept() // still in SYN-RECEIVED
}

// RFC 9293 §3.10.7.4 second: a RST in SYN-RECEIVED of a passive open
// returns to LISTEN: the child is gone.
func TestSynRcvdRSTRemovesChild(t *testing.T) {
	c := synRcvd(t)
	c.send(fRST, nil)
	c.recvNothing()
	c.send(fACK, nil) // now a listener's ACK: RST
	c.harness.expect(fRST, c.ack, 0)
	if _, _, err := c.lep.Accept(nil); !isErr[*tcpip.ErrWouldBlock](err) {
		t.Fatalf("Accept = %v, want ErrWouldBlock", err)
	}
}

// A retransmitted SYN in SYN-RECEIVED (our SYN-ACK was lost) gets the
// SYN-ACK again, as Linux and gVisor do.
func TestSynRcvdRetransmittedSYN(t *testing.T) {
	c := synRcvd(t)
	c.sendAt(fSYN, c.seq-1, 0, nil)
	s := c.harness.expect(fSYN|fACK, c.iss, c.seq)
	if !s.opt.HasMSS {
		t.Errorf("retransmitted SYN-ACK without MSS")
	}
	c.accept()
}

// RFC 6298 §5: the SYN-ACK is retransmitted on the RTO (1 s initial,
// RFC 6298 §2.1), backing off.
func TestSynRcvdSynAckRTO(t *testing.T) {
	c := synRcvd(t)
	c.advance(990 * time.Millisecond)
	c.recvNothing()
	c.advance(10 * time.Millisecond)
	c.harness.expect(fSYN|fACK, c.iss, c.seq)
	c.advance(2 * time.Second)
	c.harness.expect(fSYN|fACK, c.iss, c.seq)
	c.accept()
}

// RFC 9293 §3.10.7.4 fifth, FIN-WAIT-1: the ACK of our FIN moves to
// FIN-WAIT-2.
func TestFinWait1AckToFinWait2(t *testing.T) {
	c := finWait1(t)
	c.sendAt(fACK, c.seq, c.ack-1, nil) // not yet our FIN
	c.recvNothing()
	if c.state() != stFinWait1 {
		t.Fatalf("state %d, want FIN-WAIT-1", c.state())
	}
	c.send(fACK, nil)
	c.waitState(stFinWait2)
	c.recvNothing()
}

// RFC 9293 §3.10.7.4 eighth, FIN-WAIT-1: a FIN that also ACKs ours enters
// TIME-WAIT.
func TestFinWait1FinAckToTimeWait(t *testing.T) {
	c := finWait1(t)
	c.send(fFIN|fACK, nil)
	c.seq++
	c.expectACK()
	c.waitState(stTimeWait)
}

// RFC 9293 §3.5 Figure 13: simultaneous close, FIN-WAIT-1 -> CLOSING ->
// TIME-WAIT when our FIN is acknowledged.
func TestClosingAckToTimeWait(t *testing.T) {
	c := closing(t)
	c.send(fACK, nil)
	c.waitState(stTimeWait)
	c.recvNothing()
}

// FIN-WAIT-1 retransmits the FIN on the RTO (RFC 6298 §5.4).
func TestFinWait1FINRetransmit(t *testing.T) {
	c := finWait1(t)
	c.advance(time.Second)
	c.expect(fFIN|fACK, c.ack-1, c.seq)
}

// RFC 9293 §3.10.7.4 seventh: FIN-WAIT-2 still receives text.
func TestFinWait2ReceivesData(t *testing.T) {
	c := finWait2(t)
	c.send(fACK|fPSH, []byte("late"))
	c.seq += 4
	if got := c.readN(4); string(got) != "late" {
		t.Fatalf("read %q", got)
	}
	c.send(fFIN|fACK, nil)
	c.seq++
	c.expectACK()
	c.waitState(stTimeWait)
}

// CLOSE-WAIT: Read reports end of stream; the application may still send.
func TestCloseWaitEOFAndSend(t *testing.T) {
	c := closeWait(t)
	if err := c.readErr(); !isErr[*tcpip.ErrClosedForReceive](err) {
		t.Fatalf("Read = %v, want ErrClosedForReceive", err)
	}
	c.write([]byte("bye"))
	c.expect(fACK|fPSH, c.ack, c.seq)
	c.ack += 3
}

// RFC 9293 §3.10.7.4 fifth, LAST-ACK: the ACK of our FIN closes; later
// segments find no connection (§3.10.7.1).
func TestLastAckAckCloses(t *testing.T) {
	c := lastAck(t)
	c.send(fACK, nil)
	c.waitState(stClose)
	c.send(fACK, nil)
	c.harness.expect(fRST, c.ack, 0)
}

func TestLastAckFINRetransmit(t *testing.T) {
	c := lastAck(t)
	c.advance(time.Second)
	c.expect(fFIN|fACK, c.ack-1, c.seq)
	c.send(fACK, nil)
	c.waitState(stClose)
}

// RFC 9293 §3.10.7.4: TIME-WAIT lasts the configured 2 MSL
// (TCPTimeWaitTimeoutOption), then the connection is CLOSED.
func TestTimeWaitDuration(t *testing.T) {
	h := newHarness(t, hopt{})
	tw := tcpip.TCPTimeWaitTimeoutOption(5 * time.Second)
	h.setOpt(&tw)
	lep := h.listen(10)
	c := h.synRcvdOn(lep, h.newConn()).accept()
	c.shutWrite()
	c.send(fFIN|fACK, nil)
	c.seq++
	c.expectACK()
	c.waitState(stTimeWait)
	c.advance(4900 * time.Millisecond)
	time.Sleep(nothingWait)
	if c.state() != stTimeWait {
		t.Fatalf("state %d before 2 MSL, want TIME-WAIT", c.state())
	}
	c.advance(100 * time.Millisecond)
	waitFor(t, "CLOSED", func() bool {
		if c.state() != stClose {
			c.clock.Advance(time.Millisecond)
			return false
		}
		return true
	})
	c.send(fACK, nil)
	c.harness.expect(fRST, c.ack, 0)
}

// RFC 9293 §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN is ACKed and
// restarts the 2 MSL timeout.
func TestTimeWaitRetransmittedFIN(t *testing.T) {
	c := timeWait(t)
	c.sendAt(fFIN|fACK, c.seq-1, c.ack, nil)
	c.expectACK()
	if c.state() != stTimeWait {
		t.Fatalf("state %d, want TIME-WAIT", c.state())
	}
}

// RFC 6191 / RFC 9293 §3.10.7.4: a new SYN with a higher sequence number
// in TIME-WAIT starts a new connection.
func TestTimeWaitNewSYNAccepted(t *testing.T) {
	c := timeWait(t)
	n := &conn{harness: c.harness, lport: c.lport, rport: c.rport, seq: c.seq + 100000, wnd: peerWnd,
		synOpt: wire.Options{HasMSS: true, MSS: 1460, WS: -1}}
	c.harness.synRcvdOn(c.lep, n)
	n.accept()
	n.send(fACK|fPSH, []byte("again"))
	n.seq += 5
	if got := n.readN(5); !bytes.Equal(got, []byte("again")) {
		t.Fatalf("read %q", got)
	}
}

// A SYN below RCV.NXT in TIME-WAIT is an old duplicate: ACKed, no new
// connection.
func TestTimeWaitOldSYNAcked(t *testing.T) {
	c := timeWait(t)
	c.sendAt(fSYN, c.seq-10, 0, nil)
	c.expectACK()
	if c.state() != stTimeWait {
		t.Fatalf("state %d, want TIME-WAIT", c.state())
	}
}

func isErr[E tcpip.Error](err tcpip.Error) bool {
	_, ok := err.(E)
	return ok
}

// RFC 6298 §5 / RFC 9293 §3.8.1: the SYN is retransmitted on the RTO with
// backoff; after TCPSynRetriesOption retransmissions connect fails with
// ErrTimeout.
func TestSynSentSYNRetransmitTimeout(t *testing.T) {
	h := newHarness(t, hopt{})
	sr := tcpip.TCPSynRetriesOption(2)
	h.setOpt(&sr)
	c, _ := h.synSentOn()
	for _, d := range []time.Duration{time.Second, 2 * time.Second} {
		c.advance(d - 10*time.Millisecond)
		c.recvNothing()
		c.advance(10 * time.Millisecond)
		c.harness.expect(fSYN, c.iss, 0)
	}
	c.advance(4 * time.Second)
	waitFor(t, "ERROR", func() bool {
		if c.state() != stError {
			c.clock.Advance(time.Millisecond)
			return false
		}
		return true
	})
	if err := c.ep.LastError(); !isErr[*tcpip.ErrTimeout](err) {
		t.Fatalf("LastError = %v, want ErrTimeout", err)
	}
}

// An orphaned FIN-WAIT-2 (the application closed) lasts the linger
// timeout (TCPLingerTimeoutOption, Linux tcp_fin_timeout), then CLOSED.
func TestFinWait2OrphanTimeout(t *testing.T) {
	h := newHarness(t, hopt{})
	lt := tcpip.TCPLingerTimeoutOption(3 * time.Second)
	h.setOpt(&lt)
	c := h.synRcvdOn(h.listen(10), h.newConn()).accept()
	c.ep.Close()
	c.expect(fFIN|fACK, c.ack, c.seq)
	c.ack++
	c.send(fACK, nil)
	c.waitState(stFinWait2)
	c.advance(3 * time.Second)
	waitFor(t, "CLOSED", func() bool {
		if c.state() != stClose {
			c.clock.Advance(time.Millisecond)
			return false
		}
		return true
	})
	c.send(fACK|fFIN, nil)
	c.harness.expect(fRST, c.ack, 0)
}

// CLOSE-WAIT: a retransmitted FIN (left of RCV.NXT) is ACKed
// (RFC 9293 §3.10.7.4 first: unacceptable segment).
func TestCloseWaitRetransmittedFIN(t *testing.T) {
	c := closeWait(t)
	c.sendAt(fFIN|fACK, c.seq-1, c.ack, nil)
	c.expectACK()
	if c.state() != stCloseWait {
		t.Fatalf("state %d, want CLOSE-WAIT", c.state())
	}
}

// RFC 9293 §3.10.7.4 second: a RST in TIME-WAIT closes the connection
// (RFC 1337 would ignore it; this is Linux's default, tcp_rfc1337=0).
func TestTimeWaitRSTCloses(t *testing.T) {
	c := timeWait(t)
	c.send(fRST, nil)
	c.waitState(stClose)
	c.recvNothing()
}
