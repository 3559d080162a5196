// Package interop runs batchtcp against itself and against gVisor's
// transport/tcp over in-memory links: echo fan-out, bulk transfers, half
// close, refused and timed-out connects, and loss recovery through
// link/fault.
package interop

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
