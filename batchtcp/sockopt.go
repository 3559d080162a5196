package batchtcp

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"
)

// sendBufferLimits and receiveBufferLimits feed SO_SNDBUF/SO_RCVBUF
// clamping from the protocol's ranges, as gVisor's TCP does.
func (p *Protocol) sendBufferLimits(tcpip.StackHandler) tcpip.SendBufferSizeOption {
	o := p.options().sndBuf
	return tcpip.SendBufferSizeOption(o)
}

func (p *Protocol) receiveBufferLimits(tcpip.StackHandler) tcpip.ReceiveBufferSizeOption {
	o := p.options().rcvBufRange
	return tcpip.ReceiveBufferSizeOption(o)
}

// OnReuseAddressSet implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnReuseAddressSet(v bool) {
	e.mu.Lock()
	e.portFlags.TupleOnly = v
	e.mu.Unlock()
}

// OnReusePortSet implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnReusePortSet(v bool) {
	e.mu.Lock()
	e.portFlags.LoadBalanced = v
	e.mu.Unlock()
}

// OnKeepAliveSet implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnKeepAliveSet(bool) { e.post(opOptions) }

// OnDelayOptionSet implements tcpip.SocketOptionsHandler: turning Nagle off
// flushes what it held.
func (e *endpoint) OnDelayOptionSet(v bool) {
	if !v {
		e.post(opWrite)
	}
}

// OnCorkOptionSet implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnCorkOptionSet(v bool) {
	if !v {
		e.post(opWrite)
	}
}

// OnSetSendBufferSize implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnSetSendBufferSize(v int64) int64 {
	e.sndq.SetLimit(int(v))
	return v
}

// OnSetReceiveBufferSize implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnSetReceiveBufferSize(v, _ int64) (int64, func()) {
	e.rcvq.SetLimit(int(v))
	return v, func() { e.post(opRead) }
}

// WakeupWriters implements tcpip.SocketOptionsHandler.
func (e *endpoint) WakeupWriters() { e.wq.Notify(waiter.WritableEvents) }

// GetAcceptConn implements tcpip.SocketOptionsHandler (SO_ACCEPTCONN).
func (e *endpoint) GetAcceptConn() bool { return e.curState() == StateListen }

// HasNIC implements tcpip.SocketOptionsHandler.
func (e *endpoint) HasNIC(id int32) bool {
	return id == 0 || e.p.stack.HasNIC(tcpip.NICID(id))
}

// SetSockOpt implements tcpip.Endpoint.
func (e *endpoint) SetSockOpt(opt tcpip.SettableSocketOption) tcpip.Error {
	switch v := opt.(type) {
	case *tcpip.KeepaliveIdleOption:
		if *v <= 0 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.kaIdleNs.Store(int64(*v))
		e.post(opOptions)
	case *tcpip.KeepaliveIntervalOption:
		if *v <= 0 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.kaIntervalNs.Store(int64(*v))
		e.post(opOptions)
	case *tcpip.TCPUserTimeoutOption:
		if *v < 0 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.userTimeout.Store(int64(*v))
	case *tcpip.CongestionControlOption:
		if string(*v) != "reno" {
			return &tcpip.ErrNoSuchFile{}
		}
	case *tcpip.TCPLingerTimeoutOption:
		// TCP_LINGER2, as gVisor's TCP: negative disables the orphan
		// FIN-WAIT-2 wait, 0 restores the stack's value, and the rest is
		// capped at maxLinger2.
		switch d := time.Duration(*v); {
		case d < 0:
			e.linger2.Store(-1)
		default:
			e.linger2.Store(int64(min(d, maxLinger2)))
		}
	case *tcpip.TCPDeferAcceptOption:
		// Accepted, as gVisor does; batchtcp uses the protocol's values.
	case *tcpip.SocketDetachFilterOption:
		return nil
	default:
		return nil
	}
	return nil
}

