package netconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/xdptcp/xdptcp/adapter"
)

var families = []struct {
	name string
	v6   bool
}{{"ipv4", false}, {"ipv6", true}}

func TestNettestConn(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		for _, fam := range families {
			t.Run(fam.name, func(t *testing.T) {
				p := newPair(t)
				nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
					l, err := p.b.Listen("tcp", p.bAddr(fam.v6, 0))
					if err != nil {
						return nil, nil, nil, err
					}
					defer l.Close()
					ch := make(chan net.Conn, 1)
					go func() {
						c, err := l.Accept()
						if err != nil {
							t.Errorf("Accept: %v", err)
						}
						ch <- c
					}()
					c1, err = p.a.Dial("tcp", l.Addr().String())
					c2 = <-ch
					if err != nil || c2 == nil {
						return nil, nil, nil, errors.Join(err, errors.New("accept failed"))
					}
					return c1, c2, func() { c1.Close(); c2.Close() }, nil
				})
			})
		}
	})
}

func TestHTTP(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		for _, fam := range families {
			t.Run(fam.name, func(t *testing.T) {
				p := newPair(t)
				body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
				l := p.listen(t, fam.v6)
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Write(body)
				})}
				go srv.Serve(l)
				defer srv.Close()
				tr := &http.Transport{DialContext: p.a.DialContext}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
				for range 3 {
					resp, err := client.Get("http://" + l.Addr().String() + "/")
					if err != nil {
						t.Fatalf("GET: %v", err)
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatalf("read body: %v", err)
					}
					if sha256.Sum256(got) != sha256.Sum256(body) {
						t.Fatalf("body: got %d bytes, want %d identical bytes", len(got), len(body))
					}
				}
			})
		}
	})
}

// wantOpError checks err is a *net.OpError for op that errors.Is target.
func wantOpError(t *testing.T, err error, op string, target error) {
	t.Helper()
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != op {
		t.Errorf("err = %#v (%v), want *net.OpError with Op %q", err, err, op)
	}
	if !errors.Is(err, target) {
		t.Errorf("err = %v, want errors.Is %v", err, target)
	}
}

func TestDialRefused(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		for _, fam := range families {
			t.Run(fam.name, func(t *testing.T) {
				p := newPair(t)
				_, err := p.a.Dial("tcp", p.bAddr(fam.v6, 9))
				wantOpError(t, err, "dial", syscall.ECONNREFUSED)
				var se *os.SyscallError
				if !errors.As(err, &se) || se.Syscall != "connect" {
					t.Errorf("err = %v, want syscall connect", err)
				}
			})
		}
	})
}

func TestDialContextDeadline(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		p := newPair(t)
		// Nobody owns 198.18.0.9: the SYN goes unanswered.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := p.a.DialContext(ctx, "tcp", "198.18.0.9:80")
		wantOpError(t, err, "dial", os.ErrDeadlineExceeded)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want errors.Is context.DeadlineExceeded", err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("err = %v, want net.Error with Timeout()", err)
		}

		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err = p.a.DialContext(ctx, "tcp", "198.18.0.9:80")
		wantOpError(t, err, "dial", context.Canceled)
	})
}

func TestDialNoRoute(t *testing.T) {
	n := newAdapterPair(t, adapter.GVisorTCP).a
	n.Stack().SetRouteTable(nil)
	_, err := n.Dial("tcp", "198.18.0.2:80")
	if !errors.Is(err, syscall.ENETUNREACH) && !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("err = %v, want ENETUNREACH or EHOSTUNREACH", err)
	}
	wantOpError(t, err, "dial", err)
}

func TestListenInUse(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		p := newPair(t)
		l := p.listen(t, false)
		_, err := p.b.Listen("tcp", l.Addr().String())
		wantOpError(t, err, "listen", syscall.EADDRINUSE)
	})
}

func TestReadEOFAndHalfClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		for _, fam := range families {
			t.Run(fam.name, func(t *testing.T) {
				c, s := newPair(t).connect(t, fam.v6)
				if _, err := c.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				got, err := io.ReadAll(s) // ends at io.EOF
				if err != nil || string(got) != "ping" {
					t.Fatalf("server ReadAll = %q, %v", got, err)
				}
				if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Errorf("Read after FIN = %d, %v; want 0, io.EOF (unwrapped)", n, err)
				}
				_, err = c.Write([]byte("x"))
				wantOpError(t, err, "write", syscall.EPIPE)
				// The other direction still works.
				if _, err := s.Write([]byte("pong")); err != nil {
					t.Fatalf("server Write after peer CloseWrite: %v", err)
				}
				s.Close()
				got, err = io.ReadAll(c)
				if err != nil || string(got) != "pong" {
					t.Fatalf("client ReadAll = %q, %v", got, err)
				}
			})
		}
	})
}

func TestDeadlines(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		c, s := newPair(t).connect(t, false)
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		wantOpError(t, err, "read", os.ErrDeadlineExceeded)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("err = %v, want net.Error with Timeout()", err)
		}
		// Clearing the deadline makes Read block again, until data comes.
		c.SetReadDeadline(time.Time{})
		time.AfterFunc(20*time.Millisecond, func() { s.Write([]byte("a")) })
		if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Errorf("Read = %d, %v", n, err)
		}

		// Write blocks once buffers fill; the deadline ends it.
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 1<<20)
		for {
			_, err = c.Write(buf)
			if err != nil {
				break
			}
		}
		wantOpError(t, err, "write", os.ErrDeadlineExceeded)
	})
}

func TestClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		p := newPair(t)
		c, _ := p.connect(t, false)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			errc <- err
		}()
		time.Sleep(10 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wantOpError(t, <-errc, "read", net.ErrClosed)
		_, err := c.Read(make([]byte, 1))
		wantOpError(t, err, "read", net.ErrClosed)
		_, err = c.Write([]byte("x"))
		wantOpError(t, err, "write", net.ErrClosed)
		wantOpError(t, c.Close(), "close", net.ErrClosed)
		wantOpError(t, c.SetDeadline(time.Now()), "set", net.ErrClosed)
		wantOpError(t, c.SetNoDelay(true), "set", net.ErrClosed)

		l := p.listen(t, false)
		go func() {
			_, err := l.Accept()
			errc <- err
		}()
		time.Sleep(10 * time.Millisecond)
		l.Close()
		wantOpError(t, <-errc, "accept", net.ErrClosed)
		_, err = l.Accept()
		wantOpError(t, err, "accept", net.ErrClosed)
	})
}

func TestAcceptDeadline(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		l := newPair(t).listen(t, true)
		l.SetDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := l.Accept()
		wantOpError(t, err, "accept", os.ErrDeadlineExceeded)
	})
}

func TestLingerZeroResets(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		c, s := newPair(t).connect(t, false)
		if err := s.SetLinger(0); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := c.Read(make([]byte, 1))
		wantOpError(t, err, "read", syscall.ECONNRESET)
	})
}

func TestOptions(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		c, _ := newPair(t).connect(t, false)
		for name, err := range map[string]error{
			"SetNoDelay":         c.SetNoDelay(false),
			"SetKeepAlive":       c.SetKeepAlive(true),
			"SetKeepAlivePeriod": c.SetKeepAlivePeriod(30 * time.Second),
			"SetLinger":          c.SetLinger(5),
			"SetReadBuffer":      c.SetReadBuffer(256 << 10),
			"SetWriteBuffer":     c.SetWriteBuffer(256 << 10),
		} {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		o := c.ep.SocketOptions()
		if !o.GetDelayOption() || !o.GetKeepAlive() || !o.GetLinger().Enabled {
			t.Errorf("options not applied: delay %v keepalive %v linger %+v", o.GetDelayOption(), o.GetKeepAlive(), o.GetLinger())
		}
	})
}

func TestAddrs(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		p := newPair(t)
		for _, fam := range families {
			c, s := p.connect(t, fam.v6)
			wantA, wantB := addrA4, addrB4
			if fam.v6 {
				wantA, wantB = addrA6, addrB6
			}
			for _, tc := range []struct {
				addr net.Addr
				want string
			}{
				{c.LocalAddr(), wantA.String()}, {c.RemoteAddr(), wantB.String()},
				{s.LocalAddr(), wantB.String()}, {s.RemoteAddr(), wantA.String()},
			} {
				ta, ok := tc.addr.(*net.TCPAddr)
				if !ok || ta.IP.String() != tc.want || ta.Port == 0 {
					t.Errorf("%s: addr %#v, want *net.TCPAddr %s with a port", fam.name, tc.addr, tc.want)
				}
			}
			if c.RemoteAddr().(*net.TCPAddr).Port != s.LocalAddr().(*net.TCPAddr).Port {
				t.Errorf("ports differ: %v vs %v", c.RemoteAddr(), s.LocalAddr())
			}
		}
	})
}

// TestDualStack listens on ":0" and accepts over both families; IPv4 peers
// appear as IPv4 addresses, not v4-mapped IPv6.
func TestDualStack(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newPair func(testing.TB) *pair) {
		p := newPair(t)
		l, err := p.b.ListenTCP("tcp", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		for _, fam := range families {
			c, err := p.a.Dial("tcp", p.bAddr(fam.v6, port))
			if err != nil {
				t.Fatalf("%s: Dial: %v", fam.name, err)
			}
			s, err := l.AcceptTCP()
			if err != nil {
				t.Fatalf("%s: Accept: %v", fam.name, err)
			}
			ip := s.RemoteAddr().(*net.TCPAddr).IP
			if (ip.To4() == nil) != fam.v6 || (!fam.v6 && len(ip) != net.IPv4len) {
				t.Errorf("%s: peer IP %v (len %d)", fam.name, ip, len(ip))
			}
			c.Close()
			s.Close()
		}
	})
}

func TestDefault(t *testing.T) {
	defer SetDefault(nil)
	SetDefault(nil)
	if _, err := Default(); !errors.Is(err, ErrNoDefault) {
		t.Errorf("Default() = %v, want ErrNoDefault", err)
	}
	if _, err := Dial("tcp", "198.18.0.2:80"); !errors.Is(err, ErrNoDefault) {
		t.Errorf("Dial = %v, want ErrNoDefault", err)
	}
	p := newAdapterPair(t, adapter.GVisorTCP)
	SetDefault(p.b)
	l, err := Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	SetDefault(p.a)
	c, err := Dial("tcp", p.bAddr(false, l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
