package txbatch

import (
	"os"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/refs"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

func TestMain(m *testing.M) {
	refs.SetLeakMode(refs.LeaksPanic)
	code := m.Run()
	refs.DoLeakCheck()
	os.Exit(code)
}

// sink is a LinkWriter recording the size of each WritePackets call and the
// hashes it saw, in order.
type sink struct {
	mu     sync.Mutex
	calls  []int
	hashes []uint32
}

func (s *sink) WritePackets(l stack.PacketBufferList) (int, tcpip.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, l.Len())
	for _, p := range l.AsSlice() {
		s.hashes = append(s.hashes, p.Hash)
	}
	return l.Len(), nil
}

func pkt(hash uint32) *stack.PacketBuffer {
	p := stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: 40})
	p.Hash = hash
	return p
}

// send writes a packet as the NIC does: the qdisc borrows it.
func send(t *testing.T, q *QDisc, hash uint32) {
	t.Helper()
	p := pkt(hash)
	if err := q.WritePacket(p); err != nil {
		t.Fatalf("WritePacket: %v", err)
	}
	p.DecRef()
}

func TestHeldLaneLeavesInOneCall(t *testing.T) {
	s := &sink{}
	q := New(s, 4)
	defer q.Close()
	q.Hold(1)
	for i := range 10 {
		send(t, q, uint32(1+4*i)) // all lane 1
	}
	send(t, q, 2) // lane 2 is not held: straight through
	if len(s.calls) != 1 || s.calls[0] != 1 {
		t.Fatalf("calls before flush = %v, want [1]", s.calls)
	}
	q.Flush(1)
	if len(s.calls) != 2 || s.calls[1] != 10 {
		t.Fatalf("calls = %v, want [1 10]", s.calls)
	}
	for i, h := range s.hashes[1:] {
		if h != uint32(1+4*i) {
			t.Fatalf("order: packet %d hash %d", i, h)
		}
	}
	st := q.Stats()
	if st[1] != (LaneStats{Calls: 1, Packets: 10}) || st[2] != (LaneStats{Calls: 1, Packets: 1}) {
		t.Errorf("stats %+v", st)
	}
	// Hold released: next packet goes through alone.
	send(t, q, 1)
	if len(s.calls) != 3 {
		t.Errorf("calls = %v", s.calls)
	}
}

func TestFullLaneFlushesEarly(t *testing.T) {
	s := &sink{}
	q := New(s, 1)
	defer q.Close()
	q.Hold(0)
	for range MaxHeld + 3 {
		send(t, q, 7)
	}
	if len(s.calls) != 1 || s.calls[0] != MaxHeld {
		t.Fatalf("calls = %v, want [%d]", s.calls, MaxHeld)
	}
	q.Flush(0)
	if len(s.calls) != 2 || s.calls[1] != 3 {
		t.Fatalf("calls = %v", s.calls)
	}
}

func TestHarmlessMisuse(t *testing.T) {
	s := &sink{}
	q := New(s, 0) // clamped to 1 lane
	if q.Lanes() != 1 {
		t.Fatalf("lanes = %d", q.Lanes())
	}
	q.Hold(-1)
	q.Hold(5)
	q.Flush(5)
	q.Flush(-3)
	q.Flush(0) // without Hold
	q.Hold(0)
	q.Flush(0) // empty
	if len(s.calls) != 0 {
		t.Errorf("calls = %v", s.calls)
	}
	q.Close()
}

func TestCloseFlushesThenRefuses(t *testing.T) {
	s := &sink{}
	q := New(s, 2)
	q.Hold(0)
	send(t, q, 0)
	send(t, q, 2)
	q.Close()
	q.Close()
	if len(s.calls) != 1 || s.calls[0] != 2 {
		t.Fatalf("calls = %v", s.calls)
	}
	p := pkt(0)
	if err := q.WritePacket(p); err == nil {
		t.Error("WritePacket after Close: want error")
	}
	p.DecRef()
	q.Hold(0)
	q.Flush(0)
}

func TestConcurrentLanes(t *testing.T) {
	s := &sink{}
	const lanes, per = 4, 200
	q := New(s, lanes)
	var wg sync.WaitGroup
	for ln := range lanes {
		wg.Go(func() {
			for i := range per {
				if i%10 == 0 {
					q.Hold(ln)
				}
				p := pkt(uint32(ln))
				q.WritePacket(p)
				p.DecRef()
				if i%10 == 9 {
					q.Flush(ln)
				}
			}
		})
	}
	wg.Wait()
	q.Close()
	for ln, st := range q.Stats() {
		if st.Packets != per || st.Calls != per/10 {
			t.Errorf("lane %d stats %+v", ln, st)
		}
	}
}

func TestWriteThroughAllocs(t *testing.T) {
	q := New(nopWriter{}, 2)
	p := pkt(1)
	defer p.DecRef()
	q.WritePacket(p) // warm the reused list
	if n := testing.AllocsPerRun(100, func() { q.WritePacket(p) }); n != 0 {
		t.Errorf("allocs per write-through = %v", n)
	}
	q.Hold(1)
	if n := testing.AllocsPerRun(100, func() {
		q.WritePacket(p)
		q.Flush(1)
		q.Hold(1)
	}); n != 0 {
		t.Errorf("allocs per held write+flush = %v", n)
	}
	q.Close()
}

type nopWriter struct{}

func (nopWriter) WritePackets(l stack.PacketBufferList) (int, tcpip.Error) { return l.Len(), nil }
