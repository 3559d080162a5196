package xdp

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ifaceInfo is what New needs to know about the interface.
type ifaceInfo struct {
	index    int
	name     string
	mac      net.HardwareAddr
	mtu      uint32
	rxQueues int
	xdpProg  uint32 // ID of the attached XDP program, 0 if none
}

// lookupIface reads the interface from rtnetlink in the calling thread's
// network namespace. (Not /sys/class/net: sysfs shows the namespace it was
// mounted in, not the one a thread entered with setns, so inside a test
// namespace it would describe another interface or none.)
func lookupIface(name string) (*ifaceInfo, error) {
	links, err := dumpLinks()
	if err != nil {
		return nil, err
	}
	for i := range links {
		if links[i].name == name {
			return &links[i], nil
		}
	}
	return nil, fmt.Errorf("xdp: no interface %q in this network namespace (create it, or call New on a thread inside the namespace that holds it)", name)
}

// XDPProgramID returns the ID of the XDP program attached to the named
// interface in the calling thread's network namespace, 0 if none.
func XDPProgramID(name string) (uint32, error) {
	ifc, err := lookupIface(name)
	if err != nil {
		return 0, err
	}
	return ifc.xdpProg, nil
}

// dumpLinks lists the namespace's interfaces with RTM_GETLINK.
func dumpLinks() ([]ifaceInfo, error) {
	rib, err := syscall.NetlinkRIB(unix.RTM_GETLINK, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("xdp: list interfaces: %w", os.NewSyscallError("netlink", err))
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("xdp: list interfaces: %w", err)
	}
	var out []ifaceInfo
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		ifi := (*unix.IfInfomsg)(unsafePointer(m.Data))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		info := ifaceInfo{index: int(ifi.Index), rxQueues: 1}
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				info.name = cString(a.Value)
			case unix.IFLA_ADDRESS:
				info.mac = append(net.HardwareAddr(nil), a.Value...)
			case unix.IFLA_MTU:
				if len(a.Value) >= 4 {
					info.mtu = binary.NativeEndian.Uint32(a.Value)
				}
			case unix.IFLA_NUM_RX_QUEUES:
				if len(a.Value) >= 4 {
					info.rxQueues = int(binary.NativeEndian.Uint32(a.Value))
				}
			case unix.IFLA_XDP:
				info.xdpProg = xdpProgID(a.Value)
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// xdpProgID reads IFLA_XDP_PROG_ID from a nested IFLA_XDP attribute.
func xdpProgID(b []byte) uint32 {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4])
		if l < unix.SizeofRtAttr || l > len(b) {
			return 0
		}
		if t == unix.IFLA_XDP_PROG_ID && l >= unix.SizeofRtAttr+4 {
			return binary.NativeEndian.Uint32(b[unix.SizeofRtAttr:])
		}
		adv := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if adv > len(b) {
			return 0
		}
		b = b[adv:]
	}
	return 0
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
