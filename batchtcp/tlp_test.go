package batchtcp_test

import (
	"context"
	"io"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/xdptcp/xdptcp/batchtcp"
)

// RFC 8985 §7: with SACK agreed, when nothing comes back for a flight of
// more than one segment, the last segment is sent again after the probe
// timeout (2·SRTT, at least 10 ms), long before the RTO; an ACK covering
// the probe without a D-SACK counts as a loss repaired (TLPRecovery) and
// halves cwnd. Without SACK no probe is sent.
func TestTailLossProbe(t *testing.T) {
	for _, sack := range []bool{true, false} {
		h, c, base := flight(t, sack, 2)
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
		waitFor(t, "the probe counted", func() bool { return h.proto6().Stats().TailLossProbes == 1 })
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

// No spurious probes between two batchtcp ends on a lossless link: a
// 1,500-octet write (two segments, under 2·MSS) is ACKed only after the
// receiver's delayed-ACK time, so the probe timeout must allow for it.
func TestTailLossProbeNotSpurious(t *testing.T) {
	sa, sb := pipePair(t, batchtcp.NewProtocol, batchtcp.NewProtocol)
	ln, err := gonet.ListenTCP(sa, tcpip.FullAddress{Addr: addrA, Port: 9}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, sb, tcpip.FullAddress{Addr: addrA, Port: 9}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1500)
	for range 5 {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := sb.Stats().TCP; st.TLPRecovery.Value() != 0 || st.Retransmits.Value() != 0 {
		t.Errorf("lossless link: %d retransmits, %d TLP recoveries", st.Retransmits.Value(), st.TLPRecovery.Value())
	}
}
