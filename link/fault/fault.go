// Package fault wraps any stack.LinkEndpoint and injects faults into the
// frames crossing it: drop, duplicate, reorder, corrupt, delay and jitter.
// Faults are drawn from a seeded RNG, so a run is reproducible for a given
// seed and packet order.
package fault

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Dir selects which frames are subject to faults.
type Dir int

// Directions.
const (
	Outbound Dir = iota // frames written by the stack
	Inbound             // frames delivered to the stack
	Both
)

// Tunables.
const (
	// MaxDelayed bounds the frames held by the delay line per direction;
	// more are dropped and counted as DelayOverflow.
	MaxDelayed = 4096
	// ReorderHold is how long a frame held back for reordering waits for a
	// successor before it is sent anyway.
	ReorderHold = time.Millisecond
)

// Config sets the faults. Probabilities are per frame, in [0, 1].
type Config struct {
	Seed                              int64
	Drop, Duplicate, Reorder, Corrupt float64
	// Delay is added to every frame; Jitter adds a uniform [0, Jitter).
	Delay, Jitter time.Duration
	// Clock drives delays and reorder holds; default tcpip.NewStdClock().
	// It is fixed at New.
	Clock     tcpip.Clock
	Direction Dir
}

// Validate reports whether the config is usable.
func (c Config) Validate() error {
	for _, p := range [...]struct {
		name string
		v    float64
	}{{"Drop", c.Drop}, {"Duplicate", c.Duplicate}, {"Reorder", c.Reorder}, {"Corrupt", c.Corrupt}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("fault: %s probability %v outside [0, 1]", p.name, p.v)
		}
	}
	if c.Delay < 0 || c.Jitter < 0 {
		return errors.New("fault: negative Delay or Jitter")
	}
	if c.Direction < Outbound || c.Direction > Both {
		return fmt.Errorf("fault: unknown Direction %d", c.Direction)
	}
	return nil
}

// sanitize clamps c into a valid config.
func (c Config) sanitize() Config {
	clamp := func(p float64) float64 {
		if math.IsNaN(p) || p < 0 {
			return 0
		}
		return min(p, 1)
	}
	c.Drop, c.Duplicate = clamp(c.Drop), clamp(c.Duplicate)
	c.Reorder, c.Corrupt = clamp(c.Reorder), clamp(c.Corrupt)
	c.Delay, c.Jitter = max(c.Delay, 0), max(c.Jitter, 0)
	if c.Direction < Outbound || c.Direction > Both {
		c.Direction = Outbound
	}
	return c
}

// Stats counts frames per fault kind, both directions together.
type Stats struct {
	Frames        uint64 // frames seen by an active direction
	Dropped       uint64
	Duplicated    uint64
	Reordered     uint64 // frames held back to go after their successor
	Corrupted     uint64
	Delayed       uint64
	DelayOverflow uint64 // frames dropped because the delay line was full
}

// Endpoint is a fault-injecting stack.LinkEndpoint wrapping another.
type Endpoint struct {
	nested.Endpoint
	clock tcpip.Clock

	mu     sync.Mutex
	cfg    Config
	rng    *rand.Rand
	stats  Stats
	out    path
	in     path
	closed bool
	// sending counts timer callbacks handing frames on (under mu), so that
	// Wait returns only once none is; idle is signalled when it drops to 0.
	sending int
	idle    sync.Cond

	batches sync.Pool // *batch
}

var (
	_ stack.LinkEndpoint      = (*Endpoint)(nil)
	_ stack.NetworkDispatcher = (*Endpoint)(nil)
)

// New wraps inner. An invalid cfg is clamped into range (see SetConfig for
// an error instead).
func New(inner stack.LinkEndpoint, cfg Config) *Endpoint {
	cfg = cfg.sanitize()
	e := &Endpoint{clock: cfg.Clock, cfg: cfg, rng: newRNG(cfg.Seed)}
	e.idle.L = &e.mu
	if e.clock == nil {
		e.clock = tcpip.NewStdClock()
	}
	e.out.inbound, e.in.inbound = false, true
	e.batches.New = func() any { return new(batch) }
	e.Endpoint.Init(inner, e)
	return e
}

