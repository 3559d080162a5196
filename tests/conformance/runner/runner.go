// Package runner executes packetdrill-language scripts (parsed by package
// script) against a gVisor tcpip stack whose TCP is batchtcp or gVisor's
// transport/tcp. The stack runs on an in-memory link and a virtual clock:
// inbound segments are injected, outbound segments are read from the link
// and stamped with the virtual time they left, and system calls map onto
// tcpip.Endpoint. No kernel, tun device or privilege is needed, and timer
// behaviour (RTO, delayed ACK, TIME-WAIT, keepalive) is exact.
//
// Semantics follow shared/PACKETDRILL.md; where a virtual clock changes
// them it is said here. Inbound packets, calls and commands happen exactly
// at their script time. An outbound packet is the oldest unmatched segment
// the stack sent; the runner steps the clock from timer deadline to timer
// deadline until one is there or the expected time plus tolerance passed.
package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xdptcp/xdptcp/tests/conformance/script"
)

// Stack names a TCP implementation to run scripts against.
type Stack string

// Stacks.
const (
	BatchTCP Stack = "batchtcp"
	GVisor   Stack = "gvisor"
)

// Mode is the matching mode.
type Mode int

// Matching modes.
const (
	// Relaxed ignores only stack-specific choices: advertised window values,
	// option order and padding, MSS and window-scale values, timestamp
	// values and buffer sizes returned by getsockopt. Flags, sequence and
	// acknowledgment numbers, payload lengths, the presence of segments and
	// options, return values and errnos are always compared.
	Relaxed Mode = iota
	// Strict compares every field as written (timestamp echo included).
	Strict
)

func (m Mode) String() string {
	if m == Strict {
		return "strict"
	}
	return "relaxed"
}

// Config selects the stack and how a script runs.
type Config struct {
	Stack Stack
	Mode  Mode
	// IPVersion, if set ("ipv4" or "ipv6"), is used when the script has
	// no --ip_version option.
	IPVersion string
	// Defines and Platform are passed to the parser (#ifdef, --define).
	Defines  map[string]string
	Platform string
	// Quiet is how long gVisor's TCP must stay silent to count as settled
	// (it processes segments on its own goroutines; batchtcp has an exact
	// barrier). Zero means 3 ms.
	Quiet time.Duration
}

// Status is a script's outcome.
type Status string

// Outcomes.
const (
	Pass        Status = "pass"
	Fail        Status = "fail"
	Unsupported Status = "unsupported"
	ParseError  Status = "parse-error"
)

// Result is the outcome of one run.
type Result struct {
	File      string
	Stack     Stack
	Mode      Mode
	IPVersion string
	Status    Status
	// Line and Msg describe the failure (or why the script is unsupported).
	Line int
	Msg  string
	// Expected and Actual describe a mismatched segment or call.
	Expected, Actual string
	// Unsupported lists every construct the runner could not honour.
	Unsupported []script.Note
	// Warnings are mismatches downgraded by --non_fatal.
	Warnings []string
	// Trace holds the last segments both ways (oldest first).
	Trace []string
}

