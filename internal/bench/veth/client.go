package veth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdptcp/xdptcp/tests/netns"
)

// The load generator is Linux's TCP driven by Go's net package, in the peer
// namespace NSB of the same process. A socket belongs to the network
// namespace of the thread that creates it, and stays there whatever thread
// uses it later. So one goroutine, locked to an OS thread that entered NSB
// (netns.Pair.Do), creates the client sockets ahead of time, in batches, and
// turns each into a *net.TCPConn (net.FileConn); the client goroutines,
// running on any thread, take one, connect it (non-blocking connect, then
// the net package's poller waits for it to become writable) and use it like
// any net.Conn. Compared with net.Dial this costs about five more system
// calls per connection (fcntl, dup, setting O_NONBLOCK, SO_TYPE, close of
// the original descriptor), the same in every configuration.

// sockBatch is how many sockets the factory makes per hand-over.
const sockBatch = 64

// dialer makes connections from NSB.
type dialer struct {
	batches chan []*net.TCPConn
	stop    chan struct{}
	done    chan error

	mu   sync.Mutex
	have []*net.TCPConn // taken from batches, not yet handed out

	closeOnce sync.Once
}

// newDialer starts the socket factory in p's namespace ns.
func newDialer(p *netns.Pair, ns string) (*dialer, error) {
	d := &dialer{
		batches: make(chan []*net.TCPConn, 4),
		stop:    make(chan struct{}),
		done:    make(chan error, 1),
	}
	started := make(chan error, 1)
	go func() {
		d.done <- p.Do(ns, func() error {
			started <- nil
			return d.factory()
		})
	}()
	select {
	case err := <-started:
		return d, err
	case err := <-d.done:
		if err == nil {
			err = errors.New("veth: socket factory exited at once")
		}
		return nil, err
	}
}

// factory runs on the thread in NSB until stop.
func (d *dialer) factory() error {
	for {
		batch := make([]*net.TCPConn, 0, sockBatch)
		for range sockBatch {
			c, err := newSocket()
			if err != nil {
				closeConns(batch)
				return err
			}
			batch = append(batch, c)
		}
		select {
		case d.batches <- batch:
		case <-d.stop:
			closeConns(batch)
			return nil
		}
	}
}

// newSocket makes an unconnected TCP/IPv4 socket in the calling thread's
// namespace and wraps it in a *net.TCPConn.
func newSocket() (*net.TCPConn, error) {
	// Blocking, so os.NewFile does not register it with the poller;
	// FileConn's duplicate is made non-blocking.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("veth: client socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "tcp")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("veth: client socket: %w", err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("veth: client socket is a %T", c)
	}
	return tc, nil
}

func closeConns(cs []*net.TCPConn) {
	for _, c := range cs {
		c.Close()
	}
}

// take returns an unconnected socket.
func (d *dialer) take(ctx context.Context) (*net.TCPConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.have) == 0 {
		select {
		case b := <-d.batches:
			d.have = b
		case err := <-d.done:
			d.done <- err
			if err == nil {
				err = errors.New("veth: dialer closed")
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := d.have[len(d.have)-1]
	d.have[len(d.have)-1] = nil
	d.have = d.have[:len(d.have)-1]
	return c, nil
}

// Dial connects to addr from NSB, bounded by ctx.
func (d *dialer) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	c, err := d.take(ctx)
	if err != nil {
		return nil, err
	}
	if err := connect(ctx, c, addr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connect connects c to addr without blocking a thread.
func connect(ctx context.Context, c *net.TCPConn, addr netip.AddrPort) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	if cerr == nil {
		return nil
	}
	if cerr != unix.EINPROGRESS {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: os.NewSyscallError("connect", cerr)}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
		defer c.SetWriteDeadline(time.Time{})
	}
	var soErr error
	err = rc.Write(func(fd uintptr) bool {
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			soErr = err
			return true
		case n != 0 && unix.Errno(n) != unix.EINPROGRESS && unix.Errno(n) != unix.EALREADY:
			soErr = unix.Errno(n)
			return true
		}
		if _, err := unix.Getpeername(int(fd)); err == nil {
			return true
		}
		return false // still connecting: wait until writable
	})
	if err == nil {
		err = soErr
	}
	if err != nil {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	return nil
}

// Close stops the factory and closes the sockets not handed out.
func (d *dialer) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.stop)
		err = <-d.done
		d.mu.Lock()
		closeConns(d.have)
		d.have = nil
		d.mu.Unlock()
		for {
			select {
			case b := <-d.batches:
				closeConns(b)
				continue
			default:
			}
			break
		}
		d.done <- err // for take
	})
	return err
}
