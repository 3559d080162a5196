package runner

import "fmt"

// traceLen is how many segments (both ways) a failure report shows.
const traceLen = 16

// trace is a ring of the last segments in and out.
type trace struct {
	ring []string
	next int
	n    int
}

func (t *trace) add(us int64, dir, s string) {
	if t.ring == nil {
		t.ring = make([]string, traceLen)
	}
	t.ring[t.next] = fmt.Sprintf("%11.6f %s %s", float64(us)/1e6, dir, s)
	t.next = (t.next + 1) % traceLen
	if t.n < traceLen {
		t.n++
	}
}

// lines returns the entries, oldest first.
func (t *trace) lines() []string {
	out := make([]string, 0, t.n)
	for i := 0; i < t.n; i++ {
		out = append(out, t.ring[(t.next-t.n+i+traceLen)%traceLen])
	}
	return out
}
