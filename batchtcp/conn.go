package batchtcp

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp/internal/congestion"
	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
	"github.com/xdptcp/xdptcp/batchtcp/internal/reasm"
	"github.com/xdptcp/xdptcp/batchtcp/internal/rtt"
	"github.com/xdptcp/xdptcp/batchtcp/internal/scoreboard"
	"github.com/xdptcp/xdptcp/batchtcp/internal/timerwheel"
	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// conn is a transmission control block (RFC 9293 §3.3.1). Every field is
// owned by the conn's shard goroutine; the application reaches it only
// through its endpoint's byte queues, atomics and event bits.
type conn struct {
	owner    *shard    // the one shard allowed to touch this conn
	ep       *endpoint // nil for a child still in SYN-RECEIVED
	listener *listener // parent of a passive open until accepted
	id       stack.TransportEndpointID
	hash     uint32
	netProto tcpip.NetworkProtocolNumber
	route    *stack.Route
	state    State
	active   bool // opened by connect (RFC 9293 §3.10.7.4 SYN-RECEIVED RST)

	// Send sequence space (RFC 9293 §3.3.1).
	iss     seqnum.Value
	sndUna  seqnum.Value
	sndNxt  seqnum.Value
	sndMax  seqnum.Value // highest sequence sent + 1 (sndNxt rewinds on RTO)
	sndWnd  seqnum.Size  // peer's window, scaled
	sndWL1  seqnum.Value
	sndWL2  seqnum.Value
	maxWnd  seqnum.Size // largest window the peer offered (RFC 5961 §5.2)
	sndWS   uint8       // peer's window shift (RFC 7323 §2.2)
	sndBase seqnum.Value
	mss     int // effective send MSS, options excluded
	peerMSS int
	finQ    bool         // the application shut down writing: FIN follows the data
	finSent bool         // FIN is in [sndUna, sndNxt)
	finSeq  seqnum.Value // FIN's sequence number once the data length is final

	// Receive sequence space.
	irs     seqnum.Value
	rcvNxt  seqnum.Value
	rcvAdv  seqnum.Value // right edge of the last advertised window
	rcvWS   uint8        // our window shift
	reasm   reasm.Queue
	oooFin  bool
	oooFinQ seqnum.Value
	finRcvd bool

	// RFC 7323 timestamps.
	tsOK        bool
	tsOffset    uint32
	tsRecent    uint32
	tlpEnd      seqnum.Value
	tsRecentAge monotime.Time
	wsOK        bool

	// RFC 2018 SACK, receiver side: negotiated (offered, before the
	// handshake ends), and the starts of the latest out-of-order segments,
	// most recent first, whose blocks our ACKs report.
	sackOK      bool
	sackN       uint8
	lastAckSent seqnum.Value
	sackRecent  [wire.MaxSACKBlocks]seqnum.Value
	// Sender side: what the peer SACKed, made on the first SACK block.
	sb *scoreboard.Board

	// Retransmission (RFC 6298) and congestion control (RFC 5681/6582).
	rtt       rtt.Estimator
	rttTiming bool // a segment is being timed (Karn, without timestamps)
	// RFC 8985 §7 tail loss probe (tlp.go): rtoAt holds a probe timeout,
	// a probe is outstanding up to tlpEnd, it was answered by a D-SACK.
	tlpArmed bool
	tlpOut   bool
	tlpDSACK bool
	rttSeq   seqnum.Value
	rttStart monotime.Time
	backoffs int
	cc       congestion.Controller // &reno unless another algorithm is chosen
	reno     congestion.NewReno    // held inline: no allocation per connection
	lastSend monotime.Time
	dupAcks  int

	// ACK generation (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2).
	ackPending bool
	ackNow     bool
	unacked    int // bytes received since the last ACK

	// Timer deadlines (zero: not armed); one wheel entry per conn at the
	// earliest of them.
	timer     timerwheel.Timer
	rtoAt     monotime.Time
	delackAt  monotime.Time
	persistAt monotime.Time
	kaAt      monotime.Time
	closeAt   monotime.Time // TIME-WAIT or orphaned FIN-WAIT-2
	persistN  int
	probesOut int // zero-window probes sent since the peer last answered
	kaProbes  int
	lastRcv   monotime.Time
	synTries  int
	userMSS   int // TCP_MAXSEG at creation, 0 if unset

	// Per-batch bookkeeping.
	dirty   bool
	notify  waiter.EventMask
	dead    bool
	appGone bool // the application closed the endpoint
}

// setRTO sets the retransmission deadline (zero: none), which is then no
// longer a tail-loss probe timeout.
func (c *conn) setRTO(at monotime.Time) { c.rtoAt, c.tlpArmed = at, false }

// reset prepares a pooled conn for reuse.
func (c *conn) reset() {
	q := c.reasm
	q.Reset()
	*c = conn{reasm: q}
	c.init()
}

// init points a fresh conn's congestion control and timer at itself.
func (c *conn) init() {
	c.cc = &c.reno
	c.timer.Owner = c
}

// inFlight is the data and control octets sent and not acknowledged.
func (c *conn) inFlight() int { return int(c.sndUna.Size(c.sndNxt)) }

// rcvWnd is the window the peer may fill: up to the advertised edge.
func (c *conn) rcvWnd() seqnum.Size {
	if c.rcvAdv.LessThan(c.rcvNxt) {
		return 0
	}
	return c.rcvNxt.Size(c.rcvAdv)
}

// wake marks the conn for the end-of-batch output pass.
func (c *conn) wake(sh *shard) {
	if !c.dirty {
		c.dirty = true
		sh.dirty = append(sh.dirty, c)
	}
}

// tsVal is our timestamp clock: milliseconds plus the per-connection offset
// (RFC 7323 §5.4).
func (c *conn) tsVal(now monotime.Time) uint32 {
	return uint32(int64(now)/1e6) + c.tsOffset
}
