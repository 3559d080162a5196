package batchtcp_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// injectRaw sends tcp (a TCP segment of arbitrary bytes) from the peer,
// with a correct checksum so that it reaches the shard.
func (h *harness) injectRaw(tcp []byte) {
	if len(tcp) >= header.TCPMinimumSize {
		tcp[16], tcp[17] = 0, 0
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, h.remote, h.local, uint16(len(tcp)))
		sum := ^checksum.Checksum(tcp, xsum)
		tcp[16], tcp[17] = byte(sum>>8), byte(sum)
	}
	ip := make([]byte, header.IPv4MinimumSize)
	v4 := header.IPv4(ip)
	v4.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip) + len(tcp)), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: h.remote, DstAddr: h.local})
	v4.SetChecksum(^v4.CalculateChecksum())
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append(ip, tcp...))})
	h.ch.InjectInbound(ipv4.ProtocolNumber, pkt)
	pkt.DecRef()
}

// TestGarbageSegments throws malformed and random segments (bad data
// offsets, truncated and malformed options, random flags and sequence
// numbers) at a listener, an established connection and closed ports. The
// stack must not panic, must keep the connection, and must still carry
// data on it afterwards.
func TestGarbageSegments(t *testing.T) {
	c := established(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		n := header.TCPMinimumSize + rng.IntN(80)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		switch rng.IntN(3) {
		case 0: // the established connection, far outside its window
			b[0], b[1] = byte(c.rport>>8), byte(c.rport)
			b[2], b[3] = byte(c.lport>>8), byte(c.lport)
			seq := c.seq + 1<<31 + rng.Uint32()%(1<<20)
			b[4], b[5], b[6], b[7] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
		case 1: // the listener
			b[2], b[3] = byte(c.lport>>8), byte(c.lport)
		}
		if rng.IntN(8) == 0 {
			b = b[:rng.IntN(header.TCPMinimumSize)] // truncated header
		}
		c.injectRaw(b)
	}
	// Drain what the stack answered (RSTs, challenge ACKs).
	for {
		if _, ok := c.read(20 * time.Millisecond); !ok {
			break
		}
	}
	if got := c.state(); got != 1 {
		t.Fatalf("connection state %v after garbage, want ESTABLISHED", got)
	}
	msg := []byte("still here")
	c.send(fACK|fPSH, msg)
	c.seq += uint32(len(msg))
	if got := c.readN(len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("read %q after garbage, want %q", got, msg)
	}
}

// TestBadChecksumDropped: a segment whose checksum is wrong is counted and
// dropped, not answered (RFC 9293 §3.1).
func TestBadChecksumDropped(t *testing.T) {
	h, _ := listen(t)
	c := h.newConn()
	hdr := []byte{byte(c.rport >> 8), byte(c.rport), byte(c.lport >> 8), byte(c.lport),
		0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, fSYN, 0xff, 0xff, 0, 0, 0, 0}
	before := h.s.Stats().TCP.ChecksumErrors.Value()
	h.injectRaw(hdr) // sets a correct checksum in hdr
	bad := append([]byte(nil), hdr...)
	bad[4] ^= 0xff // the sequence number no longer matches the checksum
	ip := make([]byte, header.IPv4MinimumSize)
	v4 := header.IPv4(ip)
	v4.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip) + len(bad)), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: h.remote, DstAddr: h.local})
	v4.SetChecksum(^v4.CalculateChecksum())
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append(ip, bad...))})
	h.ch.InjectInbound(ipv4.ProtocolNumber, pkt)
	pkt.DecRef()
	// The good SYN got a SYN-ACK; the corrupt one nothing.
	if s, ok := h.read(time.Second); !ok || s.flags != fSYN|fACK {
		t.Fatalf("good SYN: got %v, %v", s, ok)
	}
	h.recvNothing()
	if got := h.s.Stats().TCP.ChecksumErrors.Value() - before; got != 1 {
		t.Fatalf("ChecksumErrors grew by %d, want 1", got)
	}
}
