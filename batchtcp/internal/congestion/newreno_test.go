package congestion

import (
	"math"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"pgregory.net/rapid"
)

const mss = 1000

func newInit(t *testing.T) *NewReno {
	t.Helper()
	n := NewNewReno()
	n.Init(mss)
	return n
}

// RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)).
func TestInitialWindow_RFC6928_2(t *testing.T) {
	for _, tc := range []struct{ mss, want int }{
		{536, 5360},
		{1000, 10000},
		{1460, 14600},
		{1500, 14600},
		{4000, 14600},
		{8960, 17920},
		{9000, 18000},
	} {
		if got := InitialWindow(tc.mss); got != tc.want {
			t.Errorf("InitialWindow(%d) = %d, want %d", tc.mss, got, tc.want)
		}
		n := NewNewReno()
		n.Init(tc.mss)
		if n.Window() != tc.want {
			t.Errorf("Init(%d): cwnd = %d, want %d", tc.mss, n.Window(), tc.want)
		}
	}
}

// RFC 5681 §3.1: ssthresh starts arbitrarily high.
func TestInitialSsthresh_RFC5681_3_1(t *testing.T) {
	n := newInit(t)
	if n.Ssthresh() != math.MaxInt32 || n.State() != Open {
		t.Errorf("ssthresh, state = %d, %v", n.Ssthresh(), n.State())
	}
}

// RFC 3465 §2.2 with L = 2*MSS: slow start grows by min(acked, 2*MSS).
func TestSlowStartABC_RFC3465_2_2(t *testing.T) {
	for _, tc := range []struct {
		name  string
		acked int
		grow  int
	}{
		{"HalfMSS", 500, 500},
		{"OneMSS", 1000, 1000},
		{"TwoMSS", 2000, 2000},
		{"FiveMSSCapped", 5000, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newInit(t)
			before := n.Window()
			if v := n.OnAck(tc.acked, seqnum.Value(tc.acked), 10000); v != None {
				t.Errorf("verdict %v", v)
			}
			if got := n.Window() - before; got != tc.grow {
				t.Errorf("cwnd grew %d, want %d", got, tc.grow)
			}
		})
	}
}

// RFC 5681 §3.1 eq. 3, byte counting (RFC 3465 §2.1): one MSS per cwnd acked.
func TestCongestionAvoidance_RFC5681_3_1(t *testing.T) {
	n := newInit(t)
	n.ssthresh = 10000 // cwnd == ssthresh: congestion avoidance
	ack := seqnum.Value(0)
	for i := range 9 {
		ack = ack.Add(mss)
		n.OnAck(mss, ack, 10000)
		if n.Window() != 10000 {
			t.Fatalf("after %d MSS acked cwnd = %d, want 10000", i+1, n.Window())
		}
	}
	ack = ack.Add(mss)
	n.OnAck(mss, ack, 10000)
	if n.Window() != 11000 {
		t.Fatalf("after one cwnd acked cwnd = %d, want 11000", n.Window())
	}
	// The next increment needs 11000 more bytes.
	for range 10 {
		ack = ack.Add(mss)
		n.OnAck(mss, ack, 11000)
	}
	if n.Window() != 11000 {
		t.Errorf("cwnd = %d, want 11000", n.Window())
	}
	ack = ack.Add(mss)
	n.OnAck(mss, ack, 11000)
	if n.Window() != 12000 {
		t.Errorf("cwnd = %d, want 12000", n.Window())
	}
}

// enterRecovery drives n into fast recovery with flight outstanding and
// snd.nxt = sndNxt, snd.una = una.
func enterRecovery(t *testing.T, n *NewReno, una, sndNxt seqnum.Value, flight int) {
	t.Helper()
	for i := range 3 {
		v := n.OnDupAck(flight, una, sndNxt)
		if want := map[bool]Verdict{true: FastRetransmit, false: None}[i == 2]; v != want {
			t.Fatalf("dup ACK %d: verdict %v, want %v", i+1, v, want)
		}
	}
}

// RFC 5681 §3.2 steps 1-4: the 3rd duplicate ACK triggers fast retransmit,
// ssthresh = max(FlightSize/2, 2*SMSS), cwnd = ssthresh + 3*SMSS.
func TestFastRetransmit_RFC5681_3_2(t *testing.T) {
	n := newInit(t)
	if v := n.OnDupAck(10000, 0, 10000); v != None || n.State() != Disorder {
		t.Fatalf("1st dup: %v, %v", v, n.State())
	}
	if v := n.OnDupAck(10000, 0, 10000); v != None || n.State() != Disorder || n.Window() != 10000 {
		t.Fatalf("2nd dup: %v, %v, cwnd %d", v, n.State(), n.Window())
	}
	if v := n.OnDupAck(10000, 0, 10000); v != FastRetransmit {
		t.Fatalf("3rd dup: %v", v)
	}
	if n.State() != Recovery || n.Ssthresh() != 5000 || n.Window() != 8000 {
		t.Errorf("state %v ssthresh %d cwnd %d; want Recovery 5000 8000", n.State(), n.Ssthresh(), n.Window())
	}
}

