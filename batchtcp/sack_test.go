package batchtcp_test

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/xdptcp/xdptcp/batchtcp/wire"
)

// synAckFor sends a SYN with options o to a fresh listener and returns the
// SYN-ACK.
func synAckFor(h *harness, o wire.Options) seg {
	h.t.Helper()
	h.listen(10)
	c := h.newConn()
	c.inject(seg{src: c.rport, dst: c.lport, flags: fSYN, seq: c.seq, wnd: c.wnd, opt: o})
	sa := c.recv()
	if sa.flags != fSYN|fACK || sa.ack != c.seq+1 {
		h.t.Fatalf("got %v, want a SYN-ACK", sa)
	}
	return sa
}

// RFC 2018 §2: SACK-permitted is offered in a SYN and answered in the
// SYN-ACK only when the peer offered it and the stack's TCPSACKEnabled is
// on (the default, as gVisor's).
func TestSACKPermittedNegotiation(t *testing.T) {
	mss := wire.Options{HasMSS: true, MSS: 1460, WS: -1}
	offer := mss
	offer.SACKPermitted = true
	for _, tc := range []struct {
		name    string
		off     bool // TCPSACKEnabled(false)
		o       wire.Options
		wantAck bool
	}{
		{"offered", false, offer, true},
		{"not offered", false, mss, false},
		{"offered, SACK off", true, offer, false},
	} {
		h := newHarness(t, hopt{})
		if tc.off {
			v := tcpip.TCPSACKEnabled(false)
			h.setOpt(&v)
		}
		sa := synAckFor(h, tc.o)
		if sa.opt.SACKPermitted != tc.wantAck {
			t.Errorf("%s: SYN-ACK %v, SACK-permitted %v, want %v", tc.name, sa, sa.opt.SACKPermitted, tc.wantAck)
		}
	}
	// Active open: offered by default; not with SACK off.
	for _, off := range []bool{false, true} {
		h := newHarness(t, hopt{})
		if off {
			v := tcpip.TCPSACKEnabled(false)
			h.setOpt(&v)
		}
		_, syn := h.synSentOn()
		if syn.opt.SACKPermitted == off {
			t.Errorf("SACK off %v: SYN %v", off, syn)
		}
	}
}

// sackBlocks is s's SACK blocks relative to base.
func sackBlocks(s seg, base uint32) [][2]uint32 {
	var b [][2]uint32
	for _, x := range s.opt.SACK[:s.opt.NumSACK] {
		b = append(b, [2]uint32{x.Start - base, x.End - base})
	}
	return b
}

func sameBlocks(a, b [][2]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// RFC 2018 §4: an ACK sent while out-of-order data is held carries SACK
// blocks, the block of the segment that triggered it first, then the
// blocks of the segments received before it; merged blocks are reported
// once; an ACK that covers everything carries none.
func TestSACKBlocksMostRecentFirst(t *testing.T) {
	h := newHarness(t, hopt{})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1, SACKPermitted: true})
	base := c.seq
	steps := []struct {
		off, n int
		want   [][2]uint32
	}{
		{100, 100, [][2]uint32{{100, 200}}},
		{300, 100, [][2]uint32{{300, 400}, {100, 200}}},
		{500, 100, [][2]uint32{{500, 600}, {300, 400}, {100, 200}}},
		{200, 100, [][2]uint32{{100, 400}, {500, 600}}}, // merges two blocks
	}
	for _, st := range steps {
		c.sendAt(fACK|fPSH, base+uint32(st.off), c.ack, payload(st.n, 'o'))
		a := c.expect(fACK, c.ack, base)
		if got := sackBlocks(a, base); !sameBlocks(got, st.want) {
			t.Fatalf("after [%d,%d): SACK %v, want %v", st.off, st.off+st.n, got, st.want)
		}
	}
	// Filling the first hole ACKs up to the next one, and still reports it.
	c.sendAt(fACK|fPSH, base, c.ack, payload(100, 'i'))
	a := c.expect(fACK, c.ack, base+400)
	if got := sackBlocks(a, base); !sameBlocks(got, [][2]uint32{{500, 600}}) {
		t.Fatalf("after filling [0,100): SACK %v, want [[500 600]]", got)
	}
	c.sendAt(fACK|fPSH, base+400, c.ack, payload(100, 'i'))
	a = c.expect(fACK, c.ack, base+600)
	if a.opt.NumSACK != 0 {
		t.Fatalf("in-order ACK carries SACK %v", sackBlocks(a, base))
	}
	if got := c.readN(600); len(got) != 600 {
		t.Fatalf("read %d octets, want 600", len(got))
	}
}

