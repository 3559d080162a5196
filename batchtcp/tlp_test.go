package batchtcp_test

import (
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// RFC 8985 §7: with SACK agreed, when nothing comes back for a flight of
// more than one segment, the last segment is sent again after the probe
// timeout (2·SRTT, at least 10 ms), long before the RTO; an ACK covering
// the probe without a D-SACK counts as a loss repaired (TLPRecovery) and
// halves cwnd. Without SACK no probe is sent.
func TestTailLossProbe(t *testing.T) {
	for _, sack := range []bool{true, false} {
		h := newHarness(t, hopt{})
		c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1000, WS: -1, SACKPermitted: sack})
		base := c.ack
		c.write(payload(2000, 'd'))
		for i := range 2 {
			if s := c.recv(); s.seq != base+uint32(1000*i) {
				t.Fatalf("segment %d: %v", i, s)
			}
		}
		c.advance(9 * time.Millisecond)
		c.recvNothing()
		c.advance(2 * time.Millisecond)
		if !sack {
			c.recvNothing()
			continue
		}
		if s := c.recv(); s.seq != base+1000 || len(s.payload) != 1000 {
			t.Fatalf("probe %v, want the last segment at %d", s, base+1000)
		}
		// Only one probe per episode: nothing more until the RTO.
		c.advance(50 * time.Millisecond)
		c.recvNothing()
		cwnd := c.tcpInfo().SndCwnd
		c.inject(seg{src: c.rport, dst: c.lport, flags: fACK, seq: c.seq, ack: base + 2000, wnd: c.wnd})
		waitFor(t, "TLPRecovery", func() bool { return h.s.Stats().TCP.TLPRecovery.Value() == 1 })
		if after := c.tcpInfo().SndCwnd; after >= cwnd {
			t.Errorf("cwnd %d after a repaired loss, was %d", after, cwnd)
		}
	}
}
