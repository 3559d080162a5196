package batchtcp

import "time"

// Tunables. Defaults follow Linux and gVisor's transport/tcp where a
// gVisor user would notice a difference.
const (
	// maxBatch bounds the segments a shard processes per wake-up (mTCP
	// receives bursts of 64). Remaining work re-wakes the shard at once.
	maxBatch = 64
	// inboxLimit bounds a shard's segment inbox; beyond it, segments are
	// dropped and counted (a NIC ring overflowing).
	inboxLimit = 4096

	// Buffer sizes, as gVisor's transport/tcp (protocol.go).
	minBufferSize            = 4 << 10
	defaultSendBufferSize    = 1 << 20
	defaultReceiveBufferSize = 1 << 20
	maxBufferSize            = 4 << 20

	// RFC 6298 §2.1 initial RTO (1 s); §2.4 recommends a 1 s minimum, Linux
	// and gVisor use 200 ms; §2.5 maximum of at least 60 s (gVisor 120 s).
	initialRTO = time.Second
	// synLossRTO is RFC 6298 §5.7's RTO once data starts after a SYN
	// timeout without an RTT sample.
	synLossRTO = 3 * time.Second
	minRTO     = 200 * time.Millisecond
	maxRTO     = 120 * time.Second
	// maxRetries is the RTO expirations before the connection is dropped
	// (RFC 1122 §4.2.3.5 R2; Linux tcp_retries2).
	maxRetries = 15
	// synRetries is SYN retransmissions before connect fails (Linux
	// tcp_syn_retries).
	synRetries = 6

	// RFC 1122 §4.2.3.2: delayed ACK at most 500 ms; Linux uses 40 ms.
	delayedACKTimeout = 40 * time.Millisecond

	// Keepalive defaults (RFC 1122 §4.2.3.6: at least two hours idle).
	keepaliveIdle     = 2 * time.Hour
	keepaliveInterval = 75 * time.Second
	keepaliveCount    = 9

	// timeWaitTimeout is 2*MSL (RFC 9293 §3.4.2 MSL = 2 min; Linux and
	// gVisor use 60 s for the whole TIME-WAIT).
	timeWaitTimeout = 60 * time.Second
	// finWait2Timeout bounds an orphaned FIN-WAIT-2 (Linux tcp_fin_timeout).
	finWait2Timeout = 60 * time.Second
	// maxLinger2 caps TCP_LINGER2 (gVisor's MaxTCPLingerTimeout; Linux's
	// tcp_fin_timeout maximum).
	maxLinger2 = 120 * time.Second

	// Persist (zero-window probe) timer bounds, RFC 9293 §3.8.6.1.
	minPersist = 200 * time.Millisecond
	maxPersist = 60 * time.Second

	// defaultMSS when the peer sends no MSS option (RFC 9293 §3.7.1).
	defaultMSSv4 = 536
	// minSendMSS is the smallest send MSS used whatever the peer says.
	minSendMSS   = 48
	defaultMSSv6 = 1220
	// maxWindowShift is RFC 7323 §2.3's limit.
	maxWindowShift = 14

	// challengeACKLimit per shard per second (RFC 5961 §7; Linux
	// tcp_challenge_ack_limit is 1000 per second).
	challengeACKLimit = 1000

	// wheelTick and wheelSlots shape each shard's timing wheel: 1 ms ticks
	// as mTCP, 4096 slots (4 s per revolution).
	wheelTick  = time.Millisecond
	wheelSlots = 4096

	// defaultBacklog when Listen gets <= 0 (Linux clamps to somaxconn).
	maxBacklog = 4096
)
