package batchtcp

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/ports"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
)

// Bind implements tcpip.Endpoint.
func (e *endpoint) Bind(addr tcpip.FullAddress) tcpip.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return &tcpip.ErrInvalidEndpointState{}
	}
	if e.bound || e.curState() != StateInitial {
		return &tcpip.ErrAlreadyBound{}
	}
	netProto := netProtoOf(addr.Addr, e.netProto)
	if addr.Addr.Len() != 0 {
		if e.p.stack.CheckLocalAddress(addr.NIC, netProto, addr.Addr) == 0 {
			return &tcpip.ErrBadLocalAddress{}
		}
	}
	return e.bindLocked(addr, netProto, tcpip.FullAddress{})
}

func (e *endpoint) bindLocked(addr tcpip.FullAddress, netProto tcpip.NetworkProtocolNumber, dest tcpip.FullAddress) tcpip.Error {
	res := ports.Reservation{
		Networks:     networks(netProto),
		Transport:    ProtocolNumber,
		Addr:         addr.Addr,
		Port:         addr.Port,
		Flags:        e.portFlags,
		BindToDevice: tcpip.NICID(e.ops.GetBindToDevice()),
		Dest:         dest,
	}
	port, err := e.p.stack.ReservePort(e.p.stack.SecureRNG(), res, nil)
	if err != nil {
		e.p.stack.Stats().TCP.FailedPortReservations.Increment()
		return err
	}
	res.Port = port
	e.portRes, e.reserved, e.bound = res, true, true
	e.netProto = netProto
	e.id.LocalAddress = addr.Addr
	e.id.LocalPort = port
	e.state.Store(uint32(StateBound))
	return nil
}

// Reservation network lists, shared read-only (the port manager only reads
// them): a literal per bind would be an allocation per connection.
var (
	networksV4 = []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber}
	networksV6 = []tcpip.NetworkProtocolNumber{header.IPv6ProtocolNumber}
)

func networks(p tcpip.NetworkProtocolNumber) []tcpip.NetworkProtocolNumber {
	switch p {
	case header.IPv4ProtocolNumber:
		return networksV4
	case header.IPv6ProtocolNumber:
		return networksV6
	}
	return []tcpip.NetworkProtocolNumber{p}
}

// Listen implements tcpip.Endpoint.
func (e *endpoint) Listen(backlog int) tcpip.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if backlog <= 0 || backlog > maxBacklog {
		backlog = maxBacklog
	}
	switch e.curState() {
	case StateListen:
		e.lst.backlog.Store(int32(backlog))
		return nil
	case StateInitial:
		if err := e.bindLocked(tcpip.FullAddress{}, e.netProto, tcpip.FullAddress{}); err != nil {
			return err
		}
	case StateBound:
	default:
		return &tcpip.ErrInvalidEndpointState{}
	}
	key := listenKey{netProto: e.netProto, addr: e.id.LocalAddress, port: e.id.LocalPort}
	l := newListener(e, key, backlog, len(e.p.shards))
	if !e.p.listeners.add(key, l) {
		return &tcpip.ErrPortInUse{}
	}
	if e.netProto == header.IPv6ProtocolNumber && key.addr.Len() == 0 && !e.ops.GetV6Only() {
		// Dual stack: an unspecified IPv6 listener also takes IPv4.
		k4 := listenKey{netProto: header.IPv4ProtocolNumber, port: key.port}
		e.p.listeners.add(k4, l)
	}
	e.lst = l
	e.state.Store(uint32(StateListen))
	return nil
}

// Accept implements tcpip.Endpoint.
func (e *endpoint) Accept(peerAddr *tcpip.FullAddress) (tcpip.Endpoint, *waiter.Queue, tcpip.Error) {
	e.mu.Lock()
	l := e.lst
	e.mu.Unlock()
	if l == nil || e.curState() != StateListen {
		return nil, nil, &tcpip.ErrInvalidEndpointState{}
	}
	child := l.pop()
	if child == nil {
		return nil, nil, &tcpip.ErrWouldBlock{}
	}
	if peerAddr != nil {
		*peerAddr = tcpip.FullAddress{Addr: child.id.RemoteAddress, Port: child.id.RemotePort}
	}
	return child, child.wq, nil
}

