package batchtcp_test

// Segment arrival in ESTABLISHED (RFC 9293 §3.10.7.4), RFC 5961 blind
// attack defences, RFC 7323 PAWS, delayed ACK, zero window, RTO, Nagle,
// keepalive, and IPv4/IPv6.

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

func payload(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2: one small in-order segment is
// acknowledged after the delayed-ACK time (40 ms, as Linux), not at once.
func TestEstablishedDelayedACK(t *testing.T) {
	c := established(t)
	c.send(fACK|fPSH, payload(100, 'a'))
	c.seq += 100
	c.recvNothing()
	c.advance(39 * time.Millisecond)
	c.recvNothing()
	c.advance(time.Millisecond)
	c.expectACK()
	if got := c.readN(100); !bytes.Equal(got, payload(100, 'a')) {
		t.Fatalf("read %q", got)
	}
}

// RFC 9293 §3.8.6.3 / RFC 5681 §4.2: an ACK at least every second full
// segment.
func TestEstablishedTwoFullSegmentsACK(t *testing.T) {
	c := established(t)
	c.send(fACK, payload(1460, 'a'))
	c.seq += 1460
	c.send(fACK|fPSH, payload(1460, 'b'))
	c.seq += 1460
	c.expectACK()
	c.readN(2920)
}

// RFC 5681 §4.2: an out-of-order segment gets an immediate duplicate ACK;
// the segment filling the hole gets an immediate ACK covering both.
func TestEstablishedOutOfOrder(t *testing.T) {
	c := established(t)
	c.sendAt(fACK|fPSH, c.seq+100, c.ack, payload(100, 'b'))
	c.expectACK() // ack = RCV.NXT, unchanged
	c.send(fACK, payload(100, 'a'))
	c.seq += 200
	c.expectACK()
	want := append(payload(100, 'a'), payload(100, 'b')...)
	if got := c.readN(200); !bytes.Equal(got, want) {
		t.Fatalf("read %q", got)
	}
}

// RFC 9293 §3.10.7.4 first and seventh: a segment overlapping the left
// edge is trimmed to its new octets.
func TestEstablishedDataLeftEdgeOverlap(t *testing.T) {
	c := established(t)
	c.send(fACK|fPSH, []byte("0123456789"))
	c.sendAt(fACK|fPSH, c.seq+5, c.ack, []byte("56789abcde"))
	c.seq += 15
	if got := c.readN(15); string(got) != "0123456789abcde" {
		t.Fatalf("read %q", got)
	}
}

// RFC 9293 §3.10.7.4 first: a segment entirely left of RCV.NXT (a
// duplicate) is not acceptable: ACK and drop.
func TestEstablishedDataDuplicateACKed(t *testing.T) {
	c := established(t)
	c.send(fACK|fPSH, []byte("abc"))
	c.seq += 3
	c.readN(3)
	c.sendAt(fACK|fPSH, c.seq-3, c.ack, []byte("abc"))
	c.expectACK()
}

// RFC 9293 §3.10.7.4 first: the last octets of the window are acceptable
// (kept out of order, so ACKed at once); beyond the right edge is not
// (ACK and drop).
func TestEstablishedDataRightEdge(t *testing.T) {
	c := established(t)
	wnd := uint32(peerWnd) // our advertised window, unscaled
	c.sendAt(fACK, c.seq+wnd-10, c.ack, payload(10, 'z'))
	c.expectACK()
	c.sendAt(fACK, c.seq+wnd, c.ack, payload(10, 'y'))
	c.expectACK()
	c.sendAt(fACK, c.seq+wnd+100000, c.ack, payload(10, 'y'))
	c.expectACK()
	// Nothing was delivered.
	var buf bytes.Buffer
	if _, err := c.ep.Read(&buf, tcpip.ReadOptions{}); !isErr[*tcpip.ErrWouldBlock](err) {
		t.Fatalf("Read = %v (%q), want ErrWouldBlock", err, buf.Bytes())
	}
}

// RFC 9293 §3.10.7.4 second with RFC 5961 §3.2: a RST at exactly RCV.NXT
// resets the connection.
func TestEstablishedRSTExact(t *testing.T) {
	c := established(t)
	c.send(fRST|fACK, nil)
	c.waitState(stError)
	if err := c.readErr(); !isErr[*tcpip.ErrConnectionReset](err) {
		t.Fatalf("Read = %v, want ErrConnectionReset", err)
	}
	c.recvNothing()
}

// RFC 5961 §3.2: a RST in the window but not at RCV.NXT gets a challenge
// ACK and changes nothing.
func TestEstablishedRSTInWindowChallengeACK(t *testing.T) {
	c := established(t)
	c.sendAt(fRST, c.seq+10, 0, nil)
	c.expectACK()
	if c.state() != stEstablished {
		t.Fatalf("state %d, want ESTABLISHED", c.state())
	}
}

// RFC 9293 §3.10.7.4 first: a RST outside the window is dropped silently.
func TestEstablishedRSTOutOfWindowIgnored(t *testing.T) {
	c := established(t)
	c.sendAt(fRST, c.seq+200000, 0, nil)
	c.sendAt(fRST, c.seq-1, 0, nil)
	c.recvNothing()
	if c.state() != stEstablished {
		t.Fatalf("state %d, want ESTABLISHED", c.state())
	}
}

// RFC 5961 §4.2: a SYN in a synchronized state, in or out of the window,
// gets a challenge ACK.
func TestEstablishedSYNChallengeACK(t *testing.T) {
	c := established(t)
	c.sendAt(fSYN, c.seq+5, 0, nil)
	c.expectACK()
	c.sendAt(fSYN, c.seq-5000, 0, nil)
	c.expectACK()
	if c.state() != stEstablished {
		t.Fatalf("state %d, want ESTABLISHED", c.state())
	}
}

// RFC 9293 §3.10.7.4 fifth: an ACK of something not yet sent
// (SEG.ACK > SND.NXT): send an ACK, drop the segment (text included).
func TestEstablishedACKBeyondSndNxt(t *testing.T) {
	c := established(t)
	c.sendAt(fACK|fPSH, c.seq, c.ack+100, []byte("dropped"))
	c.expectACK() // ack still c.seq: the text was not taken
	c.send(fACK|fPSH, []byte("kept"))
	c.seq += 4
	if got := c.readN(4); string(got) != "kept" {
		t.Fatalf("read %q", got)
	}
}

// RFC 5961 §5.2: an ACK older than SND.UNA - MAX.SND.WND is answered with
// an ACK and dropped.
func TestEstablishedOldACK(t *testing.T) {
	c := established(t)
	c.sendAt(fACK|fPSH, c.seq, c.ack-70000, []byte("dropped"))
	c.expectACK()
	// An ACK merely in the past (within MAX.SND.WND) is acceptable.
	c.sendAt(fACK|fPSH, c.seq, c.ack-100, []byte("kept"))
	c.seq += 4
	if got := c.readN(4); string(got) != "kept" {
		t.Fatalf("read %q", got)
	}
}

// RFC 7323 §5.3: a segment whose TSval is older than TS.Recent fails PAWS:
// ACK and drop. TS.Recent then still echoes the newer value.
func TestEstablishedPAWS(t *testing.T) {
	h := newHarness(t, hopt{})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1, HasTS: true, TSVal: 1000})
	good := c.tsVal
	c.tsVal = 500
	c.send(fACK|fPSH, []byte("old"))
	s := c.expectACK()
	if s.opt.TSEcr != good-1 {
		t.Errorf("TSecr %d after PAWS drop, want %d", s.opt.TSEcr, good-1)
	}
	c.tsVal = good
	c.send(fACK|fPSH, []byte("new"))
	c.seq += 3
	if got := c.readN(3); string(got) != "new" {
		t.Fatalf("read %q", got)
	}
}

