package runner

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/tests/conformance/script"
)

// sock is a script file descriptor: an endpoint and its flags.
type sock struct {
	ep       tcpip.Endpoint
	wq       *waiter.Queue
	nonblock bool
	proto    tcpip.NetworkProtocolNumber
}

// outcome is what a system call returned.
type outcome struct {
	ret   int64
	errno string // "" on success
	// blocked: the call would block on a blocking socket; it is retried
	// after every step of the stack until it completes.
	blocked bool
}

func ok(v int64) outcome            { return outcome{ret: v} }
func fail(errno string) outcome     { return outcome{ret: -1, errno: errno} }
func failErr(e tcpip.Error) outcome { return fail(errnoOf(e)) }

// pendingCall is the one call blocked in the stack.
type pendingCall struct {
	c      *script.Call
	start  int64 // µs
	end    int64 // expected return time
	failAt int64 // end + tolerance: still blocked then is a failure
	wake   int64 // a time the call wants to be retried at (poll timeout), 0 if none
	early  int64 // returning before this is too early (end - tolerance at the start)
	try    func() outcome
}

// call runs a system call event that starts at start and is expected to
// return at end.
func (r *run) call(c *script.Call, start, end int64) {
	if r.pending != nil {
		r.failf("%s() while %s() (line %d) is still blocked: one blocking call at a time", c.Name, r.pending.c.Name, r.pending.c.Line)
	}
	try := r.syscall(c)
	r.wake = 0
	out := try()
	if out.blocked {
		tol := r.tolerance(end)
		r.pending = &pendingCall{c: c, start: start, end: end, failAt: end + tol, early: end - tol, wake: r.wake, try: try}
		r.settle() // lets the stack act on the call; retries it
		return
	}
	r.settle()
	if end > start+r.tolerance(end) {
		r.mismatch("syscall", fmt.Sprintf("%s() blocking until %s", c.Name, secs(end)), "returned at once",
			"%s() returned at once; the script expects it to block", c.Name)
	}
	r.checkResult(c, out)
}

// retryPending retries the blocked call after the stack moved.
func (r *run) retryPending() {
	p := r.pending
	saved := r.line
	r.line = p.c.Line // what try reports belongs to the call's line
	out := p.try()
	if out.blocked {
		r.line = saved
		return
	}
	r.pending = nil
	now := r.now()
	if now < p.early {
		r.mismatch("syscall", fmt.Sprintf("%s() returning at %s", p.c.Name, secs(p.end)), fmt.Sprintf("returned at %s", secs(now)),
			"%s() returned %s early", p.c.Name, secs(p.end-now))
	}
	r.checkResult(p.c, out)
	r.line = saved
}

// pendingLate fails the blocked call that did not return in time.
func (r *run) pendingLate() {
	p := r.pending
	r.line = p.c.Line
	r.mismatch("syscall", fmt.Sprintf("%s() returning by %s", p.c.Name, secs(p.failAt)), "still blocked",
		"%s() is still blocked", p.c.Name)
	r.pending = nil
}

// checkResult compares a call's outcome with the script's "= RET [ERRNO]".
func (r *run) checkResult(c *script.Call, out outcome) {
	want, err := r.intOf(&c.Result)
	if err != nil {
		r.failf("result: %v", err)
	}
	got := fmt.Sprintf("%d", out.ret)
	if out.errno != "" {
		got += " " + out.errno
	}
	exp := fmt.Sprintf("%d", want)
	if c.Errno != "" {
		exp += " " + c.Errno
	}
	if out.ret != want {
		r.mismatch("syscall", exp, got, "%s() returned %s, expected %s", c.Name, got, exp)
		return
	}
	if c.Errno != "" && canonErrno(c.Errno) != canonErrno(out.errno) {
		r.mismatch("syscall", exp, got, "%s() failed with %s, expected %s", c.Name, out.errno, c.Errno)
	}
}

