package scoreboard

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"pgregory.net/rapid"
)

func rs(v ...uint32) []Range {
	var out []Range
	for i := 0; i+1 < len(v); i += 2 {
		out = append(out, Range{seqnum.Value(v[i]), seqnum.Value(v[i+1])})
	}
	return out
}

func TestAddMergeAck(t *testing.T) {
	var b Board
	b.Add(300, 400, 100, 1000)
	b.Add(500, 600, 100, 1000)
	b.Add(200, 250, 100, 1000)
	if diff := cmp.Diff(rs(200, 250, 300, 400, 500, 600), b.Ranges()); diff != "" {
		t.Fatal(diff)
	}
	b.Add(250, 300, 100, 1000) // touches both neighbours: one range
	if diff := cmp.Diff(rs(200, 400, 500, 600), b.Ranges()); diff != "" {
		t.Fatal(diff)
	}
	b.Add(50, 90, 100, 1000)    // below una (D-SACK): ignored
	b.Add(900, 1100, 100, 1000) // beyond max: ignored
	b.Add(700, 700, 100, 1000)  // empty: ignored
	if got := b.Sacked(); got != 300 {
		t.Fatalf("Sacked %d, want 300", got)
	}
	if h, ok := b.Hole(100); !ok || h != (Range{100, 200}) {
		t.Fatalf("Hole(100) = %v, %v", h, ok)
	}
	if h, ok := b.Hole(250); !ok || h != (Range{400, 500}) {
		t.Fatalf("Hole(250) = %v, %v", h, ok)
	}
	if _, ok := b.Hole(550); ok {
		t.Fatal("a hole above the highest SACKed octet")
	}
	b.Ack(350)
	if diff := cmp.Diff(rs(350, 400, 500, 600), b.Ranges()); diff != "" {
		t.Fatal(diff)
	}
	if h, ok := b.High(); !ok || h != 600 {
		t.Fatalf("High %v %v", h, ok)
	}
	b.Ack(600)
	if !b.Empty() {
		t.Fatalf("after the full ACK: %v", b.Ranges())
	}
	b.Add(700, 800, 600, 1000)
	b.Reset()
	if !b.Empty() || b.Next != 0 {
		t.Fatal("Reset kept state")
	}
}

func TestFullDropsHighest(t *testing.T) {
	var b Board
	for i := range MaxRanges {
		s := uint32(1000 + 100*i)
		b.Add(seqnum.Value(s), seqnum.Value(s+50), 0, 10000)
	}
	b.Add(10, 20, 0, 10000) // a ninth, lowest: the highest goes
	r := b.Ranges()
	if len(r) != MaxRanges || r[0] != (Range{10, 20}) || r[len(r)-1].Start != 1000+100*(MaxRanges-2) {
		t.Fatalf("ranges %v", r)
	}
}

// Against a model: a set of SACKed octets in a small window.
func TestBoardProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const size = 600
		base := uint32(4294967000) // wraps around 2^32
		var b Board
		sacked := make([]bool, size)
		una := 0
		for range rapid.IntRange(1, 30).Draw(t, "ops") {
			if rapid.Bool().Draw(t, "ack") {
				una = rapid.IntRange(una, size).Draw(t, "una")
				b.Ack(seqnum.Value(base + uint32(una)))
				continue
			}
			s := rapid.IntRange(0, size-1).Draw(t, "start")
			e := rapid.IntRange(s, size).Draw(t, "end")
			b.Add(seqnum.Value(base+uint32(s)), seqnum.Value(base+uint32(e)), seqnum.Value(base+uint32(una)), seqnum.Value(base+size))
			if e > una {
				for i := max(s, una); i < e; i++ {
					sacked[i] = true
				}
			}
		}
		// The board may forget high ranges (MaxRanges) but never claims an
		// octet that was not SACKed, nor one below una.
		for _, r := range b.Ranges() {
			for v := r.Start; v.LessThan(r.End); v++ {
				i := int(v - seqnum.Value(base))
				if i < una || i >= size || !sacked[i] {
					t.Fatalf("octet %d claimed SACKed (una %d); ranges %v", i, una, b.Ranges())
				}
			}
		}
		// Ranges are sorted, disjoint, not touching, above una.
		for i, r := range b.Ranges() {
			if !r.Start.LessThan(r.End) || int(r.Start-seqnum.Value(base)) < una {
				t.Fatalf("bad range %v (una %d)", r, una)
			}
			if i > 0 && !b.Ranges()[i-1].End.LessThan(r.Start) {
				t.Fatalf("ranges overlap or touch: %v", b.Ranges())
			}
		}
	})
}

// Pipe: octets above the highest SACKed one plus the holes already resent.
func TestPipe(t *testing.T) {
	var b Board
	if got := b.Pipe(0, 8000); got != 8000 {
		t.Fatalf("no SACK: pipe %d, want 8000", got)
	}
	b.Add(1000, 2000, 0, 8000)
	b.Add(3000, 4000, 0, 8000)
	b.Add(5000, 7000, 0, 8000) // holes [0,1000) [2000,3000) [4000,5000); 1000 above
	for _, tc := range []struct {
		next seqnum.Value
		want int
	}{
		{0, 1000},    // nothing resent
		{1000, 2000}, // the first hole resent
		{2500, 2500}, // half of the second
		{5000, 4000}, // all three
		{9000, 4000}, // Next beyond the highest SACKed octet adds nothing
	} {
		b.Next = tc.next
		if got := b.Pipe(0, 8000); got != tc.want {
			t.Errorf("Next %d: pipe %d, want %d", tc.next, got, tc.want)
		}
	}
}
