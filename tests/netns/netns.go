// Package netns is a test harness that builds two Linux network namespaces
// joined by a veth pair, so that xdptcp's user-level TCP can be tested
// against Linux's own TCP on the same machine.
//
// Network rules kept by this package: everything stays on this machine, in
// namespaces created here, joined only by veth; the only addresses used are
// from 198.18.0.0/15 (IPv6 is disabled on the veth ends so that the kernel
// does not invent link-local addresses); everything is removed on Close, on
// test failure or panic (NewT), and after a crash by CleanupStale (run by New
// once per process, and by Main).
//
// Layout: NSA holds IfA, the end the user-level stack owns (no kernel address
// unless Config.AssignKernelAddrA); NSB holds IfB with the kernel address
// AddrB, where Linux TCP peers run (ListenTCP, DialTCP, HTTPClient, Run).
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NamePrefix starts the name of every namespace this package creates.
// Full names are NamePrefix + sanitized Config.Name + "-" + pid + "-" + n +
// "a" or "b".
const NamePrefix = "xdptcp-"

// ipPath is the iproute2 binary.
var ipPath = "/usr/sbin/ip"

// RunTimeout bounds every command run by Run and every ip command run by the
// package itself.
var RunTimeout = 20 * time.Second

// netnsDir is where `ip netns` keeps its namespace bind mounts.
const netnsDir = "/run/netns"

// AllowedNet is the only address range this package ever assigns.
var AllowedNet = netip.MustParsePrefix("198.18.0.0/15")

// Config describes a namespace pair.
type Config struct {
	// Name is a prefix for the namespace names; the package adds the pid
	// and a counter, so it need not be unique. Characters other than
	// [A-Za-z0-9_.] are replaced by '_'; it is cut to 32 characters.
	Name string
	// Queues is the veth's numrxqueues/numtxqueues on both ends (default 2).
	Queues int
	// MTU of both ends (default 1500).
	MTU int
	// PeerTxChecksumOff turns TX checksum offload off on both ends so
	// frames carry full checksums (default true; see NoPeerTxChecksumOff).
	PeerTxChecksumOff bool
	// NoPeerTxChecksumOff keeps the kernel default (TX checksum offload on)
	// even though PeerTxChecksumOff's zero value is false. If both are
	// false the default (off) applies.
	NoPeerTxChecksumOff bool
	// AssignKernelAddrA also gives AddrA to IfA in NSA's kernel.
	AssignKernelAddrA bool
	// KeepIPv6 leaves IPv6 enabled in the namespaces (default: disabled,
	// so no link-local addresses or NDP/MLD frames appear on the veth).
	KeepIPv6 bool
}

// Pair is two namespaces joined by a veth pair.
type Pair struct {
	NSA, NSB           string // namespace names (under /run/netns)
	IfA, IfB           string // veth end names inside NSA / NSB
	AddrA, AddrB       netip.Prefix
	IfIndexA, IfIndexB int
	MACA, MACB         net.HardwareAddr
	Queues, MTU        int

	slot int

	mu         sync.Mutex
	closed     bool
	closeErr   error
	listeners  []net.Listener
	transports []*http.Transport
}

// A is the "A" side, B the "B" side; use p.NSA / p.NSB where a namespace
// name is expected.

var (
	mu       sync.Mutex
	counter  int
	live     = map[*Pair]struct{}{}
	slotUsed = map[int]bool{}
	nextSlot = os.Getpid() % numSlots

	availOnce sync.Once
	availErr  error

	staleOnce sync.Once
)

// numSlots is the number of /24 subnets in 198.18.0.0/15.
const numSlots = 512

func slotPrefixes(slot int) (a, b netip.Prefix) {
	o2 := byte(18 + slot/256)
	o3 := byte(slot % 256)
	a = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, o2, o3, 1}), 24)
	b = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, o2, o3, 2}), 24)
	return a, b
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	if len(b) == 0 {
		return "t"
	}
	return string(b)
}

// Available reports whether namespaces and veth pairs can be created here:
// nil, or an error naming what is missing. The result is cached.
func Available() error {
	availOnce.Do(func() { availErr = probe() })
	return availErr
}