// RFC 5681 eq. 4: ssthresh is at least 2*SMSS.
func TestFastRetransmitSsthreshFloor_RFC5681_3_2(t *testing.T) {
	n := newInit(t)
	enterRecovery(t, n, 0, 3000, 3000)
	if n.Ssthresh() != 2*mss || n.Window() != 5*mss {
		t.Errorf("ssthresh %d cwnd %d; want 2000 5000", n.Ssthresh(), n.Window())
	}
}

// RFC 5681 §3.2 step 5: each further duplicate ACK inflates cwnd by SMSS.
func TestRecoveryInflation_RFC5681_3_2_step5(t *testing.T) {
	n := newInit(t)
	enterRecovery(t, n, 0, 10000, 10000)
	for i := range 4 {
		if v := n.OnDupAck(10000, 0, 10000); v != None {
			t.Fatalf("verdict %v", v)
		}
		if want := 8000 + (i+1)*mss; n.Window() != want {
			t.Errorf("cwnd = %d, want %d", n.Window(), want)
		}
	}
}

// RFC 6582 §3.2 step 3: a full ACK (covering everything sent when recovery
// began) exits with cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
func TestFullAck_RFC6582_3_2_step3(t *testing.T) {
	for _, tc := range []struct {
		name       string
		acked      int
		flight     int
		wantWindow int
	}{
		{"NothingLeft", 10000, 10000, 2000},         // max(0, MSS) + MSS
		{"SomeLeft", 10000, 12000, 3000},            // 2000 + MSS
		{"CappedBySsthresh", 10000, 20000, 5000},    // min(5000, 11000)
		{"AckedMoreThanFlight", 10000, 9000, 2000},  // max(.., MSS) + MSS
		{"BeyondRecover", 10000 + 500, 10500, 2000}, // ack past recover
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newInit(t)
			enterRecovery(t, n, 0, 10000, 10000)
			n.OnDupAck(10000, 0, 12000)
			if v := n.OnAck(tc.acked, seqnum.Value(tc.acked), tc.flight); v != None {
				t.Errorf("verdict %v", v)
			}
			if n.State() != Open || n.Window() != tc.wantWindow {
				t.Errorf("state %v cwnd %d; want Open %d", n.State(), n.Window(), tc.wantWindow)
			}
			if n.Ssthresh() != 5000 {
				t.Errorf("ssthresh %d", n.Ssthresh())
			}
		})
	}
}

// RFC 6582 §3.2 step 4: a partial ACK deflates cwnd by the amount acked,
// adds SMSS back if at least SMSS was acked, and asks to retransmit the
// first unacknowledged segment.
func TestPartialAck_RFC6582_3_2_step4(t *testing.T) {
	for _, tc := range []struct {
		name       string
		acked      int
		wantWindow int
	}{
		{"OneSegment", 1000, 8000},    // 8000 - 1000 + 1000
		{"ThreeSegments", 3000, 6000}, // 8000 - 3000 + 1000
		{"LessThanMSS", 400, 7600},    // 8000 - 400
		{"Huge", 9999, 1000},          // floored at one MSS
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newInit(t)
			enterRecovery(t, n, 0, 10000, 10000)
			if v := n.OnAck(tc.acked, seqnum.Value(tc.acked), 10000); v != RetransmitNext {
				t.Errorf("verdict %v, want RetransmitNext", v)
			}
			if n.State() != Recovery || n.Window() != tc.wantWindow {
				t.Errorf("state %v cwnd %d; want Recovery %d", n.State(), n.Window(), tc.wantWindow)
			}
		})
	}
}

// RFC 6582 §3.2: partial ACKs keep recovery; further dup ACKs still
// inflate; the full ACK ends it.
func TestRecoverySequence_RFC6582_3_2(t *testing.T) {
	n := newInit(t)
	enterRecovery(t, n, 0, 10000, 10000)
	if v := n.OnAck(2000, 2000, 10000); v != RetransmitNext {
		t.Fatalf("partial: %v", v)
	}
	n.OnDupAck(8000, 2000, 10000)
	if n.Window() != 8000 { // 8000 - 2000 + 1000 + 1000
		t.Errorf("cwnd %d, want 8000", n.Window())
	}
	if v := n.OnAck(8000, 10000, 8000); v != None || n.State() != Open {
		t.Errorf("full: %v %v", v, n.State())
	}
}

