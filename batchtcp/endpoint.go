package batchtcp

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/ports"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/batchtcp/internal/bytequeue"
)

// Pending-event bits an application sets for its shard. They coalesce: an
// endpoint is queued to the shard only when its bits go from zero to
// non-zero, however many Writes and Reads happen before the shard runs.
const (
	opConnect uint32 = 1 << iota
	opWrite
	opRead
	opShutWr
	opClose
	opAbort
	opOptions
)

// endpoint is the application's side of a connection: a tcpip.Endpoint.
// It shares with its shard only the byte queues, atomics and event bits;
// Read and Write never take a lock the shard takes.
type endpoint struct {
	tcpip.DefaultSocketOptionsHandler
	p        *Protocol
	netProto tcpip.NetworkProtocolNumber
	wq       *waiter.Queue
	ops      tcpip.SocketOptions

	// mu serialises the application's control calls (Bind, Connect,
	// Listen, Shutdown, Close); the shard never takes it.
	mu        sync.Mutex
	id        stack.TransportEndpointID
	bound     bool
	portRes   ports.Reservation
	reserved  bool
	portFlags ports.Flags
	lst       *listener
	closed    bool
	connErr   bool // Connect's result was reported (ErrAlreadyConnected next)

	readMu  sync.Mutex
	writeMu sync.Mutex

	// sh is the owning shard, set once when the endpoint is handed over.
	sh atomic.Pointer[shard]
	// c is the shard's TCB; after hand-over only the shard reads it.
	c *conn
	// dial is what Connect hands the shard, which makes c from its pool.
	dial dialParams

	sndq bytequeue.Queue // application -> shard
	rcvq bytequeue.Queue // shard -> application

	state     atomic.Uint32
	pending   atomic.Uint32
	rcvClosed atomic.Bool // FIN received
	rcvShut   atomic.Bool // shutdown(SHUT_RD)
	sndShut   atomic.Bool // shutdown(SHUT_WR) or close
	advWnd    atomic.Int64
	// done counts the two owners' releases (application Close and shard
	// teardown); the second releases the port and the buffers.
	done atomic.Int32

	errMu   sync.Mutex
	lastErr tcpip.Error
	hardErr tcpip.Error

	kaIdleNs     atomic.Int64
	kaIntervalNs atomic.Int64
	kaCnt        atomic.Int32
	userMSS      atomic.Int32 // TCP_MAXSEG, 0 if unset
	infoMSS      atomic.Int32 // the connection's send MSS, published by its shard
	userTimeout  atomic.Int64
	linger2      atomic.Int64 // TCP_LINGER2 in ns: 0 unset (protocol value), -1 none
	// TCP_INFO figures the shard publishes after each output pass.
	infoRTT, infoRTTVar, infoRTO atomic.Int64
	infoCwnd                     atomic.Uint64 // cwnd<<32 | ssthresh, in segments
	infoCC                       atomic.Uint32
}

var _ tcpip.Endpoint = (*endpoint)(nil)

func newEndpoint(p *Protocol, netProto tcpip.NetworkProtocolNumber, wq *waiter.Queue) *endpoint {
	e := &endpoint{p: p, netProto: netProto, wq: wq}
	o := p.options()
	e.ops.InitHandler(e, p.stack, p.sndLimits, p.rcvLimits)
	e.ops.SetDelayOption(o.delay)
	e.ops.SetSendBufferSize(int64(o.sndBuf.Default), false)
	e.ops.SetReceiveBufferSize(int64(o.rcvBufRange.Default), false)
	e.sndq.Init(o.sndBuf.Default)
	e.rcvq.Init(o.rcvBufRange.Default)
	e.kaIdleNs.Store(int64(keepaliveIdle))
	e.kaIntervalNs.Store(int64(keepaliveInterval))
	e.kaCnt.Store(keepaliveCount)
	e.state.Store(uint32(StateInitial))
	return e
}

// newChildEndpoint makes the endpoint of an accepted connection on its
// shard, inheriting the listener's options as Linux does.
func newChildEndpoint(parent *endpoint, sh *shard, c *conn) *endpoint {
	e := newEndpoint(parent.p, c.netProto, &waiter.Queue{})
	e.ops.SetDelayOption(parent.ops.GetDelayOption())
	e.ops.SetKeepAlive(parent.ops.GetKeepAlive())
	e.ops.SetSendBufferSize(parent.ops.GetSendBufferSize(), false)
	e.ops.SetReceiveBufferSize(parent.ops.GetReceiveBufferSize(), false)
	e.sndq.SetLimit(int(parent.ops.GetSendBufferSize()))
	e.rcvq.SetLimit(int(parent.ops.GetReceiveBufferSize()))
	e.kaIdleNs.Store(parent.kaIdleNs.Load())
	e.kaIntervalNs.Store(parent.kaIntervalNs.Load())
	e.kaCnt.Store(parent.kaCnt.Load())
	e.userMSS.Store(parent.userMSS.Load())
	e.id = c.id
	e.bound = true
	e.sh.Store(sh)
	e.c = c
	e.state.Store(uint32(StateEstablished))
	return e
}