func probe() error {
	if runtime.GOOS != "linux" {
		return errors.New("netns: needs Linux")
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
	}
	if _, err := os.Stat(ipPath); err != nil {
		p, lerr := exec.LookPath("ip")
		if lerr != nil {
			return fmt.Errorf("netns: iproute2 'ip' not found: %v", err)
		}
		ipPath = p
	}
	if _, err := os.Stat("/proc/thread-self/ns/net"); err != nil {
		return fmt.Errorf("netns: no network namespaces: %v", err)
	}
	mu.Lock()
	counter++
	n := counter
	mu.Unlock()
	ns := fmt.Sprintf("%sprobe-%d-%d", NamePrefix, os.Getpid(), n)
	if out, err := ipCmd("netns", "add", ns); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace: %v: %s", err, out)
	}
	defer deleteNetns(ns)
	if out, err := ipCmd("-n", ns, "link", "add", "pa", "numrxqueues", "2", "numtxqueues", "2",
		"type", "veth", "peer", "name", "pb", "numrxqueues", "2", "numtxqueues", "2"); err != nil {
		return fmt.Errorf("netns: cannot create a veth pair: %v: %s", err, out)
	}
	return nil
}

func ipCmd(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipPath, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("ip %s: timed out after %v", strings.Join(args, " "), RunTimeout)
	} else if err != nil {
		err = fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
	}
	return out, err
}

// deleteNetns removes a named namespace the way `ip netns del` does: detach
// the bind mount and remove the file. The kernel frees the namespace (and
// the veth end in it) once nothing references it. No exec, so it is usable
// on a signal path.
func deleteNetns(name string) error {
	if strings.ContainsAny(name, "/") || name == "" || name == "." || name == ".." {
		return fmt.Errorf("netns: bad name %q", name)
	}
	path := filepath.Join(netnsDir, name)
	uerr := unix.Unmount(path, unix.MNT_DETACH)
	rerr := os.Remove(path)
	if rerr != nil && errors.Is(rerr, os.ErrNotExist) {
		return nil // already gone
	}
	if rerr != nil {
		if uerr != nil && uerr != unix.EINVAL && uerr != unix.ENOENT {
			return fmt.Errorf("netns: delete %s: umount: %v; remove: %v", name, uerr, rerr)
		}
		return fmt.Errorf("netns: delete %s: %v", name, rerr)
	}
	return nil
}

