package netns

import "testing"

// NewT is New for tests: it skips t when Available reports a problem, fails
// it when New fails, and registers Close with t.Cleanup (which also runs
// after t.Fatal or a panic in the test). Config.Name defaults to t.Name().
func NewT(t testing.TB, cfg Config) *Pair {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("netns: close: %v", err)
		}
	})
	return p
}
