package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xdptcp/xdptcp/tests/netns"
)

func TestDemoGVisor(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"demo", "-mode", "memory", "-transport", "gvisor", "-requests", "40", "-concurrency", "4", "-big", "2"}, &out, &errb)
	t.Logf("stdout:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{"requests: 40 ok", "req/s", "p99", "p999", "sha256", "MiB/s", "PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// requireXDP skips unless the xdp demo can run here (root, namespaces,
// AF_XDP).
func requireXDP(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if err := netns.Available(); err != nil {
		t.Skipf("namespaces: %v", err)
	}
	if fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		t.Skipf("AF_XDP: %v", err)
	} else {
		unix.Close(fd)
	}
}

// The xdp demo: a namespace pair, our stack on AF_XDP, Linux's client;
// counters printed; nothing left behind.
func TestDemoXDP(t *testing.T) {
	requireXDP(t)
	for _, tr := range []string{"batchtcp", "gvisor"} {
		t.Run(tr, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"demo", "-mode", "xdp", "-transport", tr, "-requests", "200", "-concurrency", "8", "-big", "4"}, &out, &errb)
			t.Logf("stdout:\n%s", out.String())
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
			}
			wants := []string{"link/xdp (AF_XDP", "Linux TCP client", "requests: 200 ok", "p999", "sha256", "link/xdp: copy mode", "in:", "out:", "drops:", "PASS"}
			if tr == "batchtcp" {
				wants = append(wants, "batchtcp: ")
			}
			for _, want := range wants {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if left := namespacesOf(t, "demo"); len(left) > 0 {
				t.Errorf("namespaces left behind: %v", left)
			}
		})
	}
}

// namespacesOf lists this process's namespaces named after cfgName.
func namespacesOf(t *testing.T, cfgName string) []string {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	prefix := netns.NamePrefix + cfgName + "-" + strconv.Itoa(os.Getpid()) + "-"
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			left = append(left, e.Name())
		}
	}
	return left
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, 0, "serve"},
		{[]string{"nosuch"}, 2, "unknown subcommand"},
		{[]string{"demo", "-nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"demo", "-transport", "nosuch"}, 2, "unknown transport"},
		{[]string{"demo", "-mode", "nosuch"}, 2, "unknown mode"},
		{[]string{"demo", "-concurrency", "0"}, 2, "-concurrency >= 1"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("run(%q) = %d, output %q; want %d containing %q", tc.args, code, out.String()+errb.String(), tc.code, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader on
// different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