// New creates the pair described by cfg. On error nothing is left behind.
func New(cfg Config) (p *Pair, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	staleOnce.Do(func() { CleanupStale("") })
	if cfg.Queues <= 0 {
		cfg.Queues = 2
	}
	if cfg.MTU <= 0 {
		cfg.MTU = 1500
	}
	csumOff := cfg.PeerTxChecksumOff || !cfg.NoPeerTxChecksumOff

	mu.Lock()
	counter++
	n := counter
	slot := -1
	for i := 0; i < numSlots; i++ {
		s := (nextSlot + i) % numSlots
		if !slotUsed[s] {
			slot = s
			break
		}
	}
	if slot < 0 {
		mu.Unlock()
		return nil, errors.New("netns: all 512 subnets of 198.18.0.0/15 in use")
	}
	slotUsed[slot] = true
	nextSlot = (slot + 1) % numSlots
	base := fmt.Sprintf("%s%s-%d-%d", NamePrefix, sanitize(cfg.Name), os.Getpid(), n)
	aPfx, bPfx := slotPrefixes(slot)
	p = &Pair{
		NSA:    base + "a",
		NSB:    base + "b",
		IfA:    fmt.Sprintf("xa%d", slot),
		IfB:    fmt.Sprintf("xb%d", slot),
		AddrA:  aPfx,
		AddrB:  bPfx,
		Queues: cfg.Queues,
		MTU:    cfg.MTU,
		slot:   slot,
	}
	live[p] = struct{}{}
	mu.Unlock()

	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()

	for _, ns := range []string{p.NSA, p.NSB} {
		if out, err := ipCmd("netns", "add", ns); err != nil {
			return p, fmt.Errorf("netns: %v: %s", err, out)
		}
		if err := p.Do(ns, func() error {
			if !cfg.KeepIPv6 {
				for _, k := range []string{"net/ipv6/conf/default/disable_ipv6", "net/ipv6/conf/all/disable_ipv6"} {
					if err := writeSysctl(k, "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
			}
			if ns == p.NSB {
				return writeSysctl("net/ipv4/tcp_tw_reuse", "1")
			}
			return nil
		}); err != nil {
			return p, err
		}
	}
	q := strconv.Itoa(cfg.Queues)
	mtu := strconv.Itoa(cfg.MTU)
	if out, err := ipCmd("-n", p.NSA, "link", "add", p.IfA, "mtu", mtu, "numrxqueues", q, "numtxqueues", q,
		"type", "veth", "peer", "name", p.IfB, "netns", p.NSB, "mtu", mtu, "numrxqueues", q, "numtxqueues", q); err != nil {
		return p, fmt.Errorf("netns: %v: %s", err, out)
	}
	if csumOff {
		if err := p.SetTxChecksum(p.NSA, p.IfA, false); err != nil {
			return p, err
		}
		if err := p.SetTxChecksum(p.NSB, p.IfB, false); err != nil {
			return p, err
		}
	}
	for _, c := range [][]string{
		{"-n", p.NSA, "link", "set", "lo", "up"},
		{"-n", p.NSB, "link", "set", "lo", "up"},
		{"-n", p.NSB, "addr", "add", p.AddrB.String(), "dev", p.IfB},
		{"-n", p.NSA, "link", "set", p.IfA, "up"},
		{"-n", p.NSB, "link", "set", p.IfB, "up"},
	} {
		if out, err := ipCmd(c...); err != nil {
			return p, fmt.Errorf("netns: %v: %s", err, out)
		}
	}
	if cfg.AssignKernelAddrA {
		if err := p.AddKernelAddr(p.NSA, p.IfA, p.AddrA); err != nil {
			return p, err
		}
	}
	for _, side := range []struct {
		ns, ifn string
		idx     *int
		mac     *net.HardwareAddr
	}{{p.NSA, p.IfA, &p.IfIndexA, &p.MACA}, {p.NSB, p.IfB, &p.IfIndexB, &p.MACB}} {
		if err := p.Do(side.ns, func() error {
			ifi, err := net.InterfaceByName(side.ifn)
			if err != nil {
				return err
			}
			*side.idx = ifi.Index
			*side.mac = ifi.HardwareAddr
			return nil
		}); err != nil {
			return p, fmt.Errorf("netns: %s in %s: %w", side.ifn, side.ns, err)
		}
	}
	return p, nil
}

func writeSysctl(key, val string) error {
	// /proc/sys/net resolves to the opening thread's network namespace.
	return os.WriteFile("/proc/sys/"+key, []byte(val), 0o644)
}

// Sysctl writes /proc/sys/<key> (key like "net/ipv4/tcp_tw_reuse") in ns.
func (p *Pair) Sysctl(ns, key, val string) error {
	return p.Do(ns, func() error { return writeSysctl(key, val) })
}

// Close deletes both namespaces (and with them the veth and any XDP program
// attached to it), closes listeners made by ListenTCP and idle connections
// of HTTPClient transports. It is idempotent and safe to call concurrently,
// e.g. from a goroutine handling SIGINT (see CloseAll).
func (p *Pair) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.closeErr
	}
	p.closed = true
	for _, l := range p.listeners {
		l.Close()
	}
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
	// Delete the veth explicitly: a socket still open in a namespace keeps
	// the namespace (and so the veth) alive after its name is removed.
	// Deleting one end deletes both.
	if p.IfA != "" {
		p.doLocked(p.NSA, func() error { return deleteLink(p.IfA) })
	}
	var errs []error
	for _, ns := range []string{p.NSA, p.NSB} {
		if ns == "" {
			continue
		}
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	mu.Lock()
	delete(live, p)
	delete(slotUsed, p.slot)
	mu.Unlock()
	p.closeErr = errors.Join(errs...)
	return p.closeErr
}

// deleteLink deletes the named link in the current thread's namespace with
// one RTM_DELLINK netlink request.
func deleteLink(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var msg [unix.SizeofNlMsghdr + unix.SizeofIfInfomsg]byte
	hdr := (*unix.NlMsghdr)(unsafe.Pointer(&msg[0]))
	hdr.Len = uint32(len(msg))
	hdr.Type = unix.RTM_DELLINK
	hdr.Flags = unix.NLM_F_REQUEST | unix.NLM_F_ACK
	hdr.Seq = 1
	ii := (*unix.IfInfomsg)(unsafe.Pointer(&msg[unix.SizeofNlMsghdr]))
	ii.Family = unix.AF_UNSPEC
	ii.Index = int32(ifi.Index)
	if err := unix.Sendto(fd, msg[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	// Reply: nlmsghdr then, for NLMSG_ERROR, an int32 errno (0 = ACK).
	if n >= unix.SizeofNlMsghdr+4 {
		h := (*unix.NlMsghdr)(unsafe.Pointer(&buf[0]))
		if h.Type == unix.NLMSG_ERROR {
			if e := *(*int32)(unsafe.Pointer(&buf[unix.SizeofNlMsghdr])); e != 0 {
				return unix.Errno(-e)
			}
		}
	}
	return nil
}

// CloseAll closes every pair this process still has open. Use it from a
// signal handler goroutine or TestMain; Main installs one.
func CloseAll() {
	mu.Lock()
	ps := make([]*Pair, 0, len(live))
	for p := range live {
		ps = append(ps, p)
	}
	mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
}

// CleanupStale deletes namespaces named NamePrefix+prefix... whose creating
// process is no longer alive (left by crashed or killed runs). Namespaces of
// live processes (other test binaries running in parallel) are kept.
func CleanupStale(prefix string) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, NamePrefix+prefix) {
			continue
		}
		pid, ok := ownerPid(name)
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		// Delete any veth first (an XDP program dies with it), then the
		// name; a veth in the other namespace of the pair goes with it.
		withNetns(filepath.Join(netnsDir, name), func() error {
			ifs, err := net.Interfaces()
			if err != nil {
				return err
			}
			for _, ifi := range ifs {
				if ifi.Name != "lo" {
					deleteLink(ifi.Name)
				}
			}
			return nil
		})
		deleteNetns(name)
	}
}

