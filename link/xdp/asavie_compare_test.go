package xdp_test

// TestAsavieCompare measures, in one run and alternating, how
// github.com/asavie/xdp v0.3.3's socket (its defaults, and with our ring
// sizes) and our endpoint receive the same unpaced stream of numbered UDP
// datagrams from Linux over a one-queue veth: received, duplicated,
// corrupted, lost, and the drops the kernel counted.
// docs/link-xdp.md ("asavie/xdp: not used, and why") quotes its table.
// Only our endpoint's integrity (no duplicate, no corruption) is asserted;
// asavie's figures and the rates are logged as measured.
//
//	sudo go test ./link/xdp -run TestAsavieCompare -v -count=1
//
// XDPTCP_ASAVIE_N sets the datagrams per run (default 200000; 100000 with
// -short or -race). Under -race every receiver is slower and the figures
// are not the ones to quote.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	asavie "github.com/asavie/xdp"
	"golang.org/x/sys/unix"

	"github.com/xdptcp/xdptcp/link/xdp"
	"github.com/xdptcp/xdptcp/tests/netns"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	cmpPort    = 9    // UDP destination port of the stream
	cmpPayload = 1000 // UDP payload bytes: 8-byte sequence number + pattern
	cmpRounds  = 3
)

// cmpTemplate: the pattern after the sequence number is
// cmpTemplate[seq%251:][:cmpPayload-8], so a frame moved to another
// sequence number's slot, or overwritten by another frame, mismatches.
var cmpTemplate = func() []byte {
	b := make([]byte, 251+cmpPayload)
	for i := range b {
		b[i] = byte(i*131 + 7)
	}
	return b
}()

func cmpPattern(seq uint64) []byte { return cmpTemplate[seq%251:][:cmpPayload-8] }

// cmpTally checks UDP datagrams of the stream as a receiver hands them
// over. It is used by one goroutine at a time; progress is atomic so the
// test can watch it.
type cmpTally struct {
	seen                 []uint8
	unique, dup, corrupt uint64
	other                uint64 // frames that are not the stream's (ARP, ...)
	progress             atomic.Uint64
}

func newTally(n int) *cmpTally { return &cmpTally{seen: make([]uint8, n)} }

// ip checks an IPv4 packet.
func (c *cmpTally) ip(p []byte) {
	ip := header.IPv4(p)
	if len(p) < header.IPv4MinimumSize || !ip.IsValid(len(p)) || ip.TransportProtocol() != header.UDPProtocolNumber {
		c.other++
		return
	}
	u := header.UDP(ip.Payload())
	if len(u) < header.UDPMinimumSize || u.DestinationPort() != cmpPort {
		c.other++
		return
	}
	c.payload(u.Payload())
}

func (c *cmpTally) payload(b []byte) {
	defer c.progress.Add(1)
	if len(b) != cmpPayload {
		c.corrupt++
		return
	}
	seq := binary.BigEndian.Uint64(b)
	if seq >= uint64(len(c.seen)) || !bytes.Equal(b[8:], cmpPattern(seq)) {
		c.corrupt++
		return
	}
	if c.seen[seq] != 0 {
		c.dup++
	} else {
		c.unique++
	}
	c.seen[seq] = 1
}

// cmpResult is one receiver's run.
type cmpResult struct {
	sent, recv, dup, corrupt, lost, other uint64
	xskDrop                               uint64  // kernel XDP_STATISTICS rx_dropped + rx_invalid_descs
	fillEmpty                             uint64  // XDP_STATISTICS rx_fill_ring_empty_descs (a cause, inside rx_dropped)
	vethDrop                              uint64  // rx/tx dropped on both veth ends, sender's UDP SndbufErrors and failed writes
	linkDrop                              uint64  // our endpoint's RxBad + RxNoDispatcher
	addrDup                               uint64  // asavie: RX descriptor for a UMEM frame not on the FILL ring
	leftMapped                            int     // asavie: mappings of its socket left in the process after Close
	secs                                  float64 // the sender's time: sent/secs is the offered rate
	veth                                  dropCounts
}