// RFC 6582 §3.2 steps 1-2 and §4.2: after a loss event, duplicate ACKs not
// covering more than recover do not trigger fast retransmit if the ACK
// heuristic also says they come from spurious retransmissions.
func TestRecoverGuard_RFC6582_3_2_step1(t *testing.T) {
	n := newInit(t)
	n.OnRetransmitTimeout(10000, 10000) // recover = 10000
	// The retransmitted hole is acked along with 5 segments the receiver
	// held (a 6*MSS step), then go-back-N resends draw duplicates.
	n.OnAck(6000, 6000, 10000)
	if n.Window() <= mss {
		t.Fatalf("cwnd %d: heuristic would refuse for the wrong reason", n.Window())
	}
	for range 3 {
		if v := n.OnDupAck(4000, 6000, 10000); v != None {
			t.Fatalf("verdict %v: entered recovery from stale dup ACKs", v)
		}
	}
	if n.State() != Loss {
		t.Fatalf("state %v, want Loss", n.State())
	}
}

// RFC 6582 §3.2 step 1: an ACK beyond recover re-arms fast retransmit,
// even when the heuristic (large last step) would refuse.
func TestRecoverGuardPasses_RFC6582_3_2_step1(t *testing.T) {
	n := newInit(t)
	n.OnRetransmitTimeout(10000, 10000)
	n.OnAck(10000, 10000, 10000) // covers recover: leaves Loss
	if n.State() != Open {
		t.Fatalf("state %v, want Open", n.State())
	}
	// ack == recover does not cover more than recover, and the last step
	// (10 MSS) fails the heuristic.
	for range 2 {
		n.OnDupAck(5000, 10000, 20000)
	}
	if v := n.OnDupAck(5000, 10000, 20000); v != None {
		t.Fatalf("ack == recover: %v", v)
	}
	n.OnAck(5000, 15000, 10000) // beyond recover, step 5 MSS
	enterRecovery(t, n, 15000, 20000, 5000)
}

// RFC 6582 §4.2 ACK heuristic: small cumulative steps mean real loss even
// when the ACK does not cover recover.
func TestAckHeuristic_RFC6582_4_2(t *testing.T) {
	n := newInit(t)
	n.OnRetransmitTimeout(10000, 10000)
	n.OnAck(1000, 1000, 10000)
	n.OnAck(1000, 2000, 9000) // cwnd 3 MSS > MSS, step 1 MSS <= 4 MSS
	enterRecovery(t, n, 2000, 10000, 8000)
}

// RFC 5681 §3.1 eq. 4 and RFC 6298 §5: on RTO ssthresh = max(FlightSize/2,
// 2*SMSS), cwnd = loss window (1 MSS); RFC 6582 §4: leave recovery,
// recover = snd.nxt.
func TestRetransmitTimeout_RFC5681_3_1(t *testing.T) {
	for _, tc := range []struct {
		name         string
		flight       int
		wantSsthresh int
	}{
		{"Half", 20000, 10000},
		{"Floor", 1000, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newInit(t)
			enterRecovery(t, n, 0, 20000, 20000)
			n.OnRetransmitTimeout(tc.flight, 30000)
			if n.State() != Loss || n.Window() != mss || n.Ssthresh() != tc.wantSsthresh {
				t.Errorf("state %v cwnd %d ssthresh %d; want Loss %d %d",
					n.State(), n.Window(), n.Ssthresh(), mss, tc.wantSsthresh)
			}
			if n.recover != 30000 {
				t.Errorf("recover %d, want 30000", n.recover)
			}
		})
	}
}

// RFC 5681 §3.1 (after eq. 4): a second timeout for an already
// retransmitted segment holds ssthresh.
func TestRepeatedTimeoutHoldsSsthresh_RFC5681_3_1(t *testing.T) {
	n := newInit(t)
	n.OnRetransmitTimeout(20000, 20000)
	n.OnRetransmitTimeout(1000, 20000)
	if n.Ssthresh() != 10000 || n.Window() != mss {
		t.Errorf("ssthresh %d cwnd %d; want 10000 %d", n.Ssthresh(), n.Window(), mss)
	}
}

