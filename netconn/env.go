package netconn

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Environment variables that configure the package-level default stack.
const (
	EnvIface   = "XDPTCP_IFACE"   // interface name, e.g. eth1 (required)
	EnvAddr    = "XDPTCP_ADDR"    // address/prefix, comma-separated for several (required), e.g. 198.18.0.1/24,fd00::1/64
	EnvGateway = "XDPTCP_GATEWAY" // default gateway(s), comma-separated (optional)
	EnvQueues  = "XDPTCP_QUEUES"  // RX queues to serve: "all" (default) or a list such as 0,1
	EnvShards  = "XDPTCP_SHARDS"  // batchtcp shards (default GOMAXPROCS)
)

// EnvConfig is the default stack's configuration read from the environment.
type EnvConfig struct {
	Iface    string
	Addrs    []netip.Prefix
	Gateways []netip.Addr
	Queues   []int // nil: all of the interface's queues
	Shards   int   // 0: GOMAXPROCS
}

// envHelp is the one line every configuration error ends with.
const envHelp = "set " + EnvIface + " and " + EnvAddr + " (optional: " + EnvGateway + ", " + EnvQueues + ", " + EnvShards +
	"), e.g. " + EnvIface + "=eth1 " + EnvAddr + "=198.18.0.1/24, or call netconn.SetDefault"

// ConfigFromEnv reads EnvConfig through getenv (os.Getenv in use). Every
// error names the variables to set.
func ConfigFromEnv(getenv func(string) string) (EnvConfig, error) {
	var c EnvConfig
	c.Iface = strings.TrimSpace(getenv(EnvIface))
	addrs := strings.TrimSpace(getenv(EnvAddr))
	if c.Iface == "" || addrs == "" {
		return c, fmt.Errorf("netconn: no default stack: %s", envHelp)
	}
	for _, f := range strings.Split(addrs, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil || p.Addr().Is4In6() || p.Addr().IsUnspecified() {
			return c, fmt.Errorf("netconn: %s=%q: %q is not an address/prefix such as 198.18.0.1/24; %s", EnvAddr, addrs, f, envHelp)
		}
		c.Addrs = append(c.Addrs, p)
	}
	if gw := strings.TrimSpace(getenv(EnvGateway)); gw != "" {
		for _, f := range strings.Split(gw, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(f))
			if err != nil {
				return c, fmt.Errorf("netconn: %s=%q: %q is not an IP address; %s", EnvGateway, gw, f, envHelp)
			}
			c.Gateways = append(c.Gateways, a)
		}
	}
	if q := strings.TrimSpace(getenv(EnvQueues)); q != "" && q != "all" {
		for _, f := range strings.Split(q, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return c, fmt.Errorf("netconn: %s=%q: want \"all\" or queue numbers such as 0,1; %s", EnvQueues, q, envHelp)
			}
			c.Queues = append(c.Queues, n)
		}
	}
	if s := strings.TrimSpace(getenv(EnvShards)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return c, fmt.Errorf("netconn: %s=%q: want a positive number; %s", EnvShards, s, envHelp)
		}
		c.Shards = n
	}
	return c, nil
}
