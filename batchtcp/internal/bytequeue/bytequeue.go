// Package bytequeue is a lock-free single-producer/single-consumer byte
// queue: a TCP connection's send buffer (producer: the application's Write;
// consumer: the shard) and receive buffer (producer: the shard; consumer:
// the application's Read).
//
// Bytes live in fixed-size chunks from a package-level sync.Pool. A chunk
// goes back to the pool once fully consumed, and the consumer hands back the
// last chunk whenever the queue drains, so an idle queue holds no memory.
//
// Synchronisation is two atomic counters of bytes written and consumed. The
// producer fills chunk memory and links new chunks before it publishes the
// written counter; the consumer reads only below it. The written counter also
// carries two flag bits, busy (the producer is writing) and released (the
// producer has no tail chunk), so the consumer can take the last chunk back
// with one compare-and-swap that fails while the producer writes.
package bytequeue

import (
	"io"
	"sync"
	"sync/atomic"
)

// ChunkSize is the size of one chunk of queue memory.
const ChunkSize = 16 << 10

type chunk struct {
	buf  [ChunkSize]byte
	next atomic.Pointer[chunk] // published before the written counter covers it
}

var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

func getChunk() *chunk { return chunkPool.Get().(*chunk) }

func putChunk(c *chunk) {
	c.next.Store(nil)
	chunkPool.Put(c)
}

// Flag bits in the low bits of Queue.w; written bytes are w >> wShift.
const (
	wBusy     = 1 << 0 // producer is filling its tail chunk
	wReleased = 1 << 1 // consumer took the tail chunk back; producer starts a fresh one
	wShift    = 2
)

// Queue is a bounded SPSC byte queue. The zero value has limit 0; use New or
// Init.
type Queue struct {
	w        atomic.Uint64 // written<<wShift | flags; stored by the producer, CAS'd by the consumer
	consumed atomic.Uint64 // bytes discarded; stored by the consumer
	limit    atomic.Int64
	first    atomic.Pointer[chunk] // fresh chunk after a release, for the consumer to pick up

	// Producer only.
	tail *chunk
	woff int // write offset in tail

	// Consumer only.
	head      *chunk // chunk holding the next unconsumed byte; nil if released
	headStart uint64 // stream position of head.buf[0]
	cur       *chunk // Peek cursor
	curStart  uint64 // stream position of cur.buf[0]
}

// New returns a queue holding at most limit bytes.
func New(limit int) *Queue {
	q := new(Queue)
	q.Init(limit)
	return q
}

// Init prepares an embedded queue. It must not be called concurrently with
// other methods.
func (q *Queue) Init(limit int) {
	q.Reset()
	q.SetLimit(limit)
}

// SetLimit sets the maximum number of buffered bytes. It may be called from
// any goroutine; lowering it below Len drops nothing.
func (q *Queue) SetLimit(n int) { q.limit.Store(int64(max(n, 0))) }

// Limit returns the maximum number of buffered bytes.
func (q *Queue) Limit() int { return int(q.limit.Load()) }

// Len returns the bytes written and not yet discarded. It may be called from
// any goroutine.
func (q *Queue) Len() int {
	c := q.consumed.Load() // before w, so the difference is never negative
	return int(q.w.Load()>>wShift - c)
}

// Free returns max(Limit-Len, 0).
func (q *Queue) Free() int { return max(q.Limit()-q.Len(), 0) }

// Producer side.

// claim marks the producer busy and returns the previous w. After a release
// it drops the (now consumer-freed) tail.
func (q *Queue) claim() (old uint64) {
	old = q.w.Or(wBusy)
	if old&wReleased != 0 {
		q.tail, q.woff = nil, 0
	}
	return old
}

// room returns the tail's writable space, starting a chunk if it has none.
// A new chunk is not linked until publish, so an unfilled one is never
// visible to the consumer.
func (q *Queue) room() (next *chunk, b []byte) {
	if q.tail != nil && q.woff < ChunkSize {
		return nil, q.tail.buf[q.woff:]
	}
	next = getChunk()
	return next, next.buf[:]
}

// commit links next (if any) and advances the write offset by n. The caller
// publishes the counter afterwards.
func (q *Queue) commit(next *chunk, n int) {
	if next == nil {
		q.woff += n
		return
	}
	if q.tail == nil {
		q.first.Store(next)
	} else {
		q.tail.next.Store(next)
	}
	q.tail, q.woff = next, n
}

// Write copies as much of p as fits under the limit and returns the count.
func (q *Queue) Write(p []byte) int {
	n := min(len(p), q.Free())
	if n == 0 {
		return 0
	}
	written := q.claim() >> wShift
	for done := 0; done < n; {
		next, b := q.room()
		k := copy(b, p[done:n])
		q.commit(next, k)
		done += k
	}
	q.w.Store((written + uint64(n)) << wShift)
	return n
}

// Reader is io.Reader (any io.Reader, e.g. a tcpip.Payloader, converts
// implicitly). It is a distinct type only so that go vet does not mistake
// ReadFrom for a malformed io.ReaderFrom.
type Reader interface {
	Read(p []byte) (int, error)
}

