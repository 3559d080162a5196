package reasm

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"pgregory.net/rapid"
)

// stream returns n bytes of a recognisable pattern.
func stream(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

type span struct{ start, end int } // offsets into the stream

// popAll delivers everything contiguous from rcvNxt.
func popAll(q *Queue, rcvNxt seqnum.Value) ([]byte, seqnum.Value) {
	var got []byte
	nxt := q.Pop(rcvNxt, func(b []byte) int {
		got = append(got, b...)
		return len(b)
	})
	return got, nxt
}

func ranges(q *Queue) []Range {
	r := make([]Range, 64)
	return r[:q.Ranges(r)]
}

func TestInsertRanges(t *testing.T) {
	const base = 1000
	for _, tc := range []struct {
		name   string
		ins    []span
		want   []Range
		nbytes int
	}{
		{"Empty", nil, nil, 0},
		{"One", []span{{10, 20}}, []Range{{1010, 1020}}, 10},
		{"Disjoint", []span{{30, 40}, {10, 20}}, []Range{{1010, 1020}, {1030, 1040}}, 20},
		{"Adjacent", []span{{10, 20}, {20, 30}}, []Range{{1010, 1030}}, 20},
		{"Duplicate", []span{{10, 20}, {10, 20}}, []Range{{1010, 1020}}, 10},
		{"Inside", []span{{10, 40}, {15, 25}}, []Range{{1010, 1040}}, 30},
		{"Covering", []span{{15, 25}, {10, 40}}, []Range{{1010, 1040}}, 30},
		{"OverlapFront", []span{{20, 30}, {10, 25}}, []Range{{1010, 1030}}, 20},
		{"OverlapBack", []span{{10, 20}, {15, 30}}, []Range{{1010, 1030}}, 20},
		{"BridgeTwo", []span{{10, 20}, {30, 40}, {15, 35}}, []Range{{1010, 1040}}, 30},
		{"SpanMany", []span{{10, 12}, {14, 16}, {18, 20}, {0, 30}}, []Range{{1000, 1030}}, 30},
		{"ZeroLength", []span{{10, 10}}, nil, 0},
		{"Large", []span{{0, 5000}}, []Range{{1000, 6000}}, 5000},
		{"LargeThenHoles", []span{{100, 200}, {0, 5000}, {6000, 6001}}, []Range{{1000, 6000}, {7000, 7001}}, 5001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := stream(8000)
			var q Queue
			for _, s := range tc.ins {
				q.Insert(base+seqnum.Value(s.start), ref[s.start:s.end])
			}
			if diff := cmp.Diff(tc.want, ranges(&q), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
			if q.Bytes() != tc.nbytes {
				t.Errorf("Bytes = %d, want %d", q.Bytes(), tc.nbytes)
			}
			if q.Empty() != (tc.nbytes == 0) {
				t.Errorf("Empty = %v", q.Empty())
			}
			// The held bytes are the reference bytes.
			for _, r := range tc.want {
				got, nxt := popAll(&q, r.Start)
				if nxt != r.End || !bytes.Equal(got, ref[r.Start-base:r.End-base]) {
					t.Errorf("Pop(%d) = %d bytes, nxt %d; want range %v", r.Start, len(got), nxt, r)
				}
			}
			if !q.Empty() || q.Bytes() != 0 {
				t.Errorf("after popping all: Empty %v Bytes %d", q.Empty(), q.Bytes())
			}
		})
	}
}

// Large payloads are split across BlockSize blocks.
func TestSplitAcrossBlocks(t *testing.T) {
	var q Queue
	q.Insert(0, stream(2*BlockSize+1))
	if len(q.entries) != 3 {
		t.Errorf("%d entries, want 3", len(q.entries))
	}
	if got := ranges(&q); len(got) != 1 || got[0] != (Range{0, 2*BlockSize + 1}) {
		t.Errorf("ranges %v", got)
	}
}

// RFC 9293 §3.10.7.4: nothing is delivered across a gap at rcv.nxt.
func TestPopGap(t *testing.T) {
	var q Queue
	ref := stream(100)
	q.Insert(10, ref[10:20])
	if got, nxt := popAll(&q, 0); len(got) != 0 || nxt != 0 {
		t.Errorf("delivered %d bytes, nxt %d across a gap", len(got), nxt)
	}
	if q.Bytes() != 10 {
		t.Errorf("Bytes %d", q.Bytes())
	}
	q.Insert(0, ref[0:10])
	if got, nxt := popAll(&q, 0); !bytes.Equal(got, ref[:20]) || nxt != 20 {
		t.Errorf("got %d bytes nxt %d", len(got), nxt)
	}
}

// Data before rcvNxt is trimmed, whole entries before it dropped.
func TestPopTrimsBeforeRcvNxt(t *testing.T) {
	var q Queue
	ref := stream(100)
	q.Insert(0, ref[0:10])
	q.Insert(10, ref[10:30])
	q.Insert(50, ref[50:60])
	got, nxt := popAll(&q, 15)
	if !bytes.Equal(got, ref[15:30]) || nxt != 30 {
		t.Errorf("got %q nxt %d", got, nxt)
	}
	if q.Bytes() != 10 || len(ranges(&q)) != 1 {
		t.Errorf("Bytes %d ranges %v", q.Bytes(), ranges(&q))
	}
	// rcvNxt past everything: all dropped, nothing delivered.
	got, nxt = popAll(&q, 70)
	if len(got) != 0 || nxt != 70 || !q.Empty() || q.Bytes() != 0 {
		t.Errorf("got %d nxt %d empty %v bytes %d", len(got), nxt, q.Empty(), q.Bytes())
	}
}

// A full receive buffer accepts part: Pop stops and keeps the rest.
func TestPopPartialDelivery(t *testing.T) {
	var q Queue
	ref := stream(3000)
	q.Insert(100, ref)
	var got []byte
	budget := 1500
	accept := func(b []byte) int {
		n := min(len(b), budget)
		budget -= n
		got = append(got, b[:n]...)
		return n
	}
	nxt := q.Pop(100, accept)
	if nxt != 1600 || q.Bytes() != 1500 || !bytes.Equal(got, ref[:1500]) {
		t.Fatalf("nxt %d bytes %d got %d", nxt, q.Bytes(), len(got))
	}
	// Nothing accepted: no progress.
	if nxt2 := q.Pop(nxt, accept); nxt2 != nxt || q.Bytes() != 1500 {
		t.Fatalf("nxt %d bytes %d", nxt2, q.Bytes())
	}
	budget = 1 << 20
	nxt = q.Pop(nxt, accept)
	if nxt != 3100 || !q.Empty() || !bytes.Equal(got, ref) {
		t.Errorf("nxt %d empty %v got %d", nxt, q.Empty(), len(got))
	}
}

// A deliver that claims more than offered or a negative count is clamped.
func TestPopClampsDeliver(t *testing.T) {
	var q Queue
	q.Insert(0, stream(10))
	if nxt := q.Pop(0, func([]byte) int { return -5 }); nxt != 0 || q.Bytes() != 10 {
		t.Errorf("negative: nxt %d bytes %d", nxt, q.Bytes())
	}
	if nxt := q.Pop(0, func([]byte) int { return 99 }); nxt != 10 || !q.Empty() {
		t.Errorf("too many: nxt %d empty %v", nxt, q.Empty())
	}
}

// Sequence numbers wrap at 2^32.
func TestWraparound(t *testing.T) {
	var q Queue
	ref := stream(300)
	base := seqnum.Value(1<<32 - 100)
	q.Insert(base.Add(150), ref[150:300])
	q.Insert(base.Add(50), ref[50:200])
	q.Insert(base, ref[0:60])
	want := []Range{{base, base.Add(300)}}
	if diff := cmp.Diff(want, ranges(&q)); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
	got, nxt := popAll(&q, base)
	if !bytes.Equal(got, ref) || nxt != base.Add(300) {
		t.Errorf("got %d bytes nxt %d", len(got), nxt)
	}
}

func TestRangesShortDst(t *testing.T) {
	var q Queue
	for i := range 5 {
		q.Insert(seqnum.Value(i*10), []byte{1})
	}
	dst := make([]Range, 3)
	if n := q.Ranges(dst); n != 3 || dst[2] != (Range{20, 21}) {
		t.Errorf("n %d dst %v", n, dst)
	}
	if n := q.Ranges(nil); n != 0 {
		t.Errorf("Ranges(nil) = %d", n)
	}
}

func TestReset(t *testing.T) {
	var q Queue
	q.Insert(0, stream(5000))
	q.Insert(9000, stream(10))
	q.Reset()
	if !q.Empty() || q.Bytes() != 0 || q.Ranges(make([]Range, 4)) != 0 {
		t.Errorf("not empty after Reset")
	}
	q.Insert(0, []byte("ok"))
	if got, _ := popAll(&q, 0); string(got) != "ok" {
		t.Errorf("after Reset got %q", got)
	}
}

// Insert copies: the caller may reuse its buffer.
func TestInsertCopies(t *testing.T) {
	var q Queue
	b := []byte("hello")
	q.Insert(0, b)
	copy(b, "XXXXX")
	if got, _ := popAll(&q, 0); string(got) != "hello" {
		t.Errorf("got %q", got)
	}
}

// Property: random overlapping inserts of slices of a reference stream;
// Ranges and Bytes match the covered set; Pop from the start yields the
// reference prefix up to the first hole; after filling, the whole stream.
func TestReassemblyProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 10000).Draw(t, "len")
		ref := stream(n)
		base := seqnum.Value(rapid.Uint32().Draw(t, "base"))
		covered := make([]bool, n)
		var q Queue
		for range rapid.IntRange(0, 30).Draw(t, "inserts") {
			a := rapid.IntRange(0, n-1).Draw(t, "start")
			b := rapid.IntRange(a, min(n, a+rapid.IntRange(0, 5000).Draw(t, "maxlen"))).Draw(t, "end")
			q.Insert(base.Add(seqnum.Size(a)), ref[a:b])
			for i := a; i < b; i++ {
				covered[i] = true
			}
		}
		var want []Range
		held := 0
		for i := 0; i < n; i++ {
			if !covered[i] {
				continue
			}
			held++
			s := base.Add(seqnum.Size(i))
			if len(want) > 0 && want[len(want)-1].End == s {
				want[len(want)-1].End = s + 1
			} else {
				want = append(want, Range{s, s + 1})
			}
		}
		if diff := cmp.Diff(want, ranges(&q), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ranges (-want +got):\n%s", diff)
		}
		if q.Bytes() != held {
			t.Fatalf("Bytes %d, want %d", q.Bytes(), held)
		}
		// Pop with a receive buffer that takes random amounts.
		var out []byte
		nxt := base
		for {
			limit := rapid.IntRange(0, 3000).Draw(t, "accept")
			before := nxt
			nxt = q.Pop(nxt, func(b []byte) int {
				k := min(len(b), limit)
				limit -= k
				out = append(out, b[:k]...)
				return k
			})
			if nxt == before && limit > 0 {
				break // a hole or the end
			}
		}
		prefix := 0
		for prefix < n && covered[prefix] {
			prefix++
		}
		if !bytes.Equal(out, ref[:prefix]) {
			t.Fatalf("popped %d bytes, want the %d-byte prefix", len(out), prefix)
		}
		if q.Bytes() != held-prefix {
			t.Fatalf("Bytes %d, want %d", q.Bytes(), held-prefix)
		}
		// Fill the rest, including the already delivered part.
		q.Insert(base, ref)
		rest, end := popAll(&q, nxt)
		if !bytes.Equal(append(out, rest...), ref) || end != base.Add(seqnum.Size(n)) {
			t.Fatalf("full stream mismatch: %d+%d bytes, end %d", len(out), len(rest), end)
		}
		if !q.Empty() || q.Bytes() != 0 {
			t.Fatalf("not empty: %d bytes", q.Bytes())
		}
	})
}

