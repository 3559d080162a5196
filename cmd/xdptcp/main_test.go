package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDemoGVisor(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"demo", "-transport", "gvisor", "-requests", "40", "-concurrency", "4", "-big", "2"}, &out, &errb)
	t.Logf("stdout:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{"requests: 40 ok", "req/s", "p99", "sha256", "MiB/s", "PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, 0, "demo"},
		{[]string{"nosuch"}, 2, "unknown subcommand"},
		{[]string{"demo", "-nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"demo", "-transport", "nosuch"}, 2, "unknown transport"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("run(%q) = %d, output %q; want %d containing %q", tc.args, code, out.String()+errb.String(), tc.code, tc.want)
		}
	}
}