// intOf evaluates an integer expression: numbers, symbols, A|B, htons().
func (r *run) intOf(e *script.Expr) (int64, error) {
	switch e.Kind {
	case script.ExprInt:
		return e.Int, nil
	case script.ExprSymbol:
		if v, ok := symbols[e.Text]; ok {
			return v, nil
		}
		if v, ok := errnos[e.Text]; ok {
			return v, nil
		}
		return 0, fmt.Errorf("unknown symbol %s", e.Text)
	case script.ExprOr:
		var v int64
		for i := range e.Elems {
			x, err := r.intOf(&e.Elems[i])
			if err != nil {
				return 0, err
			}
			v |= x
		}
		return v, nil
	case script.ExprFunc:
		if (e.Text == "htons" || e.Text == "htonl" || e.Text == "ntohs" || e.Text == "ntohl") && len(e.Elems) == 1 {
			return r.intOf(&e.Elems[0])
		}
	case script.ExprList:
		if len(e.Elems) == 1 {
			return r.intOf(&e.Elems[0])
		}
	}
	return 0, fmt.Errorf("expected an integer, found %s", exprString(e))
}

func exprString(e *script.Expr) string {
	switch e.Kind {
	case script.ExprInt:
		return fmt.Sprint(e.Int)
	case script.ExprSymbol, script.ExprFunc:
		return e.Text
	case script.ExprString:
		return fmt.Sprintf("%q", e.Text)
	case script.ExprEllipsis:
		return "..."
	case script.ExprList:
		return "[...]"
	case script.ExprStruct:
		return "{...}"
	}
	return "|"
}

// arg returns argument i or fails the script.
func (r *run) arg(c *script.Call, i int) *script.Expr {
	if i >= len(c.Args) {
		r.failf("%s() needs at least %d arguments", c.Name, i+1)
	}
	return &c.Args[i]
}

func (r *run) argInt(c *script.Call, i int) int64 {
	v, err := r.intOf(r.arg(c, i))
	if err != nil {
		r.failf("%s() argument %d: %v", c.Name, i+1, err)
	}
	return v
}

// fd resolves a descriptor argument.
func (r *run) fd(c *script.Call, i int) (*sock, outcome, bool) {
	n := r.argInt(c, i)
	s := r.fds[n]
	if s == nil {
		return nil, fail("EBADF"), false
	}
	return s, outcome{}, true
}

// syscall returns the attempt function for c; it may be retried while the
// call blocks.
func (r *run) syscall(c *script.Call) func() outcome {
	done := func(o outcome) func() outcome { return func() outcome { return o } }
	switch c.Name {
	case "socket":
		return done(r.sysSocket(c))
	case "bind":
		return done(r.sysBind(c))
	case "listen":
		s, o, okk := r.fd(c, 0)
		if !okk {
			return done(o)
		}
		if err := s.ep.Listen(int(r.argInt(c, 1))); err != nil {
			return done(failErr(err))
		}
		lp := r.localPort(s)
		r.deflow = r.flowFor(lp, defaultRemotePort, r.remoteAddr())
		return done(ok(0))
	case "accept", "accept4":
		return r.sysAccept(c)
	case "connect":
		return r.sysConnect(c)
	case "read", "recv", "recvfrom":
		return r.sysRead(c)
	case "write", "send", "sendto":
		return r.sysWrite(c)
	case "close":
		s, o, okk := r.fd(c, 0)
		if !okk {
			return done(o)
		}
		s.ep.Close()
		delete(r.fds, r.argInt(c, 0))
		return done(ok(0))
	case "shutdown":
		s, o, okk := r.fd(c, 0)
		if !okk {
			return done(o)
		}
		var f tcpip.ShutdownFlags
		switch r.argInt(c, 1) {
		case 0:
			f = tcpip.ShutdownRead
		case 1:
			f = tcpip.ShutdownWrite
		case 2:
			f = tcpip.ShutdownRead | tcpip.ShutdownWrite
		default:
			return done(fail("EINVAL"))
		}
		if err := s.ep.Shutdown(f); err != nil {
			return done(failErr(err))
		}
		return done(ok(0))
	case "fcntl":
		return done(r.sysFcntl(c))
	case "setsockopt":
		return done(r.setsockopt(c))
	case "getsockopt":
		return done(r.getsockopt(c))
	case "poll":
		return r.sysPoll(c)
	case "ioctl":
		return done(r.sysIoctl(c))
	case "getsockname", "getpeername":
		s, o, okk := r.fd(c, 0)
		if !okk {
			return done(o)
		}
		var err tcpip.Error
		if c.Name == "getsockname" {
			_, err = s.ep.GetLocalAddress()
		} else {
			_, err = s.ep.GetRemoteAddress()
		}
		if err != nil {
			return done(failErr(err))
		}
		return done(ok(0))
	}
	r.unsupported("system call %s() is not supported", c.Name)
	return nil
}

