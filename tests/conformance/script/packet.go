package script

import (
	"strconv"
	"strings"
)

var unsupportedPrefixes = map[string]string{
	"udp":   "UDP packets are not supported",
	"icmp":  "ICMP packets are not supported",
	"ipv4":  "explicit ipv4 address prefixes are not supported",
	"ipv6":  "explicit ipv6 address prefixes are not supported",
	"gre":   "GRE encapsulation is not supported",
	"mpls":  "MPLS encapsulation is not supported",
	"encap": "encap psp is not supported",
}

func (p *parser) packet() *Packet {
	d := p.next()
	pk := &Packet{Line: d.line, Dir: Inbound}
	if d.text == ">" {
		pk.Dir = Outbound
	}
	if t := p.peek(); t.is("[") || t.is("(") {
		pk.IPInfo = p.ipinfo()
	}
	if t := p.peek(); t.kind == tWord {
		if r, ok := unsupportedPrefixes[t.text]; ok {
			pk.Unsupported = p.unsupported(t.line, r)
			p.skipStatement(t.line)
			return pk
		}
	}
	if t := p.peek(); t.kind == tInt && p.lx.peekN(1).is(">") {
		pk.HasPorts = true
		pk.SrcPort = p.number("a source port")
		p.next()
		pk.DstPort = p.number("a destination port")
	}
	pk.Flags = p.flags()
	if p.peek().kind == tEllipsis {
		p.next()
		pk.SeqAny = true
		p.expect("(")
		pk.Len = p.number("a payload length")
		p.expect(")")
	} else {
		pk.Start = p.number("a sequence number start:end(len)")
		p.expect(":")
		pk.End = p.number("an end sequence number")
		p.expect("(")
		pk.Len = p.number("a payload length")
		p.expect(")")
		if pk.Len < 0 || pk.Start < 0 || pk.End < 0 {
			p.fail(pk.Line, "sequence numbers and lengths must not be negative")
		}
		if pk.Start+pk.Len != pk.End && (pk.Start+pk.Len)%(1<<32) != pk.End%(1<<32) {
			p.fail(pk.Line, "expected end sequence %d (start %d + len %d), found %d", pk.Start+pk.Len, pk.Start, pk.Len, pk.End)
		}
	}
	if p.accept("!") {
		pk.SeqRaw = true
	}
	for {
		t := p.peek()
		switch {
		case t.kind == tWord && t.text == "ack" && !pk.HasAck:
			p.next()
			pk.HasAck, pk.Ack = true, p.number("an ack number")
		case t.kind == tWord && t.text == "win" && !pk.HasWin:
			p.next()
			pk.HasWin, pk.Win = true, p.number("a window")
		case t.kind == tWord && t.text == "urg" && !pk.HasUrg:
			p.next()
			pk.HasUrg, pk.Urg = true, p.number("an urgent pointer")
		case t.is("<") && !pk.HasOptions:
			p.next()
			pk.HasOptions = true
			p.tcpOptions(pk)
		case t.is("/"):
			pk.Unsupported = p.unsupported(t.line, "UDP encapsulation suffix /udp(...) is not supported")
			p.skipStatement(t.line)
			return pk
		default:
			if pk.Dir == Inbound && !pk.HasWin {
				p.fail(pk.Line, "inbound packet needs 'win N'")
			}
			return pk
		}
	}
}

// skipStatement passes over the rest of an unsupported statement: tokens
// up to the next one that starts a new line and can begin an event.
func (p *parser) skipStatement(line int) {
	for {
		t := p.peek()
		if t.kind == tEOF {
			return
		}
		if t.line > line && (t.kind == tInt || t.kind == tFloat || t.is("+") || t.is("*") ||
			t.kind == tCommand || t.kind == tCode) {
			return
		}
		p.next()
		line = t.line
	}
}

func (p *parser) number(what string) int64 {
	t := p.peek()
	var v int64
	var err error
	switch t.kind {
	case tInt:
		v, err = strconv.ParseInt(t.text, 10, 64)
	case tHex:
		var u uint64
		u, err = strconv.ParseUint(t.text[2:], 16, 63)
		v = int64(u)
	default:
		p.expected(what)
	}
	if err != nil {
		p.fail(t.line, "number %s out of range", t.text)
	}
	p.next()
	return v
}

func (p *parser) ipinfo() []IPItem {
	open := p.next()
	closer := "]"
	if open.text == "(" {
		closer = ")"
	}
	var items []IPItem
	for !p.accept(closer) {
		t := p.next()
		if t.kind != tWord {
			p.fail(t.line, "expected an ip field (tos, ttl, flowlabel, ecn...), found %s", t)
		}
		it := IPItem{Name: t.text}
		var vals []string
		for {
			v := p.peek()
			if v.is(",") || v.is(closer) {
				break
			}
			if v.kind == tEOF {
				p.expected("'" + closer + "'")
			}
			p.next()
			vals = append(vals, v.text)
		}
		it.Value = strings.Join(vals, " ")
		items = append(items, it)
		if !p.accept(",") && !p.peek().is(closer) {
			p.expected("',' or '" + closer + "'")
		}
	}
	return items
}

