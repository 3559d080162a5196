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