// ownerPid parses the pid out of NamePrefix + name + "-" + pid + "-" + n [+ "a"|"b"].
func ownerPid(name string) (int, bool) {
	name = strings.TrimRight(name, "ab")
	parts := strings.Split(name, "-")
	if len(parts) < 4 {
		return 0, false
	}
	if _, err := strconv.Atoi(parts[len(parts)-1]); err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	if err == unix.ESRCH {
		return false
	}
	// A zombie is dead for our purposes.
	if b, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); rerr == nil {
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// Do runs f on a locked OS thread switched into namespace ns (a name under
// /run/netns, normally p.NSA or p.NSB), then switches the thread back to
// the namespace it had. Sockets created inside f belong to ns and stay
// usable after Do returns, from any goroutine. Goroutines started by f run
// in the original namespace. A panic in f is re-raised in the caller after
// the thread is restored; f must not call t.FailNow (it runs on another
// goroutine). If the thread cannot be restored it is discarded.
func (p *Pair) Do(ns string, f func() error) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("netns: Do(%s): pair closed", ns)
	}
	return p.doLocked(ns, f)
}

func (p *Pair) doLocked(ns string, f func() error) error {
	if ns == "" || strings.Contains(ns, "/") {
		return fmt.Errorf("netns: bad namespace name %q", ns)
	}
	return withNetns(filepath.Join(netnsDir, ns), f)
}

type doResult struct {
	err      error
	panicked bool
	pv       any
	returned bool
}

func withNetns(path string, f func() error) error {
	ch := make(chan doResult, 1)
	go func() {
		runtime.LockOSThread()
		var res doResult
		restored := false
		defer func() {
			if r := recover(); r != nil {
				res.panicked, res.pv = true, r
			}
			if restored {
				runtime.UnlockOSThread()
			}
			// else: the goroutine exits locked and the runtime
			// terminates the thread rather than reuse it.
			if !res.returned && !res.panicked && res.err == nil {
				res.err = errors.New("netns: f called runtime.Goexit (t.FailNow inside Do?)")
			}
			ch <- res
		}()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res.err, restored = fmt.Errorf("netns: open own netns: %w", err), true
			res.returned = true
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res.err, restored = fmt.Errorf("netns: open %s: %w", path, err), true
			res.returned = true
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			res.err, restored = fmt.Errorf("netns: setns %s: %w", path, err), true
			res.returned = true
			return
		}
		defer func() {
			restored = unix.Setns(orig, unix.CLONE_NEWNET) == nil
		}()
		res.err = f()
		res.returned = true
	}()
	res := <-ch
	if res.panicked {
		panic(res.pv)
	}
	return res.err
}