// Report formats a result for people: file:line, what was expected, what
// happened, and the segment trace.
func (r *Result) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s %s %s]: %s", r.File, r.Stack, r.IPVersion, r.Mode, r.Status)
	if r.Status == Pass && len(r.Warnings) == 0 {
		return b.String()
	}
	b.WriteString("\n")
	if r.Line > 0 || r.Msg != "" {
		fmt.Fprintf(&b, "  %s:%d: %s\n", r.File, r.Line, r.Msg)
	}
	if r.Expected != "" {
		fmt.Fprintf(&b, "  expected: %s\n", r.Expected)
	}
	if r.Actual != "" {
		fmt.Fprintf(&b, "  actual:   %s\n", r.Actual)
	}
	for _, n := range r.Unsupported {
		fmt.Fprintf(&b, "  unsupported at line %d: %s\n", n.Line, n.Reason)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning (non_fatal): %s\n", w)
	}
	if len(r.Trace) > 0 {
		b.WriteString("  trace (virtual time, < in / > out):\n")
		for _, t := range r.Trace {
			fmt.Fprintf(&b, "    %s\n", t)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// RunFile parses and runs the script at path.
func RunFile(path string, cfg Config) *Result {
	src, err := os.ReadFile(path)
	if err != nil {
		return &Result{File: path, Stack: cfg.Stack, Mode: cfg.Mode, Status: ParseError, Msg: err.Error()}
	}
	return RunSource(path, src, cfg)
}

// RunSource parses and runs a script held in memory.
func RunSource(name string, src []byte, cfg Config) *Result {
	s, err := script.ParseConfig(name, src, script.Config{Defines: cfg.Defines, Platform: cfg.Platform})
	if err != nil {
		r := &Result{File: name, Stack: cfg.Stack, Mode: cfg.Mode, Status: ParseError, Msg: err.Error()}
		if pe, ok := err.(*script.Error); ok {
			r.Line, r.Msg = pe.Line, pe.Msg
		}
		return r
	}
	return Run(s, cfg)
}

// Run executes a parsed script. It never panics on a bad script: the
// problem is reported in the Result.
func Run(s *script.Script, cfg Config) (res *Result) {
	if cfg.Stack == "" {
		cfg.Stack = BatchTCP
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 3 * time.Millisecond
	}
	res = &Result{File: s.File, Stack: cfg.Stack, Mode: cfg.Mode}
	r := &run{cfg: cfg, s: s, res: res, flows: map[flowKey]*flow{}, fds: map[int64]*sock{}}
	defer func() {
		if p := recover(); p != nil {
			switch e := p.(type) {
			case *stop:
				// Reported already.
				_ = e
			default:
				res.Status, res.Line, res.Msg = Fail, r.line, fmt.Sprintf("runner error: %v", p)
			}
		}
		if r.tg != nil {
			r.closeAll()
			r.tg.close()
		}
		res.Trace = r.trace.lines()
		if res.Status == "" {
			res.Status = Pass
		}
	}()
	r.options()
	res.IPVersion = r.ipv
	res.Unsupported = append(append(res.Unsupported, s.Unsupported...), r.optNotes...)
	if len(res.Unsupported) > 0 {
		res.Status, res.Line, res.Msg = Unsupported, res.Unsupported[0].Line, res.Unsupported[0].Reason
		return res
	}
	tg, err := newTarget(r)
	if err != nil {
		res.Status, res.Msg = Fail, err.Error()
		return res
	}
	r.tg = tg
	if s.Init != nil {
		r.line = s.Init.Line
		r.command(s.Init)
	}
	for i := range s.Events {
		r.event(&s.Events[i])
	}
	r.finish()
	return res
}

// stop unwinds a run after the result was filled in.
type stop struct{}

// run is the state of one script execution.
type run struct {
	cfg  Config
	s    *script.Script
	res  *Result
	tg   *target
	line int

	// Options.
	ipv        string // "ipv4" or "ipv6"
	localIP    string
	remoteIP   string
	bindPort   uint16
	connPort   uint16
	tolUsecs   int64
	tolPercent float64
	tsTick     int64
	mtu        int
	nonFatal   map[string]bool
	optNotes   []script.Note

	// Time, in virtual microseconds since the script started.
	last int64 // when the previous event completed

	flows   map[flowKey]*flow
	deflow  *flow // where packets without explicit ports go
	outq    []*outSeg
	trace   trace
	fds     map[int64]*sock
	curFD   int64 // the socket under test: the last socket() or accept()
	pending *pendingCall
	wake    int64 // set by a blocked call's attempt: when to retry it

}

// failf ends the run with a failure at the current line.
func (r *run) failf(format string, args ...any) {
	r.res.Status, r.res.Line, r.res.Msg = Fail, r.line, fmt.Sprintf(format, args...)
	panic(&stop{})
}

// mismatch ends the run (or warns, under --non_fatal) with expected/actual.
func (r *run) mismatch(kind string, expected, actual, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if r.nonFatal[kind] {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("line %d: %s (expected %s, actual %s)", r.line, msg, expected, actual))
		return
	}
	r.res.Expected, r.res.Actual = expected, actual
	r.failf("%s", msg)
}

// unsupported ends the run as unsupported at the current line.
func (r *run) unsupported(format string, args ...any) {
	reason := fmt.Sprintf(format, args...)
	r.res.Unsupported = append(r.res.Unsupported, script.Note{Line: r.line, Reason: reason})
	r.res.Status, r.res.Line, r.res.Msg = Unsupported, r.line, reason
	panic(&stop{})
}

// options applies the script's option lines.
func (r *run) options() {
	r.ipv = "ipv4"
	if r.cfg.IPVersion != "" {
		r.ipv = r.cfg.IPVersion
	}
	r.bindPort, r.connPort = 8080, 8080
	r.tolUsecs, r.tolPercent = 4000, 12.5
	if r.cfg.Platform == "FreeBSD" {
		r.tolPercent = 5
	}
	r.mtu = 1500
	r.nonFatal = map[string]bool{}
	for _, o := range r.s.Options {
		if o.Unsupported != "" {
			continue // already in s.Unsupported
		}
		bad := func(why string) {
			r.optNotes = append(r.optNotes, script.Note{Line: o.Line, Reason: fmt.Sprintf("--%s: %s", o.Name, why)})
		}
		iv, _ := o.Value.(int64)
		switch o.Name {
		case "ip_version":
			switch o.Raw {
			case "ipv4", "ipv6":
				r.ipv = o.Raw
			default:
				bad("only ipv4 and ipv6 are supported")
			}
		case "local_ip":
			r.localIP = o.Raw
		case "remote_ip":
			r.remoteIP = o.Raw
		case "bind_port":
			r.bindPort = uint16(iv)
		case "connect_port":
			r.connPort = uint16(iv)
		case "tolerance_usecs":
			r.tolUsecs = iv
		case "tolerance_percent":
			f, err := parseFloat(o.Raw)
			if err != nil {
				bad("not a number")
			}
			r.tolPercent = f
		case "tcp_ts_tick_usecs":
			r.tsTick = iv
		case "mtu":
			if iv < 1280 || iv > 65535 {
				bad("mtu must be 1280..65535 (IPv6 minimum)")
			}
			r.mtu = int(iv)
		case "non_fatal":
			for _, k := range strings.Split(o.Raw, ",") {
				switch k {
				case "packet", "syscall":
					r.nonFatal[k] = true
				default:
					bad("non_fatal takes packet and/or syscall")
				}
			}
		case "define", "no_cleanup":
			// Handled by the parser / nothing to clean up in memory.
		case "tcp_ts_ecr_scaled":
			// Inbound ecr values without a recorded outbound TSval are
			// always mapped by the learned offset.
		case "strict_segments":
			// The in-memory link never coalesces segments (no TSO/GSO).
		case "wire_client", "wire_server", "wire_server_ip", "wire_server_port", "wire_client_dev":
			bad("remote (wire) mode needs two machines; the runner is in-memory")
		default:
			bad("option not supported by the runner")
		}
	}
	if r.localIP == "" {
		r.localIP = map[string]string{"ipv4": "198.18.0.1", "ipv6": "fd00::1"}[r.ipv]
	}
	if r.remoteIP == "" {
		r.remoteIP = map[string]string{"ipv4": "198.18.0.2", "ipv6": "fd00::2"}[r.ipv]
	}
}

func parseFloat(s string) (float64, error) {
	var f float64
	_, err := fmt.Sscanf(s, "%g", &f)
	return f, err
}

// tolerance is the allowed lateness/earliness for an event expected at t.
func (r *run) tolerance(t int64) int64 {
	tol := r.tolUsecs
	if p := int64(r.tolPercent / 100 * float64(t-r.last)); p > tol {
		tol = p
	}
	return tol
}

// now is the virtual time in microseconds.
func (r *run) now() int64 { return r.tg.clock.nanos() / 1000 }

// eventTime resolves an event's scheduled start, and the end of a window.
func (r *run) eventTime(ev *script.Event) (start, end int64, any bool) {
	t := ev.Time
	switch t.Kind {
	case script.TimeAny:
		if ev.Kind != script.EventPacket || ev.Packet.Dir != script.Outbound {
			r.failf("'*' time is only for outbound packets")
		}
		return r.last, 0, true
	case script.TimeAbsolute:
		start = t.Usecs
		if start < r.last {
			// Absolute times never decrease; an outbound packet may have
			// been matched late within tolerance.
			if r.last-start > r.tolUsecs {
				r.failf("absolute time %.6f is before the previous event (%.6f)", float64(start)/1e6, float64(r.last)/1e6)
			}
			start = r.last
		}
	default:
		start = r.last + t.Usecs
	}
	end = start
	if t.Range {
		if ev.Kind != script.EventPacket || ev.Packet.Dir != script.Outbound {
			r.failf("time ranges are only for outbound packets")
		}
		end = t.End
		if t.EndRelative {
			end = r.last + t.End
		}
	}
	if t.Blocking {
		if t.Kind == script.TimeRelative {
			end = r.last + t.BlockEnd
		} else {
			end = t.BlockEnd
		}
	}
	return start, end, false
}

// event runs one event.
func (r *run) event(ev *script.Event) {
	r.line = ev.Line
	start, end, any := r.eventTime(ev)
	switch ev.Kind {
	case script.EventPacket:
		p := ev.Packet
		if p.Unsupported != "" {
			r.unsupported("%s", p.Unsupported)
		}
		if p.Dir == script.Inbound {
			r.advanceTo(start)
			r.inject(p)
			r.last = start
			return
		}
		r.expect(p, start, end, any)
	case script.EventCall:
		if ev.Call.Unsupported != "" {
			r.unsupported("%s", ev.Call.Unsupported)
		}
		r.advanceTo(start)
		r.last = start
		r.call(ev.Call, start, end)
	case script.EventCommand:
		r.advanceTo(start)
		r.last = start
		r.command(ev.Command)
	case script.EventCode:
		if ev.Code.Unsupported != "" {
			r.unsupported("%s", ev.Code.Unsupported)
		}
		r.advanceTo(start)
		r.last = start
		r.code(ev.Code)
	}
}

// advanceTo moves virtual time to t (µs), firing every timer due on the
// way, letting the stack settle after each and collecting what it sends.
func (r *run) advanceTo(t int64) {
	for {
		limit := t
		if d, ok := r.pendingDeadline(); ok && d < limit {
			limit = d
		}
		if r.tg.clock.fireDue(limit * 1000) {
			r.settle()
			continue
		}
		if limit < t {
			r.reachPendingDeadline(limit)
			continue
		}
		break
	}
	r.tg.clock.set(t * 1000)
	r.settle()
}

// pendingDeadline is when the blocked call must be looked at again: its
// wake time (a poll timeout) or the end of its tolerance.
func (r *run) pendingDeadline() (int64, bool) {
	p := r.pending
	if p == nil {
		return 0, false
	}
	if p.wake > r.now() && p.wake < p.failAt {
		return p.wake, true
	}
	return p.failAt, true
}

// reachPendingDeadline moves the clock to d, retries the blocked call and
// fails it if its time is up.
func (r *run) reachPendingDeadline(d int64) {
	r.tg.clock.set(d * 1000)
	r.wake = 0
	r.settle()
	if p := r.pending; p != nil {
		if r.wake > 0 {
			p.wake = r.wake
		}
		if r.now() >= p.failAt {
			r.pendingLate()
		}
	}
}

// settle waits until the stack has processed everything so far, collects
// its output and retries a blocked call.
func (r *run) settle() {
	r.tg.settle()
	r.collect()
	if r.pending != nil {
		r.retryPending()
		if r.pending == nil {
			// The call returned: what the stack sends because of it
			// (a window update, data) leaves now.
			r.tg.settle()
			r.collect()
		}
	}
}

// finish runs after the last event: a call still blocked is given its
// expected return time (plus tolerance) and then fails.
func (r *run) finish() {
	if p := r.pending; p != nil {
		r.line = p.c.Line
		r.advanceTo(p.failAt)
		if r.pending != nil {
			r.pendingLate()
		}
	}
}

// command runs a backquoted command: sysctl settings only.
func (r *run) command(c *script.Command) {
	r.line = c.Line
	if c.Unsupported != "" {
		r.unsupported("%s", c.Unsupported)
	}
	if c.Sysctls == nil {
		r.unsupported("command %q is not supported (only sysctl -w name=value)", firstWord(c.Text))
	}
	for _, sc := range c.Sysctls {
		if err := r.tg.sysctl(sc.Name, sc.Value); err != nil {
			r.unsupported("sysctl %s=%s: %v", sc.Name, sc.Value, err)
		}
	}
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return s
	}
	return f[0]
}

// Corpus lists the .pkt scripts under dir, sorted.
func Corpus(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".pkt") {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}
