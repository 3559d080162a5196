package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// maxAddrs bounds the addresses the program matches, per family.
const maxAddrs = 64

// xdpPass is the XDP_PASS verdict.
const xdpPass = 2

// program is the loaded XDP program, its maps and its attachment.
type program struct {
	xsks  *ebpf.Map // XSKMAP: RX queue index -> socket
	addr4 *ebpf.Map // hash: IPv4 address (4 bytes, wire order) -> 1
	addr6 *ebpf.Map // hash: IPv6 address (16 bytes) -> 1
	prog  *ebpf.Program
	link  link.Link // BPF link: detached when closed or when the process dies
}

// Frame offsets (Ethernet II, no VLAN tag).
const (
	offEtherType = 12
	offIPv4Dst   = 14 + 16
	offARPTarget = 14 + 24 // target protocol address
	offIPv6Next  = 14 + 6
	offIPv6Dst   = 14 + 24
	offICMPv6    = 14 + 40
	offNSTarget  = offICMPv6 + 8
	icmpv6NS     = 135
)

// ethType is an EtherType as a 16-bit load from the frame reads it on this
// host.
func ethType(t uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], t)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// instructions builds the program. It redirects to the socket of the frame's
// RX queue:
//   - IPv4 whose destination is one of addr4,
//   - ARP whose target protocol address is one of addr4,
//   - IPv6 whose destination is one of addr6,
//   - ICMPv6 neighbor solicitations (to a multicast group) whose target is
//     one of addr6;
//
// and passes everything else to the kernel. A queue with no socket in the
// XSKMAP falls back to XDP_PASS (the low bits of bpf_redirect_map's flags).
func instructions(xsks, addr4, addr6 int) asm.Instructions {
	const (
		ctx  = asm.R6
		data = asm.R7
		end  = asm.R8
	)
	// bounds jumps to pass unless data+n <= data_end.
	bounds := func(n int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R2, data),
			asm.Add.Imm(asm.R2, n),
			asm.JGT.Reg(asm.R2, end, "pass"),
		}
	}
	// copy16 copies 16 packet bytes at off to the key buffer fp-16.
	copy16 := func(off int16) asm.Instructions {
		var ins asm.Instructions
		for i := int16(0); i < 16; i += 4 {
			ins = append(ins,
				asm.LoadMem(asm.R1, data, off+i, asm.Word),
				asm.StoreMem(asm.RFP, -16+i, asm.R1, asm.Word))
		}
		return ins
	}
	var p asm.Instructions
	add := func(ins ...asm.Instruction) { p = append(p, ins...) }
	addAll := func(ins asm.Instructions) { p = append(p, ins...) }

	add(
		asm.Mov.Reg(ctx, asm.R1),
		asm.LoadMem(data, ctx, 0, asm.Word), // xdp_md.data
		asm.LoadMem(end, ctx, 4, asm.Word),  // xdp_md.data_end
	)
	addAll(bounds(14))
	add(
		asm.LoadMem(asm.R1, data, offEtherType, asm.Half),
		asm.JEq.Imm(asm.R1, ethType(unix.ETH_P_IP), "ipv4"),
		asm.JEq.Imm(asm.R1, ethType(unix.ETH_P_ARP), "arp"),
		asm.JEq.Imm(asm.R1, ethType(unix.ETH_P_IPV6), "ipv6"),
		asm.Ja.Label("pass"),
	)

	// IPv4: destination address.
	p = append(p, asm.Mov.Reg(asm.R2, data).WithSymbol("ipv4"))
	add(asm.Add.Imm(asm.R2, offIPv4Dst+4), asm.JGT.Reg(asm.R2, end, "pass"))
	add(
		asm.LoadMem(asm.R1, data, offIPv4Dst, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word),
		asm.Ja.Label("lookup4"),
	)
	// ARP: target protocol address.
	p = append(p, asm.Mov.Reg(asm.R2, data).WithSymbol("arp"))
	add(asm.Add.Imm(asm.R2, offARPTarget+4), asm.JGT.Reg(asm.R2, end, "pass"))
	add(
		asm.LoadMem(asm.R1, data, offARPTarget, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word),
	)
	p = append(p, asm.LoadMapPtr(asm.R1, addr4).WithSymbol("lookup4"))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Ja.Label("redirect"),
	)

	// IPv6: destination address; a multicast destination may be a
	// neighbor solicitation for one of ours.
	p = append(p, asm.Mov.Reg(asm.R2, data).WithSymbol("ipv6"))
	add(asm.Add.Imm(asm.R2, offICMPv6), asm.JGT.Reg(asm.R2, end, "pass"))
	add(
		asm.LoadMem(asm.R1, data, offIPv6Dst, asm.Byte),
		asm.JEq.Imm(asm.R1, 0xff, "ip6mcast"),
	)
	addAll(copy16(offIPv6Dst))
	p = append(p, asm.LoadMapPtr(asm.R1, addr6).WithSymbol("lookup6"))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Ja.Label("redirect"),
	)
	p = append(p, asm.Mov.Reg(asm.R2, data).WithSymbol("ip6mcast"))
	add(asm.Add.Imm(asm.R2, offNSTarget+16), asm.JGT.Reg(asm.R2, end, "pass"))
	add(
		asm.LoadMem(asm.R1, data, offIPv6Next, asm.Byte),
		asm.JNE.Imm(asm.R1, unix.IPPROTO_ICMPV6, "pass"),
		asm.LoadMem(asm.R1, data, offICMPv6, asm.Byte),
		asm.JNE.Imm(asm.R1, icmpv6NS, "pass"),
	)
	addAll(copy16(offNSTarget))
	add(asm.Ja.Label("lookup6"))

	// Redirect to the socket of this RX queue, XDP_PASS if it has none.
	p = append(p, asm.LoadMapPtr(asm.R1, xsks).WithSymbol("redirect"))
	add(
		asm.LoadMem(asm.R2, ctx, 16, asm.Word), // xdp_md.rx_queue_index
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	p = append(p, asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"))
	add(asm.Return())
	return p
}

// loadProgram creates the maps, fills in the addresses and loads the
// program. nQueues sizes the XSKMAP.
func loadProgram(nQueues int, addrs []netip.Addr) (_ *program, err error) {
	pr := &program{}
	defer func() {
		if err != nil {
			pr.close()
		}
	}()
	pr.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xdptcp_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(nQueues)})
	if err != nil {
		return nil, bpfErr("create XSKMAP", err)
	}
	pr.addr4, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xdptcp_addr4", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: maxAddrs})
	if err != nil {
		return nil, bpfErr("create address map", err)
	}
	pr.addr6, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xdptcp_addr6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: maxAddrs})
	if err != nil {
		return nil, bpfErr("create address map", err)
	}
	for _, a := range addrs {
		a = a.Unmap()
		var err error
		if a.Is4() {
			err = pr.addr4.Put(a.As4(), uint8(1))
		} else {
			err = pr.addr6.Put(a.As16(), uint8(1))
		}
		if err != nil {
			return nil, bpfErr(fmt.Sprintf("add address %v", a), err)
		}
	}
	pr.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xdptcp",
		Type:         ebpf.XDP,
		License:      "Dual BSD/GPL",
		Instructions: instructions(pr.xsks.FD(), pr.addr4.FD(), pr.addr6.FD()),
	})
	if err != nil {
		return nil, bpfErr("load XDP program", err)
	}
	return pr, nil
}