// RFC 9293 §3.10.7.4 eighth: FIN in ESTABLISHED: ACK it, CLOSE-WAIT, and
// Read reports the end of the stream after the data.
func TestEstablishedFIN(t *testing.T) {
	c := established(t)
	c.send(fACK|fFIN|fPSH, []byte("end"))
	c.seq += 4
	c.expectACK()
	c.waitState(stCloseWait)
	if got := c.readN(3); string(got) != "end" {
		t.Fatalf("read %q", got)
	}
	if err := c.readErr(); !isErr[*tcpip.ErrClosedForReceive](err) {
		t.Fatalf("Read = %v, want ErrClosedForReceive", err)
	}
}

// RFC 9293 §3.8.6.1: with a zero send window nothing is sent; the persist
// timer probes after the RTO; an opening window lets the data flow.
func TestZeroWindowPersistProbe(t *testing.T) {
	c := established(t)
	c.wnd = 0
	c.send(fACK, nil)
	time.Sleep(5 * time.Millisecond)
	c.write(payload(100, 'p'))
	c.recvNothing()
	// Just past the first probe (RTO floor 200 ms) and short of the second
	// (400 ms later): ManualClock.Advance runs timers armed during the
	// advance too, so a longer step may fire two probes.
	c.advance(250 * time.Millisecond)
	s := c.expect(fACK, c.ack-1, c.seq)
	if len(s.payload) != 0 {
		t.Errorf("probe carries %d octets", len(s.payload))
	}
	c.wnd = peerWnd
	c.send(fACK, nil)
	s = c.expect(fACK|fPSH, c.ack, c.seq)
	if len(s.payload) != 100 {
		t.Fatalf("sent %d octets, want 100", len(s.payload))
	}
}

