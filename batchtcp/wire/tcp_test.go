package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// Golden segments, laid out as Linux sends them.
var (
	// SYN-ACK 8080 -> 50000, MSS 1460, SACKperm, TS, WS 7.
	goldenSynAck = []byte{
		0x1f, 0x90, 0xc3, 0x50, // ports
		0x01, 0x02, 0x03, 0x04, // seq
		0x0a, 0x0b, 0x0c, 0x0d, // ack
		0xa0, 0x12, 0xfa, 0xf0, // offset 10 words, SYN|ACK, window 64240
		0x12, 0x34, 0x00, 0x00, // checksum, urgent
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x04, 0x02, 0x08, 0x0a, // SACKperm, TS
		0x00, 0x00, 0x00, 0x64, // TSval 100
		0x00, 0x00, 0x00, 0x00, // TSecr 0
		0x01, 0x03, 0x03, 0x07, // NOP, WS 7
	}
	goldenSynAckHeader = Header{
		SrcPort: 8080, DstPort: 50000, Seq: 0x01020304, Ack: 0x0a0b0c0d,
		DataOffset: 40, Flags: FlagSYN | FlagACK, Window: 64240, Checksum: 0x1234,
	}
	goldenSynAckOptions = Options{
		HasMSS: true, MSS: 1460, WS: 7, SACKPermitted: true,
		HasTS: true, TSVal: 100,
	}

	// ACK with TS and two SACK blocks, plus 3 bytes of payload.
	goldenSACK = []byte{
		0x00, 0x50, 0x04, 0x00,
		0xff, 0xff, 0xff, 0xf0,
		0x00, 0x00, 0x10, 0x00,
		0xd0, 0x18, 0x01, 0x00, // offset 13 words, PSH|ACK
		0x00, 0x00, 0x00, 0x00,
		0x01, 0x01, 0x08, 0x0a, // NOP NOP TS
		0x00, 0x00, 0x00, 0x05,
		0x00, 0x00, 0x00, 0x06,
		0x01, 0x01, 0x05, 0x12, // NOP NOP SACK len 18
		0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x30, 0x00,
		0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x50, 0x00,
		'a', 'b', 'c',
	}
	goldenSACKHeader = Header{
		SrcPort: 80, DstPort: 1024, Seq: 0xfffffff0, Ack: 0x1000,
		DataOffset: 52, Flags: FlagPSH | FlagACK, Window: 256,
	}
	goldenSACKOptions = Options{
		WS: -1, HasTS: true, TSVal: 5, TSEcr: 6, NumSACK: 2,
		SACK: [4]SACKBlock{{0x2000, 0x3000}, {0x4000, 0x5000}},
	}
)

func TestParseGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		b       []byte
		h       Header
		o       Options
		payload string
	}{
		{"SynAck", goldenSynAck, goldenSynAckHeader, goldenSynAckOptions, ""},
		{"SACK", goldenSACK, goldenSACKHeader, goldenSACKOptions, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Header
			var o Options
			off, err := Parse(tc.b, &h, &o)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.h, h); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.o, o); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if got := string(tc.b[off:]); got != tc.payload {
				t.Errorf("payload = %q, want %q", got, tc.payload)
			}
		})
	}
}

func TestPutGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []byte
		h    Header
		o    Options
	}{
		{"SynAck", goldenSynAck, goldenSynAckHeader, goldenSynAckOptions},
		{"SACK", goldenSACK[:52], goldenSACKHeader, goldenSACKOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			h.DataOffset = 0 // Put sets it
			got := Append(nil, &h, &tc.o)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("Append =\n% x\nwant\n% x", got, tc.want)
			}
			if h.DataOffset != tc.h.DataOffset {
				t.Errorf("DataOffset = %d, want %d", h.DataOffset, tc.h.DataOffset)
			}
		})
	}
}