// Run runs a command inside ns (via ip netns exec), bounded by RunTimeout,
// and returns its combined output.
func (p *Pair) Run(ns string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	return p.RunContext(ctx, ns, name, args...)
}

// RunContext is Run bounded by ctx (and by RunTimeout).
func (p *Pair) RunContext(ctx context.Context, ns string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipPath, append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil && err != nil {
		return out, fmt.Errorf("netns: %s in %s: %w (%v)", name, ns, ctx.Err(), err)
	}
	if err != nil {
		return out, fmt.Errorf("netns: %s in %s: %w", name, ns, err)
	}
	return out, nil
}

// AddKernelAddr gives ifname in ns the kernel address pfx, which must lie
// in 198.18.0.0/15.
func (p *Pair) AddKernelAddr(ns, ifname string, pfx netip.Prefix) error {
	if !pfx.Addr().Is4() || !AllowedNet.Contains(pfx.Addr()) || pfx.Bits() < AllowedNet.Bits() {
		return fmt.Errorf("netns: address %v outside %v", pfx, AllowedNet)
	}
	if out, err := ipCmd("-n", ns, "addr", "add", pfx.String(), "dev", ifname); err != nil {
		return fmt.Errorf("netns: %v: %s", err, out)
	}
	return nil
}

// ethtool ioctl plumbing: struct ifreq with ifr_data pointing at an
// ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func ethtoolValueIoctl(ifname string, cmd, data uint32) (uint32, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("netns: interface name %q too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	v := &ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return 0, errno
	}
	return v.data, nil
}

// SetTxChecksum turns TX checksum offload of ifname in ns on or off
// (SIOCETHTOOL ETHTOOL_STXCSUM, like `ethtool -K ifname tx on|off`).
func (p *Pair) SetTxChecksum(ns, ifname string, on bool) error {
	var d uint32
	if on {
		d = 1
	}
	return p.Do(ns, func() error {
		if _, err := ethtoolValueIoctl(ifname, unix.ETHTOOL_STXCSUM, d); err != nil {
			return fmt.Errorf("netns: ETHTOOL_STXCSUM %s in %s: %w", ifname, ns, err)
		}
		return nil
	})
}

// TxChecksum reports whether TX checksum offload is on for ifname in ns
// (SIOCETHTOOL ETHTOOL_GTXCSUM).
func (p *Pair) TxChecksum(ns, ifname string) (bool, error) {
	var on bool
	err := p.Do(ns, func() error {
		d, err := ethtoolValueIoctl(ifname, unix.ETHTOOL_GTXCSUM, 0)
		if err != nil {
			return fmt.Errorf("netns: ETHTOOL_GTXCSUM %s in %s: %w", ifname, ns, err)
		}
		on = d != 0
		return nil
	})
	return on, err
}

// ListenTCP listens with Linux TCP in NSB. An empty addr means AddrB with
// an ephemeral port. Close closes the listener if the caller has not.
func (p *Pair) ListenTCP(addr string) (net.Listener, error) {
	if addr == "" {
		addr = net.JoinHostPort(p.AddrB.Addr().String(), "0")
	}
	var l net.Listener
	err := p.Do(p.NSB, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.listeners = append(p.listeners, l)
	p.mu.Unlock()
	return l, nil
}

// DialTCP dials addr with Linux TCP from NSB.
func (p *Pair) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	var c net.Conn
	err := p.Do(p.NSB, func() error {
		var err error
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections are dialed from NSB (no
// proxy, no HTTP/2). Its idle connections are closed by Close.
func (p *Pair) HTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.DialTCP(ctx, addr)
		},
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	p.mu.Lock()
	p.transports = append(p.transports, tr)
	p.mu.Unlock()
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}