// RFC 6298 §5.4-5.5: unacknowledged data is retransmitted after the RTO,
// then with the timer doubled each time. The fixture's handshake took no
// virtual time, so its RTT sample (§2.2) leaves the RTO at the 200 ms floor.
// Karn (RFC 6298 §3): the ACK of a retransmitted segment gives no RTT
// sample; a fresh segment's ACK does.
func TestRTOBackoffAndKarn(t *testing.T) {
	c := established(t)
	c.write(payload(100, 'r'))
	c.expect(fACK|fPSH, c.ack, c.seq)
	for _, rto := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		c.advance(rto - 10*time.Millisecond)
		c.recvNothing()
		c.advance(10 * time.Millisecond)
		c.expect(fACK|fPSH, c.ack, c.seq)
	}
	c.ack += 100
	c.send(fACK, nil)
	c.recvNothing()
	if rtt := c.tcpInfo().RTT; rtt != 0 {
		t.Errorf("RTT %v sampled from a retransmitted segment", rtt)
	}
	c.write(payload(10, 's'))
	c.expect(fACK|fPSH, c.ack, c.seq)
	c.ack += 10
	c.advance(100 * time.Millisecond)
	c.send(fACK, nil)
	waitFor(t, "an RTT sample", func() bool { return c.tcpInfo().RTT != 0 })
	// RFC 6298 §2.3: SRTT = 7/8 of the handshake's 0 + 1/8 of 100 ms.
	if rtt := c.tcpInfo().RTT; rtt < 12*time.Millisecond || rtt > 13*time.Millisecond {
		t.Errorf("RTT %v, want 12.5ms", rtt)
	}
}

func (c *conn) tcpInfo() tcpip.TCPInfoOption {
	var info tcpip.TCPInfoOption
	if err := c.ep.GetSockOpt(&info); err != nil {
		c.t.Fatal(err)
	}
	return info
}

// RFC 1122 §4.2.3.5 R2: after TCPMaxRetriesOption expirations the
// connection is dropped with ErrTimeout.
func TestRTOMaxRetriesTimeout(t *testing.T) {
	h := newHarness(t, hopt{})
	mr := tcpip.TCPMaxRetriesOption(3)
	h.setOpt(&mr)
	lep := h.listen(10)
	c := h.synRcvdOn(lep, h.newConn()).accept()
	c.write(payload(10, 'x'))
	c.expect(fACK|fPSH, c.ack, c.seq)
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		c.advance(d)
		c.expect(fACK|fPSH, c.ack, c.seq)
	}
	c.advance(8 * time.Second)
	waitFor(t, "ERROR", func() bool {
		if c.state() != stError {
			c.clock.Advance(time.Millisecond)
			return false
		}
		return true
	})
	if err := c.readErr(); !isErr[*tcpip.ErrTimeout](err) {
		t.Fatalf("Read = %v, want ErrTimeout", err)
	}
}

// RFC 9293 §3.7.4 Nagle: with the delay option on, a second small write
// waits until the first is acknowledged.
func TestNagleHoldsSmallSegment(t *testing.T) {
	c := established(t)
	c.ep.SocketOptions().SetDelayOption(true)
	c.write([]byte("a"))
	c.expect(fACK|fPSH, c.ack, c.seq)
	c.ack++
	c.write([]byte("b"))
	c.recvNothing()
	c.send(fACK, nil)
	s := c.expect(fACK|fPSH, c.ack, c.seq)
	if string(s.payload) != "b" {
		t.Fatalf("sent %q", s.payload)
	}
}

// TCP_NODELAY (delay option off, batchtcp's default): small writes go at
// once, without waiting for an ACK.
func TestNagleOffSendsAtOnce(t *testing.T) {
	c := established(t)
	c.ep.SocketOptions().SetDelayOption(false)
	c.write([]byte("a"))
	c.expect(fACK|fPSH, c.ack, c.seq)
	c.ack++
	c.write([]byte("b"))
	s := c.expect(fACK|fPSH, c.ack, c.seq)
	if string(s.payload) != "b" {
		t.Fatalf("sent %q", s.payload)
	}
}

