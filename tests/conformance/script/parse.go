package script

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Config carries the command-line context of a parse.
type Config struct {
	// Defines are `--define=S=v` / `-D S=v` from the command line; they
	// override defines given in the script.
	Defines map[string]string
	// Platform, if set ("Linux" or "FreeBSD"), is defined for #ifdef.
	Platform string
}

// Parse parses a whole script with no command-line defines.
func Parse(file string, src []byte) (*Script, error) {
	return ParseConfig(file, src, Config{})
}

// ParseConfig parses a whole script.
func ParseConfig(file string, src []byte, cfg Config) (s *Script, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			s, err = nil, e
		}
	}()
	p := &parser{
		lx:  &lexer{file: file, src: string(src), line: 1, defines: map[string]string{}, platform: cfg.Platform},
		s:   &Script{File: file},
		cmd: cfg.Defines,
	}
	for k, v := range cfg.Defines {
		p.lx.defines[k] = v
	}
	p.script()
	return p.s, nil
}

type parser struct {
	lx    *lexer
	s     *Script
	cmd   map[string]string
	depth int
}

func (p *parser) peek() token { return p.lx.peek() }
func (p *parser) next() token { return p.lx.next() }

func (p *parser) fail(line int, format string, args ...any) {
	p.lx.fail(line, format, args...)
}

func (p *parser) expected(what string) {
	t := p.peek()
	p.fail(t.line, "expected %s, found %s", what, t)
}

func (p *parser) accept(punct string) bool {
	if p.peek().is(punct) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(punct string) token {
	if !p.peek().is(punct) {
		p.expected("'" + punct + "'")
	}
	return p.next()
}

// unsupported records a note and returns the reason.
func (p *parser) unsupported(line int, reason string) string {
	p.s.Unsupported = append(p.s.Unsupported, Note{Line: line, Reason: reason})
	return reason
}

func (p *parser) script() {
	for p.peek().kind == tOption {
		p.s.Options = append(p.s.Options, p.option(p.next()))
	}
	if t := p.peek(); t.kind == tCommand {
		p.next()
		p.s.Init = p.command(t)
	}
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			if len(p.s.Events) == 0 {
				p.fail(t.line, "expected at least one event, found end of script")
			}
			return
		case tCommand:
			p.next()
			if len(p.s.Events) == 0 {
				p.fail(t.line, "expected an event time before command (only one untimed init command is allowed)")
			}
			p.s.Cleanup = p.command(t)
			if e := p.peek(); e.kind != tEOF {
				p.fail(e.line, "expected end of script after cleanup command, found %s", e)
			}
			return
		case tOption:
			p.fail(t.line, "expected an event, found %s (options must come first)", t)
		}
		p.s.Events = append(p.s.Events, p.event())
	}
}

// Option typing tables.
var (
	intOptions = map[string]bool{"bind_port": true, "connect_port": true, "tolerance_usecs": true,
		"tcp_ts_tick_usecs": true, "mtu": true, "mss": true}
	boolOptions   = map[string]bool{"tcp_ts_ecr_scaled": true, "strict_segments": true, "no_cleanup": true}
	stringOptions = map[string]bool{"tcp_md5_secret": true, "tun_dev": true, "persistent_tun_dev": true,
		"udp_encapsulation": true}
	unsupportedOptions = map[string]string{
		"udp_encapsulation":  "UDP encapsulation is not supported",
		"tun_dev":            "tun devices are not used by the runner",
		"persistent_tun_dev": "tun devices are not used by the runner",
	}
)

func (p *parser) option(t token) Option {
	o := Option{Line: t.line, Name: t.text, Raw: t.val, HasValue: t.hasVal}
	bad := func(what string) {
		p.fail(t.line, "option --%s: expected %s, found %q", o.Name, what, o.Raw)
	}
	needValue := func() {
		if !o.HasValue {
			p.fail(t.line, "option --%s: expected =value", o.Name)
		}
	}
	switch name := o.Name; {
	case name == "ip_version":
		needValue()
		switch o.Raw {
		case "ipv4", "ipv6":
			o.Value = o.Raw
		case "ipv4-mapped-ipv6":
			o.Value = o.Raw
			o.Unsupported = p.unsupported(t.line, "ip_version ipv4-mapped-ipv6 is not supported")
		default:
			bad("ipv4, ipv6 or ipv4-mapped-ipv6")
		}
	case name == "local_ip" || name == "remote_ip":
		needValue()
		a, err := netip.ParseAddr(o.Raw)
		if err != nil {
			bad("an IP address")
		}
		o.Value = a.String()
	case intOptions[name]:
		needValue()
		v, err := strconv.ParseInt(o.Raw, 10, 64)
		if err != nil || v < 0 {
			bad("a non-negative integer")
		}
		o.Value = v
	case name == "tolerance_percent":
		needValue()
		v, err := strconv.ParseFloat(o.Raw, 64)
		if err != nil || v < 0 || v != v {
			bad("a non-negative number")
		}
		o.Value = v
	case boolOptions[name]:
		if o.HasValue {
			bad("no value")
		}
		o.Value = true
	case name == "non_fatal":
		needValue()
		for _, w := range strings.Split(o.Raw, ",") {
			if w != "packet" && w != "syscall" {
				bad("packet or syscall")
			}
		}
		o.Value = o.Raw
	case name == "define" || name == "D":
		needValue()
		k, v, ok := strings.Cut(o.Raw, "=")
		if !ok || k == "" {
			bad("SYMBOL=value")
		}
		o.Value = o.Raw
		if _, over := p.cmd[k]; !over {
			p.lx.defines[k] = v
		}
	case stringOptions[name]:
		needValue()
		o.Value = o.Raw
	default:
		o.Unsupported = p.unsupported(t.line, "unknown option --"+name)
	}
	if r, ok := unsupportedOptions[o.Name]; ok {
		o.Unsupported = p.unsupported(t.line, r)
	}
	return o
}