// accounted: frames lost where a counter saw them. A frame the XDP
// program could not put into the socket (no FILL frame, RX ring full)
// counts in the socket's XDP_STATISTICS and again in IfA's rx_dropped, so
// the veth figure already holds xskDrop; the larger of the two is taken.
func (r cmpResult) accounted() uint64 { return max(r.xskDrop, r.vethDrop) + r.linkDrop }

// cmpDispatcher is a minimal stack.NetworkDispatcher for our endpoint: it
// only tallies the stream's datagrams.
type cmpDispatcher struct{ t *cmpTally }

func (d cmpDispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if proto != header.IPv4ProtocolNumber {
		d.t.other++
		return
	}
	b, ok := pkt.Data().PullUp(pkt.Data().Size())
	if !ok {
		d.t.other++
		return
	}
	d.t.ip(b)
}

func (cmpDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// receiver starts one receiver on queue 0 of IfA and returns a function
// that stops it and reports its drop counters; stop is safe to call twice.
type receiver struct {
	name  string
	start func(t *testing.T, p *netns.Pair, tl *cmpTally) (stop func() cmpResult)
}

func TestAsavieCompare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("asavie comparison: needs root (namespaces, XDP, AF_XDP)")
	}
	if fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		t.Skipf("asavie comparison: AF_XDP unavailable here: %v", err)
	} else {
		unix.Close(fd)
	}
	n := 200_000
	if testing.Short() || raceEnabled() {
		n = 100_000 // keeps the run under about 30 s with -race
	}
	if s := os.Getenv("XDPTCP_ASAVIE_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 || v > 10_000_000 {
			t.Fatalf("XDPTCP_ASAVIE_N=%q: want a count up to 10000000", s)
		}
		n = v
	}
	recvs := []receiver{
		{"asavie (defaults: 128 frames, 64-entry rings)", asavieReceiver(nil)},
		{"asavie (4096 frames, 2048-entry rings)", asavieReceiver(&asavie.SocketOptions{
			NumFrames: 4096, FrameSize: 2048, FillRingNumDescs: 2048,
			CompletionRingNumDescs: 64, RxRingNumDescs: 2048, TxRingNumDescs: 64,
		})},
		{"ours (link/xdp, 4096 frames, 2048-entry rings)", oursReceiver},
	}
	res := make([][]cmpResult, len(recvs))
	for round := range cmpRounds {
		for i, r := range recvs {
			got := cmpRun(t, n, r)
			t.Logf("round %d %-48s %s", round+1, r.name, got)
			res[i] = append(res[i], got)
		}
	}
	t.Logf("medians of %d alternating rounds, %d datagrams of %d bytes each, unpaced, veth %s", cmpRounds, n, cmpPayload, kernelRelease())
	t.Logf("%-48s %9s %6s %7s %8s %9s %9s %8s %10s %9s", "receiver", "received", "dup", "corrupt", "lost", "accounted", "fillEmpty", "addrDup", "leftMapped", "offered/s")
	for i, r := range recvs {
		m := func(f func(cmpResult) float64) float64 {
			v := make([]float64, 0, len(res[i]))
			for _, x := range res[i] {
				v = append(v, f(x))
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		t.Logf("%-48s %9.0f %6.0f %7.0f %8.0f %9.0f %9.0f %8.0f %10.0f %9.0f", r.name,
			m(func(x cmpResult) float64 { return float64(x.recv) }),
			m(func(x cmpResult) float64 { return float64(x.dup) }),
			m(func(x cmpResult) float64 { return float64(x.corrupt) }),
			m(func(x cmpResult) float64 { return float64(x.lost) }),
			m(func(x cmpResult) float64 { return float64(x.accounted()) }),
			m(func(x cmpResult) float64 { return float64(x.fillEmpty) }),
			m(func(x cmpResult) float64 { return float64(x.addrDup) }),
			m(func(x cmpResult) float64 { return float64(x.leftMapped) }),
			m(func(x cmpResult) float64 { return float64(x.sent) / x.secs }))
	}
	// The only assertions: our endpoint hands every frame over once and
	// intact, and every frame it lost is counted somewhere.
	for _, x := range res[len(recvs)-1] {
		if x.dup != 0 || x.corrupt != 0 {
			t.Errorf("ours: %d duplicated, %d corrupted datagrams (want 0, 0): %s", x.dup, x.corrupt, x)
		}
	}
}

func (r cmpResult) String() string {
	return fmt.Sprintf("sent %d recv %d dup %d corrupt %d lost %d (accounted %d: xsk %d veth/udp %d [%v], link %d) fillEmpty %d addrDup %d other %d leftMapped %d, offered %.0f frames/s",
		r.sent, r.recv, r.dup, r.corrupt, r.lost, r.accounted(), r.xskDrop, r.vethDrop, r.veth, r.linkDrop, r.fillEmpty, r.addrDup, r.other,
		r.leftMapped, float64(r.sent)/r.secs)
}

// cmpRun makes a fresh namespace pair (one queue), starts r on IfA, sends
// n datagrams from NSB, waits until the receiver stops making progress,
// stops it, counts and removes the pair.
//
// Each run gets its own pair because asavie's Socket.Close leaves its ring
// mappings in place: the socket stays bound and the queue answers EBUSY
// until the process exits or the veth is deleted.
func cmpRun(t *testing.T, n int, r receiver) cmpResult {
	t.Helper()
	p := netns.NewT(t, netns.Config{Name: "asavie", Queues: 1})
	defer p.Close()
	// No ARP: asavie's program takes every frame of the queue, ARP included.
	if out, err := p.Run(p.NSB, "ip", "neigh", "replace", p.AddrA.Addr().String(),
		"lladdr", p.MACA.String(), "dev", p.IfB, "nud", "permanent"); err != nil {
		t.Fatalf("static neighbour: %v: %s", err, out)
	}
	var conn *net.UDPConn
	if err := p.Do(p.NSB, func() (err error) {
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.AddrA.Addr(), cmpPort)))
		return err
	}); err != nil {
		t.Fatalf("UDP socket in NSB: %v", err)
	}
	defer conn.Close()
	tl := newTally(n)
	before := vethDrops(t, p)
	stop := r.start(t, p, tl)
	defer stop()
	buf := make([]byte, cmpPayload)
	var sent uint64
	start := time.Now()
	for seq := range uint64(n) {
		binary.BigEndian.PutUint64(buf, seq)
		copy(buf[8:], cmpPattern(seq))
		if _, err := conn.Write(buf); err == nil {
			sent++
		}
	}
	sendSecs := time.Since(start).Seconds()
	// Bounded wait: done when everything arrived or nothing moved for 300 ms.
	last, lastAt := tl.progress.Load(), time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		cur := tl.progress.Load()
		if cur >= uint64(n) {
			break
		}
		if cur != last {
			last, lastAt = cur, time.Now()
		} else if time.Since(lastAt) > 300*time.Millisecond {
			break
		}
	}
	res := stop() // the receiver goroutine has ended: tl is ours to read
	res.secs = sendSecs
	res.sent = sent
	res.recv, res.dup, res.corrupt, res.other = tl.unique, tl.dup, tl.corrupt, tl.other
	res.lost = uint64(n) - tl.unique
	res.veth = vethDrops(t, p).sub(before)
	res.vethDrop = res.veth.sum() + uint64(n) - sent
	return res
}