// RFC 1122 §4.2.3.6: keepalive probes (an empty segment at SND.UNA-1,
// as Linux) after the idle time, every interval; an answered probe resets
// the count; after the count unanswered the connection times out.
func TestKeepaliveProbesAndTimeout(t *testing.T) {
	c := established(t)
	idle := tcpip.KeepaliveIdleOption(10 * time.Second)
	intvl := tcpip.KeepaliveIntervalOption(5 * time.Second)
	if err := c.ep.SetSockOpt(&idle); err != nil {
		t.Fatal(err)
	}
	if err := c.ep.SetSockOpt(&intvl); err != nil {
		t.Fatal(err)
	}
	if err := c.ep.SetSockOptInt(tcpip.KeepaliveCountOption, 2); err != nil {
		t.Fatal(err)
	}
	c.ep.SocketOptions().SetKeepAlive(true)
	time.Sleep(5 * time.Millisecond)
	c.advance(10 * time.Second)
	c.expect(fACK, c.ack-1, c.seq)
	c.send(fACK, nil) // the answer
	if s, ok := c.read(nothingWait); ok {
		t.Fatalf("unexpected %v; c.ack=%d c.seq=%d", s, c.ack, c.seq)
	}
	c.advance(9 * time.Second)
	if s, ok := c.read(nothingWait); ok {
		t.Fatalf("unexpected %v; c.ack=%d c.seq=%d now=%v", s, c.ack, c.seq, c.clock.NowMonotonic())
	}
	c.advance(time.Second)
	c.expect(fACK, c.ack-1, c.seq)
	c.advance(5 * time.Second)
	c.expect(fACK, c.ack-1, c.seq)
	c.advance(5 * time.Second)
	waitFor(t, "ERROR", func() bool {
		if c.state() != stError {
			c.clock.Advance(time.Millisecond)
			return false
		}
		return true
	})
	if err := c.readErr(); !isErr[*tcpip.ErrTimeout](err) {
		t.Fatalf("Read = %v, want ErrTimeout", err)
	}
}

// Handshake (passive and active), data both ways, FIN and RST over IPv4
// and IPv6, with two shards.
func TestDualStack(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := "IPv4"
		if v6 {
			name = "IPv6"
		}
		t.Run(name+"/Passive", func(t *testing.T) {
			h := newHarness(t, hopt{v6: v6, shards: 2})
			c := h.synRcvdOn(h.listen(10), h.newConn()).accept()
			c.send(fACK|fPSH, []byte("hello"))
			c.seq += 5
			if got := c.readN(5); string(got) != "hello" {
				t.Fatalf("read %q", got)
			}
			c.write([]byte("world"))
			c.expect(fACK|fPSH, c.ack, c.seq)
			c.ack += 5
			c.send(fACK|fFIN, nil)
			c.seq++
			c.expectACK()
			c.waitState(stCloseWait)
			c.shutWrite()
			c.send(fACK, nil)
			c.waitState(stClose)
		})
		t.Run(name+"/Active", func(t *testing.T) {
			h := newHarness(t, hopt{v6: v6, shards: 2})
			c := h.establishedActive()
			c.write([]byte("ping"))
			c.expect(fACK|fPSH, c.ack, c.seq)
			c.ack += 4
			c.send(fRST, nil)
			c.waitState(stError)
			if err := c.readErr(); !isErr[*tcpip.ErrConnectionReset](err) {
				t.Fatalf("Read = %v, want ErrConnectionReset", err)
			}
		})
		t.Run(name+"/Closed", func(t *testing.T) {
			h := newHarness(t, hopt{v6: v6, shards: 2})
			h.inject(seg{src: 5000, dst: 81, flags: fSYN, seq: 100, wnd: 1000})
			h.expect(fRST|fACK, 0, 101)
		})
	}
}

// RFC 3042 limited transmit: with cwnd full, each of the first two
// duplicate ACKs releases one new segment; the third triggers fast
// retransmit of the first unacknowledged segment (RFC 5681 §3.2).
func TestLimitedTransmitThenFastRetransmit(t *testing.T) {
	c := established(t)
	const mss = 1460
	una := c.ack
	c.write(payload(20*mss, 'l'))
	for i := 0; i < 10; i++ { // IW10 (RFC 6928)
		s := c.recv()
		if s.seq != una+uint32(i*mss) || len(s.payload) != mss {
			t.Fatalf("initial window segment %d: %v", i, s)
		}
	}
	c.recvNothing()
	for i := 0; i < 2; i++ {
		c.send(fACK, nil) // duplicate: ack = SND.UNA, same window
		s := c.recv()
		if want := una + uint32((10+i)*mss); s.seq != want || len(s.payload) != mss {
			t.Fatalf("duplicate ACK %d: got %v, want new data at %d", i+1, s, want)
		}
	}
	c.send(fACK, nil)
	if s := c.recv(); s.seq != una || len(s.payload) != mss {
		t.Fatalf("third duplicate ACK: got %v, want a retransmission at %d", s, una)
	}
	// Counters are published at the end of the shard's batch, after the
	// segment has already left on the channel link: wait for them.
	waitFor(t, "FastRetransmit = 1", func() bool { return c.s.Stats().TCP.FastRetransmit.Value() == 1 })
}