// defaultRemotePort is the peer's port for packets written without ports
// (packetdrill picks an ephemeral one).
const defaultRemotePort = 48000

func (r *run) localPort(s *sock) uint16 {
	a, err := s.ep.GetLocalAddress()
	if err != nil {
		return 0
	}
	return a.Port
}

func (r *run) sysSocket(c *script.Call) outcome {
	fam := r.arg(c, 0)
	proto := r.tg.proto
	if fam.Kind != script.ExprEllipsis {
		switch v, _ := r.intOf(fam); v {
		case 2:
			proto = header.IPv4ProtocolNumber
		case 10:
			proto = header.IPv6ProtocolNumber
		default:
			return fail("EAFNOSUPPORT")
		}
	}
	typ := r.argInt(c, 1)
	nonblock := typ&0x800 != 0
	if typ&^0x80800 != 1 { // SOCK_NONBLOCK | SOCK_CLOEXEC
		r.unsupported("socket type %d: only SOCK_STREAM", typ)
	}
	if p := r.arg(c, 2); p.Kind != script.ExprEllipsis {
		if v, _ := r.intOf(p); v != 0 && v != 6 {
			return fail("EPROTONOSUPPORT")
		}
	}
	want, err := r.intOf(&c.Result)
	if err != nil || want < 0 {
		r.failf("socket() must be expected to return a descriptor")
	}
	if r.fds[want] != nil {
		r.failf("descriptor %d is already open", want)
	}
	wq := &waiter.Queue{}
	ep, terr := r.tg.s.NewEndpoint(header.TCPProtocolNumber, proto, wq)
	if terr != nil {
		return failErr(terr)
	}
	r.fds[want] = &sock{ep: ep, wq: wq, nonblock: nonblock, proto: proto}
	r.curFD = want
	return ok(want)
}

// sockaddr evaluates a sockaddr argument; "..." is the default address.
func (r *run) sockaddr(e *script.Expr, def string, port uint16) (tcpip.FullAddress, bool) {
	if e.Kind == script.ExprEllipsis {
		a := netip.MustParseAddr(def)
		return tcpip.FullAddress{Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: port}, true
	}
	if e.Kind != script.ExprStruct {
		return tcpip.FullAddress{}, false
	}
	var fa tcpip.FullAddress
	for _, f := range e.Fields {
		switch f.Name {
		case "sa_family", "sin_family", "sin6_family":
		case "sin_port", "sin6_port":
			v, err := r.intOf(&f.Value)
			if err != nil {
				r.failf("%s: %v", f.Name, err)
			}
			fa.Port = uint16(v)
		case "sin_addr", "sin6_addr":
			v := f.Value
			if v.Kind == script.ExprFunc && len(v.Elems) == 1 && v.Elems[0].Kind == script.ExprString {
				a, err := netip.ParseAddr(v.Elems[0].Text)
				if err != nil {
					r.failf("%s: %v", f.Name, err)
				}
				fa.Addr = tcpip.AddrFromSlice(a.Unmap().AsSlice())
				if r.tg.proto == header.IPv6ProtocolNumber && a.Is4() {
					fa.Addr = tcpip.AddrFromSlice(a.AsSlice())
				}
				continue
			}
			if v.Kind == script.ExprSymbol && (v.Text == "INADDR_ANY" || v.Text == "in6addr_any") {
				continue
			}
			r.failf("%s: expected inet_addr(\"...\")", f.Name)
		default:
			r.unsupported("sockaddr field %s is not supported", f.Name)
		}
	}
	return fa, true
}

