package netconn

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPConn is a net.Conn over a connected tcpip.Endpoint. Reads are
// serialized among themselves, as are writes, as in package net.
type TCPConn struct {
	ep tcpip.Endpoint
	wq *waiter.Queue
	// The addresses are kept as the stack gives them and converted on
	// first use: most short connections never ask.
	lfull, rfull tcpip.FullAddress
	laddr, raddr atomic.Pointer[net.TCPAddr]
	done         chan struct{} // closed by Close
	closer       sync.Once

	rd, wd deadline

	readMu sync.Mutex
	rw     eventWaiter       // guarded by readMu
	sw     tcpip.SliceWriter // guarded by readMu

	writeMu sync.Mutex
	ww      eventWaiter // guarded by writeMu
	wbuf    bytes.Reader
}

var _ net.Conn = (*TCPConn)(nil)

// newConn wraps a connected endpoint. TCP_NODELAY is set, as net does.
func newConn(ep tcpip.Endpoint, wq *waiter.Queue, local, remote tcpip.FullAddress) *TCPConn {
	c := &TCPConn{ep: ep, wq: wq, lfull: local, rfull: remote, done: make(chan struct{})}
	c.rw.init(wq, waiter.EventIn|waiter.EventHUp|waiter.EventErr)
	c.ww.init(wq, waiter.EventOut|waiter.EventHUp|waiter.EventErr)
	ep.SocketOptions().SetDelayOption(false)
	return c
}

func (c *TCPConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *TCPConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.local(), Addr: c.remote(), Err: err}
}

// Read implements net.Conn. It returns io.EOF, unwrapped, after the peer's
// FIN.
func (c *TCPConn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.closed() {
		return 0, c.opError("read", net.ErrClosed)
	}
	if c.rd.expired() {
		return 0, c.opError("read", os.ErrDeadlineExceeded)
	}
	if len(b) == 0 {
		return 0, nil
	}
	defer c.rw.unregister()
	for {
		// c.sw is reused (under readMu): a fresh writer would escape to
		// the heap on every Read.
		c.sw = tcpip.SliceWriter(b)
		res, err := c.ep.Read(&c.sw, tcpip.ReadOptions{})
		c.sw = nil
		switch err.(type) {
		case nil:
			return res.Count, nil
		case *tcpip.ErrWouldBlock:
		case *tcpip.ErrClosedForReceive:
			if c.closed() {
				return 0, c.opError("read", net.ErrClosed)
			}
			return 0, io.EOF
		default:
			return 0, c.opError("read", sysErr("read", err))
		}
		if !c.rw.on {
			// Register, then retry once, so no event is lost in between.
			c.rw.register()
			continue
		}
		if werr := c.rw.wait(&c.rd, c.done); werr != nil {
			return 0, c.opError("read", werr)
		}
	}
}

