package script

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpOpts = []cmp.Option{
	cmpopts.EquateEmpty(),
	cmpopts.IgnoreFields(Expr{}, "Line"),
	cmpopts.IgnoreFields(TCPOption{}, "Line"),
}

// Expression helpers.
func I(v int64) Expr              { return Expr{Kind: ExprInt, Int: v} }
func Sym(s string) Expr           { return Expr{Kind: ExprSymbol, Text: s} }
func Str(s string) Expr           { return Expr{Kind: ExprString, Text: s} }
func Ell() Expr                   { return Expr{Kind: ExprEllipsis} }
func Or(e ...Expr) Expr           { return Expr{Kind: ExprOr, Elems: e} }
func List(e ...Expr) Expr         { return Expr{Kind: ExprList, Elems: e} }
func St(f ...Field) Expr          { return Expr{Kind: ExprStruct, Fields: f} }
func Fn(n string, e ...Expr) Expr { return Expr{Kind: ExprFunc, Text: n, Elems: e} }
func F(n string, v Expr) Field    { return Field{Name: n, Value: v} }

func abs(us int64) Time { return Time{Kind: TimeAbsolute, Usecs: us} }
func rel(us int64) Time { return Time{Kind: TimeRelative, Usecs: us} }

func callEv(line int, tm Time, name string, res Expr, args ...Expr) Event {
	return Event{Line: line, Time: tm, Kind: EventCall,
		Call: &Call{Line: line, Name: name, Args: args, Result: res}}
}

func errnoEv(line int, tm Time, name, errno, note string, args ...Expr) Event {
	e := callEv(line, tm, name, I(-1), args...)
	e.Call.Errno, e.Call.Note, e.Call.HasNote = errno, note, note != ""
	return e
}

func pktEv(line int, tm Time, p Packet) Event {
	p.Line = line
	return Event{Line: line, Time: tm, Kind: EventPacket, Packet: &p}
}

func in(flags string, start, length int64) Packet {
	return Packet{Dir: Inbound, Flags: flags, Start: start, End: start + length, Len: length}
}

func out(flags string, start, length int64) Packet {
	p := in(flags, start, length)
	p.Dir = Outbound
	return p
}

func (p Packet) ack(n int64) Packet { p.HasAck, p.Ack = true, n; return p }
func (p Packet) win(n int64) Packet { p.HasWin, p.Win = true, n; return p }
func (p Packet) opts(o ...TCPOption) Packet {
	p.HasOptions, p.Options = true, o
	return p
}

func opt(kind string) TCPOption           { return TCPOption{Kind: kind} }
func optv(kind string, v int64) TCPOption { return TCPOption{Kind: kind, Value: v} }
func ts(val, ecr int64) TCPOption         { return TCPOption{Kind: "TS", TSVal: val, TSEcr: ecr} }

func mustParse(t *testing.T, src string, cfg Config) *Script {
	t.Helper()
	s, err := ParseConfig("t.pkt", []byte(src), cfg)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	return s
}

