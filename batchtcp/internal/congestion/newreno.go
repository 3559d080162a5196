package congestion

import (
	"math"

	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// Tunables.
const (
	// dupAckThreshold duplicate ACKs trigger fast retransmit, RFC 5681 §3.2.
	dupAckThreshold = 3
	// abcLimit is L in RFC 3465 §2.2, in MSS units: slow start grows cwnd
	// by at most L*MSS per ACK.
	abcLimit = 2
	// heuristicMaxAckMSS bounds the previous cumulative ACK step for the
	// ACK heuristic of RFC 6582 §4.2 (4*SMSS).
	heuristicMaxAckMSS = 4
	// infiniteSsthresh is the initial "arbitrarily high" ssthresh, RFC 5681 §3.1.
	infiniteSsthresh = math.MaxInt32
)

// NewReno is RFC 5681 congestion control with RFC 6582 fast recovery and
// RFC 3465 byte counting.
type NewReno struct {
	mss      int
	cwnd     int
	ssthresh int
	state    State

	dupAcks    int
	bytesAcked int // congestion avoidance byte counter, RFC 3465 §2.1

	// recover is snd.nxt when the last loss event began: one past the
	// highest sequence number transmitted (RFC 6582 §3.2 "recover" is the
	// highest transmitted, so "ack covers recover" here is ack >= recover).
	recover    seqnum.Value
	hasRecover bool // recover is meaningful (RFC 6582 initialises it to the ISS)
	lastAcked  int  // bytes the previous cumulative ACK advanced, for §4.2
}

var _ Controller = (*NewReno)(nil)

// NewNewReno returns a NewReno controller; call Init before use.
func NewNewReno() *NewReno { return &NewReno{} }

// Init resets all state: cwnd = IW (RFC 6928 §2), ssthresh infinite
// (RFC 5681 §3.1).
func (n *NewReno) Init(mss int) {
	*n = NewReno{
		mss:      mss,
		cwnd:     InitialWindow(mss),
		ssthresh: infiniteSsthresh,
		state:    Open,
	}
}

// SetMSS changes the MSS; cwnd keeps its byte count, but never drops below
// one MSS.
func (n *NewReno) SetMSS(mss int) {
	n.mss = mss
	n.cwnd = max(n.cwnd, mss)
}

func (n *NewReno) Window() int   { return n.cwnd }
func (n *NewReno) Ssthresh() int { return n.ssthresh }
func (n *NewReno) State() State  { return n.state }

// OnAck handles an ACK that advanced snd.una by acked bytes to ack.
func (n *NewReno) OnAck(acked int, ack seqnum.Value, flight int) Verdict {
	if acked <= 0 {
		return None
	}
	n.dupAcks = 0
	n.lastAcked = acked
	switch n.state {
	case Recovery:
		if ack.LessThan(n.recover) {
			// RFC 6582 §3.2 step 4, partial ACK: deflate cwnd by the
			// newly acked data, add back one MSS if at least one MSS was
			// acked, stay in recovery, retransmit the next hole.
			n.cwnd -= acked
			if acked >= n.mss {
				n.cwnd += n.mss
			}
			n.cwnd = max(n.cwnd, n.mss)
			return RetransmitNext
		}
		// RFC 6582 §3.2 step 3, full ACK: deflate, option (1):
		// cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS), FlightSize
		// being what is left outstanding: never below two segments, so a
		// drained flight can still draw the duplicate ACKs of the next loss.
		n.cwnd = min(n.ssthresh, max(flight-acked, n.mss)+n.mss)
		n.state = Open
		return None
	case Loss:
		// Leave Loss once everything sent before the timeout is acked.
		if !ack.LessThan(n.recover) {
			n.state = Open
		}
	default:
		n.state = Open
	}
	n.grow(acked)
	return None
}

// grow opens cwnd for acked bytes: slow start below ssthresh with byte
// counting capped at L*MSS (RFC 3465 §2.2; RFC 5681 §3.1 eq. 2), else
// congestion avoidance, one MSS per cwnd of bytes acked (RFC 3465 §2.1,
// RFC 5681 §3.1 eq. 3's byte-counting variant).
func (n *NewReno) grow(acked int) {
	if n.cwnd < n.ssthresh {
		n.cwnd += min(acked, abcLimit*n.mss)
		return
	}
	n.bytesAcked += acked
	if n.bytesAcked >= n.cwnd {
		n.bytesAcked -= n.cwnd
		n.cwnd += n.mss
	}
}

// OnDupAck handles a duplicate ACK (RFC 5681 §2 definition).
func (n *NewReno) OnDupAck(flight int, ack seqnum.Value, sndNxt seqnum.Value) Verdict {
	n.dupAcks++
	switch n.state {
	case Recovery:
		// RFC 5681 §3.2 step 5 (RFC 6582 §3.2 step 3 of fast recovery):
		// inflate by one MSS per further duplicate ACK.
		n.cwnd += n.mss
		return None
	case Open:
		n.state = Disorder
	}
	if n.dupAcks != dupAckThreshold || !n.mayEnterRecovery(ack) {
		// Below the threshold (limited transmit, RFC 3042, is the
		// caller's), or RFC 6582 §3.2 step 1-2 says these duplicates are
		// from before the last loss event.
		return None
	}
	// RFC 5681 §3.2 step 2-4, RFC 6582 §3.2 step 2.
	n.ssthresh = max(flight/2, 2*n.mss) // RFC 5681 eq. 4
	n.cwnd = n.ssthresh + dupAckThreshold*n.mss
	n.recover = sndNxt
	n.hasRecover = true
	n.bytesAcked = 0
	n.state = Recovery
	return FastRetransmit
}

// mayEnterRecovery is RFC 6582 §3.2 step 1-2: enter fast retransmit only
// if the cumulative ACK covers more than recover (with recover stored one
// past the highest byte sent, ack > recover; Linux's
// tcp_is_non_sack_preventing_reopen agrees), or, per the ACK heuristic of
// §4.2, cwnd > SMSS and the previous cumulative ACK advanced at most 4*SMSS.
func (n *NewReno) mayEnterRecovery(ack seqnum.Value) bool {
	if !n.hasRecover || n.recover.LessThan(ack) {
		return true
	}
	return n.cwnd > n.mss && n.lastAcked <= heuristicMaxAckMSS*n.mss
}

// OnRetransmitTimeout: RFC 5681 §3.1 eq. 4, ssthresh = max(FlightSize/2,
// 2*SMSS), held constant when the timer expires again for a segment it
// already retransmitted (RFC 5681 §3.1, after eq. 4); cwnd = one MSS, the
// loss window. RFC 6582 §4: leave fast recovery and set recover = snd.nxt.
func (n *NewReno) OnRetransmitTimeout(flight int, sndNxt seqnum.Value) {
	if n.state != Loss {
		n.ssthresh = max(flight/2, 2*n.mss)
	}
	n.cwnd = n.mss
	n.state = Loss
	n.recover = sndNxt
	n.hasRecover = true
	n.dupAcks = 0
	n.bytesAcked = 0
}

// OnLossRepaired halves the window as entering fast recovery would (RFC
// 5681 eq. 4), then goes on in congestion avoidance.
func (n *NewReno) OnLossRepaired(flight int) {
	n.ssthresh = max(flight/2, 2*n.mss)
	n.cwnd = n.ssthresh
	n.bytesAcked = 0
}

// OnSynLoss sets cwnd to one segment (RFC 5681 §3.1: "MUST be one
// segment" after a lost SYN or SYN-ACK).
func (n *NewReno) OnSynLoss() { n.cwnd = n.mss }

// OnIdleRestart applies RFC 5681 §4.1: cwnd = RW = min(IW, cwnd).
func (n *NewReno) OnIdleRestart() {
	n.cwnd = min(n.cwnd, InitialWindow(n.mss))
}
