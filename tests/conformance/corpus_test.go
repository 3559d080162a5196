// Package conformance runs the packetdrill-language corpus in scripts/
// against batchtcp (it must pass) and gVisor's TCP (recorded, not
// required). Every script runs over IPv4 and IPv6 unless it pins
// --ip_version; scripts marked @strict also run in strict mode.
package conformance

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/xdptcp/xdptcp/tests/conformance/runner"
)

var (
	only   = flag.String("conform.run", "", "run only scripts whose path contains this")
	gvisor = flag.Bool("conform.gvisor", true, "also run the corpus against gVisor's TCP (logged, never fails)")
)

func corpus(t *testing.T) []string {
	files, err := runner.Corpus("scripts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.Contains(f, *only) {
			out = append(out, f)
		}
	}
	return out
}

// TestCorpusSize keeps the corpus at the size the conformance issue asks for.
func TestCorpusSize(t *testing.T) {
	if *only != "" {
		t.Skip("filtered")
	}
	if n := len(corpus(t)); n < 250 {
		t.Errorf("corpus has %d scripts, want at least 250", n)
	}
}

func TestBatchTCP(t *testing.T) {
	for _, f := range corpus(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.TrimPrefix(f, "scripts/"), func(t *testing.T) {
			t.Parallel()
			ips := []string{"ipv4", "ipv6"}
			if runner.Pinned(src) {
				ips = ips[:1]
			}
			modes := []runner.Mode{runner.Relaxed}
			if strings.Contains(string(src), runner.StrictMarker) {
				modes = append(modes, runner.Strict)
			}
			xfail := strings.Contains(string(src), runner.XFailMarker)
			failed := false
			for _, ip := range ips {
				for _, m := range modes {
					r := runner.RunSource(f, src, runner.Config{Stack: runner.BatchTCP, IPVersion: ip, Mode: m})
					switch {
					case r.Status == runner.Pass:
					case xfail && r.Status == runner.Fail:
						failed = true
						t.Logf("known failure (%s):\n%s", runner.XFailMarker, r.Report())
					default:
						t.Errorf("%s", r.Report())
					}
				}
			}
			if xfail && !failed {
				t.Errorf("%s passes now: remove %s", f, runner.XFailMarker)
			}
		})
	}
}

// TestGVisor records how gVisor's TCP does on the same corpus; it fails only
// on a runner problem.
func TestGVisor(t *testing.T) {
	if !*gvisor {
		t.Skip("-conform.gvisor=false")
	}
	files := corpus(t)
	cols := []runner.Column{{Stack: runner.GVisor, IPVersion: "ipv4"}}
	rows := runner.RunCorpus(files, cols, runner.Config{})
	n := runner.Counts(rows, 0)
	t.Logf("gVisor TCP, IPv4, relaxed: %d pass, %d fail, %d unsupported of %d", n[runner.Pass], n[runner.Fail], n[runner.Unsupported], len(rows))
	for _, r := range rows {
		res := r.Results[0]
		// gVisor may fail a script (recorded, explained in the docs), but
		// the runner must handle it: no parse error, no internal error. A
		// failure without a "// gvisor:" explanation is logged, not failed:
		// gVisor settles by a quiet period, which a loaded CI machine can
		// stretch.
		switch {
		case res.Status == runner.ParseError || strings.Contains(res.Msg, "runner error"):
			t.Errorf("%s", res.Report())
		case res.Status == runner.Fail && len(r.Notes) == 0:
			t.Logf("%s fails on gVisor's TCP without a // gvisor: line explaining why:\n%s", r.File, res.Report())
		case res.Status != runner.Pass && testing.Verbose():
			t.Logf("%s", res.Report())
		}
	}
}
