package xdp

import (
	"errors"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// rxLoop serves one queue until the endpoint stops: take a burst off the
// RX ring, copy the frames out, give the UMEM frames back to FILL, deliver
// the burst; poll when the ring is empty.
func (ep *Endpoint) rxLoop(x *xsk) {
	var views [rxBurst]*buffer.View
	pfd := []unix.PollFd{
		{Fd: int32(x.fd), Events: unix.POLLIN},
		{Fd: int32(ep.stopEFD), Events: unix.POLLIN},
	}
	for {
		n := ep.rxBurst(x, views[:])
		if n == 0 {
			pfd[0].Revents, pfd[1].Revents = 0, 0
			// poll also performs the FILL ring wake-up that
			// need_wakeup asks for.
			if _, err := unix.Poll(pfd, -1); err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
			if pfd[1].Revents != 0 {
				return
			}
			continue
		}
		ep.deliver(x, views[:n])
	}
}

// rxBurst copies up to len(views) received frames into pooled views,
// recycles their UMEM frames through the FILL ring and releases the RX
// ring entries. It returns how many views it filled.
func (ep *Endpoint) rxBurst(x *xsk, views []*buffer.View) int {
	n, first := x.rx.peek(uint32(len(views)))
	if n == 0 {
		return 0
	}
	c := &x.stats
	fsMask := ^uint64(x.frameSize - 1)
	got := 0
	var bytes uint64
	for i := uint32(0); i < n; i++ {
		d := x.rxQ[(first+i)&x.rx.mask]
		x.rxAddrs = append(x.rxAddrs, d.Addr&fsMask)
		end := d.Addr + uint64(d.Len)
		if end > uint64(len(x.umem)) || d.Len < header.EthernetMinimumSize {
			c.rxBad.inc()
			continue
		}
		views[got] = buffer.NewViewWithData(x.umem[d.Addr:end])
		got++
		bytes += uint64(d.Len)
	}
	x.rx.release(n)
	x.refill()
	c.rxFrames.add(uint64(got))
	c.rxBytes.add(bytes)
	c.rxBursts.inc()
	c.rxBatch[bucket(int(n))].inc()
	return got
}

// refill gives the frames in rxAddrs back to the kernel, in one FILL
// update. The ring always has room: no more frames circulate on the RX
// side than it holds.
func (x *xsk) refill() {
	k := min(uint32(len(x.rxAddrs)), x.fill.free(uint32(len(x.rxAddrs))))
	i := x.fill.reserve(k)
	for j := uint32(0); j < k; j++ {
		x.fillQ[(i+j)&x.fill.mask] = x.rxAddrs[j]
	}
	x.fill.submit()
	rest := copy(x.rxAddrs, x.rxAddrs[k:])
	x.rxAddrs = x.rxAddrs[:rest]
}

// deliver hands a burst to the stack, one PacketBuffer per frame.
func (ep *Endpoint) deliver(x *xsk, views []*buffer.View) {
	c := &x.stats
	dp := ep.disp.Load()
	steer := ep.steer.Load()
	for i, v := range views {
		views[i] = nil
		if dp == nil {
			c.rxNoDispatcher.inc()
			v.Release()
			continue
		}
		frame := v.AsSlice()
		proto := header.Ethernet(frame).Type()
		if steer != nil {
			countSteer(x, *steer, proto, frame[header.EthernetMinimumSize:])
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
		if !ep.ParseHeader(pkt) {
			c.rxBad.inc()
			pkt.DecRef()
			continue
		}
		(*dp).DeliverNetworkPacket(proto, pkt)
		pkt.DecRef()
	}
}

// countSteer records which shard owns the frame's flow.
func countSteer(x *xsk, steer func([]byte) (int, bool), proto tcpip.NetworkProtocolNumber, ip []byte) {
	c := &x.stats
	if proto != header.IPv4ProtocolNumber && proto != header.IPv6ProtocolNumber {
		c.steerNone.inc()
		return
	}
	shard, ok := steer(ip)
	switch {
	case !ok || shard < 0:
		c.steerNone.inc()
		return
	case shard < MaxSteerShards:
		c.steerShard[shard].inc()
	default:
		c.steerOther.inc()
	}
	if shard == x.queue {
		c.steerLocal.inc()
	}
}
