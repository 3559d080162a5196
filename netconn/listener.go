package netconn

import (
	"net"
	"os"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPListener is a net.Listener over a listening tcpip.Endpoint.
type TCPListener struct {
	ep     tcpip.Endpoint
	addr   *net.TCPAddr
	done   chan struct{}
	closer sync.Once
	dl     deadline

	mu sync.Mutex // serializes Accept
	aw eventWaiter
}

var _ net.Listener = (*TCPListener)(nil)

func (l *TCPListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *TCPListener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: err}
}

// Accept waits for and returns the next connection.
func (l *TCPListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for and returns the next connection as a *TCPConn.
func (l *TCPListener) AcceptTCP() (*TCPConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed() {
		return nil, l.opError(net.ErrClosed)
	}
	if l.dl.expired() {
		return nil, l.opError(os.ErrDeadlineExceeded)
	}
	defer l.aw.unregister()
	for {
		var peer tcpip.FullAddress
		ep, wq, err := l.ep.Accept(&peer)
		switch err.(type) {
		case nil:
			local, lerr := ep.GetLocalAddress()
			if lerr != nil {
				ep.Close()
				return nil, l.opError(sysErr("accept", lerr))
			}
			return newConn(ep, wq, local, peer), nil
		case *tcpip.ErrWouldBlock:
		default:
			if l.closed() {
				return nil, l.opError(net.ErrClosed)
			}
			return nil, l.opError(sysErr("accept", err))
		}
		if !l.aw.on {
			l.aw.register()
			continue
		}
		if werr := l.aw.wait(&l.dl, l.done); werr != nil {
			return nil, l.opError(werr)
		}
	}
}

// Close stops listening; pending Accept calls return net.ErrClosed.
func (l *TCPListener) Close() error {
	first := false
	l.closer.Do(func() {
		first = true
		close(l.done)
		l.ep.Close()
	})
	if !first {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	return nil
}

// Addr returns the bound *net.TCPAddr, with the chosen port.
func (l *TCPListener) Addr() net.Addr { return l.addr }

// SetDeadline sets the deadline for Accept.
func (l *TCPListener) SetDeadline(t time.Time) error {
	if l.closed() {
		return &net.OpError{Op: "set", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	l.dl.set(t)
	return nil
}

func newListener(ep tcpip.Endpoint, wq *waiter.Queue, addr *net.TCPAddr) *TCPListener {
	l := &TCPListener{ep: ep, addr: addr, done: make(chan struct{})}
	l.aw.init(wq, waiter.EventIn|waiter.EventHUp|waiter.EventErr)
	return l
}
