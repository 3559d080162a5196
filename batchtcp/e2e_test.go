package batchtcp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/pipe"
	"gvisor.dev/gvisor/pkg/tcpip/link/sniffer"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"os"

	"github.com/xdptcp/xdptcp/batchtcp"
)

var (
	addrA  = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	addrB  = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	addr6A = tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	addr6B = tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
)

// pipePair builds two stacks joined by gVisor's synchronous pipe link,
// with the given TCP factories.
func pipePair(t testing.TB, fa, fb stack.TransportProtocolFactory) (*stack.Stack, *stack.Stack) {
	t.Helper()
	pa, pb := pipe.New("\x02\x00\x00\x00\x00\x01", "\x02\x00\x00\x00\x00\x02", 1500)
	var la, lb stack.LinkEndpoint = pa, pb
	if os.Getenv("SNIFF") != "" {
		la = sniffer.New(la)
	}
	mk := func(l stack.LinkEndpoint, f stack.TransportProtocolFactory, a4, a6 tcpip.Address) *stack.Stack {
		s := stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{f},
		})
		if err := s.CreateNIC(1, l); err != nil {
			t.Fatal(err)
		}
		for _, a := range []tcpip.Address{a4, a6} {
			pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: a.WithPrefix()}
			if a.Len() == 16 {
				pa.Protocol = ipv6.ProtocolNumber
			}
			if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
				t.Fatal(err)
			}
		}
		s.SetRouteTable([]tcpip.Route{
			{Destination: header.IPv4EmptySubnet, NIC: 1},
			{Destination: header.IPv6EmptySubnet, NIC: 1},
		})
		t.Cleanup(func() { s.Close(); s.Wait() })
		return s
	}
	return mk(la, fa, addrA, addr6A), mk(lb, fb, addrB, addr6B)
}

func echoOnce(t *testing.T, sa, sb *stack.Stack, server, client tcpip.Address, proto tcpip.NetworkProtocolNumber, size int) {
	ln, err := gonet.ListenTCP(sa, tcpip.FullAddress{Addr: server, Port: 7}, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, sb, tcpip.FullAddress{Addr: server, Port: 7}, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, size)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %d bytes)", err, len(got))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo mismatch: got %d bytes, want %d", len(got), len(want))
	}
}

func TestGonetEchoBatchTCP(t *testing.T) {
	sa, sb := pipePair(t, batchtcp.NewProtocol, batchtcp.NewProtocol)
	for _, n := range []int{1, 1000, 100000, 4 << 20} {
		echoOnce(t, sa, sb, addrA, addrB, ipv4.ProtocolNumber, n)
	}
	echoOnce(t, sa, sb, addr6A, addr6B, ipv6.ProtocolNumber, 1<<20)
}

func TestGonetInteropGVisor(t *testing.T) {
	sa, sb := pipePair(t, batchtcp.NewProtocol, tcp.NewProtocol)
	echoOnce(t, sa, sb, addrA, addrB, ipv4.ProtocolNumber, 2<<20)
	echoOnce(t, sb, sa, addrB, addrA, ipv4.ProtocolNumber, 2<<20)
}

var _ net.Conn
