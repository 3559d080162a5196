// Package congestion holds TCP congestion control: the Controller seam the
// sender calls and its implementations. A controller takes values (bytes
// acked, flight size, sequence numbers) and returns decisions; it holds no
// endpoint and reads no clock.
package congestion

import "gvisor.dev/gvisor/pkg/tcpip/seqnum"

// Verdict tells the sender what to retransmit after an event.
type Verdict uint8

const (
	// None: nothing to retransmit now.
	None Verdict = iota
	// FastRetransmit: retransmit the segment at snd.una now (RFC 5681 §3.2 step 4).
	FastRetransmit
	// RetransmitNext: a partial ACK in recovery; retransmit the first
	// unacknowledged segment (RFC 6582 §3.2 step 4).
	RetransmitNext
)

func (v Verdict) String() string {
	switch v {
	case None:
		return "None"
	case FastRetransmit:
		return "FastRetransmit"
	case RetransmitNext:
		return "RetransmitNext"
	}
	return "Verdict(?)"
}

// State is the congestion-avoidance state, numbered as Linux's TCP_CA_*
// so TCP_INFO can report it unchanged (2, TCP_CA_CWR, is unused).
type State uint8

const (
	Open     State = 0 // no loss suspected
	Disorder State = 1 // duplicate ACKs seen, below the fast retransmit threshold
	Recovery State = 3 // fast recovery
	Loss     State = 4 // after a retransmission timeout
)

func (s State) String() string {
	switch s {
	case Open:
		return "Open"
	case Disorder:
		return "Disorder"
	case Recovery:
		return "Recovery"
	case Loss:
		return "Loss"
	}
	return "State(?)"
}

// Controller is the congestion-control seam. Sizes are in bytes.
type Controller interface {
	// Init resets the controller for a new connection with the given MSS.
	Init(mss int)
	// SetMSS changes the sender MSS (e.g. after path MTU discovery).
	SetMSS(mss int)
	// Window is cwnd.
	Window() int
	// Ssthresh is the slow start threshold.
	Ssthresh() int
	// State is the recovery state.
	State() State
	// OnAck: snd.una advanced to ack by acked bytes; flight is the bytes
	// outstanding before this ACK.
	OnAck(acked int, ack seqnum.Value, flight int) Verdict
	// OnDupAck: a duplicate ACK (RFC 5681 §2) for ack arrived.
	OnDupAck(flight int, ack seqnum.Value, sndNxt seqnum.Value) Verdict
	// OnRetransmitTimeout: the retransmission timer expired.
	OnRetransmitTimeout(flight int, sndNxt seqnum.Value)
	// OnLossRepaired: a loss was repaired outside fast recovery (a tail
	// loss probe, RFC 8985 §7.4.2): respond as fast recovery would, without
	// entering it. flight is the bytes outstanding when the loss occurred.
	OnLossRepaired(flight int)
	// OnIdleRestart: sending resumes after an idle period longer than the
	// RTO (RFC 5681 §4.1).
	OnIdleRestart()
	// OnSynLoss: the SYN or SYN-ACK had to be retransmitted; the initial
	// window is one segment (RFC 5681 §3.1, RFC 6928 §2).
	OnSynLoss()
}

// InitialWindow is IW, RFC 6928 §2: min(10*MSS, max(2*MSS, 14600)).
func InitialWindow(mss int) int {
	return min(10*mss, max(2*mss, 14600))
}
