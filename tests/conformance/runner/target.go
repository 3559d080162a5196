package runner

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
)

// linkQueue bounds the segments the stack may send between two collects.
const linkQueue = 1 << 14

// target is the stack under test: one NIC on a channel link, a virtual
// clock, and a way to wait until the TCP has processed its input.
type target struct {
	kind  Stack
	st    *adapter.Stack
	s     *stack.Stack
	ch    *channel.Endpoint
	clock *vclock
	batch *batchtcp.Protocol // nil for gVisor
	quiet time.Duration
	local tcpip.Address
	proto tcpip.NetworkProtocolNumber
}

func newTarget(r *run) (*target, error) {
	local, err := netip.ParseAddr(r.localIP)
	if err != nil {
		return nil, fmt.Errorf("--local_ip %q: %v", r.localIP, err)
	}
	if _, err := netip.ParseAddr(r.remoteIP); err != nil {
		return nil, fmt.Errorf("--remote_ip %q: %v", r.remoteIP, err)
	}
	if local.Is4() != (r.ipv == "ipv4") {
		return nil, fmt.Errorf("--local_ip %s does not match --ip_version=%s", local, r.ipv)
	}
	tg := &target{kind: r.cfg.Stack, clock: &vclock{}, quiet: r.cfg.Quiet}
	var tr adapter.Transport
	switch r.cfg.Stack {
	case BatchTCP:
		tr = adapter.BatchTCP
	case GVisor:
		tr = adapter.GVisorTCP
	default:
		return nil, fmt.Errorf("unknown stack %q (batchtcp or gvisor)", r.cfg.Stack)
	}
	tg.ch = channel.New(linkQueue, uint32(r.mtu), "")
	bits := 24
	if local.Is6() {
		bits = 64
	}
	// Every destination routes to the one in-memory NIC: nothing leaves
	// the process.
	st, err := adapter.New(tg.ch,
		adapter.WithTransport(tr),
		adapter.WithShards(1),
		adapter.WithClock(tg.clock),
		adapter.WithTxBatching(false),
		adapter.WithAddress(netip.PrefixFrom(local, bits)),
		adapter.WithRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{}),
		adapter.WithRoute(netip.MustParsePrefix("::/0"), netip.Addr{}),
	)
	if err != nil {
		return nil, err
	}
	tg.st, tg.s = st, st.Stack()
	tg.local = tcpip.AddrFromSlice(local.AsSlice())
	tg.proto = header.IPv4ProtocolNumber
	if local.Is6() {
		tg.proto = header.IPv6ProtocolNumber
	}
	if p, ok := tg.s.TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
		tg.batch = p
	}
	// Both stacks start with SACK off (the adapter turns it on), the
	// setting the corpus is written for; a script turns it on with sysctl
	// net.ipv4.tcp_sack=1 (scripts/rfc2018).
	sack := tcpip.TCPSACKEnabled(false)
	if err := tg.s.SetTransportProtocolOption(header.TCPProtocolNumber, &sack); err != nil {
		st.Close()
		return nil, fmt.Errorf("SACK off: %s", err)
	}
	return tg, nil
}

func (tg *target) close() {
	tg.st.Close()
	tg.ch.Close()
}

// settle returns once the TCP has processed everything injected, every
// timer fired and every application call made so far. batchtcp has an
// exact barrier (Protocol.Sync); gVisor's TCP works on its own goroutines,
// so the runner waits until it has been silent for the quiet period.
func (tg *target) settle() {
	if tg.batch != nil {
		tg.batch.Sync()
		return
	}
	stats := func() uint64 {
		t := tg.s.Stats().TCP
		return t.SegmentsSent.Value() + t.ValidSegmentsReceived.Value() + t.InvalidSegmentsReceived.Value() +
			t.CurrentEstablished.Value() + t.EstablishedResets.Value()
	}
	last, lastQ := stats(), tg.ch.NumQueued()
	quietSince := time.Now()
	for time.Since(quietSince) < tg.quiet {
		time.Sleep(tg.quiet / 6)
		if s, q := stats(), tg.ch.NumQueued(); s != last || q != lastQ {
			last, lastQ, quietSince = s, q, time.Now()
		}
	}
}