// Connect implements tcpip.Endpoint: it reserves a port, creates the TCB
// and hands it to the flow's shard, which sends the SYN.
func (e *endpoint) Connect(addr tcpip.FullAddress) tcpip.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return &tcpip.ErrInvalidEndpointState{}
	}
	switch s := e.curState(); s {
	case StateInitial, StateBound:
	case StateSynSent, StateSynRecv, StateConnecting:
		return &tcpip.ErrAlreadyConnecting{}
	case StateEstablished, StateCloseWait, StateFinWait1, StateFinWait2, StateClosing, StateLastAck, StateTimeWait:
		if !e.connErr {
			e.connErr = true
			return nil
		}
		return &tcpip.ErrAlreadyConnected{}
	case StateError:
		e.errMu.Lock()
		err := e.hardErr
		e.errMu.Unlock()
		if err != nil {
			return err
		}
		return &tcpip.ErrConnectionAborted{}
	default:
		return &tcpip.ErrInvalidEndpointState{}
	}
	if addr.Port == 0 {
		return &tcpip.ErrInvalidEndpointState{}
	}
	netProto := netProtoOf(addr.Addr, e.netProto)
	if addr.Addr.Len() == 0 {
		return &tcpip.ErrHostUnreachable{}
	}
	if e.bound && e.netProto != netProto {
		return &tcpip.ErrAddressFamilyNotSupported{}
	}
	nic := addr.NIC
	if bd := tcpip.NICID(e.ops.GetBindToDevice()); bd != 0 {
		nic = bd
	}
	r, err := e.p.stack.FindRoute(nic, e.id.LocalAddress, addr.Addr, netProto, false)
	if err != nil {
		return err
	}
	local := tcpip.FullAddress{Addr: r.LocalAddress()}
	if !e.bound {
		if err := e.bindLocked(local, netProto, tcpip.FullAddress{Addr: addr.Addr, Port: addr.Port}); err != nil {
			r.Release()
			if _, ok := err.(*tcpip.ErrPortInUse); ok {
				return &tcpip.ErrBadLocalAddress{}
			}
			return err
		}
	}
	e.id.LocalAddress = r.LocalAddress()
	e.id.RemoteAddress = addr.Addr
	e.id.RemotePort = addr.Port
	h := e.p.hasher.hashID(e.id)
	sh := e.p.shards[e.p.hasher.shardOf(h)]
	// The shard makes the TCB from its pool (startConnect): hand it what
	// Connect found.
	e.dial = dialParams{route: r, hash: h, netProto: netProto}
	e.sh.Store(sh)
	e.state.Store(uint32(StateSynSent))
	e.p.stack.Stats().TCP.ActiveConnectionOpenings.Increment()
	e.post(opConnect)
	return &tcpip.ErrConnectStarted{}
}

// Shutdown implements tcpip.Endpoint.
func (e *endpoint) Shutdown(flags tcpip.ShutdownFlags) tcpip.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch s := e.curState(); s {
	case StateListen:
		if flags&tcpip.ShutdownRead != 0 {
			e.closeListenerLocked()
			e.state.Store(uint32(StateClose))
			e.wq.Notify(waiter.ReadableEvents | waiter.EventHUp)
		}
		return nil
	case StateInitial, StateBound, StateClose, StateError:
		return &tcpip.ErrNotConnected{}
	case StateSynSent, StateConnecting:
		e.post(opAbort)
		return nil
	}
	if flags&tcpip.ShutdownRead != 0 {
		e.rcvShut.Store(true)
		if flags&tcpip.ShutdownWrite != 0 && e.rcvq.Len() > 0 {
			// Unread data and both directions shut: reset (as Linux).
			e.sndShut.Store(true)
			e.post(opAbort)
			return nil
		}
		e.wq.Notify(waiter.ReadableEvents | waiter.EventRdHUp)
	}
	if flags&tcpip.ShutdownWrite != 0 && !e.sndShut.Swap(true) {
		e.post(opShutWr)
		e.wq.Notify(waiter.WritableEvents)
	}
	return nil
}

// Close implements tcpip.Endpoint. Unread data or SO_LINGER with a zero
// timeout reset the connection (RFC 9293 §3.10.4, RFC 2525 §2.17); else a
// FIN follows the queued data and the shard finishes the close.
func (e *endpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	s := e.curState()
	if e.lst != nil {
		// A listener, perhaps already CLOSED by Shutdown(ShutdownRead):
		// no shard owns it either way, so release its port here.
		s = StateListen
	}
	switch s {
	case StateListen:
		e.closeListenerLocked()
		e.state.Store(uint32(StateClose))
		e.mu.Unlock()
		e.done.Add(1) // no shard owns a listener
		e.appDone()
		e.wq.Notify(waiter.EventHUp | waiter.ReadableEvents | waiter.WritableEvents)
		return
	case StateInitial, StateBound:
		e.state.Store(uint32(StateClose))
		e.mu.Unlock()
		e.done.Add(1) // no shard ever owned it
		e.appDone()
		e.wq.Notify(waiter.EventHUp | waiter.ReadableEvents | waiter.WritableEvents)
		return
	}
	linger := e.ops.GetLinger()
	abort := e.rcvq.Len() > 0 || (linger.Enabled && linger.Timeout == 0)
	e.sndShut.Store(true)
	e.mu.Unlock()
	if abort {
		e.post(opAbort | opClose)
	} else {
		e.post(opClose)
	}
	e.appDone()
}

// appDone is the application's release; see endpoint.done.
func (e *endpoint) appDone() {
	if e.done.Add(1) == 2 {
		e.release()
	}
}

