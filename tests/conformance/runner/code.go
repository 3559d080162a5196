package runner

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/xdptcp/xdptcp/tests/conformance/script"
)

// assertLine is the one form of %{ }% Python the runner evaluates:
// "assert A op B[, message]" with names or integers on both sides.
var assertLine = regexp.MustCompile(`^assert\s+([A-Za-z_][A-Za-z0-9_]*|-?[0-9]+)\s*(==|!=|<=|>=|<|>)\s*([A-Za-z_][A-Za-z0-9_]*|-?[0-9]+)\s*(,.*)?$`)

// code evaluates a %{ }% block of simple TCP_INFO assertions on the socket
// under test, at the event's time (packetdrill evaluates the same values
// after the script). Anything else is unsupported.
func (r *run) code(c *script.Code) {
	var info *tcpip.TCPInfoOption
	for _, l := range strings.Split(c.Text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := assertLine.FindStringSubmatch(l)
		if m == nil {
			r.unsupported("%%{ }%% Python beyond \"assert A op B\" is not supported: %q", l)
		}
		if info == nil {
			s := r.fds[r.curFD]
			if s == nil {
				r.failf("%%{ }%% with no socket under test")
			}
			info = &tcpip.TCPInfoOption{}
			if err := s.ep.GetSockOpt(info); err != nil {
				r.failf("TCP_INFO: %s", err)
			}
		}
		a, b := r.pyValue(m[1], info), r.pyValue(m[3], info)
		var ok bool
		switch m[2] {
		case "==":
			ok = a == b
		case "!=":
			ok = a != b
		case "<":
			ok = a < b
		case "<=":
			ok = a <= b
		case ">":
			ok = a > b
		case ">=":
			ok = a >= b
		}
		if !ok {
			r.mismatch("syscall", l, fmt.Sprintf("%s=%d, %s=%d", m[1], a, m[3], b), "assertion failed: %s", l)
		}
	}
}

// pyValue evaluates one operand: an integer, a tcpi_* field or a symbol.
func (r *run) pyValue(s string, info *tcpip.TCPInfoOption) int64 {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v
	}
	if strings.HasPrefix(s, "tcpi_") {
		v, ok := tcpiField(info, s)
		if !ok {
			r.unsupported("TCP_INFO field %s is not available from tcpip.TCPInfoOption", s)
		}
		return v
	}
	if v, ok := symbols[s]; ok {
		return v
	}
	r.unsupported("name %s in %%{ }%% is not supported", s)
	return 0
}

// tcpiField maps a Linux struct tcp_info field to gVisor's TCPInfoOption.
func tcpiField(info *tcpip.TCPInfoOption, name string) (int64, bool) {
	switch name {
	case "tcpi_state":
		return int64(info.State), true
	case "tcpi_ca_state":
		return int64(info.CcState), true
	case "tcpi_rto":
		return info.RTO.Microseconds(), true
	case "tcpi_rtt":
		return info.RTT.Microseconds(), true
	case "tcpi_rttvar":
		return info.RTTVar.Microseconds(), true
	case "tcpi_snd_cwnd":
		return int64(info.SndCwnd), true
	case "tcpi_snd_ssthresh":
		return int64(info.SndSsthresh), true
	case "tcpi_reordering":
		return b2i64(info.ReorderSeen), true
	}
	return 0, false
}
