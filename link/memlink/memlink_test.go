package memlink

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/refs"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

func TestMain(m *testing.M) {
	refs.SetLeakMode(refs.LeaksPanic)
	code := m.Run()
	refs.DoLeakCheck()
	os.Exit(code)
}

// recorder is a NetworkDispatcher that keeps copies of delivered frames.
type recorder struct {
	mu     sync.Mutex
	protos []tcpip.NetworkProtocolNumber
	types  []tcpip.PacketType
	data   [][]byte
	gate   chan struct{} // if non-nil, each delivery waits on it
}

func (r *recorder) DeliverNetworkPacket(p tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.protos = append(r.protos, p)
	r.types = append(r.types, pkt.PktType)
	r.data = append(r.data, pkt.Data().AsRange().ToSlice())
}

func (*recorder) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.data)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// frame builds an outbound packet as the NIC would: payload plus a link
// header added by ep.
func frame(ep stack.LinkEndpoint, dst tcpip.LinkAddress, payload []byte) *stack.PacketBuffer {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: int(ep.MaxHeaderLength()),
		Payload:            buffer.MakeWithData(payload),
	})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	pkt.EgressRoute.RemoteLinkAddress = dst
	ep.AddHeader(pkt)
	return pkt
}

func write(t *testing.T, ep stack.LinkEndpoint, pkts ...*stack.PacketBuffer) (int, tcpip.Error) {
	t.Helper()
	var l stack.PacketBufferList
	for _, p := range pkts {
		l.PushBack(p)
	}
	n, err := ep.WritePackets(l)
	l.DecRef() // WritePackets only lends the packets.
	return n, err
}

func TestDeliversFramesInOrder(t *testing.T) {
	a, b := NewPair(Options{})
	ra, rb := &recorder{}, &recorder{}
	a.Attach(ra)
	b.Attach(rb)
	defer func() { a.Close(); b.Close(); a.Wait(); b.Wait() }()

	var pkts []*stack.PacketBuffer
	for i := range 10 {
		pkts = append(pkts, frame(a, DefaultAddrB, []byte{byte(i), 1, 2, 3}))
	}
	pkts = append(pkts, frame(a, header.EthernetBroadcastAddress, []byte("bcast")))
	if n, err := write(t, a, pkts...); n != 11 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	waitFor(t, func() bool { return rb.count() == 11 })
	for i := range 10 {
		if got, want := rb.data[i], []byte{byte(i), 1, 2, 3}; !bytes.Equal(got, want) {
			t.Errorf("frame %d = %x, want %x", i, got, want)
		}
		if rb.protos[i] != header.IPv4ProtocolNumber || rb.types[i] != tcpip.PacketHost {
			t.Errorf("frame %d proto %d type %d", i, rb.protos[i], rb.types[i])
		}
	}
	if rb.types[10] != tcpip.PacketBroadcast {
		t.Errorf("broadcast frame type %d", rb.types[10])
	}
	if ra.count() != 0 {
		t.Errorf("a received %d frames", ra.count())
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Sent != 11 || sa.SentBytes != 10*18+19 || sb.Delivered != 11 || sb.DeliveredBytes != sa.SentBytes {
		t.Errorf("stats a=%+v b=%+v", sa, sb)
	}
}

func TestFullQueueDrops(t *testing.T) {
	a, b := NewPair(Options{QueueLen: 4})
	rb := &recorder{gate: make(chan struct{})}
	a.Attach(&recorder{})
	b.Attach(rb)
	defer func() { a.Close(); b.Close(); a.Wait(); b.Wait() }()

	var pkts []*stack.PacketBuffer
	for range 6 {
		pkts = append(pkts, frame(a, DefaultAddrB, []byte("x")))
	}
	// The receiver is blocked on the gate, so at most 4 fit.
	if n, err := write(t, a, pkts...); n != 6 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	if s := a.Stats(); s.Sent != 4 || s.Dropped != 2 {
		t.Fatalf("stats %+v", s)
	}
	close(rb.gate)
	waitFor(t, func() bool { return rb.count() == 4 })
}

func TestOversizeAndDetachedDrop(t *testing.T) {
	a, b := NewPair(Options{MTU: 100})
	a.Attach(&recorder{})
	defer func() { a.Close(); b.Close(); a.Wait(); b.Wait() }()
	// b not attached: dropped.
	if _, err := write(t, a, frame(a, DefaultAddrB, []byte("x"))); err == nil {
		t.Error("write to detached peer: want error")
	}
	b.Attach(&recorder{})
	if _, err := write(t, a, frame(a, DefaultAddrB, make([]byte, 101))); err == nil {
		t.Error("oversize write: want error")
	}
	if s := a.Stats(); s.Dropped != 2 || s.Sent != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseDropsQueuedAndIsIdempotent(t *testing.T) {
	a, b := NewPair(Options{})
	rb := &recorder{gate: make(chan struct{})}
	a.Attach(&recorder{})
	b.Attach(rb)
	closed := false
	b.SetOnCloseAction(func() { closed = true })
	write(t, a, frame(a, DefaultAddrB, []byte("1")), frame(a, DefaultAddrB, []byte("2")))
	b.Close()
	b.Close()
	close(rb.gate) // let a frame caught mid-delivery finish
	b.Wait()
	if !closed {
		t.Error("close action not run")
	}
	if _, err := write(t, b, frame(b, DefaultAddrA, []byte("x"))); err == nil {
		t.Error("write on closed endpoint: want error")
	}
	if got := a.Stats().Dropped + b.Stats().Dropped + uint64(rb.count()); got != 2 {
		t.Errorf("dropped+delivered = %d, want 2", got)
	}
	a.Close()
	a.Wait()
}

func TestReattach(t *testing.T) {
	a, b := NewPair(Options{ChecksumOffload: true})
	if b.Capabilities()&stack.CapabilityRXChecksumOffload == 0 {
		t.Error("checksum offload not advertised")
	}
	a.Attach(&recorder{})
	b.Attach(&recorder{})
	b.Attach(nil)
	if b.IsAttached() {
		t.Error("attached after Attach(nil)")
	}
	rb := &recorder{}
	b.Attach(rb)
	write(t, a, frame(a, DefaultAddrB, []byte("again")))
	waitFor(t, func() bool { return rb.count() == 1 })
	a.Close()
	b.Close()
	a.Wait()
	b.Wait()
}

func BenchmarkWriteDeliver(b *testing.B) {
	x, y := NewPair(Options{QueueLen: 4096})
	r := &recorderCount{}
	x.Attach(&recorderCount{})
	y.Attach(r)
	payload := make([]byte, 1400)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var l stack.PacketBufferList
		p := frame(x, DefaultAddrB, payload)
		l.PushBack(p)
		x.WritePackets(l)
		p.DecRef()
	}
	x.Close()
	y.Close()
	x.Wait()
	y.Wait()
}

type recorderCount struct{ n int }

func (r *recorderCount) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	r.n++
}
func (*recorderCount) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}
