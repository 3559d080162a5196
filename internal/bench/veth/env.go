package veth

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/internal/bench"
	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// closeTimeout bounds the teardown of a server stack; past it the stack is
// abandoned (reported as an error) rather than hanging the run. With
// VETH_DEBUG set in the environment the goroutines are dumped to stderr
// then.
const closeTimeout = 15 * time.Second

// env is one configuration on a fresh namespace pair: the server in NSA
// (on IfA), the load generator's socket factory in NSB.
type env struct {
	cfg  Config
	pair *netns.Pair
	dial *dialer

	st   *adapter.Stack // user-level server stack (nil for Linux)
	nc   *netconn.Net
	ours *xdp.Endpoint // our link/xdp (A, E)
	gv   *gvLink       // gVisor's link/xdp (B, D)

	clientBefore, serverBefore map[string]int64
}

// newEnv builds cfg's server and the client side. queues is the veth's
// queue count for configurations that can serve several (gVisor's link
// always gets one; see gvxdp.go).
func newEnv(cfg Config, queues int) (_ *env, err error) {
	q := queues
	if cfg.Link == LinkGVisor {
		q = 1
	}
	p, err := netns.New(netns.Config{Name: "vethbench", Queues: q, AssignKernelAddrA: cfg.Link == LinkKernel})
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, pair: p}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	// Many short connections from one address: widen the client's port
	// range (netns already sets tcp_tw_reuse=1 in NSB).
	if err := p.Sysctl(p.NSB, "net/ipv4/ip_local_port_range", "1024 65535"); err != nil {
		return nil, err
	}
	switch cfg.Link {
	case LinkOurs:
		err = p.Do(p.NSA, func() (err error) {
			e.ours, err = xdp.New(xdp.Options{Interface: p.IfA, Addresses: []netip.Addr{p.AddrA.Addr()}})
			return err
		})
		if err != nil {
			return nil, err
		}
		var l stack.LinkEndpoint = e.ours
		if cfg.Transport == adapter.GVisorTCP {
			l = newFIFOLink(l, runtime.GOMAXPROCS(0))
		}
		if err := e.buildStack(l); err != nil {
			return nil, err
		}
		if bp, ok := e.st.Stack().TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol); ok {
			e.ours.SetSteer(bp.SteerIP)
		}
	case LinkGVisor:
		err = p.Do(p.NSA, func() (err error) {
			e.gv, err = openGVLink(p.IfIndexA, p.MACA)
			return err
		})
		if err != nil {
			return nil, err
		}
		var l stack.LinkEndpoint = gvShim{e.gv.ep}
		if cfg.Transport == adapter.GVisorTCP {
			l = newFIFOLink(l, runtime.GOMAXPROCS(0))
		}
		if err := e.buildStack(l); err != nil {
			return nil, err
		}
	case LinkKernel:
	default:
		return nil, fmt.Errorf("veth: unknown link %v", cfg.Link)
	}
	if e.dial, err = newDialer(p, p.NSB); err != nil {
		return nil, err
	}
	e.clientBefore = snmp(p, p.NSB)
	e.serverBefore = e.serverCounters()
	return e, nil
}

func (e *env) buildStack(l stack.LinkEndpoint) error {
	st, err := adapter.New(l, adapter.WithAddress(e.pair.AddrA), adapter.WithTransport(e.cfg.Transport), adapter.WithTimeWait(bench.TimeWait))
	if err != nil {
		return err
	}
	e.st = st
	e.nc = netconn.New(st.Stack())
	return nil
}

// target is what the workloads run against.
func (e *env) target() target {
	listen := func() (net.Listener, error) {
		return e.nc.Listen("tcp", net.JoinHostPort(e.pair.AddrA.Addr().String(), "0"))
	}
	if e.cfg.Link == LinkKernel {
		listen = func() (net.Listener, error) {
			var l net.Listener
			err := e.pair.Do(e.pair.NSA, func() (err error) {
				l, err = net.Listen("tcp4", net.JoinHostPort(e.pair.AddrA.Addr().String(), "0"))
				return err
			})
			return l, err
		}
	}
	return target{listen: listen, dial: e.dial.Dial}
}

// Counters are what happened on the wire during one sub-run, besides the
// workload's own figures: the client's (Linux in NSB) and the server's TCP
// counters, and the server link's.
type Counters struct {
	Client map[string]int64 `json:"client_tcp"`           // NSB /proc/net/snmp deltas
	Server map[string]int64 `json:"server_tcp"`           // user-level stack or NSA /proc/net/snmp deltas
	Link   string           `json:"server_link,omitzero"` // the link's counters (ours) or its socket's (gVisor's)
}

// counters returns the deltas since newEnv.
func (e *env) counters() Counters {
	c := Counters{Client: delta(snmp(e.pair, e.pair.NSB), e.clientBefore), Server: delta(e.serverCounters(), e.serverBefore)}
	if e.ours != nil {
		c.Link = linkSummary(e.ours.Stats())
	}
	if e.gv != nil {
		if st, err := e.gv.stats(); err == nil {
			c.Link = fmt.Sprintf("gVisor link/xdp, kernel XDP_STATISTICS %+v", st)
		}
	}
	return c
}

