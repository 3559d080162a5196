package sharding

import (
	"io"
	"runtime"
	"testing"

	"github.com/xdptcp/xdptcp/netconn"
)

// TestBulkAllocsPerSegment reports heap allocations per segment of a bulk
// transfer (both stacks, link and IP layers included). It is a report, not
// a pass/fail threshold; speed and memory targets live in benchmarks.
func TestBulkAllocsPerSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("bulk")
	}
	sa, sb := pair(t)
	ln, err := netconn.New(sa.Stack()).Listen("tcp4", "198.18.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := netconn.New(sb.Stack()).Dial("tcp4", "198.18.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	c.Write(buf) // warm pools
	pa, pb := proto(t, sa), proto(t, sb)
	segs0 := pa.Stats().BatchSegments + pb.Stats().BatchSegments
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := 0; i < 256; i++ {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	c.Close()
	segs := pa.Stats().BatchSegments + pb.Stats().BatchSegments - segs0
	t.Logf("16 MiB: %d segments processed, %.2f allocs and %.0f bytes per segment", segs,
		float64(m1.Mallocs-m0.Mallocs)/float64(segs), float64(m1.TotalAlloc-m0.TotalAlloc)/float64(segs))
}
