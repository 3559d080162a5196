package bytequeue

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"pgregory.net/rapid"
)

func pat(i int) byte { return byte(i*131 + i>>13) }

func pattern(start, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = pat(start + i)
	}
	return b
}

// idle reports whether q holds no chunk.
func idle(q *Queue) bool { return q.head == nil && q.w.Load()&wReleased != 0 }

func TestWriteReadAcrossChunks(t *testing.T) {
	const C = ChunkSize
	tests := []struct {
		name          string
		writes, reads []int
	}{
		{"small", []int{10, 20}, []int{5, 25}},
		{"exact chunk", []int{C}, []int{C}},
		{"straddle", []int{C - 3, 10}, []int{C + 7}},
		{"multi chunk write", []int{3*C + 5}, []int{1, C, C, C + 4}},
		{"read across boundary", []int{C - 1, 1, 1, C}, []int{C - 2, 3, C}},
		{"many small", []int{1460, 1460, 1460, 1460, 1460, 1460, 1460, 1460, 1460, 1460, 1460, 1460}, []int{7000, 10520}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := New(1 << 20)
			total := 0
			for _, n := range tt.writes {
				if got := q.Write(pattern(total, n)); got != n {
					t.Fatalf("Write(%d) = %d", n, got)
				}
				total += n
			}
			if q.Len() != total {
				t.Fatalf("Len = %d, want %d", q.Len(), total)
			}
			read := 0
			for _, n := range tt.reads {
				buf := make([]byte, n)
				if got := q.Read(buf); got != n {
					t.Fatalf("Read(%d) = %d", n, got)
				}
				if !bytes.Equal(buf, pattern(read, n)) {
					t.Fatalf("Read at %d: wrong bytes", read)
				}
				read += n
			}
			if q.Len() != total-read {
				t.Fatalf("Len = %d, want %d", q.Len(), total-read)
			}
			if q.Len() == 0 && !idle(q) {
				t.Fatal("drained queue holds a chunk")
			}
		})
	}
}

func TestLimit(t *testing.T) {
	q := New(100)
	if n := q.Write(make([]byte, 150)); n != 100 {
		t.Fatalf("Write over limit = %d, want 100", n)
	}
	if q.Free() != 0 || q.Write([]byte{1}) != 0 {
		t.Fatal("full queue accepted bytes")
	}
	q.Discard(30)
	if q.Free() != 30 {
		t.Fatalf("Free = %d, want 30", q.Free())
	}
	q.SetLimit(50) // below Len: nothing dropped, Free clamps at 0
	if q.Len() != 70 || q.Free() != 0 || q.Limit() != 50 {
		t.Fatalf("Len %d Free %d Limit %d", q.Len(), q.Free(), q.Limit())
	}
	q.SetLimit(3 * ChunkSize)
	if n := q.Write(make([]byte, 4*ChunkSize)); n != 3*ChunkSize-70 {
		t.Fatalf("Write = %d", n)
	}
	var z Queue // zero value: limit 0
	if z.Write([]byte{1}) != 0 || z.Len() != 0 {
		t.Fatal("zero Queue accepted bytes")
	}
	z.Init(10)
	if z.Write([]byte{1, 2}) != 2 {
		t.Fatal("Init")
	}
}

func TestPeekOffsets(t *testing.T) {
	const n = 3*ChunkSize + 100
	q := New(1 << 20)
	q.Write(pattern(0, n))
	q.Discard(5)
	tests := []struct{ off, len, want int }{
		{0, 10, 10},
		{ChunkSize - 10, 20, 20},
		{ChunkSize, 1, 1},
		{2*ChunkSize - 5, ChunkSize + 10, ChunkSize + 10},
		{100, 10, 10}, // backwards: cursor resets
		{n - 5 - 10, 100, 10},
		{n - 5, 10, 0},
		{n + 100, 10, 0},
		{-1, 10, 0},
	}
	for _, tt := range tests {
		buf := make([]byte, tt.len)
		got := q.Peek(tt.off, buf)
		if got != tt.want {
			t.Fatalf("Peek(%d, %d) = %d, want %d", tt.off, tt.len, got, tt.want)
		}
		if !bytes.Equal(buf[:got], pattern(5+tt.off, got)) {
			t.Fatalf("Peek(%d, %d): wrong bytes", tt.off, tt.len)
		}
	}
	if q.Len() != n-5 {
		t.Fatal("Peek consumed")
	}
	// Sequential peeks, as a retransmission walk does.
	buf := make([]byte, 1460)
	for off := 0; off < n-5; off += 1460 {
		got := q.Peek(off, buf)
		if !bytes.Equal(buf[:got], pattern(5+off, got)) {
			t.Fatalf("sequential Peek(%d): wrong bytes", off)
		}
	}
}

