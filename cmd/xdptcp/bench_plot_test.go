package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchPlot runs a short scaling bench with -json and -plot, then
// replots the JSON into another directory without running anything.
func TestBenchPlot(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "bench.json")
	var out, errb bytes.Buffer
	args := []string{"bench", "-q", "-workloads", "short,scaling", "-rounds", "1", "-duration", "200ms", "-clients", "8", "-json", js, "-plot", filepath.Join(dir, "run")}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("run(%q) = %d\n%s%s", args, code, out.String(), errb.String())
	}
	t.Logf("%s", out.String())
	for _, sub := range []string{"run", "replot"} {
		if sub == "replot" {
			out.Reset()
			args = []string{"bench", "-replot", js, "-plot", filepath.Join(dir, sub)}
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("run(%q) = %d\n%s%s", args, code, out.String(), errb.String())
			}
		}
		for _, name := range []string{"ratios.png", "ratios.svg", "scaling.png", "scaling.svg"} {
			fi, err := os.Stat(filepath.Join(dir, sub, name))
			if err != nil || fi.Size() == 0 {
				t.Errorf("%s/%s: %v", sub, name, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, sub, "rr-latency.png")); err == nil {
			t.Errorf("%s: rr-latency.png written without rr metrics", sub)
		}
	}
	errb.Reset()
	if code := run([]string{"bench", "-replot", js}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-plot") {
		t.Errorf("-replot without -plot: exit %d, %q", code, errb.String())
	}
}
