package script

import "strconv"

const maxDepth = 64

var knownCalls = map[string]bool{
	"socket": true, "bind": true, "listen": true, "accept": true, "connect": true,
	"read": true, "write": true, "recv": true, "send": true, "sendto": true, "recvfrom": true,
	"readv": true, "writev": true, "recvmsg": true, "sendmsg": true, "close": true,
	"shutdown": true, "fcntl": true, "getsockopt": true, "setsockopt": true, "ioctl": true,
	"poll": true, "epoll_create": true, "epoll_ctl": true, "epoll_wait": true,
	"getsockname": true, "getpeername": true, "accept4": true,
}

var unsupportedCalls = map[string]bool{
	"sendfile": true, "splice": true, "pipe": true, "open": true, "cap_set": true,
}

func (p *parser) call() *Call {
	n := p.next()
	c := &Call{Line: n.line, Name: n.text}
	p.expect("(")
	c.Args = p.exprList(")")
	p.expect("=")
	c.Result = p.result()
	if t := p.peek(); t.kind == tWord {
		p.next()
		c.Errno = t.text
	}
	if p.peek().is("(") {
		c.Note, c.HasNote = p.lx.rawParen(), true
	}
	switch {
	case unsupportedCalls[c.Name]:
		c.Unsupported = p.unsupported(c.Line, "system call "+c.Name+" is not supported")
	case !knownCalls[c.Name]:
		c.Unsupported = p.unsupported(c.Line, "unknown system call "+c.Name)
	}
	return c
}

func (p *parser) result() Expr {
	t := p.peek()
	switch t.kind {
	case tInt, tHex:
		return p.primary()
	case tWord:
		p.next()
		return Expr{Line: t.line, Kind: ExprSymbol, Text: t.text}
	}
	p.expected("a return value")
	return Expr{}
}

// exprList reads comma-separated expressions up to and including closer.
func (p *parser) exprList(closer string) []Expr {
	var out []Expr
	if p.accept(closer) {
		return out
	}
	for {
		out = append(out, p.expr())
		if p.accept(closer) {
			return out
		}
		if !p.accept(",") {
			p.expected("',' or '" + closer + "'")
		}
	}
}

func (p *parser) expr() Expr {
	e := p.primary()
	if !p.peek().is("|") {
		return e
	}
	or := Expr{Line: e.Line, Kind: ExprOr, Elems: []Expr{e}}
	for p.accept("|") {
		or.Elems = append(or.Elems, p.primary())
	}
	return or
}

func (p *parser) primary() Expr {
	t := p.peek()
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.fail(t.line, "arguments nested too deeply")
	}
	e := Expr{Line: t.line}
	switch {
	case t.kind == tInt:
		p.next()
		v, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			p.fail(t.line, "number %s out of range", t.text)
		}
		e.Kind, e.Int = ExprInt, v
	case t.kind == tHex:
		e.Kind, e.Int, e.Hex = ExprInt, p.number("a number"), true
	case t.kind == tString:
		e.Kind = ExprString
		for p.peek().kind == tString {
			e.Text += p.next().text
		}
	case t.kind == tEllipsis:
		p.next()
		e.Kind = ExprEllipsis
	case t.kind == tWord:
		p.next()
		if p.accept("(") {
			e.Kind, e.Text, e.Elems = ExprFunc, t.text, p.exprList(")")
		} else {
			e.Kind, e.Text = ExprSymbol, t.text
		}
	case t.is("["):
		p.next()
		e.Kind, e.Elems = ExprList, p.exprList("]")
	case t.is("{"):
		p.next()
		e.Kind, e.Fields = ExprStruct, p.fields()
	default:
		p.expected("an argument (number, symbol, string, '...', [..] or {..})")
	}
	return e
}

// fields reads struct members up to and including '}'.
func (p *parser) fields() []Field {
	var out []Field
	if p.accept("}") {
		return out
	}
	for {
		out = append(out, p.field())
		if p.accept("}") {
			return out
		}
		if !p.accept(",") {
			p.expected("',' or '}'")
		}
	}
}

func (p *parser) field() Field {
	t := p.peek()
	if t.kind == tWord {
		n1 := p.lx.peekN(1)
		if n1.is("=") {
			p.next()
			p.next()
			return Field{Name: t.text, Value: p.expr()}
		}
		if n1.is("(") {
			// name(arg)=value, or a positional function value.
			p.next()
			p.next()
			args := p.exprList(")")
			if p.accept("=") {
				if len(args) != 1 {
					p.fail(t.line, "expected one argument in %s(...)=", t.text)
				}
				return Field{Name: t.text, Arg: &args[0], Value: p.expr()}
			}
			e := Expr{Line: t.line, Kind: ExprFunc, Text: t.text, Elems: args}
			if p.peek().is("|") {
				or := Expr{Line: t.line, Kind: ExprOr, Elems: []Expr{e}}
				for p.accept("|") {
					or.Elems = append(or.Elems, p.primary())
				}
				e = or
			}
			return Field{Value: e}
		}
	}
	return Field{Value: p.expr()}
}