// asavieReceiver runs asavie's socket the way its README does: Fill with
// GetDescs(NumFreeFillSlots()), Poll, Receive, use the frames.
func asavieReceiver(opts *asavie.SocketOptions) func(t *testing.T, p *netns.Pair, tl *cmpTally) func() cmpResult {
	return func(t *testing.T, p *netns.Pair, tl *cmpTally) func() cmpResult {
		t.Helper()
		var (
			prog *asavie.Program
			xsk  *asavie.Socket
		)
		var teardown sync.Once
		detach := func() {
			teardown.Do(func() {
				// asavie attaches through netlink: the program stays on the
				// interface until removed. Not its Detach (it waits for the
				// removal in an unbounded loop): ip, bounded by RunTimeout.
				if out, err := p.Run(p.NSA, "ip", "link", "set", "dev", p.IfA, "xdp", "off"); err != nil {
					t.Errorf("ip link set dev %s xdp off: %v: %s", p.IfA, err, out)
				}
				if xsk != nil {
					xsk.Close()
				}
				if prog != nil {
					prog.Close()
				}
			})
		}
		t.Cleanup(detach)
		err := p.Do(p.NSA, func() (err error) {
			if prog, err = asavie.NewProgram(1); err != nil {
				return fmt.Errorf("NewProgram: %w", err)
			}
			if err = prog.Attach(p.IfIndexA); err != nil { // netlink, in NSA
				return fmt.Errorf("Attach: %w", err)
			}
			// The previous receiver's socket may still hold the queue for a
			// moment after its close (EBUSY): retry, bounded.
			for try := 0; ; try++ {
				xsk, err = asavie.NewSocket(p.IfIndexA, 0, opts)
				if err == nil {
					break
				}
				if try == 100 || !strings.Contains(err.Error(), "busy") {
					return fmt.Errorf("NewSocket: %w", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			return prog.Register(0, xsk.FD())
		})
		if err != nil {
			detach()
			t.Fatalf("asavie: %v", err)
		}
		nf := asavie.DefaultSocketOptions.NumFrames
		fs := asavie.DefaultSocketOptions.FrameSize
		if opts != nil {
			nf, fs = opts.NumFrames, opts.FrameSize
		}
		var quit atomic.Bool
		var addrDup uint64
		done := make(chan struct{})
		ready := make(chan struct{}) // first FILL done: the sender may start
		go func() {
			defer close(done)
			// onFill[i]: frame i was put on the FILL ring and has not come
			// back on RX since; an RX descriptor for a frame not on FILL is
			// the "same UMEM address returned twice" report.
			onFill := make([]bool, nf)
			first := true
			for deadline := time.Now().Add(60 * time.Second); !quit.Load() && time.Now().Before(deadline); {
				descs := xsk.GetDescs(xsk.NumFreeFillSlots())
				k := xsk.Fill(descs)
				for _, d := range descs[:k] {
					onFill[d.Addr/uint64(fs)] = true
				}
				if first {
					close(ready)
					first = false
				}
				numRx, _, err := xsk.Poll(20)
				if err != nil {
					return
				}
				for _, d := range xsk.Receive(numRx) {
					i := d.Addr / uint64(fs)
					if i >= uint64(nf) || !onFill[i] {
						addrDup++
					} else {
						onFill[i] = false
					}
					f := xsk.GetFrame(d)
					if len(f) < header.EthernetMinimumSize || header.Ethernet(f).Type() != header.IPv4ProtocolNumber {
						tl.other++
						continue
					}
					tl.ip(f[header.EthernetMinimumSize:])
				}
			}
		}()
		select {
		case <-ready:
		case <-done:
		}
		var res cmpResult
		var once sync.Once
		return func() cmpResult {
			once.Do(func() {
				quit.Store(true)
				<-done
				if st, err := xsk.Stats(); err == nil {
					k := st.KernelStats
					res.xskDrop = k.Rx_dropped + k.Rx_invalid_descs
					res.fillEmpty = k.Rx_fill_ring_empty_descs
				} else {
					t.Logf("asavie Stats: %v", err)
				}
				res.addrDup = addrDup
				var st unix.Stat_t
				ino := uint64(0)
				if unix.Fstat(xsk.FD(), &st) == nil {
					ino = st.Ino
				}
				detach()
				if ino != 0 {
					res.leftMapped = socketMappings(ino)
				}
			})
			return res
		}
	}
}

// oursReceiver: our endpoint on queue 0 with cmpDispatcher attached.
func oursReceiver(t *testing.T, p *netns.Pair, tl *cmpTally) func() cmpResult {
	t.Helper()
	mapped := socketMappings(0) // asavie's earlier runs leave theirs
	var ep *xdp.Endpoint
	if err := p.Do(p.NSA, func() (err error) {
		// New itself waits out EBUSY from a socket that is just closing.
		ep, err = xdp.New(xdp.Options{Interface: p.IfA, Queues: []int{0}, Addresses: []netip.Addr{p.AddrA.Addr()}})
		return err
	}); err != nil {
		t.Fatalf("xdp.New: %v", err)
	}
	t.Cleanup(ep.Close)
	ep.Attach(cmpDispatcher{tl})
	var res cmpResult
	var once sync.Once
	return func() cmpResult {
		once.Do(func() {
			k := ep.Stats().Total().Kernel // the kernel's, while the socket is open
			ep.Close()                     // waits for the RX goroutine
			q := ep.Stats().Total()
			res.xskDrop = k.RxDropped + k.RxInvalidDescs
			res.fillEmpty = k.RxFillRingEmpty
			res.linkDrop = q.RxBad + q.RxNoDispatcher
			res.leftMapped = socketMappings(0) - mapped
		})
		return res
	}
}

// vethDrops reads rx and tx dropped of both veth ends and NSB's UDP
// SndbufErrors.
func vethDrops(t *testing.T, p *netns.Pair) (d dropCounts) {
	t.Helper()
	for i, e := range [][2]string{{p.NSA, p.IfA}, {p.NSB, p.IfB}} {
		out, err := p.Run(e[0], "ip", "-s", "-j", "link", "show", "dev", e[1])
		if err != nil {
			t.Fatalf("ip -s link: %v: %s", err, out)
		}
		var l []struct {
			Stats struct {
				RX struct{ Dropped uint64 } `json:"rx"`
				TX struct{ Dropped uint64 } `json:"tx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &l); err != nil || len(l) != 1 {
			t.Fatalf("ip -s -j link: %v: %s", err, out)
		}
		d[2*i], d[2*i+1] = l[0].Stats.RX.Dropped, l[0].Stats.TX.Dropped
	}
	out, err := p.Run(p.NSB, "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatalf("/proc/net/snmp: %v: %s", err, out)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "SndbufErrors" && i < len(f) {
				d[4], _ = strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return d
}

// dropCounts: IfA rx, IfA tx, IfB rx, IfB tx dropped, NSB's UDP
// SndbufErrors.
type dropCounts [5]uint64

func (d dropCounts) sub(o dropCounts) (r dropCounts) {
	for i := range d {
		r[i] = d[i] - o[i]
	}
	return r
}

func (d dropCounts) sum() (s uint64) {
	for _, v := range d {
		s += v
	}
	return s
}

func (d dropCounts) String() string {
	return fmt.Sprintf("IfA rx %d tx %d, IfB rx %d tx %d, UDP SndbufErrors %d", d[0], d[1], d[2], d[3], d[4])
}

// socketMappings counts the mappings of socket inode ino in this process,
// or of any socket with ino 0.
func socketMappings(ino uint64) int {
	m, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	n := 0
	want := "socket:["
	if ino != 0 {
		want = fmt.Sprintf("socket:[%d]", ino)
	}
	for l := range strings.Lines(string(m)) {
		if strings.Contains(l, want) {
			n++
		}
	}
	return n
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
