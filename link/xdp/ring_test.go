package xdp

import (
	"encoding/binary"
	"io"
	"math"
	"net/netip"
	"testing"
)

// fakeHead is a ring head on Go memory, standing in for the kernel's side.
func fakeHead(size uint32, start uint32) (ringHead, *uint32, *uint32) {
	var prod, cons, flags uint32 = start, start, 0
	return ringHead{producer: &prod, consumer: &cons, flags: &flags, mask: size - 1}, &prod, &cons
}

// TestProdRingWrap: free/reserve/submit across the uint32 wrap.
func TestProdRingWrap(t *testing.T) {
	for _, start := range []uint32{0, 5, math.MaxUint32 - 3, math.MaxUint32} {
		h, prod, cons := fakeHead(8, start)
		r := prodRing{ringHead: h, cachedProd: start, cachedCons: start}
		if got := r.free(1); got != 8 {
			t.Fatalf("start %d: empty ring free %d, want 8", start, got)
		}
		i := r.reserve(6)
		if i != start {
			t.Fatalf("reserve returned %d, want %d", i, start)
		}
		if *prod != start {
			t.Fatal("producer moved before submit")
		}
		r.submit()
		if *prod != start+6 {
			t.Fatalf("producer %d, want %d", *prod, start+6)
		}
		if got := r.free(2); got != 2 {
			t.Fatalf("free %d, want 2", got)
		}
		// Asking for more than the cache shows reads the consumer.
		*cons = start + 4
		if got := r.free(3); got != 6 {
			t.Fatalf("after kernel consumed 4: free %d, want 6", got)
		}
		r.reserve(6)
		r.submit()
		if got := r.free(1); got != 0 {
			t.Fatalf("full ring free %d", got)
		}
		if got := r.pending(); got != 8 {
			t.Fatalf("pending %d, want 8", got)
		}
		// Slot indices wrap with the mask.
		if (start+12)&r.mask != (start+4)&r.mask {
			t.Fatal("mask arithmetic")
		}
	}
}

// TestProdRingCachedConsumer: free does not read the consumer while the
// cached value suffices.
func TestProdRingCachedConsumer(t *testing.T) {
	h, _, cons := fakeHead(16, 100)
	r := prodRing{ringHead: h, cachedProd: 100, cachedCons: 100}
	r.reserve(10)
	*cons = 110 // the kernel consumed everything
	if got := r.free(6); got != 6 {
		t.Fatalf("free %d, want 6 from the cache", got)
	}
	if got := r.free(7); got != 16 {
		t.Fatalf("free %d, want 16 after reading the consumer", got)
	}
}

// TestConsRingWrap: peek/release across the uint32 wrap, with a limit.
func TestConsRingWrap(t *testing.T) {
	for _, start := range []uint32{0, math.MaxUint32 - 2, math.MaxUint32} {
		h, prod, cons := fakeHead(8, start)
		r := consRing{ringHead: h, cachedProd: start, cachedCons: start}
		if n, _ := r.peek(64); n != 0 {
			t.Fatalf("empty ring peek %d", n)
		}
		*prod = start + 5
		n, first := r.peek(3)
		if n != 3 || first != start {
			t.Fatalf("peek(3) = %d,%d want 3,%d", n, first, start)
		}
		r.release(3)
		if *cons != start+3 {
			t.Fatalf("consumer %d, want %d", *cons, start+3)
		}
		// Two left from the cached producer, no new read needed.
		*prod = start + 8
		n, first = r.peek(64)
		if n != 2 || first != start+3 {
			t.Fatalf("peek = %d,%d want 2,%d", n, first, start+3)
		}
		r.release(2)
		n, _ = r.peek(64)
		if n != 3 {
			t.Fatalf("peek after refresh %d, want 3", n)
		}
		r.release(3)
		if *cons != start+8 {
			t.Fatalf("consumer %d, want %d", *cons, start+8)
		}
	}
}

// TestBucket: batch-size histogram buckets.
func TestBucket(t *testing.T) {
	for _, c := range []struct{ n, b int }{{1, 0}, {2, 1}, {3, 1}, {4, 2}, {63, 5}, {64, 6}, {127, 6}, {128, 7}, {4096, 7}} {
		if got := bucket(c.n); got != c.b {
			t.Errorf("bucket(%d) = %d, want %d", c.n, got, c.b)
		}
	}
}

// TestOptionsValidation: bad options are refused before any system call.
func TestOptionsValidation(t *testing.T) {
	base := Options{Interface: "x", Addresses: nil}
	if _, err := withDefaults(base); err == nil {
		t.Error("no addresses accepted")
	}
	o, err := withDefaults(Options{Interface: "x", Addresses: addrs("198.18.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if o.FrameSize != DefaultFrameSize || o.RingSize != DefaultRingSize || o.NumFrames != 2*DefaultRingSize {
		t.Errorf("defaults %+v", o)
	}
	for _, bad := range []Options{
		{Interface: "x", Addresses: addrs("198.18.0.1"), FrameSize: 3000},
		{Interface: "x", Addresses: addrs("198.18.0.1"), RingSize: 100},
		{Interface: "x", Addresses: addrs("198.18.0.1"), NumFrames: 8},
		{Interface: "x", Addresses: addrs("198.18.0.1"), Mode: 7},
		{Addresses: addrs("198.18.0.1")},
	} {
		if _, err := withDefaults(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestProgramBuilds: the instruction stream assembles (labels resolve).
func TestProgramBuilds(t *testing.T) {
	ins := instructions(3, 4, 5)
	if err := ins.Marshal(io.Discard, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}
