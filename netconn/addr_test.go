package netconn

import (
	"net"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestParseAddrToFull(t *testing.T) {
	for _, tc := range []struct {
		network, address string
		wantAddr         string // "" for any
		wantPort         uint16
		wantProto        tcpip.NetworkProtocolNumber
		wantErr          bool
	}{
		{"tcp", ":8080", "", 8080, header.IPv6ProtocolNumber, false},
		{"tcp4", ":0", "", 0, header.IPv4ProtocolNumber, false},
		{"tcp6", ":0", "", 0, header.IPv6ProtocolNumber, false},
		{"tcp", "198.18.0.1:80", "198.18.0.1", 80, header.IPv4ProtocolNumber, false},
		{"tcp", "[::ffff:198.18.0.1]:80", "198.18.0.1", 80, header.IPv4ProtocolNumber, false},
		{"tcp", "[fd00::1]:80", "fd00::1", 80, header.IPv6ProtocolNumber, false},
		{"tcp", "0.0.0.0:80", "", 80, header.IPv6ProtocolNumber, false},
		{"tcp6", "[::]:80", "", 80, header.IPv6ProtocolNumber, false},
		{"tcp4", "[fd00::1]:80", "", 0, 0, true},
		{"tcp6", "198.18.0.1:80", "", 0, 0, true},
		{"udp", ":80", "", 0, 0, true},
		{"tcp", "localhost:80", "", 0, 0, true},
		{"tcp", "198.18.0.1:http", "", 0, 0, true},
		{"tcp", "198.18.0.1:65536", "", 0, 0, true},
		{"tcp", "198.18.0.1", "", 0, 0, true},
	} {
		a, err := parseAddr(tc.network, tc.address)
		var fa tcpip.FullAddress
		var proto tcpip.NetworkProtocolNumber
		if err == nil {
			fa, proto, err = toFull(tc.network, a)
		}
		if (err != nil) != tc.wantErr {
			t.Errorf("%s %q: err = %v, want error %v", tc.network, tc.address, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		gotAddr := ""
		if fa.Addr.BitLen() != 0 {
			gotAddr = fa.Addr.String()
		}
		if gotAddr != tc.wantAddr || fa.Port != tc.wantPort || proto != tc.wantProto {
			t.Errorf("%s %q: got %q port %d proto %d, want %q %d %d", tc.network, tc.address, gotAddr, fa.Port, proto, tc.wantAddr, tc.wantPort, tc.wantProto)
		}
	}
}

func TestFromFull(t *testing.T) {
	for _, tc := range []struct {
		fa   tcpip.FullAddress
		want string
		len  int
	}{
		{tcpip.FullAddress{Addr: tcpip.AddrFrom4([4]byte{198, 18, 0, 1}), Port: 80}, "198.18.0.1:80", net.IPv4len},
		{tcpip.FullAddress{Addr: tcpip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18, 15: 1}), Port: 80}, "198.18.0.1:80", net.IPv4len},
		{tcpip.FullAddress{Addr: tcpip.AddrFrom16([16]byte{0: 0xfd, 15: 1}), Port: 443}, "[fd00::1]:443", net.IPv6len},
		{tcpip.FullAddress{Port: 7}, ":7", 0},
	} {
		got := fromFull(tc.fa)
		if got.String() != tc.want || len(got.IP) != tc.len {
			t.Errorf("fromFull(%v) = %v (IP len %d), want %s (len %d)", tc.fa, got, len(got.IP), tc.want, tc.len)
		}
	}
}
