package runner

import (
	"fmt"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/xdptcp/xdptcp/tests/conformance/script"
)

// Option levels and names (Linux values, symbols.go).
const (
	solSocket = 1
	solTCP    = 6
	solIP     = 0
	solIPv6   = 41
)

// Limits the system-call layer checks before the endpoint sees a value (as
// Linux's tcp_sock_set_keep* and gVisor's netstack socket layer).
const (
	maxKeepSecs = 32767 // MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL
	maxKeepCnt  = 127   // MAX_TCP_KEEPCNT
)

// sockoptInt reads the integer in a [N] or N argument.
func (r *run) sockoptInt(c *script.Call, i int) int64 {
	e := r.arg(c, i)
	if e.Kind == script.ExprList && len(e.Elems) == 1 {
		e = &e.Elems[0]
	}
	v, err := r.intOf(e)
	if err != nil {
		r.failf("%s() value: %v", c.Name, err)
	}
	return v
}

func (r *run) setsockopt(c *script.Call) outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return o
	}
	level, name := r.argInt(c, 1), r.argInt(c, 2)
	ep, so := s.ep, s.ep.SocketOptions()
	seti := func(opt tcpip.SockOptInt) outcome {
		if err := ep.SetSockOptInt(opt, int(r.sockoptInt(c, 3))); err != nil {
			return failErr(err)
		}
		return ok(0)
	}
	setopt := func(opt tcpip.SettableSocketOption) outcome {
		if err := ep.SetSockOpt(opt); err != nil {
			return failErr(err)
		}
		return ok(0)
	}
	switch {
	case level == solSocket && name == 2: // SO_REUSEADDR
		so.SetReuseAddress(r.sockoptInt(c, 3) != 0)
		return ok(0)
	case level == solSocket && name == 15: // SO_REUSEPORT
		so.SetReusePort(r.sockoptInt(c, 3) != 0)
		return ok(0)
	case level == solSocket && name == 9: // SO_KEEPALIVE
		so.SetKeepAlive(r.sockoptInt(c, 3) != 0)
		return ok(0)
	case level == solSocket && name == 7: // SO_SNDBUF
		so.SetSendBufferSize(r.sockoptInt(c, 3), true)
		return ok(0)
	case level == solSocket && name == 8: // SO_RCVBUF
		so.SetReceiveBufferSize(r.sockoptInt(c, 3), true)
		return ok(0)
	case level == solSocket && name == 13: // SO_LINGER
		e := r.arg(c, 3)
		if e.Kind != script.ExprStruct {
			r.failf("SO_LINGER takes {onoff=N, linger=N}")
		}
		var l tcpip.LingerOption
		for _, f := range e.Fields {
			v, err := r.intOf(&f.Value)
			if err != nil {
				r.failf("SO_LINGER %s: %v", f.Name, err)
			}
			switch f.Name {
			case "onoff", "l_onoff":
				l.Enabled = v != 0
			case "linger", "l_linger":
				l.Timeout = time.Duration(v) * time.Second
			}
		}
		so.SetLinger(l)
		return ok(0)
	case level == solTCP && name == 1: // TCP_NODELAY
		so.SetDelayOption(r.sockoptInt(c, 3) == 0)
		return ok(0)
	case level == solTCP && name == 3: // TCP_CORK
		so.SetCorkOption(r.sockoptInt(c, 3) != 0)
		return ok(0)
	case level == solTCP && name == 12: // TCP_QUICKACK
		so.SetQuickAck(r.sockoptInt(c, 3) != 0)
		return ok(0)
	case level == solTCP && name == 2: // TCP_MAXSEG
		return seti(tcpip.MaxSegOption)
	case level == solTCP && name == 6: // TCP_KEEPCNT
		if v := r.sockoptInt(c, 3); v < 1 || v > maxKeepCnt {
			return fail("EINVAL")
		}
		return seti(tcpip.KeepaliveCountOption)
	case level == solTCP && name == 7: // TCP_SYNCNT
		return seti(tcpip.TCPSynCountOption)
	case level == solTCP && name == 10: // TCP_WINDOW_CLAMP
		return seti(tcpip.TCPWindowClampOption)
	case level == solTCP && name == 4: // TCP_KEEPIDLE
		v := r.sockoptInt(c, 3)
		if v < 1 || v > maxKeepSecs {
			return fail("EINVAL")
		}
		o := tcpip.KeepaliveIdleOption(time.Duration(v) * time.Second)
		return setopt(&o)
	case level == solTCP && name == 5: // TCP_KEEPINTVL
		v := r.sockoptInt(c, 3)
		if v < 1 || v > maxKeepSecs {
			return fail("EINVAL")
		}
		o := tcpip.KeepaliveIntervalOption(time.Duration(v) * time.Second)
		return setopt(&o)
	case level == solTCP && name == 8: // TCP_LINGER2
		o := tcpip.TCPLingerTimeoutOption(time.Duration(r.sockoptInt(c, 3)) * time.Second)
		return setopt(&o)
	case level == solTCP && name == 9: // TCP_DEFER_ACCEPT
		o := tcpip.TCPDeferAcceptOption(time.Duration(r.sockoptInt(c, 3)) * time.Second)
		return setopt(&o)
	case level == solTCP && name == 18: // TCP_USER_TIMEOUT
		o := tcpip.TCPUserTimeoutOption(time.Duration(r.sockoptInt(c, 3)) * time.Millisecond)
		return setopt(&o)
	case level == solTCP && name == 13: // TCP_CONGESTION
		e := r.arg(c, 3)
		if e.Kind != script.ExprString {
			r.failf("TCP_CONGESTION takes a string")
		}
		o := tcpip.CongestionControlOption(e.Text)
		return setopt(&o)
	case level == solIP && name == 1: // IP_TOS
		return seti(tcpip.IPv4TOSOption)
	case level == solIP && name == 2: // IP_TTL
		return seti(tcpip.IPv4TTLOption)
	case level == solIPv6 && name == 67: // IPV6_TCLASS
		return seti(tcpip.IPv6TrafficClassOption)
	}
	r.unsupported("setsockopt level %d option %d is not supported", level, name)
	return outcome{}
}