// TestOptionsEncoding checks each option layout against the bytes Linux
// writes (tcp_options_write).
func TestOptionsEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []byte
	}{
		{"None", Options{WS: -1}, nil},
		{"MSS", Options{WS: -1, HasMSS: true, MSS: 536}, []byte{2, 4, 2, 0x18}},
		{"WS0", Options{WS: 0}, []byte{1, 3, 3, 0}},
		{"WSClamp", Options{WS: 20}, []byte{1, 3, 3, 14}},
		{"SACKPermOnly", Options{WS: -1, SACKPermitted: true}, []byte{1, 1, 4, 2}},
		{"TSOnly", Options{WS: -1, HasTS: true, TSVal: 1, TSEcr: 2},
			[]byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}},
		{"SynNoTS", Options{HasMSS: true, MSS: 1460, SACKPermitted: true, WS: 2},
			[]byte{2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 2}},
		{"FourSACK", Options{WS: -1, NumSACK: 4, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
			[]byte{1, 1, 5, 34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
				0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8}},
		{"SACKTrimmedByTS", Options{WS: -1, HasTS: true, NumSACK: 4,
			SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
			[]byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 5, 26,
				0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OptionsLen(&tc.o); got != len(tc.want) {
				t.Fatalf("OptionsLen = %d, want %d", got, len(tc.want))
			}
			got := Append(nil, &Header{}, &tc.o)[HeaderLen:]
			if !bytes.Equal(got, tc.want) {
				t.Errorf("options =\n% x\nwant\n% x", got, tc.want)
			}
		})
	}
}

func withOptions(opts ...byte) []byte {
	b := make([]byte, HeaderLen+len(opts))
	b[offDataOff] = byte(len(b)/4) << 4
	copy(b[HeaderLen:], opts)
	return b
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte // padded to 4 by the caller
		want Options
		err  error
	}{
		{"Empty", nil, Options{WS: -1}, nil},
		{"NOPs", []byte{1, 1, 1, 1}, Options{WS: -1}, nil},
		{"EOLStopsParsing", []byte{0, 2, 0, 0}, Options{WS: -1}, nil},
		{"EOLAfterMSS", []byte{2, 4, 1, 0, 0, 0xff, 0xff, 0xff}, Options{WS: -1, HasMSS: true, MSS: 256}, nil},
		{"WS", []byte{3, 3, 9, 0}, Options{WS: 9}, nil},
		// RFC 7323 §2.3: shift > 14 treated as 14.
		{"WSClampedTo14", []byte{3, 3, 15, 0}, Options{WS: 14}, nil},
		{"WSMax", []byte{3, 3, 255, 0}, Options{WS: 14}, nil},
		{"SACKPerm", []byte{4, 2, 0, 0}, Options{WS: -1, SACKPermitted: true}, nil},
		{"OneSACK", []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9},
			Options{WS: -1, NumSACK: 1, SACK: [4]SACKBlock{{1, 9}}}, nil},
		{"LaterDuplicateWins", []byte{2, 4, 0, 1, 2, 4, 0, 2}, Options{WS: -1, HasMSS: true, MSS: 2}, nil},
		// Known kind, wrong length: skipped.
		{"MSSWrongLength", []byte{2, 3, 5, 0}, Options{WS: -1}, nil},
		{"WSWrongLength", []byte{3, 4, 5, 0}, Options{WS: -1}, nil},
		{"SACKPermWrongLength", []byte{4, 3, 0, 0}, Options{WS: -1}, nil},
		{"TSWrongLength", []byte{8, 6, 0, 0, 0, 1, 0, 0}, Options{WS: -1}, nil},
		{"SACKNoBlocks", []byte{5, 2, 0, 0}, Options{WS: -1}, nil},
		{"SACKPartialBlock", []byte{5, 6, 0, 0, 0, 1, 0, 0}, Options{WS: -1}, nil},
		{"UnknownKindSkipped", []byte{30, 4, 0xff, 0xff, 3, 3, 1, 0}, Options{WS: 1}, nil},
		// Lengths that cannot be walked.
		{"LengthZero", []byte{30, 0, 0, 0}, Options{}, ErrBadOption},
		{"LengthOne", []byte{2, 1, 0, 0}, Options{}, ErrBadOption},
		{"LengthOverruns", []byte{2, 5, 0, 0}, Options{}, ErrBadOption},
		{"NoLengthByte", []byte{1, 1, 1, 2}, Options{}, ErrBadOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := withOptions(tc.opts...)
			var h Header
			var o Options
			off, err := Parse(b, &h, &o)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if off != len(b) {
				t.Errorf("payloadOff = %d, want %d", off, len(b))
			}
			if diff := cmp.Diff(tc.want, o); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDataOffset(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      []byte
		offset byte // data offset in words
		err    error
	}{
		{"Short", make([]byte, 19), 5, ErrTruncated},
		{"Empty", nil, 5, ErrTruncated},
		{"Zero", make([]byte, 20), 0, ErrBadDataOffset},
		{"Four", make([]byte, 20), 4, ErrBadDataOffset},
		{"PastEnd", make([]byte, 20), 6, ErrBadDataOffset},
		{"Fifteen", make([]byte, 60), 15, nil},
		{"FiveWithPayload", make([]byte, 100), 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.b) > offDataOff {
				tc.b[offDataOff] = tc.offset << 4
			}
			var h Header
			var o Options
			off, err := Parse(tc.b, &h, &o)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && off != int(tc.offset)*4 {
				t.Errorf("payloadOff = %d, want %d", off, tc.offset*4)
			}
		})
	}
}

