package interop

import (
	"testing"
	"time"
)

// bulkSize is the volume the issue asks for per direction.
const bulkSize = 256 << 20

// TestBulk256MiB moves 256 MiB client->server and then server->client on
// one connection per direction, and checks each side's sha256 and byte
// count match what the other side generated.
func TestBulk256MiB(t *testing.T) {
	forEachPairing(t, func(t *testing.T, pr pairing) {
		e := newEnv(t, pr, envOpts{})
		t.Run("client-to-server", func(t *testing.T) {
			c, s := e.connect(t)
			transfer(t, c, s, 1, bulkSize, 3*time.Minute)
		})
		t.Run("server-to-client", func(t *testing.T) {
			c, s := e.connect(t)
			transfer(t, s, c, 2, bulkSize, 3*time.Minute)
		})
	})
}
