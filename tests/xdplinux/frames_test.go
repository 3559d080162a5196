package xdplinux

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xdptcp/xdptcp/tests/netns"
)

const (
	frameCount   = 200_000
	framePayload = 256 // UDP payload: 8-byte sequence number, then fill derived from it
	framePort    = 9999
)

// fillFrame writes frame seq's payload into b (len framePayload).
func fillFrame(b []byte, seq uint64) {
	binary.BigEndian.PutUint64(b, seq)
	x := seq*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	for i := 8; i+8 <= len(b); i += 8 {
		// splitmix64
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.BigEndian.PutUint64(b[i:], z^(z>>31))
	}
}

// TestFrameIntegrity: a Linux UDP sender in NSB sends 200,000
// sequence-numbered datagrams at full rate to a gVisor UDP endpoint on our
// stack, through the XDP program, the AF_XDP sockets and link/xdp. No
// datagram may arrive twice or with a payload other than the one its
// sequence number defines, no checksum may fail, and every datagram that
// did not arrive must be covered by a drop counter on the way: the veth's,
// the kernel's XDP_STATISTICS, link/xdp's, and the stack's IP/UDP ones.
func TestFrameIntegrity(t *testing.T) {
	e := newEnv(t, netns.Config{})
	s := e.st.Stack()

	// Receiver: a UDP endpoint on our stack with a 4 MiB buffer.
	var wq waiter.Queue
	uep, terr := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatalf("UDP endpoint: %s", terr)
	}
	uep.SocketOptions().SetReceiveBufferSize(4<<20, true)
	if terr := uep.Bind(tcpip.FullAddress{NIC: e.st.NIC(), Addr: tcpip.AddrFrom4(e.p.AddrA.Addr().As4()), Port: framePort}); terr != nil {
		uep.Close()
		t.Fatalf("bind: %s", terr)
	}
	uc := gonet.NewUDPConn(&wq, uep)
	defer uc.Close()

	// No ARP during the run: the kernel queues only a few packets while it
	// resolves, and those drops would be counted nowhere we look.
	if out, err := e.p.Run(e.p.NSB, "ip", "neigh", "replace", e.p.AddrA.Addr().String(),
		"lladdr", e.p.MACA.String(), "dev", e.p.IfB, "nud", "permanent"); err != nil {
		t.Fatalf("ip neigh: %v: %s", err, out)
	}

	var sc *net.UDPConn
	if err := e.p.Do(e.p.NSB, func() (err error) {
		sc, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netipAddrPort(e, framePort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetWriteBuffer(4 << 20)

	vethB0, err := vethStats(e.p, e.p.NSB, e.p.IfB)
	if err != nil {
		t.Fatal(err)
	}
	vethA0, err := vethStats(e.p, e.p.NSA, e.p.IfA)
	if err != nil {
		t.Fatal(err)
	}

	// Reader.
	seen := make([]uint8, frameCount)
	var received, dups, corrupt, badLen, outOfRange atomic.Uint64
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		want := make([]byte, framePayload)
		for {
			uc.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := uc.Read(buf)
			if err != nil {
				// Close ends the loop (gonet says io.EOF or net.ErrClosed).
				if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
					err = nil
				}
				readDone <- err
				return
			}
			if n != framePayload {
				badLen.Add(1)
				continue
			}
			seq := binary.BigEndian.Uint64(buf)
			if seq >= frameCount {
				outOfRange.Add(1)
				continue
			}
			fillFrame(want, seq)
			if string(buf[:n]) != string(want) {
				corrupt.Add(1)
				continue
			}
			if seen[seq] != 0 {
				dups.Add(1)
				continue
			}
			seen[seq] = 1
			received.Add(1)
		}
	}()

	// Sender, at full rate.
	start := time.Now()
	var sent, sendErrs uint64
	pkt := make([]byte, framePayload)
	for seq := range uint64(frameCount) {
		fillFrame(pkt, seq)
		if _, err := sc.Write(pkt); err != nil {
			sendErrs++
			continue
		}
		sent++
	}
	sendTime := time.Since(start)

	// Wait for the receiver to drain: until nothing moved for 300 ms
	// (bounded).
	last := ^uint64(0)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		cur := received.Load() + e.ep.Stats().Total().RxFrames
		if cur == last {
			break
		}
		last = cur
		time.Sleep(300 * time.Millisecond)
	}
	uc.Close()
	if err := <-readDone; err != nil {
		t.Fatalf("reader: %v", err)
	}

	vethB1, err := vethStats(e.p, e.p.NSB, e.p.IfB)
	if err != nil {
		t.Fatal(err)
	}
	vethA1, err := vethStats(e.p, e.p.NSA, e.p.IfA)
	if err != nil {
		t.Fatal(err)
	}
	ls := e.ep.Stats()
	lt := ls.Total()
	st := s.Stats()
	es := uep.Stats().(*tcpip.TransportEndpointStats)

	got := received.Load()
	missing := sent - got
	// Where a datagram can be lost on the way, and the counter that says
	// so. veth counts a failed XDP redirect (AF_XDP socket without a FILL
	// frame or RX slot) in IfA's rx_dropped, so the AF_XDP socket's own
	// drop counters are a subset of it; the kernel counts a frame dropped
	// for an empty FILL ring both in rx_dropped and in
	// rx_fill_ring_empty_descs, so only the former is added.
	vethTx := vethB1.TxDropped - vethB0.TxDropped
	vethRx := vethA1.RxDropped - vethA0.RxDropped
	xskDrops := lt.Kernel.RxDropped + lt.Kernel.RxRingFull + lt.Kernel.RxInvalidDescs
	linkDrops := lt.RxBad + lt.RxNoDispatcher
	stackDrops := st.IP.MalformedPacketsReceived.Value() + st.IP.InvalidDestinationAddressesReceived.Value() +
		st.UDP.ReceiveBufferErrors.Value() + st.UDP.MalformedPacketsReceived.Value() +
		st.UDP.ChecksumErrors.Value() + st.UDP.UnknownPortErrors.Value()
	accounted := vethTx + max(vethRx, xskDrops) + linkDrops + stackDrops
	t.Logf("sent %d (send errors %d) in %v (%.0f frames/s); received %d unique, missing %d, counted as dropped %d",
		sent, sendErrs, sendTime.Round(time.Millisecond), float64(sent)/sendTime.Seconds(), got, missing, accounted)
	t.Logf("drops: IfB tx %d, IfA rx %d, AF_XDP kernel %d (%+v), link %d, stack %d (UDP rcvbuf %d, endpoint overflow %d, checksum %d)",
		vethTx, vethRx, xskDrops, lt.Kernel, linkDrops, stackDrops,
		st.UDP.ReceiveBufferErrors.Value(), es.ReceiveErrors.ReceiveBufferOverflow.Value(), st.UDP.ChecksumErrors.Value())
	t.Logf("path: IfB tx %d, IfA rx %d, link rx %d frames, IP received %d, UDP received %d",
		vethB1.TxPackets-vethB0.TxPackets, vethA1.RxPackets-vethA0.RxPackets, lt.RxFrames,
		st.IP.PacketsReceived.Value(), st.UDP.PacketsReceived.Value())
	t.Logf("link: %s", summary(ls))

	if d := dups.Load(); d != 0 {
		t.Errorf("%d duplicated datagrams", d)
	}
	if c := corrupt.Load() + badLen.Load() + outOfRange.Load(); c != 0 {
		t.Errorf("%d corrupted datagrams (payload %d, length %d, sequence %d)", c, corrupt.Load(), badLen.Load(), outOfRange.Load())
	}
	if c := st.UDP.ChecksumErrors.Value() + st.IP.MalformedPacketsReceived.Value() + st.UDP.MalformedPacketsReceived.Value(); c != 0 {
		t.Errorf("%d datagrams failed checksum or parse in the stack", c)
	}
	if lt.RxBad != 0 || lt.Kernel.RxInvalidDescs != 0 {
		t.Errorf("link saw bad frames or descriptors: rx-bad %d, kernel invalid %d", lt.RxBad, lt.Kernel.RxInvalidDescs)
	}
	if xskDrops > vethRx {
		t.Errorf("AF_XDP sockets dropped %d frames, veth counted %d", xskDrops, vethRx)
	}
	if missing != accounted {
		t.Errorf("%d datagrams missing, %d counted as dropped: every loss must have exactly one counter", missing, accounted)
	}
	if sent < frameCount*9/10 {
		t.Errorf("Linux sent only %d of %d", sent, frameCount)
	}
	// At least two RX rings' worth: UMEM frames went round FILL -> RX ->
	// FILL several times, where a reused frame would show up as a
	// duplicate or a corrupt payload. (Under -race on 2 cores the receiver
	// takes only ~10% of a full-rate flood; without -race ~75%.)
	if floor := uint64(2 * 2048); got < floor {
		t.Errorf("only %d of %d datagrams arrived, want at least %d", got, sent, floor)
	}
}