// TestParseTruncated parses every prefix b[:i]: shorter than the data
// offset is rejected, longer parses with a shorter payload.
func TestParseTruncated(t *testing.T) {
	for _, golden := range [][]byte{goldenSynAck, goldenSACK} {
		dataOff := int(golden[offDataOff]>>4) * 4
		for i := range len(golden) + 1 {
			var h Header
			var o Options
			off, err := Parse(golden[:i], &h, &o)
			switch {
			case i < HeaderLen:
				if err != ErrTruncated {
					t.Errorf("b[:%d]: err = %v, want ErrTruncated", i, err)
				}
			case i < dataOff:
				if err != ErrBadDataOffset {
					t.Errorf("b[:%d]: err = %v, want ErrBadDataOffset", i, err)
				}
			default:
				if err != nil || off != dataOff {
					t.Errorf("b[:%d]: off, err = %d, %v; want %d, nil", i, off, err, dataOff)
				}
			}
		}
	}
}

func TestFlagsAndFieldsRoundTrip(t *testing.T) {
	h := Header{SrcPort: 1, DstPort: 65535, Seq: 0xdeadbeef, Ack: 0xcafef00d,
		Flags: 0xff, Window: 0xabcd, Checksum: 0x1111, Urgent: 0x2222}
	o := Options{WS: -1}
	b := Append(nil, &h, &o)
	var h2 Header
	var o2 Options
	if _, err := Parse(b, &h2, &o2); err != nil {
		t.Fatal(err)
	}
	if h2 != h {
		t.Errorf("got %+v, want %+v", h2, h)
	}
}

func TestSetChecksum(t *testing.T) {
	b := bytes.Clone(goldenSynAck)
	SetChecksum(b, 0xbeef)
	var h Header
	var o Options
	if _, err := Parse(b, &h, &o); err != nil {
		t.Fatal(err)
	}
	if h.Checksum != 0xbeef {
		t.Errorf("Checksum = %#x, want 0xbeef", h.Checksum)
	}
	b[16], b[17] = 0x12, 0x34
	if !bytes.Equal(b, goldenSynAck) {
		t.Error("SetChecksum wrote outside the checksum field")
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	dst := make([]byte, 3, 64)
	copy(dst, "eth")
	got := Append(dst, &goldenSynAckHeader, &goldenSynAckOptions)
	if string(got[:3]) != "eth" || !bytes.Equal(got[3:], goldenSynAck) {
		t.Errorf("Append = % x", got)
	}
	small := []byte("ip")
	got = Append(small, &goldenSynAckHeader, &goldenSynAckOptions)
	if string(got[:2]) != "ip" || !bytes.Equal(got[2:], goldenSynAck) {
		t.Errorf("Append (grow) = % x", got)
	}
}

func TestPutWrongLengthPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Put did not panic")
		}
	}()
	Put(make([]byte, 21), &Header{}, &Options{WS: -1})
}