func (r *run) getsockopt(c *script.Call) outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return o
	}
	level, name := r.argInt(c, 1), r.argInt(c, 2)
	ep, so := s.ep, s.ep.SocketOptions()
	b2i := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	val := func(v int64, isSize bool) outcome {
		r.compareOut(c, 3, v, isSize)
		return ok(0)
	}
	geti := func(opt tcpip.SockOptInt) outcome {
		v, err := ep.GetSockOptInt(opt)
		if err != nil {
			return failErr(err)
		}
		return val(int64(v), false)
	}
	switch {
	case level == solSocket && name == 4: // SO_ERROR
		v := int64(0)
		if err := ep.LastError(); err != nil {
			v = errnos[errnoOf(err)]
		}
		e := r.arg(c, 3)
		if e.Kind != script.ExprEllipsis {
			want, err := r.intOf(e)
			if err != nil {
				r.failf("SO_ERROR value: %v", err)
			}
			if want != v {
				r.mismatch("syscall", errnoName(want), errnoName(v), "SO_ERROR is %s, expected %s", errnoName(v), errnoName(want))
			}
		}
		return ok(0)
	case level == solSocket && name == 3: // SO_TYPE
		return val(1, false)
	case level == solSocket && name == 2:
		return val(b2i(so.GetReuseAddress()), false)
	case level == solSocket && name == 15:
		return val(b2i(so.GetReusePort()), false)
	case level == solSocket && name == 9:
		return val(b2i(so.GetKeepAlive()), false)
	case level == solSocket && name == 7:
		return val(so.GetSendBufferSize(), true)
	case level == solSocket && name == 8:
		return val(so.GetReceiveBufferSize(), true)
	case level == solSocket && name == 30: // SO_ACCEPTCONN
		return val(b2i(so.GetAcceptConn()), false)
	case level == solTCP && name == 1:
		return val(b2i(!so.GetDelayOption()), false)
	case level == solTCP && name == 3:
		return val(b2i(so.GetCorkOption()), false)
	case level == solTCP && name == 2:
		v, err := ep.GetSockOptInt(tcpip.MaxSegOption)
		if err != nil {
			return failErr(err)
		}
		// The effective MSS is a stack choice: compared in strict mode only.
		return val(int64(v), true)
	case level == solTCP && name == 6:
		return geti(tcpip.KeepaliveCountOption)
	case level == solTCP && name == 7:
		return geti(tcpip.TCPSynCountOption)
	case level == solTCP && name == 10:
		return geti(tcpip.TCPWindowClampOption)
	case level == solTCP && name == 4:
		var o tcpip.KeepaliveIdleOption
		if err := ep.GetSockOpt(&o); err != nil {
			return failErr(err)
		}
		return val(int64(time.Duration(o)/time.Second), false)
	case level == solTCP && name == 5:
		var o tcpip.KeepaliveIntervalOption
		if err := ep.GetSockOpt(&o); err != nil {
			return failErr(err)
		}
		return val(int64(time.Duration(o)/time.Second), false)
	case level == solTCP && name == 8: // TCP_LINGER2, seconds (-1: none)
		var o tcpip.TCPLingerTimeoutOption
		if err := ep.GetSockOpt(&o); err != nil {
			return failErr(err)
		}
		if o < 0 {
			return val(-1, false)
		}
		return val(int64(time.Duration(o)/time.Second), false)
	case level == solTCP && name == 18:
		var o tcpip.TCPUserTimeoutOption
		if err := ep.GetSockOpt(&o); err != nil {
			return failErr(err)
		}
		return val(int64(time.Duration(o)/time.Millisecond), false)
	case level == solTCP && name == 11: // TCP_INFO
		return r.tcpInfo(c, ep)
	}
	r.unsupported("getsockopt level %d option %d is not supported", level, name)
	return outcome{}
}

// tcpInfo compares the fields a script writes in a TCP_INFO struct, e.g.
// {tcpi_state=TCP_ESTABLISHED, tcpi_snd_cwnd=10}.
func (r *run) tcpInfo(c *script.Call, ep tcpip.Endpoint) outcome {
	var info tcpip.TCPInfoOption
	if err := ep.GetSockOpt(&info); err != nil {
		return failErr(err)
	}
	e := r.arg(c, 3)
	if e.Kind == script.ExprEllipsis {
		return ok(0)
	}
	if e.Kind != script.ExprStruct {
		r.failf("TCP_INFO takes a struct of tcpi_* fields")
	}
	for _, f := range e.Fields {
		got, ok := tcpiField(&info, f.Name)
		if !ok {
			r.unsupported("TCP_INFO field %s is not available from tcpip.TCPInfoOption", f.Name)
		}
		want, err := r.intOf(&f.Value)
		if err != nil {
			r.failf("%s: %v", f.Name, err)
		}
		if want != got {
			r.mismatch("syscall", fmt.Sprintf("%s=%d", f.Name, want), fmt.Sprintf("%s=%d", f.Name, got), "TCP_INFO %s differs", f.Name)
		}
	}
	return ok(0)
}

func b2i64(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
