package netns

import (
	"os"
	"os/signal"
	"syscall"
)

// Main is for TestMain: it removes namespaces left by crashed earlier runs,
// closes every open pair on SIGINT/SIGTERM/SIGHUP (then exits 1), runs the
// tests and closes whatever pairs are still open. Use:
//
//	func TestMain(m *testing.M) { os.Exit(netns.Main(m)) }
func Main(m interface{ Run() int }) int {
	if Available() == nil {
		CleanupStale("")
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case <-sigs:
			CloseAll()
			os.Exit(1)
		case <-done:
		}
	}()
	code := m.Run()
	signal.Stop(sigs)
	close(done)
	CloseAll()
	return code
}
