package interop

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/fault"
)

// lossSize is the volume the issue asks for per direction and loss rate.
const lossSize = 64 << 20

// lossMinRTO lowers the RTO floor on both stacks. The in-memory link's RTT
// is ~100 µs, so the default 200 ms floor makes every tail loss a 200 ms
// stall; at 5% drop that is most of the run time, under -race well past
// the package budget. 20 ms is still 200 RTTs: no spurious timeouts.
const lossMinRTO = 20 * time.Millisecond

// TestLossRecovery moves lossSize bytes each way through link/fault
// dropping, reordering and duplicating frames in both directions, and
// checks the data arrives intact, that frames were really dropped and that
// the sending TCP retransmitted.
func TestLossRecovery(t *testing.T) {
	t.Parallel()
	// All twelve cases run at once. Their run time is RTO waits, not CPU,
	// and t.Parallel would run only GOMAXPROCS (2 in CI) of them at a time:
	// ~210 s under -race instead of ~90 s. t.Run may be called from
	// several goroutines; each subtest still fails on its own.
	var wg sync.WaitGroup
	for _, drop := range []float64{0.01, 0.05} {
		for _, pr := range pairings {
			for i, dir := range []string{"client-to-server", "server-to-client"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t.Run(fmt.Sprintf("drop=%g/%s/%s", drop, pr.name, dir), func(t *testing.T) {
						testLoss(t, pr, drop, i == 1)
					})
				}()
			}
		}
	}
	wg.Wait()
}

// testLoss is one TestLossRecovery case; reverse sends server->client.
func testLoss(t *testing.T, pr pairing, drop float64, reverse bool) {
	seed := int64(1000 * drop)
	if reverse {
		seed++
	}
	cfg := fault.Config{Seed: seed, Drop: drop, Reorder: 0.01, Duplicate: 0.01, Direction: fault.Both}
	e := newEnv(t, pr, envOpts{fault: &cfg, staticNeighbors: true})
	minRTO := tcpip.TCPMinRTOOption(lossMinRTO)
	setTCPOption(t, e.client, &minRTO)
	setTCPOption(t, e.server, &minRTO)
	c, s := e.connect(t)
	src, dst, sender := c, s, e.client
	if reverse {
		src, dst, sender = s, c, e.server
	}
	start := time.Now()
	transfer(t, src, dst, uint64(seed), lossSize, 4*time.Minute)
	fs := e.fault.Stats()
	st := sender.Stack().Stats().TCP
	t.Logf("%d bytes in %v; fault %+v; sender (%v) retransmits %d, fast retransmits %d, timeouts %d",
		lossSize, time.Since(start), fs, sender.Transport(),
		st.Retransmits.Value(), st.FastRetransmit.Value(), st.Timeouts.Value())
	if fs.Dropped == 0 || fs.Reordered == 0 || fs.Duplicated == 0 {
		t.Errorf("fault stats %+v: want drops, reorders and duplicates", fs)
	}
	if st.Retransmits.Value() == 0 {
		t.Errorf("sender (%v) Retransmits = 0 after %d dropped frames", sender.Transport(), fs.Dropped)
	}
	if sender.Transport() == adapter.BatchTCP && st.FastRetransmit.Value() == 0 {
		t.Errorf("batchtcp sender FastRetransmit = 0: every loss recovered by RTO")
	}
}
