package interop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoConns is how many connections TestConcurrentEcho runs at once.
const echoConns = 1000

// TestConcurrentEcho opens echoConns connections at once; each writes a few
// hundred random bytes, reads them back from the server's echo, and
// closes. Every connection must succeed, and the server must have accepted
// each one and echoed exactly the bytes the clients sent.
func TestConcurrentEcho(t *testing.T) {
	forEachPairing(t, func(t *testing.T, pr pairing) {
		e := newEnv(t, pr, envOpts{})
		l := e.listen(t)
		deadline := time.Now().Add(90 * time.Second)

		var accepted, echoed atomic.Int64
		var srvWG sync.WaitGroup
		srvErrs := make(chan error, echoConns+1)
		srvWG.Add(1)
		go func() {
			defer srvWG.Done()
			for {
				c, err := l.AcceptTCP()
				if err != nil {
					return // listener closed below
				}
				accepted.Add(1)
				srvWG.Add(1)
				go func() {
					defer srvWG.Done()
					defer c.Close()
					c.SetDeadline(deadline)
					n, err := io.Copy(c, c)
					echoed.Add(n)
					if err != nil {
						srvErrs <- err
					}
				}()
			}
		}()

		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		var sent atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, echoConns)
		for i := range echoConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(i), 7))
				msg := make([]byte, 200+r.IntN(400))
				for j := range msg {
					msg[j] = byte(r.Uint32())
				}
				c, err := e.cn.DialContext(ctx, "tcp", l.Addr().String())
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				c.SetDeadline(deadline)
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				sent.Add(int64(len(msg)))
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- errMismatch
				}
			}()
		}
		wg.Wait()
		close(errs)
		nerr := 0
		for err := range errs {
			if nerr++; nerr <= 5 {
				t.Errorf("client: %v", err)
			}
		}
		if nerr > 0 {
			t.Fatalf("%d of %d connections failed", nerr, echoConns)
		}
		// Every client has its echo; the server handlers finish once they
		// read the clients' FINs.
		waitFor(t, 30*time.Second, func() bool { return echoed.Load() == sent.Load() && accepted.Load() == echoConns })
		l.Close()
		srvWG.Wait()
		close(srvErrs)
		for err := range srvErrs {
			t.Errorf("server: %v", err)
		}
		if got := accepted.Load(); got != echoConns {
			t.Errorf("server accepted %d connections, want %d", got, echoConns)
		}
		if got, want := echoed.Load(), sent.Load(); got != want {
			t.Errorf("server echoed %d bytes, clients sent %d", got, want)
		}
	})
}

var errMismatch = errors.New("echo: bytes read back differ from bytes written")

// waitFor polls cond until it holds or d passes; it reports a timeout as an
// error but does not stop the test, so cleanups still run in order.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Errorf("condition not met within %v", d)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