func TestDiscardPartialChunks(t *testing.T) {
	q := New(1 << 20)
	total := 4*ChunkSize + 17
	q.Write(pattern(0, total))
	pos := 0
	for _, n := range []int{1, ChunkSize - 2, 2, ChunkSize, 7, 2*ChunkSize - 7, 16} {
		q.Discard(n)
		pos += n
		if q.Len() != total-pos {
			t.Fatalf("Len = %d, want %d", q.Len(), total-pos)
		}
		buf := make([]byte, 1)
		if q.Len() > 0 && (q.Peek(0, buf) != 1 || buf[0] != pat(pos)) {
			t.Fatalf("head byte after discarding to %d", pos)
		}
		if q.head != nil && pos-int(q.headStart) > ChunkSize {
			t.Fatalf("consumed chunk kept: headStart %d pos %d", q.headStart, pos)
		}
	}
	if q.Len() != 0 || !idle(q) {
		t.Fatalf("Len %d idle %v", q.Len(), idle(q))
	}
	// Refill after a release continues the stream.
	q.Write(pattern(pos, 10))
	buf := make([]byte, 10)
	if q.Read(buf) != 10 || !bytes.Equal(buf, pattern(pos, 10)) {
		t.Fatal("read after release")
	}
}

type errReader struct {
	n   int
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	k := min(len(p), r.n)
	r.n -= k
	if r.n == 0 {
		return k, r.err
	}
	return k, nil
}

var errTest = errors.New("test")

func TestReadFrom(t *testing.T) {
	q := New(2*ChunkSize + 3)
	n, err := q.ReadFrom(bytes.NewReader(pattern(0, 3*ChunkSize)), 3*ChunkSize)
	if n != 2*ChunkSize+3 || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	buf := make([]byte, n)
	if q.Read(buf) != n || !bytes.Equal(buf, pattern(0, n)) {
		t.Fatal("ReadFrom bytes")
	}
	if !idle(q) {
		t.Fatal("not idle")
	}
	// EOF is not an error; a chunkless queue stays chunkless on no data.
	if n, err := q.ReadFrom(bytes.NewReader(nil), 10); n != 0 || err != nil || !idle(q) {
		t.Fatalf("empty ReadFrom = %d, %v, idle %v", n, err, idle(q))
	}
	if n, err := q.ReadFrom(&errReader{n: 0, err: errTest}, 10); n != 0 || err != errTest || !idle(q) {
		t.Fatalf("failing ReadFrom = %d, %v", n, err)
	}
	if n, err := q.ReadFrom(&errReader{n: 5, err: errTest}, 10); n != 5 || err != errTest {
		t.Fatalf("partial ReadFrom = %d, %v", n, err)
	}
	if n, _ := q.ReadFrom(bytes.NewReader(make([]byte, 100)), 7); n != 7 || q.Len() != 12 {
		t.Fatalf("ReadFrom n cap = %d, Len %d", n, q.Len())
	}
}

type shortWriter struct {
	bytes.Buffer
	max int
	err error
}

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.max {
		w.Buffer.Write(p[:w.max])
		return w.max, w.err
	}
	w.max -= len(p)
	return w.Buffer.Write(p)
}

