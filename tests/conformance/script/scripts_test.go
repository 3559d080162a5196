package script

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type fullScript struct {
	name, src string
	want      *Script
}

func withErrno(e Event, errno, note string) Event {
	e.Call.Errno, e.Call.Note, e.Call.HasNote = errno, note, note != ""
	return e
}

func blocking(e Event, end int64) Event {
	e.Time.Blocking, e.Time.BlockEnd = true, end
	return e
}

func cmdEv(line int, tm Time, text string, ss ...Sysctl) Event {
	return Event{Line: line, Time: tm, Kind: EventCommand, Command: &Command{Line: line, Text: text, Sysctls: ss}}
}

var sockArgs = []Expr{Ell(), Sym("SOCK_STREAM"), Sym("IPPROTO_TCP")}

var fullScripts = []fullScript{
	{"passive open, data, close", `// Passive open, 40 bytes in, 10 out, then close.
--tolerance_usecs=6000
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0

+0   < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0   > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+.1  < . 1:1(0) ack 1 win 257
+0   accept(3, ..., ...) = 4
+0   < P. 1:41(40) ack 1 win 257
+0   > . 1:1(0) ack 41
+0   read(4, ..., 40) = 40
+0   write(4, ..., 10) = 10
+0   > P. 1:11(10) ack 41
+.01 < . 41:41(0) ack 11 win 257
+0   close(4) = 0
+0   > F. 11:11(0) ack 41
+.01 < F. 41:41(0) ack 12 win 257
+0   > . 12:12(0) ack 42
`, &Script{
		Options: []Option{{Line: 2, Name: "tolerance_usecs", Raw: "6000", HasValue: true, Value: int64(6000)}},
		Events: []Event{
			callEv(3, abs(0), "socket", I(3), sockArgs...),
			callEv(4, rel(0), "setsockopt", I(0), I(3), Sym("SOL_SOCKET"), Sym("SO_REUSEADDR"), List(I(1)), I(4)),
			callEv(5, rel(0), "bind", I(0), I(3), Ell(), Ell()),
			callEv(6, rel(0), "listen", I(0), I(3), I(1)),
			pktEv(8, rel(0), in("S", 0, 0).win(32792).opts(optv("mss", 1000), opt("sackOK"), opt("nop"), opt("nop"), opt("nop"), optv("wscale", 7))),
			pktEv(9, rel(0), out("S.", 0, 0).ack(1).opts(optv("mss", 1460), opt("nop"), opt("nop"), opt("sackOK"), opt("nop"), optv("wscale", 8))),
			pktEv(10, rel(100000), in(".", 1, 0).ack(1).win(257)),
			callEv(11, rel(0), "accept", I(4), I(3), Ell(), Ell()),
			pktEv(12, rel(0), in("P.", 1, 40).ack(1).win(257)),
			pktEv(13, rel(0), out(".", 1, 0).ack(41)),
			callEv(14, rel(0), "read", I(40), I(4), Ell(), I(40)),
			callEv(15, rel(0), "write", I(10), I(4), Ell(), I(10)),
			pktEv(16, rel(0), out("P.", 1, 10).ack(41)),
			pktEv(17, rel(10000), in(".", 41, 0).ack(11).win(257)),
			callEv(18, rel(0), "close", I(0), I(4)),
			pktEv(19, rel(0), out("F.", 11, 0).ack(41)),
			pktEv(20, rel(10000), in("F.", 41, 0).ack(12).win(257)),
			pktEv(21, rel(0), out(".", 12, 0).ack(42)),
		},
	}},
	{"active open", `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
+.01 < S. 0:0(0) ack 1 win 5792 <mss 1460,sackOK,TS val 700 ecr 100,nop,wscale 7>
+0 > . 1:1(0) ack 1 <nop,nop,TS val 105 ecr 700>
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+1~+1.5 > . 1:1(0) ack 1 <...>
`, &Script{
		Events: []Event{
			callEv(1, abs(0), "socket", I(3), sockArgs...),
			callEv(2, rel(0), "fcntl", I(0), I(3), Sym("F_SETFL"), Or(Sym("O_RDWR"), Sym("O_NONBLOCK"))),
			withErrno(callEv(3, rel(0), "connect", I(-1), I(3), Ell(), Ell()), "EINPROGRESS", "Operation now in progress"),
			pktEv(4, rel(0), out("S", 0, 0).opts(optv("mss", 1460), opt("sackOK"), ts(100, 0), opt("nop"), optv("wscale", 7))),
			pktEv(5, rel(10000), in("S.", 0, 0).ack(1).win(5792).opts(optv("mss", 1460), opt("sackOK"), ts(700, 100), opt("nop"), optv("wscale", 7))),
			pktEv(6, rel(0), out(".", 1, 0).ack(1).opts(opt("nop"), opt("nop"), ts(105, 700))),
			callEv(7, rel(0), "getsockopt", I(0), I(3), Sym("SOL_SOCKET"), Sym("SO_ERROR"), List(I(0)), List(I(4))),
			func() Event {
				p := out(".", 1, 0).ack(1)
				p.HasOptions, p.OptionsAny = true, true
				return pktEv(8, Time{Kind: TimeRelative, Usecs: 1e6, Range: true, End: 1.5e6, EndRelative: true}, p)
			}(),
		},
	}},
	{"blocking accept", `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0...0.3 accept(3, ..., ...) = 4
+.1 < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.2 < . 1:1(0) ack 1 win 1000
+.1 close(4) = 0
`, &Script{
		Events: []Event{
			callEv(1, abs(0), "socket", I(3), sockArgs...),
			callEv(2, rel(0), "bind", I(0), I(3), Ell(), Ell()),
			callEv(3, rel(0), "listen", I(0), I(3), I(1)),
			blocking(callEv(4, rel(0), "accept", I(4), I(3), Ell(), Ell()), 300000),
			pktEv(5, rel(100000), in("S", 0, 0).win(1000).opts(optv("mss", 1460))),
			pktEv(6, rel(0), out("S.", 0, 0).ack(1).opts(optv("mss", 1460))),
			pktEv(7, rel(200000), in(".", 1, 0).ack(1).win(1000)),
			callEv(8, rel(100000), "close", I(0), I(4)),
		},
	}},
	{"sysctl backticks", "--tolerance_usecs=75000\n`sysctl -w net.inet.tcp.sack.enable=1 net.inet.tcp.rfc1323=0`\n" +
		"0 `sysctl -q net.ipv4.tcp_rmem=\"4096 87380 6291456\" && sysctl -q net.ipv4.tcp_sack=0`\n" +
		"+0 `ip link set tun0 mtu 1400`\n" +
		"+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" +
		"`sysctl -w net.inet.tcp.sack.enable=0`\n",
		&Script{
			Options: []Option{{Line: 1, Name: "tolerance_usecs", Raw: "75000", HasValue: true, Value: int64(75000)}},
			Init: &Command{Line: 2, Text: "sysctl -w net.inet.tcp.sack.enable=1 net.inet.tcp.rfc1323=0",
				Sysctls: []Sysctl{{"net.inet.tcp.sack.enable", "1"}, {"net.inet.tcp.rfc1323", "0"}}},
			Events: []Event{
				cmdEv(3, abs(0), `sysctl -q net.ipv4.tcp_rmem="4096 87380 6291456" && sysctl -q net.ipv4.tcp_sack=0`,
					Sysctl{"net.ipv4.tcp_rmem", "4096 87380 6291456"}, Sysctl{"net.ipv4.tcp_sack", "0"}),
				{Line: 4, Time: rel(0), Kind: EventCommand, Command: &Command{Line: 4, Text: "ip link set tun0 mtu 1400",
					Unsupported: "command not supported (only sysctl -w|-q name=value): ip link set tun0 mtu 1400"}},
				callEv(5, rel(0), "socket", I(3), sockArgs...),
			},
			Cleanup: &Command{Line: 6, Text: "sysctl -w net.inet.tcp.sack.enable=0",
				Sysctls: []Sysctl{{"net.inet.tcp.sack.enable", "0"}}},
			Unsupported: []Note{{4, "command not supported (only sysctl -w|-q name=value): ip link set tun0 mtu 1400"}},
		}},
	{"ipv6", `--ip_version=ipv6
--remote_ip=2001:db8::1
--mtu=1500
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > (flowlabel 0x1) S 0:0(0) <mss 1440>
`, &Script{
		Options: []Option{
			{Line: 1, Name: "ip_version", Raw: "ipv6", HasValue: true, Value: "ipv6"},
			{Line: 2, Name: "remote_ip", Raw: "2001:db8::1", HasValue: true, Value: "2001:db8::1"},
			{Line: 3, Name: "mtu", Raw: "1500", HasValue: true, Value: int64(1500)},
		},
		Events: []Event{
			callEv(4, abs(0), "socket", I(3), sockArgs...),
			withErrno(callEv(5, rel(0), "connect", I(-1), I(3), Ell(), Ell()), "EINPROGRESS", "Operation now in progress"),
			func() Event {
				p := out("S", 0, 0).opts(optv("mss", 1440))
				p.IPInfo = []IPItem{{"flowlabel", "0x1"}}
				return pktEv(6, rel(0), p)
			}(),
		},
	}},
}

func TestFullScripts(t *testing.T) {
	for _, fs := range fullScripts {
		t.Run(fs.name, func(t *testing.T) {
			got := mustParse(t, fs.src, Config{})
			fs.want.File = "t.pkt"
			if diff := cmp.Diff(fs.want, got, cmpOpts...); diff != "" {
				t.Errorf("AST mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
