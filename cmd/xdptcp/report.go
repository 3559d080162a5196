package main

import (
	"fmt"
	"io"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/xdp"
)

// writeLinkStats prints the AF_XDP endpoint's counters: frames and bytes
// each way, batch sizes, drops, and steering locality.
func writeLinkStats(w io.Writer, s xdp.Stats) {
	t := s.Total()
	wake := "off"
	if s.NeedWakeup {
		wake = "on"
	}
	fmt.Fprintf(w, "link/xdp: %s mode, need_wakeup %s, %d queues\n", s.Mode, wake, len(s.Queues))
	fmt.Fprintf(w, "  in:  %d frames, %s in %d bursts (%s frames/burst; sizes %s)\n",
		t.RxFrames, byteSize(t.RxBytes), t.RxBursts, ratio(t.RxFrames, t.RxBursts), histogram(t.RxBatch))
	fmt.Fprintf(w, "  out: %d frames, %s in %d bursts (%s frames/burst; sizes %s), %d kicks\n",
		t.TxFrames, byteSize(t.TxBytes), t.TxBursts, ratio(t.TxFrames, t.TxBursts), histogram(t.TxBatch), t.TxKicks)
	k := t.Kernel
	drops := t.RxNoDispatcher + t.RxBad + t.TxRingFull + t.TxOversize + k.RxDropped + k.RxRingFull + k.RxFillRingEmpty + k.RxInvalidDescs + k.TxInvalidDescs
	fmt.Fprintf(w, "  drops: %d (rx ring full %d, fill ring empty %d, kernel dropped %d, invalid descs %d/%d, no stack %d, bad %d, tx ring full %d, tx oversize %d; kick errors %d)\n",
		drops, k.RxRingFull, k.RxFillRingEmpty, k.RxDropped, k.RxInvalidDescs, k.TxInvalidDescs,
		t.RxNoDispatcher, t.RxBad, t.TxRingFull, t.TxOversize, t.TxKickErrors)
	var steered uint64
	for _, n := range t.SteerShard {
		steered += n
	}
	steered += t.SteerOther
	if steered > 0 {
		fmt.Fprintf(w, "  steering: %d TCP frames, %.0f%% arrived on the queue of their shard (veth hashes each direction independently)\n",
			steered, 100*float64(t.SteerLocal)/float64(steered))
	}
}

// writeBatchStats prints batchtcp's own counters.
func writeBatchStats(w io.Writer, s batchtcp.Stats) {
	fmt.Fprintf(w, "batchtcp: %d shards, %d segments in %d batches (%s segments/batch), %d direct from the link (%d handed back to the stack), %d retransmits, segments per shard %v\n",
		s.Shards, s.BatchSegments, s.Batches, ratio(s.BatchSegments, s.Batches), s.DirectSegments, s.DirectFallbacks, s.Retransmits, s.PerShardSegments)
}

// writeTCPStats prints the stack's TCP counters.
func writeTCPStats(w io.Writer, s *stack.Stack) {
	t := s.Stats().TCP
	fmt.Fprintf(w, "tcp: %d established, %d passive opens, %d active opens, %d segments in, %d segments out, %d retransmits, %d resets sent, %d resets received, %d checksum errors\n",
		t.CurrentEstablished.Value(), t.PassiveConnectionOpenings.Value(), t.ActiveConnectionOpenings.Value(),
		t.ValidSegmentsReceived.Value(), t.SegmentsSent.Value(), t.Retransmits.Value(),
		t.ResetsSent.Value(), t.ResetsReceived.Value(), t.ChecksumErrors.Value())
}

// histogram formats an xdp batch histogram as "1:n 2-3:n ..." (empty
// buckets left out).
func histogram(h []uint64) string {
	var parts []string
	for i, n := range h {
		if n == 0 {
			continue
		}
		lo, hi := 1<<i, 1<<(i+1)-1
		switch {
		case i == len(h)-1:
			parts = append(parts, fmt.Sprintf("%d+:%d", lo, n))
		case lo == hi:
			parts = append(parts, fmt.Sprintf("%d:%d", lo, n))
		default:
			parts = append(parts, fmt.Sprintf("%d-%d:%d", lo, hi, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func ratio(a, b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(a)/float64(b))
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
