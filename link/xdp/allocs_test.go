//go:build !race

package xdp

import (
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

type countingDispatcher struct{ n int }

func (d *countingDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	d.n++
}
func (d *countingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// TestRXNoAllocs: a steady-state RX burst (ring -> pooled views -> FILL ->
// PacketBuffers delivered) makes no heap allocation per frame. The rings
// live in Go memory here; the kernel's side is played by the test.
func TestRXNoAllocs(t *testing.T) {
	const size, frame = 256, 2048
	x := &xsk{frameSize: frame, umem: make([]byte, size*frame), rxAddrs: make([]uint64, 0, rxBurst)}
	rh, rxProd, _ := fakeHead(size, 0)
	x.rx = consRing{ringHead: rh}
	x.rxQ = make([]unix.XDPDesc, size)
	fh, _, fillCons := fakeHead(size, 0)
	x.fill = prodRing{ringHead: fh}
	x.fillQ = make([]uint64, size)
	for i := 0; i < size; i++ {
		eth := header.Ethernet(x.umem[i*frame+xdpPacketHeadroom:])
		eth.Encode(&header.EthernetFields{Type: header.IPv4ProtocolNumber})
	}
	d := &countingDispatcher{}
	var nd stack.NetworkDispatcher = d
	ep := &Endpoint{}
	ep.disp.Store(&nd)
	var views [rxBurst]*buffer.View
	next := uint32(0)
	burst := func() {
		// The kernel receives 64 frames of 1514 bytes.
		for i := uint32(0); i < rxBurst; i++ {
			a := uint64((next+i)%size)*frame + xdpPacketHeadroom
			x.rxQ[(next+i)&x.rx.mask] = unix.XDPDesc{Addr: a, Len: 1514}
		}
		next += rxBurst
		*rxProd = next
		*fillCons = next // and has consumed the FILL entries
		n := ep.rxBurst(x, views[:])
		ep.deliver(x, views[:n])
	}
	for range 10 {
		burst()
	}
	allocs := testing.AllocsPerRun(100, burst)
	t.Logf("%.2f allocations per 64-frame burst", allocs)
	if perFrame := allocs / rxBurst; perFrame > 0.05 {
		t.Errorf("%.2f allocations per frame", perFrame)
	}
	if d.n == 0 || x.stats.rxFrames.load() != uint64(d.n) {
		t.Fatalf("delivered %d, counted %d", d.n, x.stats.rxFrames.load())
	}
}
