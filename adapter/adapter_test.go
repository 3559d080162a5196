package adapter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gvisor.dev/gvisor/pkg/refs"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/xdptcp/xdptcp/link/fault"
	"github.com/xdptcp/xdptcp/link/memlink"
)

func TestMain(m *testing.M) {
	refs.SetLeakMode(refs.LeaksPanic)
	code := m.Run()
	if code == 0 {
		refs.DoLeakCheck()
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func gvisor() []Option { return []Option{WithTransport(GVisorTCP)} }

func newGVisorPair(t *testing.T, mo memlink.Options) (*Stack, *Stack) {
	t.Helper()
	a, b, err := NewPair(mo, gvisor(), gvisor())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func fullAddr(st *Stack, a netip.Addr, port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: st.NIC(), Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: port}
}

func netProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// serve accepts one connection on ln and runs handle on it.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.Close()
		handle(c)
	})
	return &wg
}

func TestEchoGVisor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mo      memlink.Options
		a, b    netip.Addr
		checkV6 bool
	}{
		{"ipv4", memlink.Options{}, DefaultPairAddrsA[0].Addr(), DefaultPairAddrsB[0].Addr(), false},
		{"ipv6", memlink.Options{}, DefaultPairAddrsA[1].Addr(), DefaultPairAddrsB[1].Addr(), true},
		{"ipv4-offload", memlink.Options{ChecksumOffload: true}, DefaultPairAddrsA[0].Addr(), DefaultPairAddrsB[0].Addr(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := newGVisorPair(t, tc.mo)
			ln, err := gonet.ListenTCP(sb.Stack(), fullAddr(sb, tc.b, 7), netProto(tc.b))
			if err != nil {
				t.Fatal(err)
			}
			wg := serve(t, ln, func(c net.Conn) { io.Copy(c, c) })
			defer func() { ln.Close(); wg.Wait() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := gonet.DialContextTCP(ctx, sa.Stack(), fullAddr(sa, tc.b, 7), netProto(tc.b))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != tc.a {
				t.Errorf("local address %v, want %v", got, tc.a)
			}
			msg := []byte("hello, batchtcp")
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Errorf("echo %q, want %q", got, msg)
			}
			c.Close()
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func TestPcapAndUDP(t *testing.T) {
	var pcap lockedBuffer
	sa, sb, err := NewPair(memlink.Options{}, append(gvisor(), WithPcap(&pcap, 128)), gvisor())
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	defer sb.Close()
	dst := DefaultPairAddrsB[0].Addr()
	srv, err := gonet.DialUDP(sb.Stack(), &tcpip.FullAddress{NIC: sb.NIC(), Addr: tcpip.AddrFromSlice(dst.AsSlice()), Port: 53}, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := gonet.DialUDP(sa.Stack(), nil, &tcpip.FullAddress{NIC: sa.NIC(), Addr: tcpip.AddrFromSlice(dst.AsSlice()), Port: 53}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("ReadFrom = %q, %v", buf[:n], err)
	}
	// Pcap: 24-byte file header plus at least the ARP exchange and the
	// datagram.
	if pcap.Len() < 24+3*16 {
		t.Errorf("pcap has %d bytes", pcap.Len())
	}
	pcap.mu.Lock()
	magic := binary.LittleEndian.Uint32(pcap.b.Bytes())
	pcap.mu.Unlock()
	if magic != 0xa1b2c3d4 {
		t.Errorf("pcap magic %#x", magic)
	}
}

func TestManualClockStack(t *testing.T) {
	clk := faketime.NewManualClock()
	a, b := memlink.Pair(memlink.Options{})
	defer b.Close()
	p4, p6 := netip.MustParsePrefix("198.19.7.2/24"), netip.MustParsePrefix("2001:db8::2/64")
	st, err := New(a,
		WithTransport(GVisorTCP),
		WithClock(clk),
		WithAddress(p4), WithAddress(p6),
		WithRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("198.19.7.1")),
		WithRoute(netip.MustParsePrefix("198.19.7.0/24"), netip.Addr{}),
		WithSendBufferSize(64<<10), WithReceiveBufferSize(8<<20),
		WithTimeWait(time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.NIC() != 1 || st.Transport() != GVisorTCP || st.TxBatcher() != nil {
		t.Errorf("NIC %d transport %v batcher %v", st.NIC(), st.Transport(), st.TxBatcher())
	}
	if got := st.Addrs(); len(got) != 2 || got[0] != p4.Addr() || got[1] != p6.Addr() {
		t.Errorf("Addrs = %v", got)
	}
	if st.Stack().Clock() != clk {
		t.Error("clock not installed")
	}
	rt := st.Stack().GetRouteTable()
	if len(rt) != 2 || rt[1].Gateway != tcpip.AddrFrom4([4]byte{198, 19, 7, 1}) || rt[1].Destination.Prefix() != 0 || rt[0].Gateway.Len() != 0 {
		t.Errorf("routes %v", rt)
	}
	var snd tcpip.TCPSendBufferSizeRangeOption
	var rcv tcpip.TCPReceiveBufferSizeRangeOption
	st.Stack().TransportProtocolOption(header.TCPProtocolNumber, &snd)
	st.Stack().TransportProtocolOption(header.TCPProtocolNumber, &rcv)
	if snd.Default != 64<<10 || snd.Min > snd.Default || snd.Max < snd.Default {
		t.Errorf("send range %+v", snd)
	}
	if rcv.Default != 8<<20 || rcv.Max != 8<<20 {
		t.Errorf("receive range %+v", rcv)
	}
	var tw tcpip.TCPTimeWaitTimeoutOption
	st.Stack().TransportProtocolOption(header.TCPProtocolNumber, &tw)
	if time.Duration(tw) != time.Second {
		t.Errorf("TIME-WAIT %v", time.Duration(tw))
	}
	st.Close() // idempotent
}

func TestDefaultRoutesPerSubnet(t *testing.T) {
	sa, _ := newGVisorPair(t, memlink.Options{})
	rt := sa.Stack().GetRouteTable()
	if len(rt) != 2 {
		t.Fatalf("routes %v", rt)
	}
	got := []string{rt[0].Destination.String(), rt[1].Destination.String()}
	slices.Sort(got)
	if got[0] != "198.18.0.0/24" || got[1] != "fd00::/64" {
		t.Errorf("routes %v", rt)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"zero shards", []Option{WithShards(0)}},
		{"negative shards", []Option{WithShards(-2)}},
		{"negative send buffer", []Option{WithSendBufferSize(-1)}},
		{"zero receive buffer", []Option{WithReceiveBufferSize(0)}},
		{"huge buffer", []Option{WithSendBufferSize(MaxBufferSize + 1)}},
		{"negative time-wait", []Option{WithTimeWait(-time.Second)}},
		{"invalid prefix", []Option{WithAddress(netip.Prefix{})}},
		{"unspecified address", []Option{WithAddress(netip.MustParsePrefix("0.0.0.0/0"))}},
		{"prefix too long", []Option{WithAddress(netip.PrefixFrom(netip.MustParseAddr("198.18.0.1"), 33))}},
		{"mapped address", []Option{WithAddress(netip.MustParsePrefix("::ffff:198.18.0.1/120"))}},
		{"bad route", []Option{WithRoute(netip.Prefix{}, netip.Addr{})}},
		{"gateway family", []Option{WithRoute(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("fd00::1"))}},
		{"nil clock", []Option{WithClock(nil)}},
		{"nil pcap", []Option{WithPcap(nil, 0)}},
		{"bad transport", []Option{WithTransport(Transport(9))}},
		{"nil option", []Option{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := memlink.Pair(memlink.Options{})
			defer a.Close()
			defer b.Close()
			st, err := New(a, append(gvisor(), tc.opts...)...)
			if err == nil {
				st.Close()
				t.Fatal("want error")
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Error("nil link: want error")
	}
	if _, _, err := NewPair(memlink.Options{}, gvisor(), append(gvisor(), WithShards(0))); err == nil {
		t.Error("NewPair: want error")
	}
}

// TestLossyTransferGVisor moves 4 MiB over memlink with drop, reorder and
// duplication (and some corruption) in both directions and checks it arrives byte-exact.
func TestLossyTransferGVisor(t *testing.T) {
	const size = 4 << 20
	la, lb := memlink.Pair(memlink.Options{})
	cfg := fault.Config{Seed: 1, Drop: 0.02, Reorder: 0.02, Duplicate: 0.02, Corrupt: 0.01}
	fa := fault.New(la, cfg)
	cfg.Seed = 2
	fb := fault.New(lb, cfg)
	sa, sb, err := NewPairOn(fa, fb, append(gvisor(), WithAddress(DefaultPairAddrsA[0])),
		append(gvisor(), WithAddress(DefaultPairAddrsB[0])))
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	defer sb.Close()

	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(data)
	want := sha256.Sum256(data)

	dst := DefaultPairAddrsB[0].Addr()
	ln, err := gonet.ListenTCP(sb.Stack(), fullAddr(sb, dst, 9), ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	var got [32]byte
	var n int64
	wg := serve(t, ln, func(c net.Conn) {
		h := sha256.New()
		var err error
		if n, err = io.Copy(h, c); err != nil {
			t.Errorf("receive: %v", err)
		}
		h.Sum(got[:0])
	})
	defer func() { ln.Close(); wg.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, sa.Stack(), fullAddr(sa, dst, 9), ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	wg.Wait()
	if n != size || got != want {
		t.Fatalf("received %d bytes, sha256 match %v", n, got == want)
	}
	sf := fa.Stats()
	if sf.Dropped == 0 || sf.Reordered == 0 || sf.Duplicated == 0 || sf.Corrupted == 0 {
		t.Errorf("faults not exercised: %+v", sf)
	}
	if cs := sb.Stack().Stats().TCP.ChecksumErrors.Value(); cs == 0 {
		t.Error("no checksum errors counted for corrupted segments")
	}
	t.Logf("faults a->b %+v, b->a %+v", sf, fb.Stats())
}

func TestTransportString(t *testing.T) {
	if BatchTCP.String() != "batchtcp" || GVisorTCP.String() != "gvisor" || Transport(5).String() == "" {
		t.Error("String")
	}
}
