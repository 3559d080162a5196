package xdplinux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/netconn"
	"github.com/xdptcp/xdptcp/tests/netns"
)

// lockedBuffer is an io.Writer safe for the sniffer's concurrent writers
// (one Write per pcap record).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// segment is one captured IPv4 TCP segment.
type segment struct {
	src, dst   netip.AddrPort
	seq, ack   uint32
	flags      uint8
	window     uint16
	payloadLen int
	wscale     int // -1: no window scale option
	hasTS      bool
	tsVal      uint32
	mss        int // 0: none
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func (s segment) String() string {
	return fmt.Sprintf("%v > %v flags %#x seq %d ack %d win %d len %d ws %d ts %v mss %d",
		s.src, s.dst, s.flags, s.seq, s.ack, s.window, s.payloadLen, s.wscale, s.hasTS, s.mss)
}

// parsePcap returns the IPv4 TCP segments of a little-endian pcap stream. Frames must hold at least the TCP header and options
// (snaplen); the payload length comes from the IP header.
func parsePcap(b []byte) ([]segment, error) {
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		return nil, errors.New("not a little-endian pcap stream")
	}
	// gVisor's sniffer records IP packets (LINKTYPE_RAW, 101); accept
	// Ethernet (1) too.
	lt := binary.LittleEndian.Uint32(b[20:])
	if lt != 1 && lt != 101 {
		return nil, fmt.Errorf("link type %d, want Ethernet or raw IP", lt)
	}
	b = b[24:]
	var segs []segment
	for len(b) >= 16 {
		incl := int(binary.LittleEndian.Uint32(b[8:]))
		if len(b) < 16+incl {
			return nil, errors.New("truncated pcap record")
		}
		f := b[16 : 16+incl]
		b = b[16+incl:]
		ip := f
		if lt == 1 {
			if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
				continue
			}
			ip = f[14:]
		}
		if len(ip) < 20 || ip[0]>>4 != 4 {
			continue
		}
		ihl := int(ip[0]&0xf) * 4
		if ip[9] != 6 || len(ip) < ihl+20 {
			continue
		}
		totLen := int(binary.BigEndian.Uint16(ip[2:]))
		tcp := ip[ihl:]
		doff := int(tcp[12]>>4) * 4
		if len(tcp) < doff || doff < 20 {
			return nil, errors.New("captured frame shorter than its TCP header: raise snaplen")
		}
		s := segment{
			src:        netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(tcp[0:])),
			dst:        netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(tcp[2:])),
			seq:        binary.BigEndian.Uint32(tcp[4:]),
			ack:        binary.BigEndian.Uint32(tcp[8:]),
			flags:      tcp[13],
			window:     binary.BigEndian.Uint16(tcp[14:]),
			payloadLen: totLen - ihl - doff,
			wscale:     -1,
		}
		opts := tcp[20:doff]
		for len(opts) > 0 {
			kind := opts[0]
			if kind == 0 {
				break
			}
			if kind == 1 {
				opts = opts[1:]
				continue
			}
			if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
				return nil, fmt.Errorf("bad TCP option list in %v", s)
			}
			o := opts[:opts[1]]
			switch {
			case kind == 2 && len(o) == 4:
				s.mss = int(binary.BigEndian.Uint16(o[2:]))
			case kind == 3 && len(o) == 3:
				s.wscale = int(o[2])
			case kind == 8 && len(o) == 10:
				s.hasTS, s.tsVal = true, binary.BigEndian.Uint32(o[2:])
			}
			opts = opts[len(o):]
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// handshake finds the SYN from client to server and the SYN-ACK answering
// it.
func handshake(segs []segment, client, server netip.AddrPort) (syn, synack segment, err error) {
	var haveSyn, haveSynAck bool
	for _, s := range segs {
		switch {
		case !haveSyn && s.src == client && s.dst == server && s.flags&(tcpSYN|tcpACK) == tcpSYN:
			syn, haveSyn = s, true
		case haveSyn && !haveSynAck && s.src == server && s.dst == client && s.flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK:
			synack, haveSynAck = s, true
		}
	}
	if !haveSyn || !haveSynAck {
		return syn, synack, fmt.Errorf("handshake %v -> %v not captured (SYN %v, SYN-ACK %v)", client, server, haveSyn, haveSynAck)
	}
	return syn, synack, nil
}

