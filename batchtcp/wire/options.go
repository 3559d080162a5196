package wire

import "encoding/binary"

// Option kinds and lengths: RFC 9293 §3.2 (EOL, NOP, MSS), RFC 7323 §2.2
// (WS) and §3.2 (TS), RFC 2018 §2-3 (SACK-permitted, SACK).
const (
	optEOL       = 0
	optNOP       = 1
	optMSS       = 2
	optWS        = 3
	optSACKPerm  = 4
	optSACK      = 5
	optTS        = 8
	lenMSS       = 4
	lenWS        = 3
	lenSACKPerm  = 2
	lenTS        = 10
	lenSACKBlock = 8

	// MaxWindowShift is the largest window scale shift, RFC 7323 §2.3.
	MaxWindowShift = 14
	// MaxSACKBlocks is the most SACK blocks one option can hold (RFC 2018 §3).
	MaxSACKBlocks = 4
)

// SACKBlock is one SACK block: [Start, End) in sequence space, RFC 2018 §3.
type SACKBlock struct{ Start, End uint32 }

// Options holds the TCP options batchtcp understands. The zero value has
// WS 0, meaning "window scale present with shift 0": set WS to -1 when
// building Options for a segment without a window scale option.
type Options struct {
	HasMSS bool
	MSS    uint16

	WS int8 // window scale shift, -1 when absent (set by Parse)

	SACKPermitted bool

	HasTS        bool
	TSVal, TSEcr uint32

	NumSACK int
	SACK    [MaxSACKBlocks]SACKBlock
}

// parseOptions reads the option list b into o. RFC 9293 §3.2: EOL ends the
// list, NOP is one byte, every other kind has a length byte (>= 2) counting
// kind and length. A known kind with the wrong length is skipped, as is an
// unknown kind (RFC 9293 §3.1 "must be prepared to handle an illegal option
// length": we drop the segment only when the length cannot be walked).
func parseOptions(b []byte, o *Options) error {
	*o = Options{WS: -1}
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case optEOL:
			return nil
		case optNOP:
			i++
			continue
		}
		if i+1 >= len(b) {
			return ErrBadOption
		}
		l := int(b[i+1])
		if l < 2 || i+l > len(b) {
			return ErrBadOption
		}
		v := b[i+2 : i+l]
		switch {
		case kind == optMSS && l == lenMSS:
			o.HasMSS = true
			o.MSS = binary.BigEndian.Uint16(v)
		case kind == optWS && l == lenWS:
			// RFC 7323 §2.3: a shift above 14 is logged and treated as 14.
			o.WS = int8(min(v[0], MaxWindowShift))
		case kind == optSACKPerm && l == lenSACKPerm:
			o.SACKPermitted = true
		case kind == optTS && l == lenTS:
			o.HasTS = true
			o.TSVal = binary.BigEndian.Uint32(v)
			o.TSEcr = binary.BigEndian.Uint32(v[4:])
		case kind == optSACK && (l-2)%lenSACKBlock == 0 && l > 2:
			// RFC 2018 §3: 2+8n bytes; n <= 4 follows from MaxOptionsLen.
			n := min((l-2)/lenSACKBlock, MaxSACKBlocks)
			for j := range n {
				o.SACK[j] = SACKBlock{
					Start: binary.BigEndian.Uint32(v[j*8:]),
					End:   binary.BigEndian.Uint32(v[j*8+4:]),
				}
			}
			o.NumSACK = n
		}
		i += l
	}
	return nil
}

// fixedOptionsLen is the length of every option but SACK blocks, in the
// order putOptions writes them.
func fixedOptionsLen(o *Options) int {
	n := 0
	if o.HasMSS {
		n += 4
	}
	if o.SACKPermitted || o.HasTS {
		n += 4 // SACKperm or NOP NOP before TS, or NOP NOP before SACKperm
	}
	if o.HasTS {
		n += lenTS - 2 // the two-byte prefix is counted above
	}
	if o.WS >= 0 {
		n += 4 // NOP WS
	}
	return n
}

// sackFit is how many of o's SACK blocks Put encodes: as many as fit in
// MaxOptionsLen after the other options (3 with timestamps), first first.
// RFC 2018 §4: the first block reports the most recent segment.
func sackFit(o *Options) int {
	if o.NumSACK <= 0 {
		return 0
	}
	room := (MaxOptionsLen - fixedOptionsLen(o) - 4) / lenSACKBlock
	return max(0, min(o.NumSACK, room, MaxSACKBlocks))
}

// OptionsLen is the on-wire length of o, padded to a multiple of 4.
func OptionsLen(o *Options) int {
	n := fixedOptionsLen(o)
	if s := sackFit(o); s > 0 {
		n += 4 + s*lenSACKBlock
	}
	return (n + 3) &^ 3
}

// putOptions writes o in Linux's order (tcp_options_write): MSS,
// SACKperm+TS (NOP NOP TS without SACKperm, NOP NOP SACKperm without TS),
// NOP WS, NOP NOP SACK, then NOP padding. b is exactly OptionsLen(o) long.
func putOptions(b []byte, o *Options) {
	i := 0
	if o.HasMSS {
		b[0], b[1] = optMSS, lenMSS
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		i = 4
	}
	switch {
	case o.SACKPermitted && o.HasTS:
		b[i], b[i+1] = optSACKPerm, lenSACKPerm
		i += 2
	case o.HasTS, o.SACKPermitted:
		b[i], b[i+1] = optNOP, optNOP
		i += 2
		if o.SACKPermitted {
			b[i], b[i+1] = optSACKPerm, lenSACKPerm
			i += 2
		}
	}
	if o.HasTS {
		b[i], b[i+1] = optTS, lenTS
		binary.BigEndian.PutUint32(b[i+2:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+6:], o.TSEcr)
		i += lenTS
	}
	if o.WS >= 0 {
		b[i], b[i+1], b[i+2] = optNOP, optWS, lenWS
		b[i+3] = byte(min(o.WS, MaxWindowShift))
		i += 4
	}
	if n := sackFit(o); n > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = optNOP, optNOP, optSACK, byte(2+n*lenSACKBlock)
		i += 4
		for _, s := range o.SACK[:n] {
			binary.BigEndian.PutUint32(b[i:], s.Start)
			binary.BigEndian.PutUint32(b[i+4:], s.End)
			i += lenSACKBlock
		}
	}
	for ; i < len(b); i++ {
		b[i] = optNOP
	}
}
