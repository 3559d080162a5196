package xdp

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The four AF_XDP rings are single-producer/single-consumer queues shared
// with the kernel through mmap. Each has a producer and a consumer index
// (free-running uint32 counters; an entry's slot is index & mask) and a
// flags word. We own one side of each ring:
//
//	FILL, TX        we produce, the kernel consumes (prodRing)
//	RX, COMPLETION  the kernel produces, we consume (consRing)
//
// The shared indices are read and written only with sync/atomic: a Load of
// the other side's index happens before we touch the entries it covers
// (acquire), and our Store of our own index happens after we wrote or read
// those entries (release). Go's atomics are sequentially consistent, which
// is at least that. Between the two we work on cached copies, so a burst
// of n entries costs one Load and one Store.

// ringHead is the shared part of a ring: pointers into the mapping.
type ringHead struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32 // size-1, size a power of two
}

// prodRing is a ring we produce into (FILL or TX).
type prodRing struct {
	ringHead
	cachedProd uint32 // our producer index, published by submit
	cachedCons uint32 // last consumer index read from the kernel
}

// free returns how many entries can be produced, reading the kernel's
// consumer index only if the cached one does not show want free entries.
func (r *prodRing) free(want uint32) uint32 {
	size := r.mask + 1
	n := size - (r.cachedProd - r.cachedCons)
	if n >= want {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return size - (r.cachedProd - r.cachedCons)
}

// reserve claims n entries (n <= free) and returns the index of the first.
func (r *prodRing) reserve(n uint32) uint32 {
	i := r.cachedProd
	r.cachedProd += n
	return i
}

// submit publishes every reserved entry to the kernel.
func (r *prodRing) submit() { atomic.StoreUint32(r.producer, r.cachedProd) }

// pending returns how many submitted entries the kernel has not consumed.
func (r *prodRing) pending() uint32 {
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.cachedProd - r.cachedCons
}

// needWakeup reports the kernel's XDP_RING_NEED_WAKEUP flag.
func (r *prodRing) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// consRing is a ring we consume from (RX or COMPLETION).
type consRing struct {
	ringHead
	cachedProd uint32 // last producer index read from the kernel
	cachedCons uint32 // our consumer index, published by release
}

// peek returns how many entries (at most max) are ready and the index of
// the first, reading the kernel's producer index only when the cached one
// shows none.
func (r *consRing) peek(max uint32) (n, first uint32) {
	n = r.cachedProd - r.cachedCons
	if n == 0 {
		r.cachedProd = atomic.LoadUint32(r.producer)
		n = r.cachedProd - r.cachedCons
	}
	return min(n, max), r.cachedCons
}

// release hands n consumed entries back to the kernel.
func (r *consRing) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// newHead points a ring head at a mapping with the kernel's offsets.
func newHead(mem []byte, off unix.XDPRingOffset, size uint32) ringHead {
	return ringHead{
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		mask:     size - 1,
	}
}

// addrSlots views a FILL or COMPLETION ring's entries.
func addrSlots(mem []byte, off unix.XDPRingOffset, size uint32) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), size)
}

// descSlots views an RX or TX ring's entries.
func descSlots(mem []byte, off unix.XDPRingOffset, size uint32) []unix.XDPDesc {
	return unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), size)
}

// ringBytes is the length to map for a ring of size entries of entrySize.
func ringBytes(off unix.XDPRingOffset, size uint32, entrySize uintptr) int {
	return int(off.Desc) + int(size)*int(entrySize)
}
