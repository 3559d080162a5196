package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run1 runs an in-memory script against one stack.
func run1(t *testing.T, st Stack, m Mode, src string) *Result {
	t.Helper()
	return RunSource(t.Name()+".pkt", []byte(src), Config{Stack: st, Mode: m})
}

const handshake = `
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   bind(3, ..., ...) = 0
+0   listen(3, 10) = 0
+0   < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 1 <mss 1460>
+.1  < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
`

func TestPassBothStacks(t *testing.T) {
	src := handshake + `
+0   write(4, ..., 10) = 10
+0   > P. 1:11(10) ack 1
+.1  < . 1:1(0) ack 11 win 65535
+0   close(4) = 0
+0   > F. 11:11(0) ack 1
`
	for _, st := range []Stack{BatchTCP, GVisor} {
		if r := run1(t, st, Relaxed, src); r.Status != Pass {
			t.Errorf("%s", r.Report())
		}
	}
}

// Relaxed ignores the advertised window; strict does not. Neither ignores
// sequence numbers.
func TestMatchModes(t *testing.T) {
	win := handshake + `
+0   write(4, ..., 10) = 10
+0   > P. 1:11(10) ack 1 win 1
`
	if r := run1(t, BatchTCP, Relaxed, win); r.Status != Pass {
		t.Errorf("relaxed: %s", r.Report())
	}
	r := run1(t, BatchTCP, Strict, win)
	if r.Status != Fail || !strings.Contains(r.Msg, "window") {
		t.Errorf("strict: want a window mismatch, got %s", r.Report())
	}
	seq := handshake + `
+0   write(4, ..., 10) = 10
+0   > P. 2:12(10) ack 1
`
	for _, m := range []Mode{Relaxed, Strict} {
		r := run1(t, BatchTCP, m, seq)
		if r.Status != Fail || !strings.Contains(r.Msg, "sequence number") {
			t.Errorf("%s: want a sequence mismatch, got %s", m, r.Report())
		}
	}
}