// Steady state (pool warm, slice grown) allocates nothing.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	var q Queue
	seg := stream(1448)
	var nxt seqnum.Value
	sink := func(b []byte) int { return len(b) }
	step := func() {
		q.Insert(nxt.Add(2*1448), seg) // out of order
		q.Insert(nxt.Add(1448), seg)
		q.Insert(nxt, seg)
		q.Insert(nxt, seg) // duplicate
		nxt = q.Pop(nxt, sink)
		var r [4]Range
		q.Ranges(r[:])
	}
	step()
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

func BenchmarkInsertPop(b *testing.B) {
	var q Queue
	seg := stream(1448)
	var nxt seqnum.Value
	sink := func(b []byte) int { return len(b) }
	b.ReportAllocs()
	b.SetBytes(2 * 1448)
	for b.Loop() {
		q.Insert(nxt.Add(1448), seg)
		q.Insert(nxt, seg)
		nxt = q.Pop(nxt, sink)
	}
}

// RangeOf finds the merged held range around a sequence number.
func TestRangeOf(t *testing.T) {
	var q Queue
	defer q.Reset()
	data := stream(600)
	q.Insert(100, data[100:200])
	q.Insert(200, data[200:300]) // adjacent: one range [100,300)
	q.Insert(400, data[400:500])
	for _, tc := range []struct {
		seq  seqnum.Value
		want Range
		ok   bool
	}{
		{100, Range{100, 300}, true},
		{250, Range{100, 300}, true},
		{299, Range{100, 300}, true},
		{300, Range{}, false},
		{450, Range{400, 500}, true},
		{500, Range{}, false},
		{50, Range{}, false},
	} {
		if r, ok := q.RangeOf(tc.seq); r != tc.want || ok != tc.ok {
			t.Errorf("RangeOf(%d) = %v, %v; want %v, %v", tc.seq, r, ok, tc.want, tc.ok)
		}
	}
}
