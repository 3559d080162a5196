// Package wire parses and encodes TCP headers and options (RFC 9293 §3.1)
// on []byte. It knows no connection and no clock, and allocates nothing:
// Parse fills caller-owned structs, Put writes into a caller-owned slice.
package wire

import (
	"encoding/binary"
	"errors"
)

// HeaderLen is the length of a TCP header without options.
const HeaderLen = 20

// MaxOptionsLen is the most option bytes a header can carry (data offset 15).
const MaxOptionsLen = 40

// Control bits, RFC 9293 §3.1 (CWR, ECE from RFC 3168 §23.2).
const (
	FlagFIN uint8 = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// Wire errors. Sentinels, so a bad packet costs no allocation.
var (
	ErrTruncated     = errors.New("tcp: truncated header")
	ErrBadDataOffset = errors.New("tcp: bad data offset")
	ErrBadOption     = errors.New("tcp: malformed option")
)

// Header is the fixed part of a TCP header, RFC 9293 §3.1.
type Header struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	DataOffset       uint8 // header length in bytes (20..60)
	Flags            uint8 // FlagFIN ... FlagCWR
	Window           uint16
	Checksum         uint16
	Urgent           uint16
}

// Field offsets, RFC 9293 §3.1 Figure 1.
const (
	offSrcPort  = 0
	offDstPort  = 2
	offSeq      = 4
	offAck      = 8
	offDataOff  = 12
	offFlags    = 13
	offWindow   = 14
	offChecksum = 16
	offUrgent   = 18
)

// Parse reads the header and options from b, a whole TCP segment, and
// returns the offset of the payload. o is reset first; its WS is -1 when
// the segment carries no window scale option.
func Parse(b []byte, h *Header, o *Options) (payloadOff int, err error) {
	if len(b) < HeaderLen {
		return 0, ErrTruncated
	}
	off := int(b[offDataOff]>>4) * 4
	// RFC 9293 §3.1: data offset counts 32-bit words, at least 5.
	if off < HeaderLen || off > len(b) {
		return 0, ErrBadDataOffset
	}
	h.SrcPort = binary.BigEndian.Uint16(b[offSrcPort:])
	h.DstPort = binary.BigEndian.Uint16(b[offDstPort:])
	h.Seq = binary.BigEndian.Uint32(b[offSeq:])
	h.Ack = binary.BigEndian.Uint32(b[offAck:])
	h.DataOffset = uint8(off)
	h.Flags = b[offFlags]
	h.Window = binary.BigEndian.Uint16(b[offWindow:])
	h.Checksum = binary.BigEndian.Uint16(b[offChecksum:])
	h.Urgent = binary.BigEndian.Uint16(b[offUrgent:])
	if err := parseOptions(b[HeaderLen:off], o); err != nil {
		return 0, err
	}
	return off, nil
}

// Put writes h and o into b, which must be exactly HeaderLen+OptionsLen(o)
// bytes long. It sets h.DataOffset. The checksum field is h.Checksum; fill
// it in later with SetChecksum.
func Put(b []byte, h *Header, o *Options) {
	if len(b) != HeaderLen+OptionsLen(o) {
		panic("wire: Put: buffer length is not HeaderLen+OptionsLen")
	}
	h.DataOffset = uint8(len(b))
	binary.BigEndian.PutUint16(b[offSrcPort:], h.SrcPort)
	binary.BigEndian.PutUint16(b[offDstPort:], h.DstPort)
	binary.BigEndian.PutUint32(b[offSeq:], h.Seq)
	binary.BigEndian.PutUint32(b[offAck:], h.Ack)
	b[offDataOff] = h.DataOffset / 4 << 4
	b[offFlags] = h.Flags
	binary.BigEndian.PutUint16(b[offWindow:], h.Window)
	binary.BigEndian.PutUint16(b[offChecksum:], h.Checksum)
	binary.BigEndian.PutUint16(b[offUrgent:], h.Urgent)
	putOptions(b[HeaderLen:], o)
}

// Append appends the encoded header and options to dst. It allocates only
// when dst lacks capacity.
func Append(dst []byte, h *Header, o *Options) []byte {
	n := HeaderLen + OptionsLen(o)
	start := len(dst)
	if cap(dst)-start < n {
		grown := make([]byte, start, start+n)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+n]
	Put(dst[start:], h, o)
	return dst
}

// SetChecksum writes the checksum field of the encoded segment b.
func SetChecksum(b []byte, sum uint16) {
	binary.BigEndian.PutUint16(b[offChecksum:], sum)
}

// FlagsString renders f as tcpdump and packetdrill do: "S", "S.", "P.",
// "F.", "R", "." (ACK is "."), with U, E, W for URG, ECE, CWR. It returns
// "none" for no flags. It allocates; use it for logs and tests.
func FlagsString(f uint8) string {
	if f == 0 {
		return "none"
	}
	const chars = "FSRP.UEW" // bit order
	var buf [8]byte
	n := 0
	for i := range 8 {
		if f&(1<<i) != 0 {
			buf[n] = chars[i]
			n++
		}
	}
	return string(buf[:n])
}
