package fault

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/refs"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

func TestMain(m *testing.M) {
	refs.SetLeakMode(refs.LeaksPanic)
	code := m.Run()
	refs.DoLeakCheck()
	os.Exit(code)
}

const payloadLen = 32

// ipPacket builds an outbound IPv4 packet whose payload starts with id.
func ipPacket(id uint32) *stack.PacketBuffer {
	data := make([]byte, payloadLen)
	binary.BigEndian.PutUint32(data, id)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv4MinimumSize,
		Payload:            buffer.MakeWithData(data),
	})
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + payloadLen), TTL: 64, Protocol: 17})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	return pkt
}

// writeIDs writes one packet per id through e in a single call.
func writeIDs(t *testing.T, e *Endpoint, ids ...uint32) {
	t.Helper()
	var l stack.PacketBufferList
	for _, id := range ids {
		l.PushBack(ipPacket(id))
	}
	pkts := slices.Clone(l.AsSlice())
	if n, err := e.WritePackets(l); n != len(ids) || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	for _, p := range pkts {
		p.DecRef()
	}
}

// readIDs drains ch and returns the ids (first payload word) it got.
func readIDs(ch *channel.Endpoint) []uint32 {
	var ids []uint32
	for {
		p := ch.Read()
		if p == nil {
			return ids
		}
		b := p.ToView()
		ids = append(ids, binary.BigEndian.Uint32(b.AsSlice()[header.IPv4MinimumSize:]))
		b.Release()
		p.DecRef()
	}
}

func newOut(cfg Config) (*Endpoint, *channel.Endpoint) {
	ch := channel.New(1024, 1500, "")
	return New(ch, cfg), ch
}

func seq(n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i)
	}
	return s
}

func TestPassThrough(t *testing.T) {
	e, ch := newOut(Config{})
	defer e.Close()
	writeIDs(t, e, seq(5)...)
	if got := readIDs(ch); !slices.Equal(got, seq(5)) {
		t.Errorf("got %v", got)
	}
}

func TestDropAll(t *testing.T) {
	e, ch := newOut(Config{Drop: 1})
	defer e.Close()
	writeIDs(t, e, seq(5)...)
	if got := readIDs(ch); len(got) != 0 {
		t.Errorf("got %v", got)
	}
	if s := e.Stats(); s.Dropped != 5 || s.Frames != 5 {
		t.Errorf("stats %+v", s)
	}
}

func TestDuplicateAll(t *testing.T) {
	e, ch := newOut(Config{Duplicate: 1})
	defer e.Close()
	writeIDs(t, e, 1, 2)
	if got := readIDs(ch); !slices.Equal(got, []uint32{1, 1, 2, 2}) {
		t.Errorf("got %v", got)
	}
}

func TestReorderSwapsPairs(t *testing.T) {
	clk := faketime.NewManualClock()
	e, ch := newOut(Config{Reorder: 1, Clock: clk})
	defer e.Close()
	writeIDs(t, e, 0, 1, 2, 3, 4)
	if got := readIDs(ch); !slices.Equal(got, []uint32{1, 0, 3, 2}) {
		t.Errorf("got %v", got)
	}
	// 4 is held; with no successor it leaves after ReorderHold.
	clk.Advance(ReorderHold)
	if got := readIDs(ch); !slices.Equal(got, []uint32{4}) {
		t.Errorf("after hold: got %v", got)
	}
}

