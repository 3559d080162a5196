package netconn

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	got, err := ConfigFromEnv(envOf(map[string]string{
		EnvIface: "veth0", EnvAddr: "198.18.0.1/24, fd00::1/64", EnvGateway: "198.18.0.254",
		EnvQueues: "0,1", EnvShards: "4",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := EnvConfig{
		Iface:    "veth0",
		Addrs:    []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd00::1/64")},
		Gateways: []netip.Addr{netip.MustParseAddr("198.18.0.254")},
		Queues:   []int{0, 1},
		Shards:   4,
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatal(d)
	}
	all, err := ConfigFromEnv(envOf(map[string]string{EnvIface: "eth1", EnvAddr: "198.18.0.1/24", EnvQueues: "all"}))
	if err != nil || all.Queues != nil || all.Shards != 0 {
		t.Fatalf("defaults: %+v, %v", all, err)
	}
}

// Every misconfiguration is one clear error naming the variables.
func TestConfigFromEnvErrors(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"missing everything": {},
		"missing address":    {EnvIface: "eth1"},
		"missing interface":  {EnvAddr: "198.18.0.1/24"},
		"bad address":        {EnvIface: "eth1", EnvAddr: "198.18.0.1"},
		"unspecified":        {EnvIface: "eth1", EnvAddr: "0.0.0.0/0"},
		"bad gateway":        {EnvIface: "eth1", EnvAddr: "198.18.0.1/24", EnvGateway: "gw"},
		"bad queues":         {EnvIface: "eth1", EnvAddr: "198.18.0.1/24", EnvQueues: "one"},
		"bad shards":         {EnvIface: "eth1", EnvAddr: "198.18.0.1/24", EnvShards: "0"},
	} {
		_, err := ConfigFromEnv(envOf(env))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, EnvIface) || !strings.Contains(msg, EnvAddr) {
			t.Errorf("%s: %q does not name %s and %s", name, msg, EnvIface, EnvAddr)
		}
	}
}
