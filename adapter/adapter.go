// Package adapter builds a ready gVisor tcpip stack on any
// stack.LinkEndpoint, with batchtcp (or gVisor's TCP) as its TCP, plus
// gVisor's IPv4, IPv6, ARP, UDP and ICMP.
package adapter

import (
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/sniffer"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/xdptcp/xdptcp/batchtcp"
	"github.com/xdptcp/xdptcp/link/txbatch"
)

// nicID is the stack's only NIC.
const nicID tcpip.NICID = 1

// MaxBufferSize is the largest send or receive buffer size accepted.
const MaxBufferSize = 1 << 30

// Stack is a gVisor stack with one NIC on a link endpoint.
type Stack struct {
	s         *stack.Stack
	link      stack.LinkEndpoint // as attached to the NIC (wrappers included)
	addrs     []netip.Addr
	transport Transport
	qdisc     *txbatch.QDisc // nil without TX batching
	hasNIC    bool

	closeOnce sync.Once
}

// New builds a stack on link. On error nothing is left running; link is
// closed only if the stack had taken it over.
func New(link stack.LinkEndpoint, opts ...Option) (*Stack, error) {
	if link == nil {
		return nil, fmt.Errorf("adapter: nil link endpoint")
	}
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	for _, n := range []int{c.sndBuf, c.rcvBuf} {
		if n > MaxBufferSize {
			return nil, fmt.Errorf("adapter: buffer size %d above %d", n, MaxBufferSize)
		}
	}
	if c.pcap != nil {
		// Pcap only: gVisor's sniffer also logs every packet unless this
		// process-wide flag is off.
		sniffer.LogPackets.Store(0)
		sn, err := sniffer.NewWithWriter(link, c.pcap, c.snaplen)
		if err != nil {
			return nil, fmt.Errorf("adapter: pcap: %w", err)
		}
		link = sn
	}

	var tcpFactory stack.TransportProtocolFactory = tcp.NewProtocol
	if c.transport == BatchTCP {
		tcpFactory = batchFactory(c.shards)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcpFactory, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        false,
		Clock:              c.clock,
	})
	st := &Stack{s: s, link: link, transport: c.transport}
	if err := st.setup(c); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func (st *Stack) setup(c *config) error {
	s := st.s
	if err := st.setTCPOptions(c); err != nil {
		return err
	}
	var nicOpts stack.NICOptions
	if c.direct {
		p, ok := s.TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol)
		if !ok {
			return fmt.Errorf("adapter: TCP protocol is not batchtcp")
		}
		st.link = p.DirectLink(st.link)
	}
	if c.txBatching {
		lanes, attach, err := batchLanes(s)
		if err != nil {
			return err
		}
		st.qdisc = txbatch.New(st.link, lanes)
		nicOpts.QDisc = st.qdisc
		attach(st.qdisc)
	}
	if err := s.CreateNICWithOptions(nicID, st.link, nicOpts); err != nil {
		// The stack did not take the link: close the qdisc only.
		if st.qdisc != nil {
			st.qdisc.Close()
		}
		return fmt.Errorf("adapter: create NIC: %s", err)
	}
	st.hasNIC = true
	for _, p := range c.addrs {
		proto := ipv4.ProtocolNumber
		if p.Addr().Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{
			Protocol: proto,
			AddressWithPrefix: tcpip.AddressWithPrefix{
				Address:   tcpip.AddrFromSlice(p.Addr().AsSlice()),
				PrefixLen: p.Bits(),
			},
		}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("adapter: add address %v: %s", p, err)
		}
		st.addrs = append(st.addrs, p.Addr())
	}
	routes := c.routes
	if len(routes) == 0 {
		seen := map[netip.Prefix]bool{}
		for _, p := range c.addrs {
			if m := p.Masked(); !seen[m] {
				seen[m] = true
				routes = append(routes, route{dst: m})
			}
		}
	}
	table := make([]tcpip.Route, 0, len(routes))
	for _, r := range routes {
		sub, err := subnet(r.dst)
		if err != nil {
			return err
		}
		tr := tcpip.Route{Destination: sub, NIC: nicID}
		if r.gw.IsValid() {
			tr.Gateway = tcpip.AddrFromSlice(r.gw.AsSlice())
		}
		table = append(table, tr)
	}
	s.SetRouteTable(table)
	return nil
}

// subnet converts a prefix to a tcpip.Subnet.
func subnet(p netip.Prefix) (tcpip.Subnet, error) {
	return tcpip.AddressWithPrefix{
		Address:   tcpip.AddrFromSlice(p.Addr().AsSlice()),
		PrefixLen: p.Bits(),
	}.Subnet(), nil
}

// setTCPOptions applies the TCP protocol options of c.
func (st *Stack) setTCPOptions(c *config) error {
	s := st.s
	set := func(name string, opt tcpip.SettableTransportProtocolOption) error {
		if err := s.SetTransportProtocolOption(header.TCPProtocolNumber, opt); err != nil {
			return fmt.Errorf("adapter: set TCP %s: %s", name, err)
		}
		return nil
	}
	sack := tcpip.TCPSACKEnabled(true)
	if err := set("SACK", &sack); err != nil {
		return err
	}
	if c.sndBuf > 0 {
		var r tcpip.TCPSendBufferSizeRangeOption
		if err := s.TransportProtocolOption(header.TCPProtocolNumber, &r); err != nil {
			return fmt.Errorf("adapter: get TCP send buffer range: %s", err)
		}
		r.Min, r.Default, r.Max = min(r.Min, c.sndBuf), c.sndBuf, max(r.Max, c.sndBuf)
		if err := set("send buffer size", &r); err != nil {
			return err
		}
	}
	if c.rcvBuf > 0 {
		var r tcpip.TCPReceiveBufferSizeRangeOption
		if err := s.TransportProtocolOption(header.TCPProtocolNumber, &r); err != nil {
			return fmt.Errorf("adapter: get TCP receive buffer range: %s", err)
		}
		r.Min, r.Default, r.Max = min(r.Min, c.rcvBuf), c.rcvBuf, max(r.Max, c.rcvBuf)
		if err := set("receive buffer size", &r); err != nil {
			return err
		}
	}
	if c.timeWaitSet {
		tw := tcpip.TCPTimeWaitTimeoutOption(c.timeWait)
		if err := set("TIME-WAIT", &tw); err != nil {
			return err
		}
	}
	return nil
}

// Stack returns the gVisor stack.
func (st *Stack) Stack() *stack.Stack { return st.s }

// NIC returns the ID of the stack's NIC.
func (st *Stack) NIC() tcpip.NICID { return nicID }

// Addrs returns the NIC's addresses, in the order given.
func (st *Stack) Addrs() []netip.Addr { return append([]netip.Addr(nil), st.addrs...) }

// Transport returns the TCP implementation in use.
func (st *Stack) Transport() Transport { return st.transport }

// TxBatcher returns the NIC's transmit batcher, or nil without one.
func (st *Stack) TxBatcher() *txbatch.QDisc { return st.qdisc }

// Close aborts every endpoint, removes the NIC (closing its link) and waits
// for the stack's and the link's goroutines. Idempotent.
func (st *Stack) Close() {
	st.closeOnce.Do(func() {
		st.s.Close()
		// Remove the NIC and wait for the link before Stack.Wait: Stack.Wait
		// waits for links while holding the stack lock, which a link goroutine
		// delivering a packet may need.
		if st.hasNIC {
			st.s.RemoveNIC(nicID)
			st.link.Wait()
		}
		st.s.Wait()
	})
}