// attach links the program to the interface: native (driver) mode first,
// generic (SKB) mode if the driver has no XDP.
func (pr *program) attach(ifindex int, ifname string) error {
	l, err := link.AttachXDP(link.XDPOptions{Program: pr.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil && errors.Is(err, unix.EOPNOTSUPP) {
		l, err = link.AttachXDP(link.XDPOptions{Program: pr.prog, Interface: ifindex, Flags: link.XDPGenericMode})
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
			return fmt.Errorf("xdp: attach to %s: %w (another XDP program is attached: remove it with `ip link set dev %s xdp off`)", ifname, err, ifname)
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
			return fmt.Errorf("xdp: attach to %s: %w (XDP not supported here: needs Linux 5.9+ BPF links and an XDP-capable driver or generic XDP)", ifname, err)
		}
		return bpfErr("attach to "+ifname, err)
	}
	pr.link = l
	return nil
}

// setSocket puts a socket into the XSKMAP slot of its queue.
func (pr *program) setSocket(queue, fd int) error {
	if err := pr.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return bpfErr(fmt.Sprintf("register queue %d socket in XSKMAP", queue), err)
	}
	return nil
}

// close detaches the program and releases the maps.
func (pr *program) close() {
	if pr.link != nil {
		pr.link.Close()
		pr.link = nil
	}
	for _, c := range []interface{ Close() error }{pr.prog, pr.xsks, pr.addr4, pr.addr6} {
		switch v := c.(type) {
		case *ebpf.Program:
			if v != nil {
				v.Close()
			}
		case *ebpf.Map:
			if v != nil {
				v.Close()
			}
		}
	}
	pr.prog, pr.xsks, pr.addr4, pr.addr6 = nil, nil, nil, nil
}

func bpfErr(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("xdp: %s: %w (needs CAP_BPF and CAP_NET_ADMIN: run as root or grant them)", what, err)
	}
	return fmt.Errorf("xdp: %s: %w", what, err)
}