func (r *run) sysBind(c *script.Call) outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return o
	}
	fa, good := r.sockaddr(r.arg(c, 1), r.localIP, r.bindPort)
	if !good {
		return fail("EFAULT")
	}
	if err := s.ep.Bind(fa); err != nil {
		return failErr(err)
	}
	return ok(0)
}

func (r *run) sysAccept(c *script.Call) func() outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return func() outcome { return o }
	}
	want, err := r.intOf(&c.Result)
	if err != nil {
		r.failf("accept() result: %v", err)
	}
	return func() outcome {
		ep, wq, terr := s.ep.Accept(nil)
		if terr != nil {
			if _, wb := terr.(*tcpip.ErrWouldBlock); wb && !s.nonblock {
				return outcome{blocked: true}
			}
			return failErr(terr)
		}
		if want < 0 {
			// The script expected a failure: keep the child anyway so
			// the mismatch report is about the result.
			want = 1000 + int64(len(r.fds))
		}
		if r.fds[want] != nil {
			r.failf("descriptor %d is already open", want)
		}
		r.fds[want] = &sock{ep: ep, wq: wq, proto: s.proto}
		r.curFD = want
		if ra, err := ep.GetRemoteAddress(); err == nil {
			r.deflow = r.flowFor(r.localPort(r.fds[want]), ra.Port, ra.Addr)
		}
		return ok(want)
	}
}

func (r *run) sysConnect(c *script.Call) func() outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return func() outcome { return o }
	}
	fa, good := r.sockaddr(r.arg(c, 1), r.remoteIP, r.connPort)
	if !good {
		return func() outcome { return fail("EFAULT") }
	}
	if fa.Addr.Len() == 0 {
		fa.Addr = r.remoteAddr()
	}
	terr := s.ep.Connect(fa)
	if terr == nil {
		return func() outcome { return ok(0) }
	}
	if _, started := terr.(*tcpip.ErrConnectStarted); !started {
		return func() outcome { return failErr(terr) }
	}
	// A new active open: packets without ports now belong to it; its
	// local port is learned from the SYN it sends.
	lp := r.localPort(s)
	f := &flow{key: flowKey{lp, fa.Port}, remoteIP: fa.Addr}
	if lp != 0 {
		// A new connection on these ports (a new flow replaces any old
		// one's ISN mapping).
		r.flows[f.key] = f
	}
	r.deflow = f
	if s.nonblock {
		return func() outcome { return fail("EINPROGRESS") }
	}
	return func() outcome {
		if s.ep.Readiness(waiter.EventOut|waiter.EventErr|waiter.EventHUp) == 0 {
			return outcome{blocked: true}
		}
		// As gVisor's syscall layer: Connect again to collect the result
		// (nil once when established, else the error).
		if err := s.ep.Connect(fa); err != nil {
			return failErr(err)
		}
		return ok(0)
	}
}

// maxWrite bounds one write call's size (the payload is made on the fly).
const maxWrite = 1 << 30

// zeroReader is a tcpip.Payloader of left zero octets.
type zeroReader struct{ left int64 }

func (z *zeroReader) Len() int { return int(z.left) }