func (e *env) serverCounters() map[string]int64 {
	if e.st == nil {
		return snmp(e.pair, e.pair.NSA)
	}
	t := e.st.Stack().Stats().TCP
	return map[string]int64{
		"OutSegs":      int64(t.SegmentsSent.Value()),
		"InSegs":       int64(t.ValidSegmentsReceived.Value()),
		"RetransSegs":  int64(t.Retransmits.Value()),
		"OutRsts":      int64(t.ResetsSent.Value()),
		"InRsts":       int64(t.ResetsReceived.Value()),
		"AttemptFails": int64(t.FailedConnectionAttempts.Value()),
		"InErrs":       int64(t.ChecksumErrors.Value() + t.InvalidSegmentsReceived.Value()),
		"ListenDrops":  int64(t.ListenOverflowSynDrop.Value() + t.ListenOverflowAckDrop.Value()),
	}
}

func delta(now, before map[string]int64) map[string]int64 {
	if now == nil {
		return nil
	}
	d := make(map[string]int64, len(now))
	for k, v := range now {
		d[k] = v - before[k]
	}
	return d
}

// snmpKeys are the counters of /proc/net/snmp (Tcp:) and /proc/net/netstat
// (TcpExt:) kept.
var snmpKeys = map[string][]string{
	"/proc/thread-self/net/snmp": {"ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "InSegs", "OutSegs", "RetransSegs", "InErrs", "OutRsts"},
	"/proc/thread-self/net/netstat": {"TCPTimeouts", "TCPLossProbes", "TCPFastRetrans", "TCPSackRecovery", "TCPRenoRecovery",
		"TCPSACKReorder", "TCPDSACKRecv", "TCPSpuriousRTOs", "ListenOverflows", "ListenDrops", "TCPBacklogDrop", "TCPRcvQDrop"},
}

// snmp reads the TCP counters of ns (nil on error).
func snmp(p *netns.Pair, ns string) map[string]int64 {
	var m map[string]int64
	_ = p.Do(ns, func() error {
		m = map[string]int64{}
		// /proc/thread-self/net resolves to the reading thread's namespace.
		for path, keys := range snmpKeys {
			if err := readProcNet(path, keys, m); err != nil {
				m = nil
				return err
			}
		}
		return nil
	})
	return m
}

// readProcNet reads the "Tcp:" or "TcpExt:" header/value line pair of a
// /proc/net file into m, keeping keys.
func readProcNet(path string, keys []string, m map[string]int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || (fs[0] != "Tcp:" && fs[0] != "TcpExt:") {
			continue
		}
		if names == nil {
			names = fs[1:]
			continue
		}
		for i, v := range fs[1:] {
			if i < len(names) && slices.Contains(keys, names[i]) {
				n, _ := strconv.ParseInt(v, 10, 64)
				m[names[i]] = n
			}
		}
		names = nil
	}
	return sc.Err()
}

func linkSummary(s xdp.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %v need_wakeup %v", s.Mode, s.NeedWakeup)
	for _, q := range s.Queues {
		fmt.Fprintf(&b, "; q%d rx %d frames/%d bursts, tx %d frames/%d bursts, kicks %d, tx-full %d, rx-bad %d, kernel %+v",
			q.Queue, q.RxFrames, q.RxBursts, q.TxFrames, q.TxBursts, q.TxKicks, q.TxRingFull, q.RxBad, q.Kernel)
	}
	return b.String()
}

// close tears everything down: the client side, the server stack and its
// link (program detached first), then the namespaces (and with them the
// veth and anything still attached to it).
func (e *env) close() error {
	var errs []error
	if e.dial != nil {
		if err := e.dial.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	pairClosed := false
	if e.gv != nil {
		// gVisor's link: see gvxdp.go. Detach the program (no new frames),
		// let the RX goroutine drain its ring, put a hung-up pipe on the
		// socket's descriptor, then delete the veth: the kernel raises
		// ENETDOWN on the socket (NETDEV_UNREGISTER), which wakes the
		// goroutine's ppoll; it re-polls the descriptor, sees POLLHUP and
		// exits, so the stack's RemoveNIC finds it gone.
		e.gv.detach()
		time.Sleep(20 * time.Millisecond)
		if err := e.gv.shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("gvisor link/xdp shutdown: %w", err))
		}
		if err := e.pair.Close(); err != nil {
			errs = append(errs, err)
		}
		pairClosed = true
	}
	if e.st != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.st.Close()
		}()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			if os.Getenv("VETH_DEBUG") != "" {
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			}
			err := fmt.Errorf("veth: %s: server stack did not close within %v (abandoned)", e.cfg.Name, closeTimeout)
			if e.gv != nil {
				err = fmt.Errorf("%w: %w", errGVLinkStuck, err)
			}
			errs = append(errs, err)
		}
	}
	if e.ours != nil {
		e.ours.Close()
	}
	if e.gv != nil {
		e.gv.close()
	}
	if !pairClosed {
		if err := e.pair.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("veth: teardown: %v", errs)
	}
	return nil
}

var (
	afxdpOnce sync.Once
	afxdpErr  error
)

// Available reports why the veth configurations cannot run here (nil if
// they can): namespaces and veth (root), AF_XDP sockets.
func Available() error {
	if err := netns.Available(); err != nil {
		return err
	}
	afxdpOnce.Do(func() {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			afxdpErr = fmt.Errorf("veth: AF_XDP sockets unavailable: %w", err)
			return
		}
		unix.Close(fd)
	})
	return afxdpErr
}
