package interop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/xdptcp/xdptcp/adapter"
	"github.com/xdptcp/xdptcp/link/fault"
)

// TestDupAckPerOutOfOrderSegment is the minimal reproduction behind the
// loss tests' RTO-bound run times: a receiver must send an immediate
// duplicate ACK for every out-of-order segment (RFC 5681 §4.2), since a
// sender without SACK learns of a loss only from three of them (§3.2).
// A gVisor client sends 4 MiB through a link dropping 1% of its data
// frames (the ACK path is clean); a pcap at the receiver counts the data
// segments that arrived above RCV.NXT and the duplicate ACKs sent back.
// gVisor as the receiver is the control.
func TestDupAckPerOutOfOrderSegment(t *testing.T) {
	t.Parallel()
	for _, srv := range []adapter.Transport{adapter.GVisorTCP, adapter.BatchTCP} {
		t.Run("receiver="+srv.String(), func(t *testing.T) {
			t.Parallel() // bound by RTO waits, not CPU
			var pcap lockedBuffer
			cfg := fault.Config{Seed: 5, Drop: 0.01, Direction: fault.Outbound}
			e := newEnv(t, pairing{client: adapter.GVisorTCP, server: srv}, envOpts{
				fault:           &cfg,
				staticNeighbors: true,
				server:          []adapter.Option{adapter.WithPcap(&pcap, 128)},
			})
			c, s := e.connect(t)
			transfer(t, c, s, 3, 4<<20, time.Minute)
			ooo, dup, err := countDupAcks(pcap.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			st := e.client.Stack().Stats().TCP
			t.Logf("dropped %d; receiver got %d out-of-order segments, sent %d duplicate ACKs; sender fast retransmits %d, timeouts %d",
				e.fault.Stats().Dropped, ooo, dup, st.FastRetransmit.Value(), st.Timeouts.Value())
			if ooo == 0 {
				t.Fatal("no out-of-order segments: the fault did not bite")
			}
			// One each, less slack for the pcap's view of what the receiver
			// had reassembled (gVisor: ~95%).
			if 2*dup < ooo {
				t.Errorf("receiver (%v) sent %d duplicate ACKs for %d out-of-order segments; want one each (RFC 5681 §4.2)", srv, dup, ooo)
			}
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// countDupAcks reads a receiver-side pcap of one client->server transfer.
// ooo counts data segments from the client starting above the receiver's
// RCV.NXT (tracked from the segments themselves); dup counts pure ACKs
// from the server repeating the previous ACK number and window.
func countDupAcks(pcap []byte) (ooo, dup int, err error) {
	if len(pcap) < 24 {
		return 0, 0, fmt.Errorf("pcap of %d bytes", len(pcap))
	}
	srv := [4]byte(serverAddr.AsSlice())
	var (
		rcvNxt  seqnum.Value
		synced  bool
		above   = map[seqnum.Value]seqnum.Value{} // start -> end, above rcvNxt
		lastAck seqnum.Value
		lastWnd uint16
		haveAck bool
	)
	for p := pcap[24:]; len(p) > 0; {
		if len(p) < 16 {
			return 0, 0, fmt.Errorf("truncated pcap record header")
		}
		incl := int(binary.LittleEndian.Uint32(p[8:]))
		if len(p) < 16+incl {
			return 0, 0, fmt.Errorf("truncated pcap record")
		}
		frame := p[16 : 16+incl]
		p = p[16+incl:]
		// gVisor's sniffer writes LINKTYPE_RAW: frames start at the IP header.
		if len(frame) < header.IPv4MinimumSize || header.IPVersion(frame) != header.IPv4Version {
			continue
		}
		ip := header.IPv4(frame)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		hl := int(ip.HeaderLength())
		tcp := header.TCP(frame[hl:])
		if len(tcp) < header.TCPMinimumSize {
			continue
		}
		payload := int(ip.TotalLength()) - hl - int(tcp.DataOffset())
		flags := tcp.Flags()
		if ip.SourceAddress().As4() == srv {
			if flags != header.TCPFlagAck || payload != 0 {
				haveAck = false
				continue
			}
			if haveAck && seqnum.Value(tcp.AckNumber()) == lastAck && tcp.WindowSize() == lastWnd {
				dup++
			}
			lastAck, lastWnd, haveAck = seqnum.Value(tcp.AckNumber()), tcp.WindowSize(), true
			continue
		}
		seq := seqnum.Value(tcp.SequenceNumber())
		if flags&header.TCPFlagSyn != 0 {
			rcvNxt, synced = seq+1, true
			continue
		}
		if !synced || payload == 0 {
			continue
		}
		end := seq.Add(seqnum.Size(payload))
		if rcvNxt.LessThan(seq) {
			ooo++
			if e, ok := above[seq]; !ok || e.LessThan(end) {
				above[seq] = end
			}
			continue
		}
		if rcvNxt.LessThan(end) {
			rcvNxt = end
		}
		for merged := true; merged; {
			merged = false
			for s, e := range above {
				if !rcvNxt.LessThan(s) {
					if rcvNxt.LessThan(e) {
						rcvNxt = e
					}
					delete(above, s)
					merged = true
				}
			}
		}
	}
	return ooo, dup, nil
}
