package xdp

import (
	"os"
	"os/signal"
	"syscall"
)

// CloseOnSignal closes c on the first SIGINT or SIGTERM, so the XDP
// program is detached and the sockets closed before the process exits.
// Then, if then is nil, it restores the default action and raises the
// signal again (the process ends as it would have); otherwise it calls
// then with the signal. The returned function removes the handler.
func CloseOnSignal(c interface{ Close() }, then func(os.Signal)) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			c.Close()
			if then != nil {
				then(sig)
				return
			}
			signal.Reset(sig)
			if s, ok := sig.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), s)
			}
		case <-done:
		}
	}()
	var once bool
	return func() {
		if !once {
			once = true
			signal.Stop(ch)
			close(done)
		}
	}
}