// Write implements net.Conn; it returns when all of b is queued or on
// error.
func (c *TCPConn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed() {
		return 0, c.opError("write", net.ErrClosed)
	}
	if c.wd.expired() {
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	defer c.ww.unregister()
	n := 0
	for n < len(b) {
		c.wbuf.Reset(b[n:])
		m, err := c.ep.Write(&c.wbuf, tcpip.WriteOptions{})
		n += int(m)
		switch err.(type) {
		case nil:
			continue
		case *tcpip.ErrWouldBlock:
		case *tcpip.ErrClosedForSend:
			if c.closed() {
				return n, c.opError("write", net.ErrClosed)
			}
			return n, c.opError("write", sysErr("write", err))
		default:
			return n, c.opError("write", sysErr("write", err))
		}
		if !c.ww.on {
			c.ww.register()
			continue
		}
		if werr := c.ww.wait(&c.wd, c.done); werr != nil {
			return n, c.opError("write", werr)
		}
	}
	c.wbuf.Reset(nil)
	return n, nil
}

// Close closes the connection and unblocks pending Read and Write calls,
// which return net.ErrClosed.
func (c *TCPConn) Close() error {
	first := false
	c.closer.Do(func() {
		first = true
		close(c.done)
		c.ep.Close()
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

func (c *TCPConn) shutdown(flags tcpip.ShutdownFlags) error {
	if c.closed() {
		return c.opError("close", net.ErrClosed)
	}
	if err := c.ep.Shutdown(flags); err != nil {
		return c.opError("close", sysErr("shutdown", err))
	}
	return nil
}

// CloseRead shuts down the reading side.
func (c *TCPConn) CloseRead() error { return c.shutdown(tcpip.ShutdownRead) }

// CloseWrite shuts down the writing side: the peer reads io.EOF.
func (c *TCPConn) CloseWrite() error { return c.shutdown(tcpip.ShutdownWrite) }

// LocalAddr returns the local *net.TCPAddr.
func (c *TCPConn) LocalAddr() net.Addr { return c.local() }

// RemoteAddr returns the remote *net.TCPAddr.
func (c *TCPConn) RemoteAddr() net.Addr { return c.remote() }

func (c *TCPConn) local() *net.TCPAddr  { return cachedAddr(&c.laddr, c.lfull) }
func (c *TCPConn) remote() *net.TCPAddr { return cachedAddr(&c.raddr, c.rfull) }

// cachedAddr converts fa once; concurrent first calls may each convert,
// and one result wins.
func cachedAddr(p *atomic.Pointer[net.TCPAddr], fa tcpip.FullAddress) *net.TCPAddr {
	if a := p.Load(); a != nil {
		return a
	}
	a := fromFull(fa)
	if p.CompareAndSwap(nil, a) {
		return a
	}
	return p.Load()
}

// SetDeadline sets the read and write deadlines.
func (c *TCPConn) SetDeadline(t time.Time) error {
	if c.closed() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (c *TCPConn) SetReadDeadline(t time.Time) error {
	if c.closed() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline.
func (c *TCPConn) SetWriteDeadline(t time.Time) error {
	if c.closed() {
		return c.opError("set", net.ErrClosed)
	}
	c.wd.set(t)
	return nil
}

// setOpt runs f on the socket options unless the connection is closed.
func (c *TCPConn) setOpt(f func(*tcpip.SocketOptions)) error {
	if c.closed() {
		return c.opError("set", net.ErrClosed)
	}
	f(c.ep.SocketOptions())
	return nil
}

// SetNoDelay disables (true) or enables (false) Nagle's algorithm.
func (c *TCPConn) SetNoDelay(noDelay bool) error {
	return c.setOpt(func(o *tcpip.SocketOptions) { o.SetDelayOption(!noDelay) })
}

// SetKeepAlive enables or disables keep-alive probes.
func (c *TCPConn) SetKeepAlive(on bool) error {
	return c.setOpt(func(o *tcpip.SocketOptions) { o.SetKeepAlive(on) })
}

// SetKeepAlivePeriod sets the idle time and the probe interval, as net does.
func (c *TCPConn) SetKeepAlivePeriod(d time.Duration) error {
	if c.closed() {
		return c.opError("set", net.ErrClosed)
	}
	idle := tcpip.KeepaliveIdleOption(d)
	if err := c.ep.SetSockOpt(&idle); err != nil {
		return c.opError("set", sysErr("setsockopt", err))
	}
	intvl := tcpip.KeepaliveIntervalOption(d)
	if err := c.ep.SetSockOpt(&intvl); err != nil {
		return c.opError("set", sysErr("setsockopt", err))
	}
	return nil
}

// SetLinger sets SO_LINGER: sec < 0 off (the default), 0 discards unsent
// data and resets on Close, > 0 lingers up to sec seconds.
func (c *TCPConn) SetLinger(sec int) error {
	l := tcpip.LingerOption{Enabled: sec >= 0, Timeout: time.Duration(max(sec, 0)) * time.Second}
	return c.setOpt(func(o *tcpip.SocketOptions) { o.SetLinger(l) })
}

// SetReadBuffer sets the receive buffer size.
func (c *TCPConn) SetReadBuffer(bytes int) error {
	return c.setOpt(func(o *tcpip.SocketOptions) { o.SetReceiveBufferSize(int64(bytes), true) })
}

// SetWriteBuffer sets the send buffer size.
func (c *TCPConn) SetWriteBuffer(bytes int) error {
	return c.setOpt(func(o *tcpip.SocketOptions) { o.SetSendBufferSize(int64(bytes), true) })
}