func TestCorruptCopiesAndFlipsOneByte(t *testing.T) {
	e, ch := newOut(Config{Corrupt: 1, Seed: 7})
	defer e.Close()
	orig := ipPacket(9)
	want := orig.ToView()
	defer want.Release()
	var l stack.PacketBufferList
	l.PushBack(orig)
	e.WritePackets(l)
	got := ch.Read()
	if got == nil {
		t.Fatal("no packet")
	}
	gv := got.ToView()
	diff := -1
	for i := range want.Size() {
		if gv.AsSlice()[i] != want.AsSlice()[i] {
			if diff >= 0 {
				t.Fatalf("bytes %d and %d differ", diff, i)
			}
			diff = i
		}
	}
	if diff < header.IPv4MinimumSize {
		t.Errorf("flipped byte %d, want one past the IP header", diff)
	}
	if ov := orig.ToView(); !bytes.Equal(ov.AsSlice(), want.AsSlice()) {
		t.Error("caller's packet modified")
	} else {
		ov.Release()
	}
	if len(got.NetworkHeader().Slice()) != header.IPv4MinimumSize {
		t.Error("copy lost its network header")
	}
	gv.Release()
	got.DecRef()
	orig.DecRef()
	if s := e.Stats(); s.Corrupted != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestDelayAndJitter(t *testing.T) {
	clk := faketime.NewManualClock()
	e, ch := newOut(Config{Delay: 10 * time.Millisecond, Clock: clk})
	defer e.Close()
	writeIDs(t, e, seq(3)...)
	clk.Advance(9 * time.Millisecond)
	if got := readIDs(ch); len(got) != 0 {
		t.Fatalf("early: %v", got)
	}
	clk.Advance(time.Millisecond)
	if got := readIDs(ch); !slices.Equal(got, seq(3)) {
		t.Fatalf("got %v", got)
	}

	if err := e.SetConfig(Config{Delay: 5 * time.Millisecond, Jitter: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	writeIDs(t, e, seq(50)...)
	clk.Advance(10 * time.Millisecond)
	got := readIDs(ch)
	slices.Sort(got)
	if !slices.Equal(got, seq(50)) {
		t.Fatalf("jittered: got %v", got)
	}
	if s := e.Stats(); s.Delayed != 53 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseReleasesHeldAndDelayed(t *testing.T) {
	clk := faketime.NewManualClock()
	e, _ := newOut(Config{Delay: time.Second, Clock: clk})
	writeIDs(t, e, seq(4)...)
	e.SetConfig(Config{Reorder: 1})
	writeIDs(t, e, 9)
	e.Close() // the leak check in TestMain verifies the references
	clk.Advance(2 * time.Second)
	var l stack.PacketBufferList
	p := ipPacket(1)
	l.PushBack(p)
	if _, err := e.WritePackets(l); err == nil {
		t.Error("write after Close: want error")
	}
	p.DecRef()
}

// outcome runs n packets through a fresh endpoint and returns what came out.
func outcome(cfg Config, n int) ([]uint32, Stats) {
	clk := faketime.NewManualClock()
	cfg.Clock = clk
	e, ch := newOut(cfg)
	defer e.Close()
	for i := range n {
		var l stack.PacketBufferList
		p := ipPacket(uint32(i))
		l.PushBack(p)
		e.WritePackets(l)
		p.DecRef()
	}
	clk.Advance(time.Second)
	return readIDs(ch), e.Stats()
}

func TestReproducible(t *testing.T) {
	cfg := Config{Seed: 42, Drop: 0.2, Duplicate: 0.1, Reorder: 0.2, Jitter: time.Millisecond}
	a, sa := outcome(cfg, 300)
	b, sb := outcome(cfg, 300)
	if !slices.Equal(a, b) || sa != sb {
		t.Fatalf("same seed, different outcome: %v vs %v", sa, sb)
	}
	cfg.Seed = 43
	if c, _ := outcome(cfg, 300); slices.Equal(a, c) {
		t.Error("different seeds gave identical outcome")
	}
	if sa.Dropped == 0 || sa.Duplicated == 0 || sa.Reordered == 0 {
		t.Errorf("stats %+v", sa)
	}
}

type recorder struct {
	mu  sync.Mutex
	ids []uint32
}

func (r *recorder) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, binary.BigEndian.Uint32(pkt.Data().AsRange().ToSlice()[header.IPv4MinimumSize:]))
}
func (*recorder) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

func TestInbound(t *testing.T) {
	ch := channel.New(16, 1500, "")
	e := New(ch, Config{Direction: Inbound, Duplicate: 1})
	defer e.Close()
	r := &recorder{}
	e.Attach(r)
	for i := range 3 {
		out := ipPacket(uint32(i))
		p := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: out.ToBuffer()})
		out.DecRef()
		ch.InjectInbound(header.IPv4ProtocolNumber, p)
		p.DecRef()
	}
	if !slices.Equal(r.ids, []uint32{0, 0, 1, 1, 2, 2}) {
		t.Errorf("got %v", r.ids)
	}
	// Outbound is untouched.
	writeIDs(t, e, 5)
	if got := readIDs(ch); !slices.Equal(got, []uint32{5}) {
		t.Errorf("outbound got %v", got)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{Drop: -0.1}, {Duplicate: 1.5}, {Corrupt: 2}, {Delay: -1}, {Jitter: -1}, {Direction: 7},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v: want error", c)
		}
	}
	e, _ := newOut(Config{Drop: 3, Direction: -1}) // clamped, no panic
	defer e.Close()
	if err := e.SetConfig(Config{Reorder: -1}); err == nil {
		t.Error("SetConfig: want error")
	}
}