func (e *endpoint) kaIdle() time.Duration     { return time.Duration(e.kaIdleNs.Load()) }
func (e *endpoint) kaInterval() time.Duration { return time.Duration(e.kaIntervalNs.Load()) }
func (e *endpoint) kaCount() int              { return int(e.kaCnt.Load()) }
func (e *endpoint) rcvBufSize() int           { return e.rcvq.Limit() }

// post hands events to the shard, queueing the endpoint only on the first.
func (e *endpoint) post(ops uint32) {
	sh := e.sh.Load()
	if sh == nil {
		return // not connected: nothing for a shard to do
	}
	if e.pending.Or(ops) == 0 {
		sh.in.pushEP(e)
	}
}

// dialParams are an active open's route, flow hash and network protocol.
type dialParams struct {
	route    *stack.Route
	hash     uint32
	netProto tcpip.NetworkProtocolNumber
}

// fail records a connection error (called by the shard).
func (e *endpoint) fail(err tcpip.Error, s State) {
	e.errMu.Lock()
	e.hardErr = err
	e.errMu.Unlock()
	e.state.Store(uint32(s))
}

// shardDone is the shard's release; see done.
func (e *endpoint) shardDone() {
	if e.done.Add(1) == 2 {
		e.release()
	}
}

// shardGone is called when the protocol stops before the shard took the
// endpoint's events.
func (e *endpoint) shardGone() {
	e.fail(&tcpip.ErrAborted{}, StateError)
	e.wq.Notify(waiter.EventHUp | waiter.EventErr | waiter.ReadableEvents | waiter.WritableEvents)
}

// release returns the port once both owners are done.
func (e *endpoint) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reserved {
		e.p.stack.ReleasePort(e.portRes)
		e.reserved = false
	}
}

func (e *endpoint) curState() State { return State(e.state.Load()) }

// State implements tcpip.Endpoint (gVisor's tcp.EndpointState numbering).
func (e *endpoint) State() uint32 { return e.state.Load() }

// Read implements tcpip.Endpoint. It never blocks.
func (e *endpoint) Read(w io.Writer, opts tcpip.ReadOptions) (tcpip.ReadResult, tcpip.Error) {
	e.readMu.Lock()
	defer e.readMu.Unlock()
	if e.rcvShut.Load() && e.rcvq.Len() == 0 {
		return tcpip.ReadResult{}, &tcpip.ErrClosedForReceive{}
	}
	if n := e.rcvq.Len(); n > 0 {
		var copied int
		var err error
		if opts.Peek {
			buf := make([]byte, n)
			e.rcvq.Peek(0, buf)
			copied, err = w.Write(buf)
		} else {
			copied, err = e.rcvq.WriteTo(w, n)
		}
		if copied == 0 && err != nil && err != io.ErrShortWrite {
			return tcpip.ReadResult{}, &tcpip.ErrBadBuffer{}
		}
		if !opts.Peek && copied > 0 {
			e.maybeWindowUpdate()
		}
		return tcpip.ReadResult{Count: copied, Total: copied}, nil
	}
	if e.rcvClosed.Load() {
		return tcpip.ReadResult{}, &tcpip.ErrClosedForReceive{}
	}
	switch s := e.curState(); s {
	case StateError:
		e.errMu.Lock()
		err := e.hardErr
		e.hardErr = nil
		e.errMu.Unlock()
		if err != nil {
			return tcpip.ReadResult{}, err
		}
		return tcpip.ReadResult{}, &tcpip.ErrClosedForReceive{}
	case StateInitial, StateBound, StateListen:
		return tcpip.ReadResult{}, &tcpip.ErrNotConnected{}
	case StateClose, StateTimeWait, StateCloseWait, StateLastAck, StateClosing:
		return tcpip.ReadResult{}, &tcpip.ErrClosedForReceive{}
	}
	return tcpip.ReadResult{}, &tcpip.ErrWouldBlock{}
}

// maybeWindowUpdate tells the shard when a read opened the window by
// enough to announce it (RFC 9293 §3.8.6.2.2).
func (e *endpoint) maybeWindowUpdate() {
	free := int64(e.rcvq.Free())
	adv := e.advWnd.Load()
	thresh := int64(min(e.rcvq.Limit()/2, 2*1460))
	if free-adv >= thresh {
		e.post(opRead)
	}
}