func validFlags(s string, letters bool) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("SFRPUEWA01234567", rune(s[i])) || (!letters && !isDigit(s[i])) {
			return false
		}
	}
	return true
}

// flags reads FLAGS: a flag word plus optional '.', '.' alone, or '-';
// the FreeBSD fork allows letters after the dot.
func (p *parser) flags() string {
	t := p.peek()
	switch {
	case t.is("-"):
		p.next()
		return "-"
	case t.kind == tFloat && strings.HasPrefix(t.text, ".") && validFlags(t.text[1:], false) && len(t.text) == 2:
		// ".5": ACK plus AccECN ACE digit.
		p.next()
		return t.text
	case t.is("."):
		p.next()
		f := "."
		if n := p.peek(); n.kind == tWord && validFlags(n.text, true) && !isDigit(n.text[0]) {
			p.next()
			f += n.text
		}
		return f
	case (t.kind == tWord || t.kind == tInt) && validFlags(t.text, true):
		p.next()
		f := t.text
		if n := p.peek(); n.is(".") {
			p.next()
			f += "."
			if n := p.peek(); n.kind == tWord && validFlags(n.text, true) && !isDigit(n.text[0]) {
				p.next()
				f += n.text
			}
		} else if n.kind == tFloat && len(n.text) == 2 && n.text[0] == '.' && validFlags(n.text[1:], false) {
			p.next()
			f += n.text
		}
		return f
	}
	p.expected("TCP flags (S, S., ., P., F., R, R., -, ...)")
	return ""
}

func (p *parser) tcpOptions(pk *Packet) {
	if p.peek().kind == tEllipsis {
		p.next()
		p.expect(">")
		pk.OptionsAny = true
		if pk.Dir == Inbound {
			p.fail(pk.Line, "'<...>' options are allowed only for outbound packets")
		}
		return
	}
	for {
		pk.Options = append(pk.Options, p.tcpOption())
		if p.accept(">") {
			return
		}
		if !p.accept(",") {
			p.expected("',' or '>' in TCP options")
		}
	}
}

func (p *parser) optData() string {
	if t := p.peek(); t.is(",") || t.is(">") {
		return ""
	}
	t := p.next()
	switch t.kind {
	case tInt, tHex, tWord:
		return t.text
	}
	p.fail(t.line, "expected option data, found %s", t)
	return ""
}

func (p *parser) tcpOption() TCPOption {
	t := p.next()
	o := TCPOption{Line: t.line, Kind: t.text}
	if t.kind == tHex || t.kind == tInt {
		o.Kind, o.Data = "raw", t.text
		return o
	}
	if t.kind != tWord {
		p.fail(t.line, "expected a TCP option (mss, nop, eol, wscale, sackOK, sack, TS, ...), found %s", t)
	}
	switch t.text {
	case "nop", "eol", "sackOK":
	case "mss", "wscale":
		o.Value = p.number("a value for " + t.text)
	case "sack":
		for {
			n := p.peek()
			if n.kind != tInt && n.kind != tHex {
				break
			}
			l := p.number("a SACK left edge")
			p.expect(":")
			o.Blocks = append(o.Blocks, SackBlock{Left: l, Right: p.number("a SACK right edge")})
		}
	case "TS":
		if w := p.next(); w.kind != tWord || w.text != "val" {
			p.fail(w.line, "expected 'val' after TS, found %s", w)
		}
		if p.peek().kind == tEllipsis {
			p.next()
			o.TSAny = true
		} else {
			o.TSVal = p.number("a TS value")
		}
		if w := p.next(); w.kind != tWord || w.text != "ecr" {
			p.fail(w.line, "expected 'ecr' in TS option, found %s", w)
		}
		o.TSEcr = p.number("a TS echo reply")
		o.EcrRaw = p.accept("!")
	case "md5", "FO", "FOEXP":
		o.Data = p.optData()
		if t.text == "md5" && o.Data == "" {
			p.expected("md5 digest or 'valid'")
		}
	case "ECN":
		for {
			n := p.peek()
			if n.kind != tWord {
				break
			}
			p.next()
			o.ECN = append(o.ECN, IPItem{Name: n.text, Value: strconv.FormatInt(p.number("an AccECN counter"), 10)})
		}
		if len(o.ECN) == 0 {
			p.expected("AccECN counters (e0b N, ceb N, e1b N)")
		}
	default:
		// Fork generic options: exp-FO, gen-K, exp-XXXX.
		if !p.peek().is("-") {
			p.fail(t.line, "unknown TCP option %q", t.text)
		}
		p.next()
		n := p.next()
		if n.kind != tWord && n.kind != tInt && n.kind != tHex {
			p.fail(n.line, "expected a name after %s-, found %s", t.text, n)
		}
		o.Kind = t.text + "-" + n.text
		o.Data = p.optData()
	}
	return o
}