// After a timeout, slow start restarts from one MSS up to ssthresh; Loss
// ends when the ACK covers everything sent before the timeout.
func TestSlowStartAfterTimeout_RFC5681_3_1(t *testing.T) {
	n := newInit(t)
	n.OnRetransmitTimeout(8000, 8000) // ssthresh 4000
	n.OnAck(1000, 1000, 8000)
	n.OnAck(2000, 3000, 7000)
	if n.Window() != 4000 || n.State() != Loss {
		t.Fatalf("cwnd %d state %v; want 4000 Loss", n.Window(), n.State())
	}
	n.OnAck(5000, 8000, 5000) // congestion avoidance now: counts bytes
	if n.State() != Open || n.Window() != 5000 {
		t.Errorf("cwnd %d state %v; want 5000 Open", n.Window(), n.State())
	}
}

// RFC 5681 §4.1: after idle, cwnd = min(IW, cwnd).
func TestIdleRestart_RFC5681_4_1(t *testing.T) {
	n := newInit(t)
	n.cwnd = 50000
	n.OnIdleRestart()
	if n.Window() != 10000 {
		t.Errorf("cwnd %d, want IW 10000", n.Window())
	}
	n.cwnd = 3000
	n.OnIdleRestart()
	if n.Window() != 3000 {
		t.Errorf("cwnd %d, want 3000 (smaller than IW)", n.Window())
	}
}

func TestSetMSS(t *testing.T) {
	n := newInit(t)
	n.SetMSS(1400)
	if n.Window() != 10000 || n.mss != 1400 {
		t.Errorf("cwnd %d mss %d", n.Window(), n.mss)
	}
	n.cwnd = 500
	n.SetMSS(1400)
	if n.Window() != 1400 {
		t.Errorf("cwnd %d, want one MSS", n.Window())
	}
}

func TestZeroAckIgnored(t *testing.T) {
	n := newInit(t)
	n.OnDupAck(1000, 0, 1000)
	if v := n.OnAck(0, 0, 1000); v != None || n.State() != Disorder || n.Window() != 10000 {
		t.Errorf("verdict %v state %v cwnd %d", v, n.State(), n.Window())
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Open.String(), "Open"}, {Disorder.String(), "Disorder"},
		{Recovery.String(), "Recovery"}, {Loss.String(), "Loss"},
		{State(2).String(), "State(?)"},
		{None.String(), "None"}, {FastRetransmit.String(), "FastRetransmit"},
		{RetransmitNext.String(), "RetransmitNext"}, {Verdict(9).String(), "Verdict(?)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// Property: under any event sequence cwnd >= MSS and ssthresh >= 2*MSS,
// and the state is one of the four.
func TestInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := NewNewReno()
		n.Init(mss)
		var una, nxt seqnum.Value
		for range rapid.IntRange(0, 200).Draw(t, "steps") {
			flight := int(una.Size(nxt))
			switch rapid.IntRange(0, 4).Draw(t, "event") {
			case 0: // send
				nxt = nxt.Add(seqnum.Size(rapid.IntRange(1, 5).Draw(t, "segs") * mss))
			case 1: // ack
				if flight > 0 {
					acked := rapid.IntRange(1, flight).Draw(t, "acked")
					una = una.Add(seqnum.Size(acked))
					n.OnAck(acked, una, flight)
				}
			case 2, 3:
				n.OnDupAck(flight, una, nxt)
			case 4:
				if rapid.Bool().Draw(t, "rto") {
					n.OnRetransmitTimeout(flight, nxt)
				} else {
					n.OnIdleRestart()
				}
			}
			if n.Window() < mss || n.Ssthresh() < 2*mss {
				t.Fatalf("cwnd %d ssthresh %d", n.Window(), n.Ssthresh())
			}
			switch n.State() {
			case Open, Disorder, Recovery, Loss:
			default:
				t.Fatalf("state %v", n.State())
			}
		}
	})
}

func TestAllocs(t *testing.T) {
	var c Controller = newInit(t)
	if a := testing.AllocsPerRun(100, func() {
		c.OnAck(1000, 1000, 5000)
		c.OnDupAck(4000, 1000, 5000)
		c.OnRetransmitTimeout(4000, 5000)
	}); a != 0 {
		t.Errorf("%v allocs, want 0", a)
	}
}

// RFC 8985 §7.4.2: a loss repaired by a tail loss probe gets fast
// recovery's response (RFC 5681 eq. 4) without entering recovery.
func TestLossRepaired_RFC8985_7_4_2(t *testing.T) {
	for _, tc := range []struct{ flight, want int }{{8000, 4000}, {1000, 2 * mss}} {
		n := newInit(t)
		n.OnLossRepaired(tc.flight)
		if n.Window() != tc.want || n.Ssthresh() != tc.want || n.State() != Open {
			t.Errorf("flight %d: cwnd %d ssthresh %d state %v; want %d, %d, Open",
				tc.flight, n.Window(), n.Ssthresh(), n.State(), tc.want, tc.want)
		}
	}
}
