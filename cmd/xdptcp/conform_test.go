package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConform runs a corpus directory against both stacks and writes the
// report; a failing batchtcp script makes the command fail.
func TestConform(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "table.md")
	var out, errb strings.Builder
	code := run([]string{"conform", "-ip", "ipv4", "-report", report, "../../tests/conformance/scripts/rfc9293/listen"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"batchtcp ipv4", "gvisor ipv4", "table written"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(b), "| passive-open.pkt |") {
		t.Errorf("report: %v\n%s", err, b)
	}

	bad := filepath.Join(dir, "bad.pkt")
	os.WriteFile(bad, []byte("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 read(3, ..., 1) = 1\n"), 0o644)
	out.Reset()
	if code := run([]string{"conform", "-stack", "batchtcp", "-v", bad}, &out, &errb); code != 1 {
		t.Errorf("failing script: exit %d, want 1\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "bad.pkt:2:") {
		t.Errorf("no failure report:\n%s", out.String())
	}
	if code := run([]string{"conform", "-stack", "linux"}, &out, &errb); code != 2 {
		t.Errorf("bad -stack: exit %d, want 2", code)
	}
}