// Abort implements tcpip.Endpoint.
func (e *endpoint) Abort() {
	e.mu.Lock()
	s := e.curState()
	e.mu.Unlock()
	if s == StateListen || s == StateInitial || s == StateBound {
		e.Close()
		return
	}
	e.post(opAbort)
	e.Close()
}

func (e *endpoint) closeListener() {
	e.mu.Lock()
	e.closeListenerLocked()
	e.mu.Unlock()
	e.wq.Notify(waiter.EventHUp | waiter.ReadableEvents)
}

// closeListenerLocked stops listening: queued children are reset.
func (e *endpoint) closeListenerLocked() {
	l := e.lst
	if l == nil || l.closed.Swap(true) {
		return
	}
	e.p.listeners.remove(l.key, l)
	e.p.listeners.remove(listenKey{netProto: header.IPv4ProtocolNumber, port: l.key.port}, l)
	for _, child := range l.drain() {
		l.release()
		child.post(opAbort | opClose)
		child.mu.Lock()
		child.closed = true
		child.mu.Unlock()
		child.appDone()
	}
}

// handleEvents runs an endpoint's coalesced application events on its
// shard.
func (sh *shard) handleEvents(now monotime.Time, e *endpoint) {
	ops := e.pending.Swap(0)
	if ops&opConnect != 0 {
		sh.startConnect(now, e)
	}
	c := e.c
	if c == nil || c.dead {
		return
	}
	if c.owner != sh {
		sh.stats.OwnershipViolations++
	}
	if ops&opAbort != 0 {
		switch c.state {
		case StateSynRecv, StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
			sh.sendReset(now, c)
			if estab(c.state) {
				sh.stats.EstablishedResets++
			}
		}
		c.appGone = ops&opClose != 0
		if c.appGone {
			sh.setState(c, StateClose)
			sh.destroy(c)
		} else if c.state == StateSynSent {
			// shutdown(2) while connecting fails the handshake with
			// ErrConnectionReset, as gVisor's Shutdown (handshakeFailed).
			sh.fail(c, &tcpip.ErrConnectionReset{})
		} else {
			sh.fail(c, &tcpip.ErrConnectionAborted{})
		}
		return
	}
	if ops&(opShutWr|opClose) != 0 && !c.finQ {
		switch c.state {
		case StateSynSent:
			sh.setState(c, StateClose)
			sh.destroy(c)
			return
		case StateEstablished, StateSynRecv:
			c.finQ = true
			sh.setState(c, StateFinWait1)
		case StateCloseWait:
			c.finQ = true
			sh.setState(c, StateLastAck)
		}
	}
	if ops&opClose != 0 {
		c.appGone = true
		if c.state == StateFinWait2 && c.closeAt == 0 {
			c.closeAt = now.Add(c.finWait2Wait(sh.p.options().lingerTimeout))
		}
	}
	if ops&opRead != 0 && c.wantWindowUpdate() {
		c.ackNow = true
	}
	c.wake(sh)
}

// startConnect installs an active open's TCB and sends the SYN (RFC 9293
// §3.10.1 OPEN in CLOSED, active).
func (sh *shard) startConnect(now monotime.Time, e *endpoint) {
	d := e.dial
	if d.route == nil {
		return
	}
	e.dial = dialParams{}
	if old := sh.flows[e.id]; old != nil {
		// The 4-tuple is still in use (e.g. TIME-WAIT).
		d.route.Release()
		e.fail(&tcpip.ErrPortInUse{}, StateError)
		e.wq.Notify(waiter.EventHUp | waiter.EventErr | waiter.ReadableEvents | waiter.WritableEvents)
		e.shardDone()
		return
	}
	c := sh.newConn()
	c.ep = e
	c.id = e.id
	c.hash = d.hash
	c.netProto = d.netProto
	c.route = d.route
	c.active = true
	e.c = c
	o := sh.p.options()
	c.state = StateSynSent
	c.rtt = newRTT(o)
	c.iss = sh.p.sec.isn(c.id, now)
	c.sndUna = c.iss
	c.sndNxt = c.iss + 1
	c.sndMax = c.sndNxt
	c.sndBase = c.iss + 1
	c.tsOK = true     // offered; kept only if the SYN-ACK echoes it
	c.sackOK = o.sack // offered likewise (RFC 2018 §2)
	c.tsOffset = sh.p.sec.tsOffset(c.id)
	c.rcvWS = windowShift(e.rcvBufSize())
	c.userMSS = int(e.userMSS.Load())
	c.mss = c.localMSS()
	c.cc.Init(c.mss)
	c.rttTiming, c.rttStart = true, now
	c.owner = sh
	sh.flows[c.id] = c
	sh.sendSYN(now, c)
	c.setRTO(now.Add(c.rtt.RTO()))
	c.wake(sh)
	_ = seqnum.Value(0)
}
