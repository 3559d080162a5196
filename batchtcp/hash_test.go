package batchtcp

import (
	"hash/maphash"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"pgregory.net/rapid"
)

// TestFlowHashSymmetric: both directions of a flow hash alike, for IPv4
// and IPv6 and any ports.
func TestFlowHashSymmetric(t *testing.T) {
	f := flowHasher{seed: maphash.MakeSeed(), shards: 7}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.SampledFrom([]int{4, 16}).Draw(t, "len")
		a := tcpip.AddrFromSlice(rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "a"))
		b := tcpip.AddrFromSlice(rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "b"))
		ap, bp := rapid.Uint16().Draw(t, "ap"), rapid.Uint16().Draw(t, "bp")
		if f.hash(a, ap, b, bp) != f.hash(b, bp, a, ap) {
			t.Fatalf("asymmetric: %v:%d %v:%d", a, ap, b, bp)
		}
		id := stack.TransportEndpointID{LocalAddress: a, LocalPort: ap, RemoteAddress: b, RemotePort: bp}
		if s := f.shardOf(f.hashID(id)); s < 0 || s >= 7 {
			t.Fatalf("shard %d out of range", s)
		}
	})
}

// TestFlowHashSpreads: many flows between two hosts use every shard.
func TestFlowHashSpreads(t *testing.T) {
	f := flowHasher{seed: maphash.MakeSeed(), shards: 8}
	a := tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	b := tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	count := make([]int, 8)
	for port := uint16(20000); port < 21000; port++ {
		count[f.shardOf(f.hash(a, 80, b, port))]++
	}
	for i, c := range count {
		if c < 60 { // expected 125 each
			t.Errorf("shard %d got %d of 1000 flows: %v", i, c, count)
		}
	}
}

// TestSteerIP: the steering function finds the shard of a raw IP packet
// in either direction and refuses what is not TCP.
func TestSteerIP(t *testing.T) {
	p := &Protocol{hasher: flowHasher{seed: maphash.MakeSeed(), shards: 4}, shards: make([]*shard, 4)}
	a := tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	b := tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	mk := func(src, dst tcpip.Address, sp, dp uint16, proto uint8) []byte {
		pkt := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
		header.IPv4(pkt).Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), Protocol: proto, TTL: 64, SrcAddr: src, DstAddr: dst})
		header.TCP(pkt[20:]).Encode(&header.TCPFields{SrcPort: sp, DstPort: dp, DataOffset: 20})
		return pkt
	}
	for port := uint16(1000); port < 1100; port++ {
		s1, ok1 := p.SteerIP(mk(a, b, port, 80, 6))
		s2, ok2 := p.SteerIP(mk(b, a, 80, port, 6))
		want := p.ShardOf(stack.TransportEndpointID{LocalAddress: b, LocalPort: 80, RemoteAddress: a, RemotePort: port})
		if !ok1 || !ok2 || s1 != s2 || s1 != want {
			t.Fatalf("port %d: %d/%v %d/%v, want %d", port, s1, ok1, s2, ok2, want)
		}
	}
	if _, ok := p.SteerIP(mk(a, b, 1, 2, 17)); ok {
		t.Error("UDP steered as TCP")
	}
	if _, ok := p.SteerIP([]byte{0x45, 0}); ok {
		t.Error("truncated packet steered")
	}
	v6 := make([]byte, header.IPv6MinimumSize+header.TCPMinimumSize)
	header.IPv6(v6).Encode(&header.IPv6Fields{PayloadLength: 20, TransportProtocol: 6, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16([16]byte{0xfd, 15: 1}), DstAddr: tcpip.AddrFrom16([16]byte{0xfd, 15: 2})})
	if _, ok := p.SteerIP(v6); !ok {
		t.Error("IPv6 TCP not steered")
	}
}