// With timestamps only three blocks fit in 40 octets of options (RFC 2018
// §3); the three most recent are kept.
func TestSACKBlocksWithTimestamps(t *testing.T) {
	h := newHarness(t, hopt{})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1, SACKPermitted: true,
		HasTS: true, TSVal: 100})
	base := c.seq
	var a seg
	for i := range 4 {
		off := uint32(100 + 200*i)
		c.sendAt(fACK|fPSH, base+off, c.ack, payload(100, 'o'))
		a = c.expect(fACK, c.ack, base)
	}
	want := [][2]uint32{{700, 800}, {500, 600}, {300, 400}}
	if got := sackBlocks(a, base); !sameBlocks(got, want) || !a.opt.HasTS {
		t.Fatalf("SACK %v (TS %v), want %v with TS", got, a.opt.HasTS, want)
	}
}

// Without SACK agreed, duplicate ACKs carry no blocks.
func TestNoSACKWithoutAgreement(t *testing.T) {
	c := established(t) // the peer's SYN offered no SACK
	c.sendAt(fACK|fPSH, c.seq+100, c.ack, payload(100, 'o'))
	if a := c.expect(fACK, c.ack, c.seq); a.opt.NumSACK != 0 {
		t.Fatalf("dup ACK %v carries SACK", a)
	}
}

// flight opens a connection with MSS 1000 (SACK offered or not), writes
// n full segments and reads them; it returns the stack's first sequence
// number of the flight.
func flight(t *testing.T, sack bool, n int) (*harness, *conn, uint32) {
	t.Helper()
	h := newHarness(t, hopt{})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1000, WS: -1, SACKPermitted: sack})
	base := c.ack
	c.write(payload(1000*n, 'd'))
	for i := range n {
		if s := c.recv(); s.seq != base+uint32(1000*i) || len(s.payload) != 1000 {
			t.Fatalf("segment %d: %v", i, s)
		}
	}
	return h, c, base
}

// dupACK sends a duplicate ACK for c's stack-side SND.UNA with SACK blocks
// given relative to base.
func (c *conn) dupACK(una, base uint32, blocks ...[2]uint32) {
	c.t.Helper()
	o := wire.Options{WS: -1, NumSACK: len(blocks)}
	for i, b := range blocks {
		o.SACK[i] = wire.SACKBlock{Start: base + b[0], End: base + b[1]}
	}
	c.inject(seg{src: c.rport, dst: c.lport, flags: fACK, seq: c.seq, ack: una, wnd: c.wnd, opt: o})
}

// RFC 6675 §5 (NextSeg rule 1) on NewReno's recovery: with SACK agreed, a
// further duplicate ACK in fast recovery retransmits the next hole below
// SACKed data at once, instead of waiting a round trip for the partial ACK
// (RFC 6582); without SACK blocks the same ACKs retransmit nothing more.
func TestSACKRecoveryRetransmitsHoles(t *testing.T) {
	for _, sack := range []bool{true, false} {
		h, c, base := flight(t, sack, 8)
		// Segments 0 and 3 are lost; 1, 2, 4, 5 arrive.
		blocks := [][][2]uint32{
			{{1000, 2000}},
			{{1000, 3000}},
			{{4000, 5000}, {1000, 3000}},
			{{4000, 6000}, {1000, 3000}},
		}
		for i, b := range blocks {
			if !sack {
				b = nil
			}
			c.dupACK(base, base, b...)
			if i == 2 { // the third duplicate: fast retransmit of SND.UNA
				if s := c.recv(); s.seq != base || len(s.payload) != 1000 {
					t.Fatalf("sack %v: fast retransmit %v, want seq %d", sack, s, base)
				}
			}
		}
		if sack {
			if s := c.recv(); s.seq != base+3000 || len(s.payload) != 1000 {
				t.Fatalf("hole retransmission %v, want seq %d", s, base+3000)
			}
		} else {
			c.recvNothing()
		}
		// Everything arrives: nothing more is resent.
		c.inject(seg{src: c.rport, dst: c.lport, flags: fACK, seq: c.seq, ack: base + 8000, wnd: c.wnd})
		c.recvNothing()
		if got := h.s.Stats().TCP.SACKRecovery.Value(); (got == 1) != sack {
			t.Errorf("sack %v: SACKRecovery %d", sack, got)
		}
	}
}

