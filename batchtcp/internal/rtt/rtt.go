// Package rtt computes TCP's retransmission timeout from round-trip time
// samples, RFC 6298.
//
// Karn's algorithm (RFC 6298 §3) is the caller's: never take a sample from
// a segment that was retransmitted (unless a timestamp echo, RFC 7323 §4,
// disambiguates it), and keep the backed-off RTO until a valid sample
// arrives. The estimator never reads a clock; samples are durations the
// caller measured.
package rtt

import "time"

// RFC 6298 §2 constants.
const (
	alphaInv = 8                // alpha = 1/8
	betaInv  = 4                // beta = 1/4
	k        = 4                // RTTVAR multiplier
	granule  = time.Millisecond // G, the clock granularity we claim
)

// Estimator holds SRTT, RTTVAR and the backoff count. The zero value is
// not useful; build one with New.
type Estimator struct {
	srtt, rttvar time.Duration
	hasSample    bool
	initial      time.Duration
	min, max     time.Duration
	backoffs     int
}

// New returns an estimator whose RTO is initial until the first sample
// (RFC 6298 §2.1; the caller picks 1s) and is kept within [min, max].
func New(initial, min, max time.Duration) Estimator {
	return Estimator{initial: initial, min: min, max: max}
}

// Sample adds one RTT measurement. RFC 6298 §2.2 for the first, §2.3
// after. A valid sample also clears the backoff: the RTO is recomputed
// from SRTT and RTTVAR (RFC 6298 §5, note after step 5.7). Negative
// samples are ignored.
func (e *Estimator) Sample(r time.Duration) {
	if r < 0 {
		return
	}
	if !e.hasSample {
		// §2.2: SRTT <- R, RTTVAR <- R/2.
		e.srtt = r
		e.rttvar = r / 2
		e.hasSample = true
	} else {
		// §2.3: RTTVAR first, from the old SRTT.
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = ((betaInv-1)*e.rttvar + d) / betaInv
		e.srtt = ((alphaInv-1)*e.srtt + r) / alphaInv
	}
	e.backoffs = 0
}

// base is the un-backed-off RTO, clamped: §2.2/2.3 RTO = SRTT + max(G,
// K*RTTVAR); §2.4 rounds up to min; §2.5 caps at max.
func (e *Estimator) base() time.Duration {
	rto := e.initial
	if e.hasSample {
		rto = e.srtt + max(granule, k*e.rttvar)
	}
	return min(max(rto, e.min), e.max)
}

// RTO is the current retransmission timeout: the base RTO doubled once per
// backoff (§5.5), capped at max.
func (e *Estimator) RTO() time.Duration {
	rto := e.base()
	for range e.backoffs {
		if rto > e.max/2 {
			return e.max
		}
		rto *= 2
	}
	return rto
}

// Backoff doubles the RTO after the retransmission timer expires,
// RFC 6298 §5.5. The RTO stops at max; the count keeps growing so the
// caller can give up after too many.
func (e *Estimator) Backoff() { e.backoffs++ }

// Backoffs is the number of Backoff calls since the last sample.
func (e *Estimator) Backoffs() int { return e.backoffs }

// SRTT is the smoothed round-trip time, 0 before the first sample.
func (e *Estimator) SRTT() time.Duration { return e.srtt }

// RTTVar is the round-trip time variation, 0 before the first sample.
func (e *Estimator) RTTVar() time.Duration { return e.rttvar }

// HasSample reports whether any sample has been taken.
func (e *Estimator) HasSample() bool { return e.hasSample }

// Restart forgets the backoff and, without a sample, starts again from
// initial: RFC 6298 §5.7 (3 s once the handshake completes after a SYN
// timeout).
func (e *Estimator) Restart(initial time.Duration) {
	e.backoffs = 0
	if !e.hasSample {
		e.initial = initial
	}
}

// SetBounds changes the RTO's lower and upper limits (RFC 6298 §2.4-2.5).
func (e *Estimator) SetBounds(min, max time.Duration) {
	e.min, e.max = min, max
}