// TestEvents checks each construct as the single event of a script.
func TestEvents(t *testing.T) {
	tests := []struct {
		name, src string
		want      Event
	}{
		{"abs int", "1 close(3) = 0", callEv(1, abs(1e6), "close", I(0), I(3))},
		{"abs float", "0.25 close(3) = 0", callEv(1, abs(250000), "close", I(0), I(3))},
		{"rel dotfloat", "+.05 close(3) = 0", callEv(1, rel(50000), "close", I(0), I(3))},
		{"rel truncates to usec", "+1.0000019 close(3) = 0", callEv(1, rel(1000001), "close", I(0), I(3))},
		{"blocking", "+0...0.2 read(7, ..., 100) = 40", func() Event {
			e := callEv(1, rel(0), "read", I(40), I(7), Ell(), I(100))
			e.Time.Blocking, e.Time.BlockEnd = true, 200000
			return e
		}()},
		{"star", "* > . 1:1(0) ack 41", pktEv(1, Time{Kind: TimeAny}, out(".", 1, 0).ack(41))},
		{"range abs", "1~2 > . 1:1(0) ack 1", pktEv(1, Time{Kind: TimeAbsolute, Usecs: 1e6, Range: true, End: 2e6}, out(".", 1, 0).ack(1))},
		{"range rel", "+0.1~+0.3 > F. 1:1(0) ack 1", pktEv(1, Time{Kind: TimeRelative, Usecs: 1e5, Range: true, End: 3e5, EndRelative: true}, out("F.", 1, 0).ack(1))},
		{"syn opts", "0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>",
			pktEv(1, abs(0), in("S", 0, 0).win(65535).opts(optv("mss", 1460), opt("sackOK"), ts(100, 0), opt("nop"), optv("wscale", 7)))},
		{"synack", "0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>",
			pktEv(1, abs(0), out("S.", 0, 0).ack(1).opts(optv("mss", 1460), opt("nop"), opt("nop"), opt("sackOK"), opt("nop"), optv("wscale", 8)))},
		{"data", "+0 < P. 1:1001(1000) ack 1 win 257", pktEv(1, rel(0), in("P.", 1, 1000).ack(1).win(257))},
		{"rst", "+0 < R 1:1(0) win 0", pktEv(1, rel(0), in("R", 1, 0).win(0))},
		{"rst ack", "+0 > R. 1:1(0) ack 1", pktEv(1, rel(0), out("R.", 1, 0).ack(1))},
		{"ecn syn no flags", "+0 < SEW 0:0(0) win 1000", pktEv(1, rel(0), in("SEW", 0, 0).win(1000))},
		{"none flags", "+0 < - 1:1(0) win 1000", pktEv(1, rel(0), in("-", 1, 0).win(1000))},
		{"fork flags after dot", "+0 > .E 1:1(0) ack 1", pktEv(1, rel(0), out(".E", 1, 0).ack(1))},
		{"sack", "+0 < . 1:1(0) ack 1 win 100 <sack 1001:2001 3001:4001,nop,nop>",
			pktEv(1, rel(0), in(".", 1, 0).ack(1).win(100).opts(
				TCPOption{Kind: "sack", Blocks: []SackBlock{{1001, 2001}, {3001, 4001}}}, opt("nop"), opt("nop")))},
		{"eol md5 fo", "+0 < S 0:0(0) win 100 <md5 0xabcd, FO, FO 1234abcd, eol>",
			pktEv(1, rel(0), in("S", 0, 0).win(100).opts(
				TCPOption{Kind: "md5", Data: "0xabcd"}, opt("FO"), TCPOption{Kind: "FO", Data: "1234abcd"}, opt("eol")))},
		{"ECN accecn", "+0 > . 1:1(0) ack 1 <ECN e0b 1 ceb 2>",
			pktEv(1, rel(0), out(".", 1, 0).ack(1).opts(TCPOption{Kind: "ECN", ECN: []IPItem{{"e0b", "1"}, {"ceb", "2"}}}))},
		{"fork generic", "+0 > S. 0:0(0) ack 1 <exp-FO 0x1122, TS val ... ecr 5!>",
			pktEv(1, rel(0), out("S.", 0, 0).ack(1).opts(TCPOption{Kind: "exp-FO", Data: "0x1122"}, TCPOption{Kind: "TS", TSAny: true, TSEcr: 5, EcrRaw: true}))},
		{"options any", "+0 > S. 0:0(0) ack 1 <...>", func() Event {
			p := out("S.", 0, 0).ack(1)
			p.HasOptions, p.OptionsAny = true, true
			return pktEv(1, rel(0), p)
		}()},
		{"ipinfo and ports", "+0 < [tos 0x2, ttl 64] 9000>8080 S 0:0(0) urg 3 win 10", func() Event {
			p := in("S", 0, 0).win(10)
			p.IPInfo = []IPItem{{"tos", "0x2"}, {"ttl", "64"}}
			p.HasPorts, p.SrcPort, p.DstPort = true, 9000, 8080
			p.HasUrg, p.Urg = true, 3
			return pktEv(1, rel(0), p)
		}()},
		{"fork raw and unchecked seq", "+0 > . ...(0) ack 1", func() Event {
			p := out(".", 0, 0).ack(1)
			p.SeqAny = true
			return pktEv(1, rel(0), p)
		}()},
		{"fork raw seq", "+0 < . 5:5(0)! ack 1 win 1", func() Event {
			p := in(".", 5, 0).ack(1).win(1)
			p.SeqRaw = true
			return pktEv(1, rel(0), p)
		}()},
		{"errno note", "+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)",
			errnoEv(1, rel(0), "connect", "EINPROGRESS", "Operation now in progress", I(3), Ell(), Ell())},
		{"errno apostrophe note", "+0 read(4, ..., 1) = -1 EAGAIN (Can't (really) read)",
			errnoEv(1, rel(0), "read", "EAGAIN", "Can't (really) read", I(4), Ell(), I(1))},
		{"errno no note", "+0 accept(3, ..., ...) = -1 EWOULDBLOCK",
			errnoEv(1, rel(0), "accept", "EWOULDBLOCK", "", I(3), Ell(), Ell())},
		{"flags note", "+0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)", func() Event {
			e := callEv(1, rel(0), "fcntl", Expr{Kind: ExprInt, Int: 2, Hex: true}, I(3), Sym("F_GETFL"))
			e.Call.Note, e.Call.HasNote = "flags O_RDWR", true
			return e
		}()},
		{"or args", "+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0",
			callEv(1, rel(0), "fcntl", I(0), I(3), Sym("F_SETFL"), Or(Sym("O_RDWR"), Sym("O_NONBLOCK")))},
		{"linger", "+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0",
			callEv(1, rel(0), "setsockopt", I(0), I(3), Sym("SOL_SOCKET"), Sym("SO_LINGER"), St(F("onoff", I(1)), F("linger", I(0))), I(8))},
		{"getsockopt int", "+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0",
			callEv(1, rel(0), "getsockopt", I(0), I(3), Sym("SOL_SOCKET"), Sym("SO_ERROR"), List(I(0)), List(I(4)))},
		{"string arg joins", `+0 setsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "re" "no\x41", 6) = 0`,
			callEv(1, rel(0), "setsockopt", I(0), I(3), Sym("IPPROTO_TCP"), Sym("TCP_CONGESTION"), Str("renoA"), I(6))},
		{"poll", "+0 poll([{fd=3, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1",
			callEv(1, rel(0), "poll", I(1), List(St(F("fd", I(3)), F("events", Or(Sym("POLLIN"), Sym("POLLOUT"))), F("revents", Sym("POLLOUT")))), I(1), I(0))},
		{"sockaddr", `+0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0`,
			callEv(1, rel(0), "connect", I(0), I(3), St(F("sa_family", Sym("AF_INET")), F("sin_port", Fn("htons", I(8080))), F("sin_addr", Fn("inet_addr", Str("192.0.2.1")))), I(16))},
		{"msghdr", "+0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=0}, 0) = 10",
			callEv(1, rel(0), "sendmsg", I(10), I(4), St(
				Field{Name: "msg_name", Arg: &Expr{Kind: ExprEllipsis}, Value: Ell()},
				Field{Name: "msg_iov", Arg: &Expr{Kind: ExprInt, Int: 1}, Value: List(St(Field{Value: Ell()}, Field{Value: I(10)}))},
				F("msg_flags", I(0))), I(0))},
		{"symbol result", "+0 ioctl(4, SIOCINQ, [0]) = 0", callEv(1, rel(0), "ioctl", I(0), I(4), Sym("SIOCINQ"), List(I(0)))},
		{"negative and NULL", "+0 write(4, NULL, 0) = 0", callEv(1, rel(0), "write", I(0), I(4), Sym("NULL"), I(0))},
		{"unsupported call", "+0 pipe([3, 4]) = 0", func() Event {
			e := callEv(1, rel(0), "pipe", I(0), List(I(3), I(4)))
			e.Call.Unsupported = "system call pipe is not supported"
			return e
		}()},
		{"sysctl", "0 `sysctl -q net.ipv4.tcp_timestamps=0`", Event{Line: 1, Time: abs(0), Kind: EventCommand,
			Command: &Command{Line: 1, Text: "sysctl -q net.ipv4.tcp_timestamps=0", Sysctls: []Sysctl{{"net.ipv4.tcp_timestamps", "0"}}}}},
		{"other command", "0 `tc qdisc add dev tun0 root fq`", Event{Line: 1, Time: abs(0), Kind: EventCommand,
			Command: &Command{Line: 1, Text: "tc qdisc add dev tun0 root fq",
				Unsupported: "command not supported (only sysctl -w|-q name=value): tc qdisc add dev tun0 root fq"}}},
		{"python", "+0 %{ assert tcpi_rto == 1000000 }%", Event{Line: 1, Time: rel(0), Kind: EventCode,
			Code: &Code{Line: 1, Text: "assert tcpi_rto == 1000000"}}},
		{"udp unsupported", "+0 < udp (10)\n+0 close(3) = 0", pktEv(1, rel(0), Packet{Dir: Inbound, Unsupported: "UDP packets are not supported"})},
		{"icmp unsupported", "+0 > icmp unreachable frag_needed mtu 1200 [1:1461(1460)]", pktEv(1, rel(0), Packet{Dir: Outbound, Unsupported: "ICMP packets are not supported"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.src, Config{})
			if diff := cmp.Diff(tc.want, s.Events[0], cmpOpts...); diff != "" {
				t.Errorf("event mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	src := `--ip_version=ipv6 --local_ip=fd3d:fa7b:d17d::0
--tolerance_usecs=10000 --tolerance_percent=5
--strict_segments --non_fatal=packet,syscall --define=PORT=8080
--mtu=9000 --unknown_knob=7 --tun_dev=tun1
0 close(3) = 0
`
	s := mustParse(t, src, Config{})
	want := []Option{
		{Line: 1, Name: "ip_version", Raw: "ipv6", HasValue: true, Value: "ipv6"},
		{Line: 1, Name: "local_ip", Raw: "fd3d:fa7b:d17d::0", HasValue: true, Value: "fd3d:fa7b:d17d::"},
		{Line: 2, Name: "tolerance_usecs", Raw: "10000", HasValue: true, Value: int64(10000)},
		{Line: 2, Name: "tolerance_percent", Raw: "5", HasValue: true, Value: 5.0},
		{Line: 3, Name: "strict_segments", Value: true},
		{Line: 3, Name: "non_fatal", Raw: "packet,syscall", HasValue: true, Value: "packet,syscall"},
		{Line: 3, Name: "define", Raw: "PORT=8080", HasValue: true, Value: "PORT=8080"},
		{Line: 4, Name: "mtu", Raw: "9000", HasValue: true, Value: int64(9000)},
		{Line: 4, Name: "unknown_knob", Raw: "7", HasValue: true, Unsupported: "unknown option --unknown_knob"},
		{Line: 4, Name: "tun_dev", Raw: "tun1", HasValue: true, Value: "tun1", Unsupported: "tun devices are not used by the runner"},
	}
	if diff := cmp.Diff(want, s.Options, cmpOpts...); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	wantNotes := []Note{{4, "unknown option --unknown_knob"}, {4, "tun devices are not used by the runner"}}
	if diff := cmp.Diff(wantNotes, s.Unsupported); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
}

func TestDefinesAndIfdef(t *testing.T) {
	src := `--define=FDX=4
--define=MSG="hi"
#ifdef FreeBSD
0 ` + "`sysctl -w net.inet.tcp.rfc1323=1`" + `
#endif
#ifdef Linux
0 ` + "`sysctl -q net.ipv4.tcp_timestamps=1`" + `
#endif
+0 close(FDX) = 0
+0 write(FDX, MSG, 2) = 2
`
	s := mustParse(t, src, Config{Platform: "FreeBSD", Defines: map[string]string{"FDX": "5"}})
	if len(s.Events) != 3 {
		t.Fatalf("got %d events, want 3", len(s.Events))
	}
	if got := s.Events[0].Command.Sysctls; !cmp.Equal(got, []Sysctl{{"net.inet.tcp.rfc1323", "1"}}) {
		t.Errorf("FreeBSD branch not taken: %v", got)
	}
	// Command-line define overrides the script's.
	want := callEv(9, rel(0), "close", I(0), I(5))
	if diff := cmp.Diff(want, s.Events[1], cmpOpts...); diff != "" {
		t.Errorf("define (-want +got):\n%s", diff)
	}
	if got := s.Events[2].Call.Args[1]; !cmp.Equal(got, Str("hi"), cmpOpts...) {
		t.Errorf("string define: %+v", got)
	}
	s = mustParse(t, src, Config{Platform: "Linux"})
	if got := s.Events[0].Command.Sysctls[0].Name; got != "net.ipv4.tcp_timestamps" {
		t.Errorf("Linux branch: %s", got)
	}
	if s.Events[1].Line != 9 || s.Events[1].Call.Args[0].Int != 4 {
		t.Errorf("line or define wrong: %+v", s.Events[1])
	}
}

func TestLineNumbers(t *testing.T) {
	src := "// header\n/* block\ncomment */\n0 setsockopt(3,\n  SOL_SOCKET,\n  SO_REUSEADDR, [1], 4)\n  = 0\n\n+0 < S 0:0(0)\n win 100\n"
	s := mustParse(t, src, Config{})
	if s.Events[0].Line != 4 || s.Events[0].Call.Args[1].Line != 5 || s.Events[0].Call.Result.Line != 7 {
		t.Errorf("call lines: %+v", s.Events[0].Call)
	}
	if s.Events[1].Line != 9 || s.Events[1].Packet.Line != 9 {
		t.Errorf("packet line: %d", s.Events[1].Line)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"empty", "", "t.pkt:1: expected at least one event"},
		{"bad time", "0 close(3) = 0\n+ foo", "t.pkt:2: expected an event time, found 'foo'"},
		{"len mismatch", "0 close(3) = 0\n\n+0 < . 1:10(5) ack 1 win 1", "t.pkt:3: expected end sequence 6 (start 1 + len 5), found 10"},
		{"inbound no win", "0 < . 1:1(0) ack 1", "t.pkt:1: inbound packet needs 'win N'"},
		{"bad flags", "0 < Q 1:1(0) win 1", "t.pkt:1: expected TCP flags"},
		{"missing result", "0 close(3)\n+0 close(4) = 0", "t.pkt:2: expected '=', found '+'"},
		{"unterminated string", "0 write(3, \"abc, 3) = 3", "t.pkt:1: unterminated string"},
		{"unterminated command", "0 `sysctl", "t.pkt:1: unterminated backquoted command"},
		{"unterminated comment", "0 close(3) = 0 /* x", "t.pkt:1: unterminated /* comment"},
		{"unterminated ifdef", "--define=X=1\n#ifdef X\n0 close(3) = 0\n", "unterminated #ifdef"},
		{"skipped ifdef open", "#ifdef NOPE\n0 close(3) = 0\n", "t.pkt:1: unterminated #ifdef NOPE"},
		{"stray endif", "0 close(3) = 0\n#endif", "t.pkt:2: #endif without #ifdef"},
		{"bad option", "--tolerance_usecs=abc\n0 close(3) = 0", "t.pkt:1: option --tolerance_usecs: expected a non-negative integer"},
		{"option after event", "0 close(3) = 0\n--mtu=1", "t.pkt:2: expected an event, found option --mtu"},
		{"star on call", "* close(3) = 0", "t.pkt:1: time '*' and ranges"},
		{"blocking packet", "0...1 > . 1:1(0) ack 1", "t.pkt:1: blocking time T...E"},
		{"range backwards", "2~1 > . 1:1(0)", "t.pkt:1: time range ends before it starts"},
		{"bad option list", "0 > S. 0:0(0) ack 1 <mss 1460 nop>", "t.pkt:1: expected ',' or '>' in TCP options"},
		{"unknown tcp option", "0 > S. 0:0(0) ack 1 <bogus>", `t.pkt:1: unknown TCP option "bogus"`},
		{"bad char", "0 close(3) = 0 $", "t.pkt:1: unexpected character '$'"},
		{"cleanup not last", "0 close(3) = 0\n`echo`\n+0 close(4) = 0", "t.pkt:3: expected end of script after cleanup command"},
		{"unclosed struct", "0 setsockopt(3, 1, 2, {onoff=1 linger=0}, 8) = 0", "t.pkt:1: expected ',' or '}'"},
		{"deep nesting", "0 f(" + strings.Repeat("[", 100) + ") = 0", "t.pkt:1: arguments nested too deeply"},
		{"big time", "12345678901 close(3) = 0", "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.pkt", []byte(tc.src))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("want *Error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fullScripts {
		f.Add(s.src)
	}
	f.Add("0 < [ect0] S 0:0(0) win 1 <ECN e1b 3, exp-1234 0xab, 0x0101>")
	f.Add("--define=A=`x`\n#ifdef A\n0 A\n#endif")
	f.Fuzz(func(t *testing.T, src string) {
		s, err := ParseConfig("f.pkt", []byte(src), Config{Platform: "Linux"})
		if err == nil && s == nil {
			t.Fatal("nil script without error")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "f.pkt:") {
			t.Fatalf("error without position: %v", err)
		}
	})
}
