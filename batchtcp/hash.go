package batchtcp

import (
	"hash/maphash"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// flowHasher maps a 4-tuple to a shard. The hash is symmetric: both
// directions of a flow hash alike, so a link that steers frames by it hands
// a flow's inbound frames to the shard that sends its outbound ones (mTCP's
// symmetric RSS key, done in software).
type flowHasher struct {
	seed   maphash.Seed
	shards uint32
}

// hash returns the symmetric flow hash of (a, ap) <-> (b, bp).
func (f *flowHasher) hash(a tcpip.Address, ap uint16, b tcpip.Address, bp uint16) uint32 {
	var buf [36]byte
	x, y := a.AsSlice(), b.AsSlice()
	// Order the two ends so that swapping them gives the same bytes.
	if cmpEnd(x, ap, y, bp) > 0 {
		x, y = y, x
		ap, bp = bp, ap
	}
	n := copy(buf[:16], x)
	buf[16], buf[17] = byte(ap>>8), byte(ap)
	m := copy(buf[18:34], y)
	buf[34], buf[35] = byte(bp>>8), byte(bp)
	_ = n + m
	h := maphash.Bytes(f.seed, buf[:])
	return uint32(h) ^ uint32(h>>32)
}

func cmpEnd(x []byte, xp uint16, y []byte, yp uint16) int {
	if len(x) != len(y) {
		return len(x) - len(y)
	}
	for i := range x {
		if x[i] != y[i] {
			return int(x[i]) - int(y[i])
		}
	}
	return int(xp) - int(yp)
}

// hashID hashes a stack.TransportEndpointID (local/remote order does not
// matter).
func (f *flowHasher) hashID(id stack.TransportEndpointID) uint32 {
	return f.hash(id.LocalAddress, id.LocalPort, id.RemoteAddress, id.RemotePort)
}

// shardOf returns the shard index of a hash.
func (f *flowHasher) shardOf(h uint32) int { return int(h % f.shards) }

// SteerIP returns the shard of a TCP segment given as an IPv4 or IPv6
// packet (no link header): the function a multi-queue link calls to hand
// each frame to the shard that owns its flow. ok is false for anything
// that is not TCP or is too short (IPv6 extension headers are not
// followed; such frames go to any shard, which is still correct because
// the stack re-hashes every segment).
func (p *Protocol) SteerIP(pkt []byte) (shard int, ok bool) {
	if len(pkt) < 1 {
		return 0, false
	}
	var src, dst tcpip.Address
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0xf) * 4
		if ihl < 20 || len(pkt) < ihl+4 || pkt[9] != 6 {
			return 0, false
		}
		src = tcpip.AddrFrom4Slice(pkt[12:16])
		dst = tcpip.AddrFrom4Slice(pkt[16:20])
		l4 = pkt[ihl:]
	case 6:
		if len(pkt) < 44 || pkt[6] != 6 {
			return 0, false
		}
		src = tcpip.AddrFrom16Slice(pkt[8:24])
		dst = tcpip.AddrFrom16Slice(pkt[24:40])
		l4 = pkt[40:]
	default:
		return 0, false
	}
	sp := uint16(l4[0])<<8 | uint16(l4[1])
	dp := uint16(l4[2])<<8 | uint16(l4[3])
	return p.FlowShard(src, sp, dst, dp), true
}