// TestOptionsNegotiatedWithLinux: with our stack's traffic captured
// (adapter.WithPcap), one connection opened by Linux to us and one opened by
// us to Linux each carry window scale and timestamps on both SYN and
// SYN-ACK, and every data segment of both directions carries a timestamp.
// Our sender also keeps more than 64 KiB in flight towards Linux, which is
// only possible with Linux's window scaled.
func TestOptionsNegotiatedWithLinux(t *testing.T) {
	var pcap lockedBuffer
	e := newEnv(t, netns.Config{}, adapter.WithPcap(&pcap, 128))

	// Linux -> us: echo 256 KiB.
	e.listen(t, 7, tcpEcho)
	lc, err := e.p.DialTCP(ctxT(t, 10*time.Second), e.addrA(7))
	if err != nil {
		t.Fatal(err)
	}
	lc.SetDeadline(time.Now().Add(20 * time.Second))
	exchange(t, lc, 256<<10)
	lc.Close()

	// us -> Linux: 4 MiB to a sink, then an echo of 256 KiB.
	ln, err := e.p.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.Copy(c, c)
	}()
	oc, err := e.n.DialContext(ctxT(t, 10*time.Second), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	oc.SetDeadline(time.Now().Add(20 * time.Second))
	exchange(t, oc, 4<<20)
	linuxAP := netip.MustParseAddrPort(ln.Addr().String())
	ourAP := netip.MustParseAddrPort(oc.(*netconn.TCPConn).LocalAddr().String())
	oc.Close()

	segs, err := parsePcap(pcap.bytes())
	if err != nil {
		t.Fatal(err)
	}
	linuxClient := netip.MustParseAddrPort(lc.LocalAddr().String())
	us7 := netip.MustParseAddrPort(e.addrA(7))
	for _, c := range []struct {
		name           string
		client, server netip.AddrPort
	}{
		{"Linux opens to us", linuxClient, us7},
		{"we open to Linux", ourAP, linuxAP},
	} {
		syn, synack, err := handshake(segs, c.client, c.server)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, s := range []segment{syn, synack} {
			if s.wscale < 0 || !s.hasTS || s.mss == 0 {
				t.Errorf("%s: %v: want window scale, timestamps and MSS", c.name, s)
			}
		}
		t.Logf("%s:\n  SYN     %v\n  SYN-ACK %v", c.name, syn, synack)
		var data [2]int
		for _, s := range segs {
			if s.flags&tcpSYN != 0 || s.payloadLen == 0 {
				continue
			}
			dir := -1
			if s.src == c.client && s.dst == c.server {
				dir = 0
			} else if s.src == c.server && s.dst == c.client {
				dir = 1
			}
			if dir < 0 {
				continue
			}
			data[dir]++
			if !s.hasTS {
				t.Errorf("%s: data segment without timestamp: %v", c.name, s)
				break
			}
		}
		if data[0] == 0 || data[1] == 0 {
			t.Errorf("%s: data segments captured client->server %d, server->client %d", c.name, data[0], data[1])
		}
	}

	// Flight towards Linux on our connection: highest byte sent minus
	// highest byte Linux acknowledged, seen at each segment we send. The
	// sniffer records our segments when the stack sends them and Linux's
	// ACKs before the stack processes them, so this underestimates.
	if _, synack, err := handshake(segs, ourAP, linuxAP); err == nil {
		var sndMax, ackMax uint32
		var maxFlight uint32
		started := false
		for _, s := range segs {
			switch {
			case s.src == ourAP && s.dst == linuxAP && s.payloadLen > 0:
				if end := s.seq + uint32(s.payloadLen); !started || int32(end-sndMax) > 0 {
					sndMax = end
				}
				if !started {
					ackMax, started = synack.ack, true
				}
				if f := sndMax - ackMax; int32(f) > 0 && f > maxFlight {
					maxFlight = f
				}
			case started && s.src == linuxAP && s.dst == ourAP && s.flags&tcpACK != 0 && int32(s.ack-ackMax) > 0:
				ackMax = s.ack
			}
		}
		t.Logf("largest flight towards Linux: %d bytes", maxFlight)
		if maxFlight <= 65535 {
			t.Errorf("largest flight towards Linux %d bytes: never above 64 KiB (window scaling unused?)", maxFlight)
		}
	}
}

// exchange writes n seeded bytes to an echoing c while reading them back.
func exchange(t *testing.T, c net.Conn, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, stream(3, int64(n)))
		errc <- err
	}()
	got, sum, err := readSum(io.LimitReader(c, int64(n)))
	if err != nil || got != int64(n) {
		t.Fatalf("echo: %d of %d bytes: %v", got, n, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sum != streamSum(3, int64(n)) {
		t.Fatal("echoed bytes differ")
	}
}
