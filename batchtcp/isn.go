package batchtcp

import (
	"crypto/sha256"
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/batchtcp/internal/monotime"
)

// secrets are the keys of RFC 6528's F() and of RFC 7323 §5.4's per
// connection timestamp offset.
type secrets struct {
	isnKey [16]byte
	tsKey  [16]byte
}

func keyedHash(key *[16]byte, id stack.TransportEndpointID) uint32 {
	var buf [16 + 16 + 16 + 4]byte
	copy(buf[:16], key[:])
	copy(buf[16:32], id.LocalAddress.AsSlice())
	copy(buf[32:48], id.RemoteAddress.AsSlice())
	binary.BigEndian.PutUint16(buf[48:], id.LocalPort)
	binary.BigEndian.PutUint16(buf[50:], id.RemotePort)
	sum := sha256.Sum256(buf[:])
	return binary.BigEndian.Uint32(sum[:4])
}

// isn implements RFC 6528 §3: ISN = M + F(localip, localport, remoteip,
// remoteport, secretkey), M a timer ticking every 4 µs.
func (s *secrets) isn(id stack.TransportEndpointID, now monotime.Time) seqnum.Value {
	m := uint32(int64(now) / 4000)
	return seqnum.Value(m + keyedHash(&s.isnKey, id))
}

// tsOffset is RFC 7323 §5.4's per-connection random offset for TSval.
func (s *secrets) tsOffset(id stack.TransportEndpointID) uint32 {
	return keyedHash(&s.tsKey, id)
}

// ensure tcpip is used for Address in signatures above.
var _ tcpip.Address