// SetSockOptInt implements tcpip.Endpoint.
func (e *endpoint) SetSockOptInt(opt tcpip.SockOptInt, v int) tcpip.Error {
	switch opt {
	case tcpip.KeepaliveCountOption:
		if v < 1 || v > 127 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.kaCnt.Store(int32(v))
	case tcpip.MaxSegOption:
		// TCP_MAXSEG: bounds the MSS announced in the SYN and the send
		// MSS of connections made after it (tcp(7)); gVisor's range.
		if v < header.TCPMinimumMSS || v > header.TCPMaximumMSS {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.userMSS.Store(int32(v))
	case tcpip.TCPSynCountOption, tcpip.TCPWindowClampOption, tcpip.IPv4TOSOption,
		tcpip.IPv6TrafficClassOption, tcpip.MTUDiscoverOption, tcpip.IPv4TTLOption,
		tcpip.IPv6HopLimitOption:
	}
	return nil
}

// GetSockOptInt implements tcpip.Endpoint.
func (e *endpoint) GetSockOptInt(opt tcpip.SockOptInt) (int, tcpip.Error) {
	switch opt {
	case tcpip.KeepaliveCountOption:
		return int(e.kaCnt.Load()), nil
	case tcpip.ReceiveQueueSizeOption:
		return e.rcvq.Len(), nil
	case tcpip.SendQueueSizeOption:
		return e.sndq.Len(), nil
	case tcpip.MaxSegOption:
		// The connection's send MSS once it has one (tcp(7); gVisor
		// answers 536 there), else TCP_MAXSEG's value or the default.
		if m := e.infoMSS.Load(); m > 0 {
			return int(m), nil
		}
		if m := e.userMSS.Load(); m > 0 {
			return int(m), nil
		}
		return defaultMSSv4, nil
	case tcpip.TCPSynCountOption:
		return int(e.p.options().synRetries), nil
	case tcpip.TCPWindowClampOption:
		return e.rcvq.Limit() / 2, nil
	case tcpip.IPv4TOSOption, tcpip.IPv6TrafficClassOption:
		return 0, nil
	case tcpip.IPv4TTLOption, tcpip.IPv6HopLimitOption:
		return -1, nil
	case tcpip.MulticastTTLOption:
		return 1, nil
	}
	return -1, &tcpip.ErrUnknownProtocolOption{}
}

// GetSockOpt implements tcpip.Endpoint.
func (e *endpoint) GetSockOpt(opt tcpip.GettableSocketOption) tcpip.Error {
	switch v := opt.(type) {
	case *tcpip.KeepaliveIdleOption:
		*v = tcpip.KeepaliveIdleOption(e.kaIdle())
	case *tcpip.KeepaliveIntervalOption:
		*v = tcpip.KeepaliveIntervalOption(e.kaInterval())
	case *tcpip.TCPUserTimeoutOption:
		*v = tcpip.TCPUserTimeoutOption(time.Duration(e.userTimeout.Load()))
	case *tcpip.CongestionControlOption:
		*v = "reno"
	case *tcpip.TCPLingerTimeoutOption:
		switch l := e.linger2.Load(); {
		case l < 0:
			*v = -1
		case l > 0:
			*v = tcpip.TCPLingerTimeoutOption(l)
		default:
			*v = tcpip.TCPLingerTimeoutOption(e.p.options().lingerTimeout)
		}
	case *tcpip.TCPDeferAcceptOption:
		*v = 0
	case *tcpip.TCPInfoOption:
		*v = e.tcpInfo()
	default:
		return &tcpip.ErrUnknownProtocolOption{}
	}
	return nil
}

// tcpInfo answers TCP_INFO from the snapshot the shard publishes.
func (e *endpoint) tcpInfo() tcpip.TCPInfoOption {
	cw := e.infoCwnd.Load()
	return tcpip.TCPInfoOption{
		RTT:         time.Duration(e.infoRTT.Load()),
		RTTVar:      time.Duration(e.infoRTTVar.Load()),
		RTO:         time.Duration(e.infoRTO.Load()),
		State:       tcpip.EndpointState(e.state.Load()),
		CcState:     tcpip.CongestionControlState(e.infoCC.Load()),
		SndCwnd:     uint32(cw >> 32),
		SndSsthresh: uint32(cw),
	}
}

// finWait2Wait is how long an orphaned FIN-WAIT-2 lasts: TCP_LINGER2 if the
// application set it (negative: not at all), else the protocol's value.
func (c *conn) finWait2Wait(def time.Duration) time.Duration {
	if c.ep != nil {
		switch l := c.ep.linger2.Load(); {
		case l < 0:
			return 0
		case l > 0:
			return time.Duration(l)
		}
	}
	return def
}
