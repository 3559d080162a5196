package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchVeth runs a short rr in configurations A and C across veth (or
// checks that it says why it skips) and the -veth usage errors.
func TestBenchVeth(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"bench", "-veth", "-veth-configs", "A,C", "-q", "-workloads", "rr", "-rounds", "1", "-duration", "200ms"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("run(%q) = %d\n%s%s", args, code, out.String(), errb.String())
	}
	t.Logf("%s", out.String())
	if s := out.String(); !strings.Contains(s, "skipped: ") && !(strings.Contains(s, "rr 1 conn p99 µs") && strings.Contains(s, "A/C")) {
		t.Errorf("neither a table nor a reason to skip:\n%s", s)
	}
	for _, bad := range [][]string{
		{"bench", "-veth", "-veth-configs", "Z"},
		{"bench", "-veth", "-workloads", "allocs", "-rounds", "1"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(bad, &out, &errb); code != 2 && !strings.Contains(out.String(), "skipped: ") {
			t.Errorf("run(%q) = %d, want 2 (usage)\n%s%s", bad, code, out.String(), errb.String())
		}
	}
}
