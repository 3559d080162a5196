// Package monotime is the 8-byte monotonic time every batchtcp mechanism
// takes as an argument. A shard reads the stack's tcpip.Clock once per
// iteration and passes the value down; mechanisms never read a clock.
package monotime

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Time is nanoseconds on the stack's monotonic clock.
type Time int64

// From converts the stack clock's reading.
func From(t tcpip.MonotonicTime) Time { return Time(t.Sub(tcpip.MonotonicTime{})) }

// Now reads c once.
func Now(c tcpip.Clock) Time { return From(c.NowMonotonic()) }

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Before reports t < u.
func (t Time) Before(u Time) bool { return t < u }

// After reports t > u.
func (t Time) After(u Time) bool { return t > u }