func TestWriteTo(t *testing.T) {
	total := 3*ChunkSize + 11
	q := New(1 << 20)
	q.Write(pattern(0, total))
	var out bytes.Buffer
	if n, err := q.WriteTo(&out, ChunkSize+5); n != ChunkSize+5 || err != nil {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	w := &shortWriter{max: ChunkSize}
	n, err := q.WriteTo(w, total)
	if n != ChunkSize || err != io.ErrShortWrite {
		t.Fatalf("short WriteTo = %d, %v", n, err)
	}
	w2 := &shortWriter{max: 3, err: errTest}
	if n, err := q.WriteTo(w2, total); n != 3 || err != errTest {
		t.Fatalf("failing WriteTo = %d, %v", n, err)
	}
	rest := total - 2*ChunkSize - 8
	if n, err := q.WriteTo(&out, total); n != rest || err != nil {
		t.Fatalf("final WriteTo = %d, %v", n, err)
	}
	got := append(append(append(out.Bytes()[:ChunkSize+5:ChunkSize+5], w.Bytes()...), w2.Bytes()...), out.Bytes()[ChunkSize+5:]...)
	if !bytes.Equal(got, pattern(0, total)) {
		t.Fatal("WriteTo bytes")
	}
	if !idle(q) {
		t.Fatal("not idle")
	}
}

func TestReset(t *testing.T) {
	q := New(1 << 20)
	q.Write(pattern(0, 2*ChunkSize+1))
	q.Discard(3)
	q.Reset()
	if q.Len() != 0 || !idle(q) || q.Limit() != 1<<20 {
		t.Fatal("Reset")
	}
	q.Write(pattern(0, 5))
	buf := make([]byte, 5)
	if q.Read(buf) != 5 || !bytes.Equal(buf, pattern(0, 5)) {
		t.Fatal("after Reset")
	}
	// Reset of a queue whose fresh chunk the consumer has not adopted.
	q.Write(pattern(0, 5))
	q.Reset()
	if q.Len() != 0 || !idle(q) {
		t.Fatal("Reset unadopted")
	}
}

func TestRapidModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.IntRange(0, 3*ChunkSize).Draw(t, "limit")
		q := New(limit)
		var model []byte
		next := 0 // stream position of the next written byte
		size := rapid.IntRange(0, 2*ChunkSize)
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			switch rapid.IntRange(0, 7).Draw(t, "op") {
			case 0, 1:
				n := size.Draw(t, "write")
				got := q.Write(pattern(next, n))
				want := min(n, max(limit-len(model), 0))
				if got != want {
					t.Fatalf("Write(%d) = %d, want %d", n, got, want)
				}
				model = append(model, pattern(next, got)...)
				next += got
			case 2:
				n := size.Draw(t, "readfrom")
				got, err := q.ReadFrom(bytes.NewReader(pattern(next, n)), n)
				if want := min(n, max(limit-len(model), 0)); got != want || err != nil {
					t.Fatalf("ReadFrom(%d) = %d, %v, want %d", n, got, err, want)
				}
				model = append(model, pattern(next, got)...)
				next += got
			case 3:
				off := rapid.IntRange(0, len(model)+10).Draw(t, "off")
				buf := make([]byte, size.Draw(t, "peek"))
				got := q.Peek(off, buf)
				want := max(min(len(buf), len(model)-off), 0)
				if got != want || !bytes.Equal(buf[:got], model[min(off, len(model)):][:got]) {
					t.Fatalf("Peek(%d, %d) = %d, want %d", off, len(buf), got, want)
				}
			case 4:
				n := rapid.IntRange(0, len(model)).Draw(t, "discard")
				q.Discard(n)
				model = model[n:]
			case 5:
				buf := make([]byte, size.Draw(t, "read"))
				got := q.Read(buf)
				want := min(len(buf), len(model))
				if got != want || !bytes.Equal(buf[:got], model[:got]) {
					t.Fatalf("Read(%d) = %d, want %d", len(buf), got, want)
				}
				model = model[got:]
			case 6:
				var out bytes.Buffer
				m := size.Draw(t, "writeto")
				got, err := q.WriteTo(&out, m)
				want := min(m, len(model))
				if got != want || err != nil || !bytes.Equal(out.Bytes(), model[:got]) {
					t.Fatalf("WriteTo(%d) = %d, %v, want %d", m, got, err, want)
				}
				model = model[got:]
			case 7:
				limit = rapid.IntRange(0, 3*ChunkSize).Draw(t, "setlimit")
				q.SetLimit(limit)
			}
			if q.Len() != len(model) || q.Free() != max(limit-len(model), 0) {
				t.Fatalf("Len %d Free %d, model %d limit %d", q.Len(), q.Free(), len(model), limit)
			}
			if len(model) == 0 && !idle(q) {
				t.Fatal("empty queue holds a chunk")
			}
		}
	})
}