// Write implements tcpip.Endpoint: it copies into the send queue and tells
// the shard; partial writes are normal when the queue is nearly full.
func (e *endpoint) Write(p tcpip.Payloader, opts tcpip.WriteOptions) (int64, tcpip.Error) {
	if e.sndShut.Load() && e.curState() != StateError {
		return 0, &tcpip.ErrClosedForSend{}
	}
	switch s := e.curState(); s {
	case StateEstablished, StateCloseWait:
	case StateError:
		e.errMu.Lock()
		err := e.hardErr
		e.hardErr = nil
		e.errMu.Unlock()
		if err != nil {
			return 0, err
		}
		return 0, &tcpip.ErrClosedForSend{}
	case StateSynSent, StateSynRecv, StateConnecting:
		return 0, &tcpip.ErrWouldBlock{}
	default:
		return 0, &tcpip.ErrClosedForSend{}
	}
	e.writeMu.Lock()
	n, err := e.sndq.ReadFrom(p, p.Len())
	e.writeMu.Unlock()
	if n > 0 {
		e.post(opWrite)
	}
	if n == 0 {
		if err != nil {
			return 0, &tcpip.ErrBadBuffer{}
		}
		if p.Len() == 0 {
			return 0, nil
		}
		return 0, &tcpip.ErrWouldBlock{}
	}
	return int64(n), nil
}

// Readiness implements tcpip.Endpoint.
func (e *endpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	var r waiter.EventMask
	switch s := e.curState(); s {
	case StateInitial, StateBound:
		r = waiter.EventHUp
	case StateConnecting, StateSynSent, StateSynRecv:
	case StateClose, StateError, StateTimeWait:
		r = waiter.EventIn | waiter.EventOut | waiter.EventHUp | waiter.EventErr | waiter.EventRdHUp
	case StateListen:
		e.mu.Lock()
		l := e.lst
		e.mu.Unlock()
		if l != nil && l.ready() {
			r |= waiter.ReadableEvents
		}
	default:
		if e.sndShut.Load() || e.sndq.Free() > 0 {
			r |= waiter.WritableEvents
		}
		if e.rcvq.Len() > 0 || e.rcvClosed.Load() || e.rcvShut.Load() {
			r |= waiter.ReadableEvents
		}
		if e.rcvClosed.Load() || e.rcvShut.Load() {
			r |= waiter.EventRdHUp
		}
	}
	return r & mask
}

// Info implements tcpip.Endpoint.
func (e *endpoint) Info() tcpip.EndpointInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &stack.TransportEndpointInfo{NetProto: e.netProto, TransProto: ProtocolNumber, ID: e.id}
}

// Stats implements tcpip.Endpoint.
func (e *endpoint) Stats() tcpip.EndpointStats { return &tcpip.TransportEndpointStats{} }

// SetOwner implements tcpip.Endpoint.
func (*endpoint) SetOwner(tcpip.PacketOwner) {}

// ModerateRecvBuf implements tcpip.Endpoint (receive-buffer auto-tuning is
// not implemented; the buffer is SO_RCVBUF).
func (*endpoint) ModerateRecvBuf(int) {}

// SocketOptions implements tcpip.Endpoint.
func (e *endpoint) SocketOptions() *tcpip.SocketOptions { return &e.ops }

// LastError implements tcpip.Endpoint and SocketOptionsHandler: it
// returns and clears the pending error (SO_ERROR): the connection's error
// first, which is then reported once (a later Read sees end of stream), as
// gVisor's TCP and Linux (sk_err) do.
func (e *endpoint) LastError() tcpip.Error {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	if err := e.hardErr; err != nil {
		e.hardErr = nil
		return err
	}
	err := e.lastErr
	e.lastErr = nil
	return err
}

// UpdateLastError implements tcpip.SocketOptionsHandler.
func (e *endpoint) UpdateLastError(err tcpip.Error) {
	e.errMu.Lock()
	e.lastErr = err
	e.errMu.Unlock()
}

// GetLocalAddress implements tcpip.Endpoint.
func (e *endpoint) GetLocalAddress() (tcpip.FullAddress, tcpip.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return tcpip.FullAddress{Addr: e.id.LocalAddress, Port: e.id.LocalPort}, nil
}

// GetRemoteAddress implements tcpip.Endpoint.
func (e *endpoint) GetRemoteAddress() (tcpip.FullAddress, tcpip.Error) {
	switch e.curState() {
	case StateInitial, StateBound, StateListen, StateConnecting:
		return tcpip.FullAddress{}, &tcpip.ErrNotConnected{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.id.RemotePort == 0 {
		return tcpip.FullAddress{}, &tcpip.ErrNotConnected{}
	}
	return tcpip.FullAddress{Addr: e.id.RemoteAddress, Port: e.id.RemotePort}, nil
}

// Disconnect implements tcpip.Endpoint.
func (*endpoint) Disconnect() tcpip.Error { return &tcpip.ErrNotSupported{} }

// netProtoOf picks the network protocol of addr; an IPv4 address on an
// IPv6 endpoint uses IPv4 (dual stack without v4-mapped addresses).
func netProtoOf(addr tcpip.Address, def tcpip.NetworkProtocolNumber) tcpip.NetworkProtocolNumber {
	switch addr.Len() {
	case header.IPv4AddressSize:
		return header.IPv4ProtocolNumber
	case header.IPv6AddressSize:
		return header.IPv6ProtocolNumber
	}
	return def
}