func (z *zeroReader) Read(b []byte) (int, error) {
	if z.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)), z.left)
	clear(b[:n])
	z.left -= n
	return int(n), nil
}

// sink counts what a read delivers (the script never looks at the bytes).
type sink struct{ n int }

func (w *sink) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

func (r *run) sysRead(c *script.Call) func() outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return func() outcome { return o }
	}
	n := r.argInt(c, 2)
	var flags int64
	if len(c.Args) > 3 {
		flags = r.argInt(c, 3)
	}
	if flags&^(0x2|0x40|0x100|0x4000) != 0 {
		r.unsupported("%s() flags %#x are not supported", c.Name, flags)
	}
	nonblock := s.nonblock || flags&0x40 != 0
	waitAll := flags&0x100 != 0 && flags&0x2 == 0 && !nonblock
	got := int64(0)
	return func() outcome {
		if n == 0 {
			return ok(0) // as read(2): nothing asked, nothing waited for
		}
		w := &tcpip.LimitedWriter{W: &sink{}, N: n - got}
		res, err := s.ep.Read(w, tcpip.ReadOptions{Peek: flags&0x2 != 0})
		if err != nil {
			switch err.(type) {
			case *tcpip.ErrClosedForReceive:
				return ok(got)
			case *tcpip.ErrWouldBlock:
				if !nonblock {
					return outcome{blocked: true}
				}
			}
			if got > 0 {
				return ok(got)
			}
			return failErr(err)
		}
		got += int64(res.Count)
		if waitAll && got < n {
			return outcome{blocked: true} // MSG_WAITALL: until n or EOF
		}
		return ok(got)
	}
}

func (r *run) sysWrite(c *script.Call) func() outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return func() outcome { return o }
	}
	n := r.argInt(c, 2)
	var flags int64
	if len(c.Args) > 3 {
		flags = r.argInt(c, 3)
	}
	if flags&0x20000000 != 0 {
		r.unsupported("MSG_FASTOPEN is not supported (no TCP Fast Open)")
	}
	if flags&^(0x40|0x4000|0x8000) != 0 {
		r.unsupported("%s() flags %#x are not supported", c.Name, flags)
	}
	nonblock := s.nonblock || flags&0x40 != 0
	if flags&0x8000 != 0 {
		r.unsupported("MSG_MORE is not supported by tcpip.Endpoint")
	}
	if n < 0 || n > maxWrite {
		r.unsupported("%s() of %d octets: the runner writes at most %d", c.Name, n, int64(maxWrite))
	}
	written := int64(0)
	return func() outcome {
		for written < n {
			rd := &zeroReader{left: n - written}
			m, err := s.ep.Write(rd, tcpip.WriteOptions{})
			written += m
			if err != nil {
				if _, wb := err.(*tcpip.ErrWouldBlock); wb {
					if written > 0 && nonblock {
						return ok(written)
					}
					if !nonblock {
						return outcome{blocked: true}
					}
				}
				if written > 0 {
					return ok(written)
				}
				return failErr(err)
			}
			if m == 0 {
				if nonblock {
					break
				}
				return outcome{blocked: true}
			}
		}
		return ok(written)
	}
}

func (r *run) sysFcntl(c *script.Call) outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return o
	}
	switch r.argInt(c, 1) {
	case 3: // F_GETFL
		v := int64(2) // O_RDWR
		if s.nonblock {
			v |= 0x800
		}
		return ok(v)
	case 4: // F_SETFL
		s.nonblock = r.argInt(c, 2)&0x800 != 0
		return ok(0)
	}
	r.unsupported("fcntl command %d is not supported (F_GETFL, F_SETFL)", r.argInt(c, 1))
	return outcome{}
}