func (p *parser) event() Event {
	tm, line := p.time()
	e := Event{Line: line, Time: tm}
	t := p.peek()
	switch {
	case t.is("<") || t.is(">"):
		e.Kind, e.Packet = EventPacket, p.packet()
	case t.kind == tWord && p.lx.peekN(1).is("("):
		e.Kind, e.Call = EventCall, p.call()
	case t.kind == tCommand:
		p.next()
		e.Kind, e.Command = EventCommand, p.command(t)
	case t.kind == tCode:
		p.next()
		// The runner evaluates simple TCP_INFO assertions and reports
		// anything else as unsupported when it gets there.
		e.Kind, e.Code = EventCode, &Code{Line: t.line, Text: t.text}
	default:
		p.expected("a packet, system call, command or code block")
	}
	if (tm.Kind == TimeAny || tm.Range) && (e.Kind != EventPacket || e.Packet.Dir != Outbound) {
		p.fail(line, "time '*' and ranges a~b are allowed only for outbound packets")
	}
	if tm.Blocking && e.Kind != EventCall {
		p.fail(line, "blocking time T...E is allowed only for system calls")
	}
	return e
}

func (p *parser) time() (Time, int) {
	t := p.peek()
	if p.accept("*") {
		return Time{Kind: TimeAny}, t.line
	}
	tm := Time{Kind: TimeAbsolute}
	if p.accept("+") {
		tm.Kind = TimeRelative
	}
	tm.Usecs = p.seconds("an event time")
	if p.accept("~") {
		tm.Range = true
		tm.EndRelative = p.accept("+")
		if tm.EndRelative != (tm.Kind == TimeRelative) {
			p.fail(t.line, "time range must be both absolute (A~B) or both relative (+A~+B)")
		}
		tm.End = p.seconds("the end of the time range")
		if tm.End < tm.Usecs {
			p.fail(t.line, "time range ends before it starts")
		}
	} else if p.peek().kind == tEllipsis {
		p.next()
		p.accept("+")
		tm.Blocking = true
		tm.BlockEnd = p.seconds("the end time of a blocking call")
		if tm.BlockEnd < tm.Usecs {
			p.fail(t.line, "blocking call ends before it starts")
		}
	}
	return tm, t.line
}

// seconds reads a non-negative number of seconds as microseconds.
func (p *parser) seconds(what string) int64 {
	t := p.peek()
	if t.kind != tInt && t.kind != tFloat || strings.HasPrefix(t.text, "-") {
		p.expected(what)
	}
	p.next()
	ip, frac, _ := strings.Cut(t.text, ".")
	if len(ip) > 9 {
		p.fail(t.line, "time %s out of range", t.text)
	}
	var secs int64
	if ip != "" {
		secs, _ = strconv.ParseInt(ip, 10, 64)
	}
	frac = (frac + "000000")[:6]
	us, _ := strconv.ParseInt(frac, 10, 64)
	return secs*1e6 + us
}

func (p *parser) command(t token) *Command {
	c := &Command{Line: t.line, Text: t.text}
	if ss, ok := parseSysctls(t.text); ok {
		c.Sysctls = ss
	} else {
		c.Unsupported = p.unsupported(t.line, fmt.Sprintf("command not supported (only sysctl -w|-q name=value): %s",
			strings.Join(strings.Fields(t.text), " ")))
	}
	return c
}

// parseSysctls accepts commands made only of `sysctl -w|-q name=value...`
// invocations separated by newlines, ';' or '&&'.
func parseSysctls(text string) ([]Sysctl, bool) {
	words, ok := shellWords(text)
	if !ok {
		return nil, false
	}
	var out []Sysctl
	for len(words) > 0 {
		if words[0] != "sysctl" {
			return nil, false
		}
		words = words[1:]
		n := 0
		for len(words) > 0 && words[0] != ";" && words[0] != "&&" {
			w := words[0]
			words = words[1:]
			if strings.HasPrefix(w, "-") {
				if strings.Trim(w[1:], "wq") != "" || len(w) == 1 {
					return nil, false
				}
				continue
			}
			k, v, ok := strings.Cut(w, "=")
			if !ok || k == "" {
				return nil, false
			}
			out = append(out, Sysctl{Name: k, Value: v})
			n++
		}
		if n == 0 {
			return nil, false
		}
		if len(words) > 0 {
			words = words[1:]
		}
	}
	return out, len(out) > 0
}

// shellWords splits a command into words, honouring quotes and treating
// newlines, ';' and '&&' as separators.
func shellWords(s string) ([]string, bool) {
	var out []string
	var cur strings.Builder
	in := false
	flush := func() {
		if in {
			out = append(out, cur.String())
			cur.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		case c == '\n' || c == ';':
			flush()
			out = append(out, ";")
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			flush()
			out = append(out, "&&")
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, false
			}
			cur.WriteString(s[i+1 : i+1+j])
			in = true
			i += j + 1
		case strings.IndexByte("|&<>$(){}*?`", c) >= 0:
			return nil, false
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	flush()
	// Drop empty separators.
	var clean []string
	for _, w := range out {
		if w == ";" && (len(clean) == 0 || clean[len(clean)-1] == ";" || clean[len(clean)-1] == "&&") {
			continue
		}
		clean = append(clean, w)
	}
	for len(clean) > 0 && (clean[len(clean)-1] == ";" || clean[len(clean)-1] == "&&") {
		clean = clean[:len(clean)-1]
	}
	return clean, true
}
