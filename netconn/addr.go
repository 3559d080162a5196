package netconn

import (
	"net"
	"net/netip"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// checkNetwork rejects networks other than tcp, tcp4 and tcp6.
func checkNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return nil
	}
	return net.UnknownNetworkError(network)
}

// parseAddr parses "host:port" where host is empty or an IP literal. Names
// are not resolved: the stack has no resolver.
func parseAddr(network, address string) (*net.TCPAddr, error) {
	if err := checkNetwork(network); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.AddrError{Err: "invalid port", Addr: address}
	}
	a := &net.TCPAddr{Port: int(port)}
	if host == "" {
		return a, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, &net.AddrError{Err: "not an IP address", Addr: host}
	}
	a.IP = net.IP(ip.Unmap().AsSlice())
	a.Zone = ip.Zone()
	return a, nil
}

// toFull converts a to a tcpip.FullAddress and the network protocol to use
// for network. An unspecified IP becomes the empty address (any); for
// "tcp" with no IP or an unspecified one, ipv6 is returned and the caller
// may make the endpoint dual-stack.
func toFull(network string, a *net.TCPAddr) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	var fa tcpip.FullAddress
	if a == nil {
		a = &net.TCPAddr{}
	}
	fa.Port = uint16(a.Port)
	ip, ok := netip.AddrFromSlice(a.IP)
	if a.IP != nil && !ok {
		return fa, 0, &net.AddrError{Err: "invalid IP address", Addr: a.IP.String()}
	}
	ip = ip.Unmap()
	var proto tcpip.NetworkProtocolNumber
	switch {
	case network == "tcp4" && ip.IsValid() && !ip.Is4():
		return fa, 0, &net.AddrError{Err: "non-IPv4 address", Addr: a.IP.String()}
	case network == "tcp6" && ip.Is4() && !ip.IsUnspecified():
		return fa, 0, &net.AddrError{Err: "non-IPv6 address", Addr: a.IP.String()}
	case network == "tcp4" || (network == "tcp" && ip.Is4() && !ip.IsUnspecified()):
		proto = header.IPv4ProtocolNumber
	default:
		proto = header.IPv6ProtocolNumber
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(ip.AsSlice())
	}
	return fa, proto, nil
}

// fromFull converts fa to a *net.TCPAddr; v4-mapped v6 addresses (from a
// dual-stack listener) are reported as IPv4, as net does.
func fromFull(fa tcpip.FullAddress) *net.TCPAddr {
	a := &net.TCPAddr{Port: int(fa.Port)}
	if fa.Addr.BitLen() == 0 {
		return a
	}
	ip, _ := netip.AddrFromSlice(fa.Addr.AsSlice())
	a.IP = net.IP(ip.Unmap().AsSlice())
	return a
}
