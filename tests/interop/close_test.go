package interop

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// TestHalfClose: the client sends a request and shuts down its write side;
// the server reads the request and then EOF, and still sends its reply on
// the half-open connection; the client reads the reply and then EOF.
func TestHalfClose(t *testing.T) {
	forEachPairing(t, func(t *testing.T, pr pairing) {
		e := newEnv(t, pr, envOpts{})
		c, s := e.connect(t)
		deadline := time.Now().Add(20 * time.Second)
		c.SetDeadline(deadline)
		s.SetDeadline(deadline)
		req := bytes.Repeat([]byte("request "), 1000)
		reply := bytes.Repeat([]byte("reply after EOF "), 5000) // > one window of segments

		if _, err := c.Write(req); err != nil {
			t.Fatalf("client Write: %v", err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatalf("client CloseWrite: %v", err)
		}
		got, err := io.ReadAll(s) // nil error means it ended in io.EOF
		if err != nil {
			t.Fatalf("server ReadAll: %v", err)
		}
		if !bytes.Equal(got, req) {
			t.Fatalf("server read %d bytes, want the %d-byte request", len(got), len(req))
		}
		if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("server Read after EOF = %d, %v; want 0, io.EOF", n, err)
		}
		if _, err := s.Write(reply); err != nil {
			t.Fatalf("server Write after reading EOF: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("server Close: %v", err)
		}
		got, err = io.ReadAll(c)
		if err != nil {
			t.Fatalf("client ReadAll: %v", err)
		}
		if !bytes.Equal(got, reply) {
			t.Fatalf("client read %d bytes, want the %d-byte reply", len(got), len(reply))
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("client Read after EOF = %d, %v; want 0, io.EOF", n, err)
		}
	})
}