// sysctl maps a Linux or FreeBSD sysctl onto the stack's TCP options. A
// setting the stack has no knob for is an error (the script is then
// unsupported), except a value equal to what the stack does anyway.
func (tg *target) sysctl(name, value string) error {
	set := func(o tcpip.SettableTransportProtocolOption) error {
		if err := tg.s.SetTransportProtocolOption(header.TCPProtocolNumber, o); err != nil {
			return fmt.Errorf("the stack refused it: %s", err)
		}
		return nil
	}
	num := func() (int64, error) {
		v, err := strconv.ParseInt(strings.TrimSpace(value), 0, 64)
		if err != nil {
			return 0, fmt.Errorf("not a number")
		}
		return v, nil
	}
	// onlyDefault accepts the stack's built-in behaviour and nothing else.
	onlyDefault := func(def ...int64) error {
		v, err := num()
		if err != nil {
			return err
		}
		for _, d := range def {
			if v == d {
				return nil
			}
		}
		return fmt.Errorf("the stack has no knob for it (accepted values: %v, its fixed behaviour)", def)
	}
	bufs := func(get func() (int, int, int), apply func(a, b, c int) error) error {
		f := strings.Fields(value)
		vals := make([]int, len(f))
		for i, s := range f {
			v, err := strconv.Atoi(s)
			if err != nil || v <= 0 {
				return fmt.Errorf("bad size %q", s)
			}
			vals[i] = v
		}
		mn, _, mx := get()
		var df int
		switch len(vals) {
		case 3:
			mn, df, mx = vals[0], vals[1], vals[2]
		case 1:
			df = vals[0]
			mn, mx = min(mn, df), max(mx, df)
		default:
			return fmt.Errorf("want one or three sizes")
		}
		return apply(mn, df, mx)
	}
	sndRange := func() (int, int, int) {
		var o tcpip.TCPSendBufferSizeRangeOption
		tg.s.TransportProtocolOption(header.TCPProtocolNumber, &o)
		return o.Min, o.Default, o.Max
	}
	rcvRange := func() (int, int, int) {
		var o tcpip.TCPReceiveBufferSizeRangeOption
		tg.s.TransportProtocolOption(header.TCPProtocolNumber, &o)
		return o.Min, o.Default, o.Max
	}
	setSnd := func(a, b, c int) error {
		return set(&tcpip.TCPSendBufferSizeRangeOption{Min: a, Default: b, Max: c})
	}
	setRcv := func(a, b, c int) error {
		return set(&tcpip.TCPReceiveBufferSizeRangeOption{Min: a, Default: b, Max: c})
	}
	msOpt := func(f func(d time.Duration) tcpip.SettableTransportProtocolOption, scale time.Duration) error {
		v, err := num()
		if err != nil {
			return err
		}
		return set(f(time.Duration(v) * scale))
	}
	switch name {
	// Linux.
	case "net.ipv4.tcp_sack", "net.inet.tcp.sack.enable":
		v, err := num()
		if err != nil {
			return err
		}
		o := tcpip.TCPSACKEnabled(v != 0)
		return set(&o)
	case "net.ipv4.tcp_timestamps", "net.ipv4.tcp_window_scaling", "net.inet.tcp.rfc1323":
		return onlyDefault(1)
	case "net.ipv4.tcp_rmem":
		return bufs(rcvRange, setRcv)
	case "net.ipv4.tcp_wmem":
		return bufs(sndRange, setSnd)
	case "net.inet.tcp.recvspace":
		return bufs(rcvRange, setRcv)
	case "net.inet.tcp.sendspace":
		return bufs(sndRange, setSnd)
	case "net.ipv4.tcp_syn_retries":
		v, err := num()
		if err != nil {
			return err
		}
		o := tcpip.TCPSynRetriesOption(v)
		return set(&o)
	case "net.ipv4.tcp_retries2":
		v, err := num()
		if err != nil {
			return err
		}
		o := tcpip.TCPMaxRetriesOption(v)
		return set(&o)
	case "net.ipv4.tcp_fin_timeout":
		return msOpt(func(d time.Duration) tcpip.SettableTransportProtocolOption {
			o := tcpip.TCPLingerTimeoutOption(d)
			return &o
		}, time.Second)
	case "net.inet.tcp.msl":
		// FreeBSD: TIME-WAIT lasts 2*MSL (ms).
		return msOpt(func(d time.Duration) tcpip.SettableTransportProtocolOption {
			o := tcpip.TCPTimeWaitTimeoutOption(2 * d)
			return &o
		}, time.Millisecond)
	case "net.inet.tcp.rexmit_min":
		return msOpt(func(d time.Duration) tcpip.SettableTransportProtocolOption {
			o := tcpip.TCPMinRTOOption(d)
			return &o
		}, time.Millisecond)
	case "net.ipv4.tcp_rto_min_us":
		return msOpt(func(d time.Duration) tcpip.SettableTransportProtocolOption {
			o := tcpip.TCPMinRTOOption(d)
			return &o
		}, time.Microsecond)
	case "net.ipv4.tcp_rto_max_ms":
		return msOpt(func(d time.Duration) tcpip.SettableTransportProtocolOption {
			o := tcpip.TCPMaxRTOOption(d)
			return &o
		}, time.Millisecond)
	case "net.inet.tcp.rexmit_initial":
		return onlyDefault(1000) // RFC 6298 §2.1: both stacks start at 1 s
	case "net.ipv4.tcp_congestion_control", "net.inet.tcp.cc.algorithm":
		v := value
		if v == "newreno" {
			v = "reno"
		}
		o := tcpip.CongestionControlOption(v)
		return set(&o)
	case "net.ipv4.tcp_moderate_rcvbuf":
		v, err := num()
		if err != nil {
			return err
		}
		o := tcpip.TCPModerateReceiveBufferOption(v != 0)
		return set(&o)
	case "net.ipv4.tcp_tw_reuse":
		v, err := num()
		if err != nil || v < 0 || v > 2 {
			return fmt.Errorf("want 0, 1 or 2")
		}
		o := tcpip.TCPTimeWaitReuseOption(v)
		return set(&o)
	case "net.ipv4.tcp_syncookies", "net.inet.tcp.syncookies":
		v, err := num()
		if err != nil {
			return err
		}
		o := tcpip.TCPAlwaysUseSynCookies(v == 2)
		return set(&o)
	case "net.ipv4.tcp_ecn", "net.inet.tcp.ecn.enable", "net.ipv4.tcp_fastopen",
		"net.inet.tcp.fastopen.client_enable", "net.inet.tcp.fastopen.server_enable",
		"net.inet.tcp.blackhole", "net.inet.tcp.insecure_rst", "net.inet.tcp.insecure_syn":
		// No ECN, no Fast Open, RSTs always sent, RFC 5961 always on.
		return onlyDefault(0)
	case "net.inet.tcp.hostcache.purgenow":
		return nil // no host cache: nothing to purge
	case "net.inet.tcp.mssdflt":
		return onlyDefault(536) // RFC 9293 §3.7.1 default send MSS (IPv4)
	}
	return fmt.Errorf("no such knob in the stack")
}