// RFC 6675: a hole is resent once per recovery. Holes 0, 3 and 6 of eight
// segments are lost; fast retransmit resends 0 and the next duplicate ACKs
// 3 and 6 (as RFC 6675's pipe allows). The partial ACK that follows the
// resent 0 must not resend 3 (NewReno alone would, RFC 6582), and a
// further duplicate ACK finds no hole left to resend.
func TestSACKPartialACKResendsNothingTwice(t *testing.T) {
	_, c, base := flight(t, true, 8)
	c.dupACK(base, base, [2]uint32{1000, 2000})
	c.dupACK(base, base, [2]uint32{1000, 3000})
	c.dupACK(base, base, [2]uint32{4000, 5000}, [2]uint32{1000, 3000})
	for _, want := range []uint32{0, 3000, 6000} {
		if want == 3000 {
			c.dupACK(base, base, [2]uint32{4000, 6000}, [2]uint32{1000, 3000})
		} else if want == 6000 {
			c.dupACK(base, base, [2]uint32{7000, 8000}, [2]uint32{4000, 6000}, [2]uint32{1000, 3000})
		}
		if s := c.recv(); s.seq != base+want {
			t.Fatalf("resent %v, want seq %d", s, base+want)
		}
	}
	c.dupACK(base+3000, base, [2]uint32{4000, 6000}, [2]uint32{7000, 8000}) // partial ACK
	c.recvNothing()
	c.dupACK(base+3000, base, [2]uint32{4000, 6000}, [2]uint32{7000, 8000})
	c.recvNothing()
}

// RFC 2018 §4: segments that only extend the newest block do not push the
// older blocks out of the report.
func TestSACKBlocksKeepOlderRanges(t *testing.T) {
	h := newHarness(t, hopt{})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1, SACKPermitted: true})
	base := c.seq
	var a seg
	for _, off := range []uint32{100, 300, 500, 700, 800, 900, 1000} {
		c.sendAt(fACK|fPSH, base+off, c.ack, payload(100, 'o'))
		a = c.expect(fACK, c.ack, base)
	}
	want := [][2]uint32{{700, 1100}, {500, 600}, {300, 400}, {100, 200}}
	if got := sackBlocks(a, base); !sameBlocks(got, want) {
		t.Fatalf("SACK %v, want %v", got, want)
	}
}

// RFC 2883 §4: a segment that duplicates data already acknowledged is
// answered at once with its range as the first SACK block (a D-SACK, below
// the cumulative ACK), followed by the blocks of data still held out of
// order; without SACK agreed it gets a plain duplicate ACK.
func TestDSACKForDuplicateSegment(t *testing.T) {
	for _, sack := range []bool{true, false} {
		h := newHarness(t, hopt{})
		c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1, SACKPermitted: sack})
		base := c.seq
		c.sendAt(fACK|fPSH, base, c.ack, payload(100, 'a'))
		c.sendAt(fACK|fPSH, base+300, c.ack, payload(100, 'b')) // held out of order
		c.expect(fACK, c.ack, base+100)
		c.sendAt(fACK|fPSH, base, c.ack, payload(100, 'a')) // the first again
		a := c.expect(fACK, c.ack, base+100)
		want := [][2]uint32{{0, 100}, {300, 400}}
		if !sack {
			want = nil
		}
		if got := sackBlocks(a, base); !sameBlocks(got, want) {
			t.Errorf("sack %v: blocks %v, want %v", sack, got, want)
		}
	}
}

// A D-SACK takes the first of the four places; the out-of-order blocks
// fill the rest, most recent first, and never overflow the option.
func TestDSACKWithFourBlocksHeld(t *testing.T) {
	h := newHarness(t, hopt{})
	c := h.establishedWith(wire.Options{HasMSS: true, MSS: 1460, WS: -1, SACKPermitted: true})
	base := c.seq
	c.sendAt(fACK|fPSH, base, c.ack, payload(100, 'a'))
	for _, off := range []uint32{200, 400, 600, 800} {
		c.sendAt(fACK|fPSH, base+off, c.ack, payload(100, 'o'))
		c.expect(fACK, c.ack, base+100)
	}
	c.sendAt(fACK|fPSH, base, c.ack, payload(100, 'a'))
	a := c.expect(fACK, c.ack, base+100)
	want := [][2]uint32{{0, 100}, {800, 900}, {600, 700}, {400, 500}}
	if got := sackBlocks(a, base); !sameBlocks(got, want) {
		t.Fatalf("blocks %v, want %v", got, want)
	}
}
