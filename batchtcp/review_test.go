package batchtcp_test

// Regression tests from a review of batchtcp against RFC 9293 and gVisor's
// TCP (observable states, errors and segments).

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// RFC 9293 §3.6.1 (SHLD-3): new data received after CLOSE is answered with
// a RST to show that it was lost (as gVisor and Linux do in FIN-WAIT-1/2).
func TestReviewDataAfterCloseResets(t *testing.T) {
	for _, tc := range []struct {
		name string
		fix  func(*testing.T) *conn
	}{{"FinWait1", finWait1}, {"FinWait2", finWait2}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.fix(t)
			c.ep.Close()
			c.recvNothing() // let the shard take the close first
			c.send(fACK|fPSH, []byte("lost"))
			c.expect(fRST|fACK, c.ack, c.seq)
		})
	}
}

// RFC 9293 §3.8.6.2.2 (SHLD-14): the receiver does not move the right
// window edge left. With a window scale, rounding the window down to a
// multiple of 2^shift must not retract the edge already offered.
func TestReviewScaledWindowNeverShrinks(t *testing.T) {
	h := newHarness(t, hopt{})
	lep := h.listen(10)
	c := h.newConn()
	c.synOpt = wire.Options{HasMSS: true, MSS: 1460, WS: 0}
	c.lep = lep
	c.inject(seg{src: c.rport, dst: c.lport, flags: fSYN, seq: c.seq, wnd: c.wnd, opt: c.synOpt})
	c.seq++
	sa := c.recv()
	if sa.flags != fSYN|fACK || sa.opt.WS <= 0 {
		t.Fatalf("got %v, want a SYN-ACK with a window scale", sa)
	}
	ws := uint(sa.opt.WS)
	c.iss, c.ack = sa.seq, sa.seq+1
	c.accept()
	// The SYN-ACK's window is unscaled (RFC 7323 §2.2); the scaled window
	// opens past it with the first ACK, never announced on its own.
	edge := seqnum.Value(c.seq).Add(seqnum.Size(sa.wnd))
	for i := 0; i < 4; i++ {
		c.send(fACK|fPSH, []byte{'a'})
		c.seq++
		c.advance(40 * time.Millisecond)
		s := c.expectACK()
		e := seqnum.Value(s.ack).Add(seqnum.Size(uint32(s.wnd) << ws))
		if e.LessThan(edge) {
			t.Fatalf("segment %d: right edge %d moved left of %d (ack=%d wnd=%d<<%d)", i, e, edge, s.ack, s.wnd, ws)
		}
		edge = e
	}
}

// gVisor: shutdown(2) on a connecting endpoint fails the handshake with
// ErrConnectionReset (tcp.Endpoint.Shutdown -> handshakeFailed).
func TestReviewShutdownConnectingIsReset(t *testing.T) {
	c, _ := synSent(t)
	if err := c.ep.Shutdown(tcpip.ShutdownWrite); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.waitState(stError)
	if err := c.ep.LastError(); !isErr[*tcpip.ErrConnectionReset](err) {
		t.Fatalf("LastError = %v, want ErrConnectionReset", err)
	}
}

// RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17 as Linux and gVisor: zero-window
// probes that the peer never answers end the connection after the
// retransmission limit (gVisor: unackZeroWindowProbes >= maxRetries),
// instead of keeping it (and, once closed, an orphan) forever.
func TestReviewUnansweredZeroWindowProbesTimeOut(t *testing.T) {
	h := newHarness(t, hopt{})
	mr := tcpip.TCPMaxRetriesOption(3)
	h.setOpt(&mr)
	c := h.synRcvdOn(h.listen(10), h.newConn()).accept()
	c.wnd = 0
	c.send(fACK, nil)
	time.Sleep(5 * time.Millisecond)
	c.write(payload(100, 'p'))
	c.recvNothing()
	for i := 0; i < 12 && c.state() != stError; i++ {
		c.advance(61 * time.Second)
		for {
			if _, ok := c.read(nothingWait); !ok {
				break
			}
		}
	}
	if c.state() != stError {
		t.Fatalf("state %v after unanswered probes, want ERROR", batchtcp.State(c.state()))
	}
	if err := c.readErr(); !isErr[*tcpip.ErrTimeout](err) {
		t.Fatalf("Read = %v, want ErrTimeout", err)
	}
}

// RFC 9293 §3.6.1 (MAY-2 condition 1): a connection reopened from
// TIME-WAIT by a new SYN takes an ISS above every sequence number the old
// incarnation used.
func TestReviewTimeWaitReopenISSAboveOld(t *testing.T) {
	c := timeWait(t)
	oldMax := seqnum.Value(c.ack - 1) // our FIN
	n := &conn{harness: c.harness, lport: c.lport, rport: c.rport, seq: c.seq + 100000, wnd: peerWnd,
		synOpt: wire.Options{HasMSS: true, MSS: 1460, WS: -1}}
	c.harness.synRcvdOn(c.lep, n)
	if !oldMax.LessThan(seqnum.Value(n.iss)) {
		t.Fatalf("new ISS %d not above the old connection's last sequence number %d", n.iss, oldMax)
	}
}

// A listener shut down for reading and then closed gives its port back
// (gVisor: Close after shutdown(SHUT_RD) releases the port).
func TestReviewListenerShutdownThenCloseReleasesPort(t *testing.T) {
	h := newHarness(t, hopt{})
	lep := h.listen(10)
	if err := lep.Shutdown(tcpip.ShutdownRead); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	lep.Close()
	var wq waiter.Queue
	ep, err := h.s.NewEndpoint(batchtcp.ProtocolNumber, h.proto, &wq)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if err := ep.Bind(tcpip.FullAddress{Addr: h.local, Port: listenPort}); err != nil {
		t.Fatalf("Bind after the listener closed: %v", err)
	}
}

// RFC 9293 §3.10.7.4 eighth: in CLOSE-WAIT (a FIN already received) a
// second FIN is not processed again: RCV.NXT does not move.
func TestReviewSecondFINInCloseWaitIgnored(t *testing.T) {
	c := closeWait(t)
	c.send(fFIN|fACK, nil)
	time.Sleep(5 * time.Millisecond)
	c.write([]byte("x"))
	c.expect(fACK|fPSH, c.ack, c.seq)
}

// gVisor (tcp.Endpoint.handleReset), as Linux: a RST in CLOSE-WAIT moves
// the endpoint to CLOSED with ErrAborted (EPIPE) as its error; Write then
// fails with ErrClosedForSend, not ErrConnectionReset.
func TestReviewRSTInCloseWait(t *testing.T) {
	c := closeWait(t)
	c.send(fRST|fACK, nil)
	c.waitState(stClose)
	if _, err := c.ep.Write(bytes.NewReader([]byte("x")), tcpip.WriteOptions{}); !isErr[*tcpip.ErrClosedForSend](err) {
		t.Fatalf("Write = %v, want ErrClosedForSend", err)
	}
	if err := c.ep.LastError(); !isErr[*tcpip.ErrAborted](err) {
		t.Fatalf("LastError = %v, want ErrAborted", err)
	}
}