// ReadFrom reads up to min(n, Free) bytes from r straight into queue memory.
// It stops at io.EOF (returning a nil error), at any other error, or when r
// makes no progress.
func (q *Queue) ReadFrom(r Reader, n int) (int, error) {
	n = min(n, q.Free())
	if n <= 0 {
		return 0, nil
	}
	old := q.claim()
	written := old >> wShift
	done := 0
	var err error
	for done < n {
		next, b := q.room()
		k, rerr := r.Read(b[:min(len(b), n-done)])
		if k > 0 {
			q.commit(next, k)
			done += k
			q.w.Store((written+uint64(done))<<wShift | wBusy)
		} else if next != nil {
			putChunk(next)
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
		if k == 0 {
			break
		}
	}
	if done == 0 {
		// Nothing written: restore the flags (the consumer cannot change w
		// while busy is set).
		q.w.Store(old)
		return 0, err
	}
	q.w.Store((written + uint64(done)) << wShift)
	return done, err
}

// Consumer side.

// sync adopts the producer's fresh chunk after a release and returns the
// unconsumed byte count and the consumed position.
func (q *Queue) sync() (avail int, consumed uint64) {
	consumed = q.consumed.Load()
	avail = int(q.w.Load()>>wShift - consumed)
	if q.head == nil && avail > 0 {
		q.head, q.headStart = q.first.Load(), consumed
		q.cur = nil
	}
	return avail, consumed
}

// Peek copies bytes [off, off+len(dst)) of the unconsumed data into dst
// without consuming them and returns the count, short if fewer are written.
// A cursor makes peeks at increasing offsets O(1) per chunk.
func (q *Queue) Peek(off int, dst []byte) int {
	avail, consumed := q.sync()
	if off < 0 || off >= avail {
		return 0
	}
	n := min(len(dst), avail-off)
	pos := consumed + uint64(off)
	if q.cur == nil || q.curStart < q.headStart || pos < q.curStart {
		q.cur, q.curStart = q.head, q.headStart
	}
	for done := 0; done < n; {
		for pos >= q.curStart+ChunkSize {
			q.cur, q.curStart = q.cur.next.Load(), q.curStart+ChunkSize
		}
		k := copy(dst[done:n], q.cur.buf[pos-q.curStart:])
		done += k
		pos += uint64(k)
	}
	return n
}

// Discard consumes n bytes (n <= Len), returning emptied chunks to the pool.
func (q *Queue) Discard(n int) {
	if n <= 0 {
		return
	}
	avail, consumed := q.sync()
	if n > avail {
		panic("bytequeue: Discard beyond Len")
	}
	consumed += uint64(n)
	q.advance(consumed)
	q.consumed.Store(consumed)
	if n == avail {
		q.release(consumed)
	}
}

// advance frees full chunks below pos. A chunk with a successor is no longer
// the producer's tail, so the producer is done with it; a full tail without
// one stays until linked or released.
func (q *Queue) advance(pos uint64) {
	for pos >= q.headStart+ChunkSize {
		next := q.head.next.Load()
		if next == nil {
			return
		}
		putChunk(q.head)
		q.head, q.headStart = next, q.headStart+ChunkSize
	}
}

// release hands the drained head chunk back to the pool unless the producer
// has written or is writing since.
func (q *Queue) release(consumed uint64) {
	if q.head == nil || !q.w.CompareAndSwap(consumed<<wShift, consumed<<wShift|wReleased) {
		return
	}
	putChunk(q.head)
	q.head, q.cur = nil, nil
}

// Read copies and consumes up to len(dst) bytes.
func (q *Queue) Read(dst []byte) int {
	n := q.Peek(0, dst)
	q.Discard(n)
	return n
}

// WriteTo writes up to max bytes from the head of the queue to w, consuming
// only what w accepted. A short write returns io.ErrShortWrite.
func (q *Queue) WriteTo(w io.Writer, max int) (int, error) {
	total := 0
	for total < max {
		avail, consumed := q.sync()
		if avail == 0 {
			break
		}
		q.advance(consumed) // a drained full head has a successor now
		off := int(consumed - q.headStart)
		b := q.head.buf[off:min(ChunkSize, off+avail, off+max-total)]
		n, err := w.Write(b)
		if n > len(b) || n < 0 {
			n = 0
		}
		q.Discard(n)
		total += n
		if err != nil {
			return total, err
		}
		if n < len(b) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// Reset drops all data and returns all chunks. Neither side may be active.
func (q *Queue) Reset() {
	c := q.head
	if c == nil && q.w.Load()&wReleased == 0 {
		c = q.first.Load() // the consumer has not adopted it yet
	}
	for c != nil {
		next := c.next.Load()
		putChunk(c)
		c = next
	}
	q.w.Store(wReleased)
	q.consumed.Store(0)
	q.first.Store(nil)
	q.tail, q.woff = nil, 0
	q.head, q.headStart, q.cur, q.curStart = nil, 0, nil, 0
}