func TestFlagsString(t *testing.T) {
	for _, tc := range []struct {
		f    uint8
		want string
	}{
		{0, "none"},
		{FlagSYN, "S"},
		{FlagSYN | FlagACK, "S."},
		{FlagFIN | FlagACK, "F."},
		{FlagRST, "R"},
		{FlagRST | FlagACK, "R."},
		{FlagPSH | FlagACK, "P."},
		{FlagACK, "."},
		{FlagFIN | FlagPSH | FlagACK, "FP."},
		{FlagSYN | FlagECE | FlagCWR, "SEW"},
		{FlagURG | FlagACK, ".U"},
	} {
		if got := FlagsString(tc.f); got != tc.want {
			t.Errorf("FlagsString(%#x) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func genOptions() *rapid.Generator[Options] {
	return rapid.Custom(func(t *rapid.T) Options {
		o := Options{
			HasMSS:        rapid.Bool().Draw(t, "hasMSS"),
			WS:            rapid.Int8Range(-1, 14).Draw(t, "ws"),
			SACKPermitted: rapid.Bool().Draw(t, "sackPerm"),
			HasTS:         rapid.Bool().Draw(t, "hasTS"),
			NumSACK:       rapid.IntRange(0, 4).Draw(t, "numSACK"),
		}
		if o.HasMSS {
			o.MSS = rapid.Uint16().Draw(t, "mss")
		}
		if o.HasTS {
			o.TSVal = rapid.Uint32().Draw(t, "tsval")
			o.TSEcr = rapid.Uint32().Draw(t, "tsecr")
		}
		for i := range o.NumSACK {
			o.SACK[i] = SACKBlock{rapid.Uint32().Draw(t, "start"), rapid.Uint32().Draw(t, "end")}
		}
		return o
	})
}

// TestRoundTripProperty: Parse(Append(h, o)) gives back h and o, less the
// SACK blocks that did not fit; len(Append) == HeaderLen+OptionsLen.
func TestRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genOptions().Draw(t, "o")
		h := Header{
			SrcPort: rapid.Uint16().Draw(t, "src"), DstPort: rapid.Uint16().Draw(t, "dst"),
			Seq: rapid.Uint32().Draw(t, "seq"), Ack: rapid.Uint32().Draw(t, "ack"),
			Flags: rapid.Uint8().Draw(t, "flags"), Window: rapid.Uint16().Draw(t, "win"),
			Checksum: rapid.Uint16().Draw(t, "sum"), Urgent: rapid.Uint16().Draw(t, "urg"),
		}
		n := OptionsLen(&o)
		if n%4 != 0 || n > MaxOptionsLen {
			t.Fatalf("OptionsLen = %d", n)
		}
		b := Append(nil, &h, &o)
		if len(b) != HeaderLen+n {
			t.Fatalf("len(Append) = %d, want %d", len(b), HeaderLen+n)
		}
		checkRoundTrip(t, b, &h, &o)
	})
}

// checkRoundTrip parses b, which encodes h and o, and compares.
func checkRoundTrip(t interface{ Fatalf(string, ...any) }, b []byte, h *Header, o *Options) {
	var h2 Header
	var o2 Options
	off, err := Parse(b, &h2, &o2)
	if err != nil || off != len(b) {
		t.Fatalf("Parse(Append) = %d, %v", off, err)
	}
	want := *o
	want.NumSACK = sackFit(o)
	want.SACK = [4]SACKBlock{}
	copy(want.SACK[:], o.SACK[:want.NumSACK])
	if want.WS > MaxWindowShift {
		want.WS = MaxWindowShift
	}
	if want.WS < 0 {
		want.WS = -1
	}
	if h2 != *h {
		t.Fatalf("header %+v, want %+v", h2, *h)
	}
	if diff := cmp.Diff(want, o2); diff != "" {
		t.Fatalf("options (-want +got):\n%s", diff)
	}
}

// FuzzParse feeds arbitrary bytes to Parse; whatever parses must survive
// Append and Parse again unchanged.
func FuzzParse(f *testing.F) {
	f.Add(goldenSynAck)
	f.Add(goldenSACK)
	f.Add(withOptions(2, 4, 5, 0xb4, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 5, 26,
		0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		var o Options
		off, err := Parse(b, &h, &o)
		if err != nil {
			return
		}
		if off < HeaderLen || off > len(b) || off > HeaderLen+MaxOptionsLen {
			t.Fatalf("payloadOff = %d", off)
		}
		h.DataOffset = 0
		out := Append(nil, &h, &o)
		checkRoundTrip(t, out, &h, &o)
	})
}

func TestAllocs(t *testing.T) {
	var h Header
	var o Options
	buf := make([]byte, len(goldenSynAck))
	dst := make([]byte, 0, 128)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Parse", func() { _, _ = Parse(goldenSACK, &h, &o) }},
		{"ParseBad", func() { _, _ = Parse(goldenSACK[:30], &h, &o) }},
		{"Put", func() { Put(buf, &goldenSynAckHeader, &goldenSynAckOptions) }},
		{"AppendWithRoom", func() { _ = Append(dst[:0], &goldenSACKHeader, &goldenSACKOptions) }},
		{"OptionsLen", func() { _ = OptionsLen(&goldenSACKOptions) }},
		{"SetChecksum", func() { SetChecksum(buf, 1) }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocs, want 0", tc.name, n)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	var h Header
	var o Options
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Parse(goldenSACK, &h, &o)
	}
}

func BenchmarkPut(b *testing.B) {
	buf := make([]byte, len(goldenSynAck))
	h := goldenSynAckHeader
	b.ReportAllocs()
	for b.Loop() {
		Put(buf, &h, &goldenSynAckOptions)
	}
}