// TestConcurrent moves a known pattern from one producer goroutine to one
// consumer goroutine through every API and checks each byte.
func TestConcurrent(t *testing.T) {
	total := 64 << 20
	if testing.Short() {
		total = 16 << 20
	}
	q := New(256 << 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng, pos := uint32(1), 0
		src := pattern(0, 0)
		for pos < total {
			rng = rng*1664525 + 1013904223
			n := min(int(rng>>16)%(3*ChunkSize)+1, total-pos)
			src = append(src[:0], pattern(pos, n)...)
			var k int
			if rng&(1<<10) != 0 {
				k, _ = q.ReadFrom(bytes.NewReader(src), n)
			} else {
				k = q.Write(src)
			}
			pos += k
			if k == 0 {
				runtime.Gosched()
			}
		}
	}()
	var sink checker
	buf := make([]byte, 3*ChunkSize)
	rng := uint32(7)
	for sink.pos < total {
		rng = rng*1664525 + 1013904223
		n := int(rng>>16)%len(buf) + 1
		var k int
		switch rng % 3 {
		case 0:
			k = q.Read(buf[:n])
			sink.check(t, buf[:k])
		case 1:
			// Peek in pieces from a cursor, then discard, as retransmission does.
			for off := 0; off < n; {
				m := q.Peek(off, buf[off:n])
				if m == 0 {
					break
				}
				off += m
				k = off
			}
			sink.check(t, buf[:k])
			q.Discard(k)
		case 2:
			k, _ = q.WriteTo(&sink, n)
		}
		if t.Failed() {
			break
		}
		if k == 0 {
			runtime.Gosched()
		}
	}
	<-done
	if q.Len() != 0 || !idle(q) {
		t.Fatalf("Len %d idle %v", q.Len(), idle(q))
	}
}

type checker struct{ pos int }

func (c *checker) check(t *testing.T, p []byte) {
	for i, b := range p {
		if b != pat(c.pos+i) {
			t.Errorf("byte %d = %d, want %d", c.pos+i, b, pat(c.pos+i))
			return
		}
	}
	c.pos += len(p)
}

func (c *checker) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != pat(c.pos+i) {
			return i, errTest
		}
	}
	c.pos += len(p)
	return len(p), nil
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	q := New(1 << 20)
	in, out := make([]byte, 1460), make([]byte, 1460)
	q.Write(make([]byte, 3*ChunkSize+5)) // keep data queued: steady send-buffer state
	allocs := testing.AllocsPerRun(1000, func() {
		q.Write(in)
		q.Peek(q.Len()-1460, out)
		q.Peek(0, out)
		q.Discard(1460)
	})
	if allocs != 0 {
		t.Fatalf("Write/Peek/Discard: %v allocs", allocs)
	}
	q.Reset()
	allocs = testing.AllocsPerRun(1000, func() { // drains and releases every time
		q.Write(in)
		q.Read(out)
	})
	if allocs != 0 {
		t.Fatalf("Write/Read: %v allocs", allocs)
	}
}

func BenchmarkWriteRead1460(b *testing.B) {
	q := New(1 << 20)
	in, out := make([]byte, 1460), make([]byte, 1460)
	b.SetBytes(1460)
	b.ReportAllocs()
	for b.Loop() {
		q.Write(in)
		q.Read(out)
	}
}

func BenchmarkWriteReadQueued1460(b *testing.B) {
	q := New(1 << 20)
	in, out := make([]byte, 1460), make([]byte, 1460)
	q.Write(make([]byte, 64<<10))
	b.SetBytes(1460)
	b.ReportAllocs()
	for b.Loop() {
		q.Write(in)
		q.Read(out)
	}
}