func newRNG(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
}

// SetConfig replaces the fault settings at run time. The RNG is reseeded
// only if Seed changed; Clock is ignored (fixed at New).
func (e *Endpoint) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cfg.Seed != e.cfg.Seed {
		e.rng = newRNG(cfg.Seed)
	}
	cfg.Clock = e.clock
	e.cfg = cfg
	return nil
}

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *Endpoint) active(inbound bool) bool {
	switch e.cfg.Direction {
	case Both:
		return true
	case Inbound:
		return inbound
	default:
		return !inbound
	}
}

// WritePackets implements stack.LinkWriter. Frames the faults drop still
// count as written, as on a lossy wire.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := pkts.Len()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return 0, &tcpip.ErrClosedForSend{}
	}
	if !e.active(false) && e.out.empty() {
		e.mu.Unlock()
		return e.Endpoint.WritePackets(pkts)
	}
	b := e.batches.Get().(*batch)
	e.processLocked(&e.out, pkts.AsSlice(), 0, b)
	e.mu.Unlock()
	err := e.emit(&e.out, b)
	return n, err
}

// DeliverNetworkPacket implements stack.NetworkDispatcher for frames
// arriving from the inner endpoint.
func (e *Endpoint) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	e.mu.Lock()
	if e.closed || (!e.active(true) && e.in.empty()) {
		e.mu.Unlock()
		e.Endpoint.DeliverNetworkPacket(proto, pkt)
		return
	}
	b := e.batches.Get().(*batch)
	one := [1]*stack.PacketBuffer{pkt}
	e.processLocked(&e.in, one[:], proto, b)
	e.mu.Unlock()
	e.emit(&e.in, b)
}

// Wait implements stack.LinkEndpoint: it also waits for a timer that is
// still handing frames on.
func (e *Endpoint) Wait() {
	e.mu.Lock()
	for e.sending > 0 {
		e.idle.Wait()
	}
	e.mu.Unlock()
	e.Endpoint.Wait()
}

// Close implements stack.LinkEndpoint: it releases held and delayed frames
// and closes the inner endpoint.
func (e *Endpoint) Close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		e.out.reset()
		e.in.reset()
	}
	e.mu.Unlock()
	e.Endpoint.Close()
}

// processLocked applies the faults to pkts (borrowed) and appends the
// frames to send now, each holding its own reference, to b.
func (e *Endpoint) processLocked(p *path, pkts []*stack.PacketBuffer, proto tcpip.NetworkProtocolNumber, b *batch) {
	if !e.active(p.inbound) {
		// Direction switched off: pass through, releasing anything held.
		for _, pkt := range pkts {
			b.add(pkt.IncRef(), proto)
		}
		e.releaseHeldLocked(p, b)
		return
	}
	c, r := &e.cfg, e.rng
	now := e.clock.NowMonotonic()
	for _, pkt := range pkts {
		e.stats.Frames++
		if c.Drop > 0 && r.Float64() < c.Drop {
			e.stats.Dropped++
			continue
		}
		var own *stack.PacketBuffer
		if c.Corrupt > 0 && r.Float64() < c.Corrupt {
			if own = corruptCopy(pkt, r); own != nil {
				e.stats.Corrupted++
			}
		}
		if own == nil {
			own = pkt.IncRef()
		}
		var dup *stack.PacketBuffer
		if c.Duplicate > 0 && r.Float64() < c.Duplicate {
			dup = deepCopy(own)
			e.stats.Duplicated++
		}
		if c.Reorder > 0 && p.held == nil && r.Float64() < c.Reorder {
			e.stats.Reordered++
			p.held, p.heldProto = own, proto
			e.armHoldLocked(p)
		} else {
			e.forwardLocked(p, own, proto, now, b)
			// A held frame goes right after its successor.
			e.releaseHeldLocked(p, b)
		}
		if dup != nil {
			e.forwardLocked(p, dup, proto, now, b)
		}
	}
}