func (r *run) sysIoctl(c *script.Call) outcome {
	s, o, okk := r.fd(c, 0)
	if !okk {
		return o
	}
	var opt tcpip.SockOptInt
	switch r.argInt(c, 1) {
	case 0x541B:
		opt = tcpip.ReceiveQueueSizeOption
	case 0x5411:
		opt = tcpip.SendQueueSizeOption
	default:
		r.unsupported("ioctl %#x is not supported (SIOCINQ, SIOCOUTQ)", r.argInt(c, 1))
	}
	v, err := s.ep.GetSockOptInt(opt)
	if err != nil {
		return failErr(err)
	}
	r.compareOut(c, 2, int64(v), false)
	return ok(0)
}

// compareOut checks a by-reference result ([N]) against the stack's value;
// sizes are not compared in relaxed mode.
func (r *run) compareOut(c *script.Call, i int, got int64, isSize bool) {
	e := r.arg(c, i)
	if e.Kind == script.ExprEllipsis || (isSize && r.cfg.Mode == Relaxed) {
		return
	}
	want, err := r.intOf(e)
	if err != nil {
		r.failf("%s() argument %d: %v", c.Name, i+1, err)
	}
	if want != got {
		r.mismatch("syscall", fmt.Sprint(want), fmt.Sprint(got), "%s() value %d, expected %d", c.Name, got, want)
	}
}

// sysPoll evaluates poll([{fd, events, revents}], n, timeout_ms).
func (r *run) sysPoll(c *script.Call) func() outcome {
	list := r.arg(c, 0)
	if list.Kind != script.ExprList {
		r.failf("poll() expects a list of pollfd structs")
	}
	type pfd struct {
		s            *sock
		events, want int64
		hasWant      bool
	}
	var fds []pfd
	for _, e := range list.Elems {
		if e.Kind != script.ExprStruct {
			r.failf("poll(): expected {fd=N, events=M, revents=M}")
		}
		var p pfd
		for _, f := range e.Fields {
			v, err := r.intOf(&f.Value)
			if err != nil {
				r.failf("poll() %s: %v", f.Name, err)
			}
			switch f.Name {
			case "fd":
				p.s = r.fds[v]
			case "events":
				p.events = v
			case "revents":
				p.want, p.hasWant = v, true
			}
		}
		fds = append(fds, p)
	}
	timeout := r.argInt(c, 2)
	start := r.now()
	return func() outcome {
		ready := int64(0)
		revs := make([]int64, len(fds))
		for i, p := range fds {
			if p.s == nil {
				revs[i] = 0x20 // POLLNVAL
			} else {
				// As poll(2): only the requested events, plus POLLERR
				// and POLLHUP, which are always reported.
				mask := waiter.EventMask(p.events) | waiter.EventErr | waiter.EventHUp
				revs[i] = int64(p.s.ep.Readiness(mask) & mask)
			}
			if revs[i] != 0 {
				ready++
			}
		}
		if ready == 0 && timeout != 0 && (timeout < 0 || r.now() < start+timeout*1000) {
			if timeout > 0 {
				r.wake = start + timeout*1000 // retry when the timeout expires
			}
			return outcome{blocked: true}
		}
		for i, p := range fds {
			if p.hasWant && revs[i] != p.want {
				r.mismatch("syscall", pollString(p.want), pollString(revs[i]), "poll() revents differ")
			}
		}
		return ok(ready)
	}
}

func pollString(v int64) string {
	var s []string
	for _, n := range []string{"POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDNORM", "POLLRDBAND", "POLLWRNORM", "POLLWRBAND", "POLLRDHUP"} {
		if b := symbols[n]; v&b != 0 {
			s = append(s, n)
			v &^= b
		}
	}
	if v != 0 {
		s = append(s, fmt.Sprintf("%#x", v))
	}
	if len(s) == 0 {
		return "0"
	}
	return strings.Join(s, "|")
}

// closeAll closes every descriptor still open at the end of a script.
func (r *run) closeAll() {
	for k, s := range r.fds {
		s.ep.Abort()
		delete(r.fds, k)
	}
}
