package batchtcp

import "gvisor.dev/gvisor/pkg/tcpip"

// shardStats are counters written only by their shard (STYLE: plain fields,
// no shared atomics). At the end of each batch the shard adds what changed
// to the stack's tcpip.TCPStats, so a gVisor user reads the same counters as
// with gVisor's TCP, at one atomic add per counter per batch.
type shardStats struct {
	ActiveConnectionOpenings  uint64
	PassiveConnectionOpenings uint64
	CurrentEstablished        int64
	CurrentConnected          int64
	EstablishedResets         uint64
	EstablishedClosed         uint64
	EstablishedTimedout       uint64
	ListenOverflowSynDrop     uint64
	ListenOverflowAckDrop     uint64
	FailedConnectionAttempts  uint64
	ValidSegmentsReceived     uint64
	InvalidSegmentsReceived   uint64
	SegmentsSent              uint64
	SegmentSendErrors         uint64
	ResetsSent                uint64
	ResetsReceived            uint64
	Retransmits               uint64
	FastRecovery              uint64
	SACKRecovery              uint64
	TailLossProbes            uint64 // batchtcp's own (RFC 8985 §7)
	TailLossRecoveries        uint64 // probes that repaired a loss (gVisor's TLPRecovery)
	SlowStartRetransmits      uint64
	FastRetransmit            uint64
	Timeouts                  uint64
	ChecksumErrors            uint64

	// batchtcp's own, per drop reason (FreeBSD tcp_input.c style).
	InboxDrops       uint64 // shard inbox full
	DirectSegments   uint64 // arrived through a DirectLink
	DirectFallbacks  uint64 // direct, but no flow: handed to the stack
	PAWSDrops        uint64 // RFC 7323 §5 PAWS rejected
	ChallengeACKs    uint64 // RFC 5961 challenge ACKs sent
	ChallengeLimited uint64 // challenge ACKs suppressed by §7 rate limit
	OutOfWindowDrops uint64 // unacceptable segments (RFC 9293 §3.10.7.4 first)
	Batches          uint64 // wake-ups that processed work
	BatchSegments    uint64 // segments processed in those batches
	ZeroWindowProbes uint64
	KeepalivesSent   uint64
	// OwnershipViolations counts a conn reached by a shard other than the
	// one that owns it: always zero by construction, checked in tests.
	OwnershipViolations uint64
}

// publish adds cur-prev to the stack's counters and copies cur into prev.
func (cur *shardStats) publish(prev *shardStats, st *tcpip.TCPStats) {
	add := func(c *tcpip.StatCounter, now, before uint64) {
		if now != before {
			c.IncrementBy(now - before)
		}
	}
	add(st.ActiveConnectionOpenings, cur.ActiveConnectionOpenings, prev.ActiveConnectionOpenings)
	add(st.PassiveConnectionOpenings, cur.PassiveConnectionOpenings, prev.PassiveConnectionOpenings)
	gauge(st.CurrentEstablished, cur.CurrentEstablished-prev.CurrentEstablished)
	gauge(st.CurrentConnected, cur.CurrentConnected-prev.CurrentConnected)
	add(st.EstablishedResets, cur.EstablishedResets, prev.EstablishedResets)
	add(st.EstablishedClosed, cur.EstablishedClosed, prev.EstablishedClosed)
	add(st.EstablishedTimedout, cur.EstablishedTimedout, prev.EstablishedTimedout)
	add(st.ListenOverflowSynDrop, cur.ListenOverflowSynDrop, prev.ListenOverflowSynDrop)
	add(st.ListenOverflowAckDrop, cur.ListenOverflowAckDrop, prev.ListenOverflowAckDrop)
	add(st.FailedConnectionAttempts, cur.FailedConnectionAttempts, prev.FailedConnectionAttempts)
	add(st.ValidSegmentsReceived, cur.ValidSegmentsReceived, prev.ValidSegmentsReceived)
	add(st.InvalidSegmentsReceived, cur.InvalidSegmentsReceived, prev.InvalidSegmentsReceived)
	add(st.SegmentsSent, cur.SegmentsSent, prev.SegmentsSent)
	add(st.SegmentSendErrors, cur.SegmentSendErrors, prev.SegmentSendErrors)
	add(st.ResetsSent, cur.ResetsSent, prev.ResetsSent)
	add(st.ResetsReceived, cur.ResetsReceived, prev.ResetsReceived)
	add(st.Retransmits, cur.Retransmits, prev.Retransmits)
	add(st.FastRecovery, cur.FastRecovery, prev.FastRecovery)
	add(st.SACKRecovery, cur.SACKRecovery, prev.SACKRecovery)
	add(st.TLPRecovery, cur.TailLossRecoveries, prev.TailLossRecoveries)
	add(st.SlowStartRetransmits, cur.SlowStartRetransmits, prev.SlowStartRetransmits)
	add(st.FastRetransmit, cur.FastRetransmit, prev.FastRetransmit)
	add(st.Timeouts, cur.Timeouts, prev.Timeouts)
	add(st.ChecksumErrors, cur.ChecksumErrors, prev.ChecksumErrors)
	*prev = *cur
}

func gauge(c *tcpip.StatCounter, d int64) {
	for ; d > 0; d-- {
		c.Increment()
	}
	for ; d < 0; d++ {
		c.Decrement()
	}
}

// Stats is a snapshot of batchtcp's own counters summed over shards.
type Stats struct {
	Shards     int
	InboxDrops uint64
	// DirectSegments arrived through a DirectLink; DirectFallbacks came
	// that way for a flow no shard held and went on through the stack.
	DirectSegments  uint64
	DirectFallbacks uint64
	// TailLossProbes sent (RFC 8985 §7); the stack's TCP.TLPRecovery
	// counts those that repaired a loss.
	TailLossProbes   uint64
	PAWSDrops        uint64
	ChallengeACKs    uint64
	ChallengeLimited uint64
	OutOfWindowDrops uint64
	Batches          uint64
	BatchSegments    uint64
	ZeroWindowProbes uint64
	KeepalivesSent   uint64
	Retransmits      uint64
	// OwnershipViolations must stay zero (see shardStats).
	OwnershipViolations uint64
	// PerShardSegments is the number of segments each shard processed.
	PerShardSegments []uint64
	// PerShardConns is the number of connections each shard holds.
	PerShardConns []int
}