// A failure names the line, what was expected and sent, and the trace.
func TestFailureReport(t *testing.T) {
	r := run1(t, BatchTCP, Relaxed, handshake+`
+0   write(4, ..., 10) = 10
+0   > F. 1:11(10) ack 1
`)
	rep := r.Report()
	for _, want := range []string{".pkt:11:", "flags P., expected F.", "expected: F. 1:11(10) ack 1", "actual:", "trace", "< 48000>8080 S"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}

// Timers run on the virtual clock: an RTO of 1 s, doubled, takes no time.
func TestVirtualClock(t *testing.T) {
	start := time.Now()
	r := run1(t, BatchTCP, Relaxed, `
0      socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0     fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0     connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0     > S 0:0(0) <mss 1460,nop,nop,TS val 1 ecr 0,nop,wscale 5>
+1     > S 0:0(0) <mss 1460,nop,nop,TS val 1001 ecr 0,nop,wscale 5>
+2     > S 0:0(0) <mss 1460,nop,nop,TS val 3001 ecr 0,nop,wscale 5>
+4     > S 0:0(0) <mss 1460,nop,nop,TS val 7001 ecr 0,nop,wscale 5>
`)
	if r.Status != Pass {
		t.Fatalf("%s", r.Report())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("7 virtual seconds took %v", d)
	}
	// Too early is a failure too.
	r = run1(t, BatchTCP, Relaxed, `
0      socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0     fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0     connect(3, ..., ...) = -1 EINPROGRESS
+0     > S 0:0(0) <...>
+1.5   > S 0:0(0) <...>
`)
	if r.Status != Fail || !strings.Contains(r.Msg, "early") {
		t.Errorf("want an early failure, got %s", r.Report())
	}
}

// A blocking call returns when the stack lets it, and that time is checked.
func TestBlockingCall(t *testing.T) {
	ok := handshake + `
+0...0.2 read(4, ..., 10) = 10
+.2  < P. 1:11(10) ack 1 win 65535
`
	if r := run1(t, BatchTCP, Relaxed, ok); r.Status != Pass {
		t.Errorf("%s", r.Report())
	}
	late := handshake + `
+0...0.2 read(4, ..., 10) = 10
+.5  < P. 1:11(10) ack 1 win 65535
`
	if r := run1(t, BatchTCP, Relaxed, late); r.Status != Fail || !strings.Contains(r.Msg, "still blocked") {
		t.Errorf("want a still-blocked failure, got %s", r.Report())
	}
	never := handshake + `
+0 read(4, ..., 10) = 10
`
	if r := run1(t, BatchTCP, Relaxed, never); r.Status != Fail {
		t.Errorf("a read that never returns must fail, got %s", r.Report())
	}
}

func TestErrnos(t *testing.T) {
	r := run1(t, BatchTCP, Relaxed, `
0  socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 read(3, ..., 10) = -1 ENOTCONN (Transport endpoint is not connected)
+0 close(7) = -1 EBADF
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
`)
	if r.Status != Pass {
		t.Errorf("%s", r.Report())
	}
	r = run1(t, BatchTCP, Relaxed, `
0  socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 read(3, ..., 10) = -1 EAGAIN
`)
	if r.Status != Fail || !strings.Contains(r.Msg, "ENOTCONN") {
		t.Errorf("want an errno mismatch, got %s", r.Report())
	}
}

func TestUnsupportedSysctl(t *testing.T) {
	r := run1(t, BatchTCP, Relaxed, "0 `sysctl -w net.ipv4.tcp_ecn=1`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	if r.Status != Unsupported || !strings.Contains(r.Msg, "tcp_ecn") {
		t.Errorf("got %s", r.Report())
	}
	r = run1(t, GVisor, Relaxed, "0 `sysctl -w net.ipv4.tcp_fin_timeout=30`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	if r.Status != Pass {
		t.Errorf("got %s", r.Report())
	}
}

// Scripts written for Linux or FreeBSD run without edits: what the runner
// cannot honour is reported per script, never a crash or a runner error.
func TestForeignScripts(t *testing.T) {
	want := map[string]struct {
		st  Status
		msg string
	}{
		"linux-style-sack.pkt":    {Unsupported, "command"},
		"linux-style-plain.pkt":   {Pass, ""},
		"freebsd-style.pkt":       {Pass, ""},
		"freebsd-style-ifdef.pkt": {Unsupported, "tcpdrop"},
		"udp-icmp.pkt":            {Unsupported, "icmp"},
	}
	files, err := filepath.Glob("testdata/foreign/*.pkt")
	if err != nil || len(files) != len(want) {
		t.Fatalf("foreign scripts: %v %v", files, err)
	}
	for _, f := range files {
		w := want[filepath.Base(f)]
		for _, st := range []Stack{BatchTCP, GVisor} {
			r := RunFile(f, Config{Stack: st, Platform: "FreeBSD"})
			if strings.Contains(r.Msg, "runner error") {
				t.Errorf("%s", r.Report())
			}
			if st == BatchTCP && (r.Status != w.st || !strings.Contains(strings.ToLower(r.Msg), w.msg)) {
				t.Errorf("%s: want %s (%q), got %s", f, w.st, w.msg, r.Report())
			}
		}
	}
}

// FuzzRunSource: whatever the script, the runner reports; it never panics
// or hits an internal error.
func FuzzRunSource(f *testing.F) {
	for _, s := range []string{handshake, handshake + "+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 1\n",
		"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, ..., ...) = 0\n* > S 0:0(0) <...>\n"} {
		f.Add(s)
	}
	if fs, _ := filepath.Glob("testdata/foreign/*.pkt"); len(fs) > 0 {
		for _, p := range fs {
			b, _ := os.ReadFile(p)
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		r := RunSource("fuzz.pkt", []byte(src), Config{Stack: BatchTCP})
		if strings.Contains(r.Msg, "runner error") {
			t.Fatalf("%s\n--- script:\n%s", r.Report(), src)
		}
	})
}

// %{ }% blocks of simple TCP_INFO assertions are evaluated on the socket
// under test; other Python is unsupported.
func TestPythonAsserts(t *testing.T) {
	r := run1(t, BatchTCP, Relaxed, handshake+`
+0 %{ assert tcpi_state == TCP_ESTABLISHED, tcpi_state
assert tcpi_rto >= 200000 }%
`)
	if r.Status != Pass {
		t.Errorf("%s", r.Report())
	}
	r = run1(t, BatchTCP, Relaxed, handshake+"+0 %{ assert tcpi_state == TCP_CLOSE }%\n")
	if r.Status != Fail || !strings.Contains(r.Msg, "assertion failed") {
		t.Errorf("want an assertion failure, got %s", r.Report())
	}
	r = run1(t, BatchTCP, Relaxed, handshake+"+0 %{ print(tcpi_rto) }%\n")
	if r.Status != Unsupported {
		t.Errorf("want unsupported, got %s", r.Report())
	}
}

// The review's reproducers (testdata/review): each was a runner defect;
// a wrong script must fail, a right one pass, a hostile one be refused.
func TestReviewScripts(t *testing.T) {
	want := map[string]struct {
		st  Status
		msg string
	}{
		"stamp.pkt":     {Fail, "early"}, // window update stamped when it left
		"late.pkt":      {Fail, "before the previous event"},
		"wrongflow.pkt": {Fail, "not sent"},       // a segment of another connection
		"blocktol.pkt":  {Pass, ""},               // early bound fixed at the call's start
		"waitall.pkt":   {Pass, ""},               // MSG_WAITALL waits for all
		"read0.pkt":     {Pass, ""},               // read of 0 returns at once
		"bigwrite.pkt":  {Unsupported, "at most"}, // no giant allocation
		"neglen.pkt":    {Fail, "does not fit"},
		"pollline.pkt":  {Fail, "revents"},
	}
	for name, w := range want {
		r := RunFile(filepath.Join("testdata/review", name), Config{Stack: BatchTCP})
		if r.Status != w.st || !strings.Contains(r.Msg, w.msg) {
			t.Errorf("%s: want %s (%q), got %s", name, w.st, w.msg, r.Report())
		}
	}
	// A failure inside a retried call is reported on the call's line.
	if r := RunFile("testdata/review/pollline.pkt", Config{Stack: BatchTCP}); r.Line != 12 {
		t.Errorf("pollline: failure on line %d, want 12 (the poll)", r.Line)
	}
}