// forwardLocked sends pkt (owned) now or puts it on the delay line.
func (e *Endpoint) forwardLocked(p *path, pkt *stack.PacketBuffer, proto tcpip.NetworkProtocolNumber, now tcpip.MonotonicTime, b *batch) {
	c := &e.cfg
	if c.Delay == 0 && c.Jitter == 0 {
		b.add(pkt, proto)
		return
	}
	if len(p.line) >= MaxDelayed {
		e.stats.DelayOverflow++
		pkt.DecRef()
		return
	}
	d := c.Delay
	if c.Jitter > 0 {
		d += time.Duration(e.rng.Int64N(int64(c.Jitter)))
	}
	e.stats.Delayed++
	p.seq++
	p.push(delayed{due: now.Add(d), seq: p.seq, pkt: pkt, proto: proto})
	e.armDelayLocked(p, now)
}

func (e *Endpoint) releaseHeldLocked(p *path, b *batch) {
	if p.held != nil {
		b.add(p.held, p.heldProto)
		p.held = nil
	}
}

func (e *Endpoint) armHoldLocked(p *path) {
	if p.holdTimer == nil {
		p.holdTimer = e.clock.AfterFunc(ReorderHold, func() { e.fireHold(p) })
		return
	}
	p.holdTimer.Reset(ReorderHold)
}

// fireHold sends a held frame whose successor did not come in time.
func (e *Endpoint) fireHold(p *path) {
	e.mu.Lock()
	if p.held == nil || e.closed {
		e.mu.Unlock()
		return
	}
	e.sending++
	defer e.doneSending()
	b := e.batches.Get().(*batch)
	e.releaseHeldLocked(p, b)
	e.mu.Unlock()
	e.emit(p, b)
}

// doneSending ends a timer callback's sending.
func (e *Endpoint) doneSending() {
	e.mu.Lock()
	if e.sending--; e.sending == 0 {
		e.idle.Broadcast()
	}
	e.mu.Unlock()
}

// armDelayLocked makes the delay timer fire at the head of the line.
func (e *Endpoint) armDelayLocked(p *path, now tcpip.MonotonicTime) {
	if len(p.line) == 0 {
		return
	}
	due := p.line[0].due
	if p.armed && !due.Before(p.deadline) {
		return
	}
	p.armed, p.deadline = true, due
	d := max(due.Sub(now), 0)
	if p.delayTimer == nil {
		p.delayTimer = e.clock.AfterFunc(d, func() { e.fireDelay(p) })
		return
	}
	p.delayTimer.Reset(d)
}

// fireDelay sends every frame that is due, in one batch.
func (e *Endpoint) fireDelay(p *path) {
	now := e.clock.NowMonotonic()
	e.mu.Lock()
	p.armed = false
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.sending++
	defer e.doneSending()
	b := e.batches.Get().(*batch)
	for len(p.line) > 0 && !p.line[0].due.After(now) {
		d := p.pop()
		b.add(d.pkt, d.proto)
	}
	e.armDelayLocked(p, now)
	e.mu.Unlock()
	e.emit(p, b)
}

// emit sends b's frames (owned) in the path's direction and recycles b.
func (e *Endpoint) emit(p *path, b *batch) tcpip.Error {
	var err tcpip.Error
	if p.inbound {
		for i, pkt := range b.pkts.AsSlice() {
			e.Endpoint.DeliverNetworkPacket(b.protos[i], pkt)
		}
	} else if b.pkts.Len() > 0 {
		_, err = e.Endpoint.WritePackets(b.pkts)
	}
	b.pkts.Reset()
	b.protos = b.protos[:0]
	e.batches.Put(b)
	return err
}

// batch collects owned frames to emit after the lock is dropped.
type batch struct {
	pkts   stack.PacketBufferList
	protos []tcpip.NetworkProtocolNumber
}

func (b *batch) add(pkt *stack.PacketBuffer, proto tcpip.NetworkProtocolNumber) {
	b.pkts.PushBack(pkt)
	b.protos = append(b.protos, proto)
}
