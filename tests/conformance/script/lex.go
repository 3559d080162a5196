package script

import (
	"fmt"
	"strconv"
	"strings"
)

type tokKind int

const (
	tEOF tokKind = iota
	tInt
	tHex
	tFloat
	tWord
	tString
	tCommand
	tCode
	tOption
	tIP
	tEllipsis
	tPunct
)

type token struct {
	kind   tokKind
	text   string // raw text; decoded for strings; body for commands/code; name for options
	val    string // option value
	hasVal bool
	line   int
	end    int // byte offset just after the token
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of script"
	case tString:
		return strconv.Quote(t.text)
	case tCommand:
		return "command"
	case tCode:
		return "code block"
	case tOption:
		return "option --" + t.text
	}
	return "'" + t.text + "'"
}

func (t token) is(p string) bool { return t.kind == tPunct && t.text == p }

type lexer struct {
	file     string
	src      string
	pos      int
	line     int
	defines  map[string]string
	platform string
	inIfdef  bool
	buf      []token
}

func (l *lexer) fail(line int, format string, args ...any) {
	panic(&Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// adv moves forward n bytes, counting newlines.
func (l *lexer) adv(n int) {
	if l.pos+n > len(l.src) {
		n = len(l.src) - l.pos
	}
	l.line += strings.Count(l.src[l.pos:l.pos+n], "\n")
	l.pos += n
}

func (l *lexer) peekN(i int) token {
	for len(l.buf) <= i {
		l.buf = append(l.buf, l.lex())
	}
	return l.buf[i]
}

func (l *lexer) peek() token { return l.peekN(0) }

func (l *lexer) next() token {
	t := l.peek()
	l.buf = l.buf[1:]
	return t
}

// rawParen returns the text up to the ')' matching the '(' token at the
// head of the buffer, which must be the only buffered token.
func (l *lexer) rawParen() string {
	open := l.buf[0]
	l.buf = nil
	l.pos, l.line = open.end, open.line
	depth := 1
	for i := l.pos; i < len(l.src); i++ {
		switch l.src[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				text := l.src[l.pos:i]
				l.adv(i + 1 - l.pos)
				return strings.TrimSpace(text)
			}
		}
	}
	l.fail(open.line, "unterminated '(' note")
	return ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
func isWord(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
}

func (l *lexer) defined(name string) bool {
	if _, ok := l.defines[name]; ok {
		return true
	}
	return l.platform != "" && name == l.platform
}

// skip passes over blanks, comments and #ifdef/#endif directives.
func (l *lexer) skip() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		rest := l.src[l.pos:]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.adv(1)
		case strings.HasPrefix(rest, "//"):
			n := strings.IndexByte(rest, '\n')
			if n < 0 {
				n = len(rest)
			}
			l.adv(n)
		case strings.HasPrefix(rest, "/*"):
			n := strings.Index(rest[2:], "*/")
			if n < 0 {
				l.fail(l.line, "unterminated /* comment")
			}
			l.adv(n + 4)
		case strings.HasPrefix(rest, "#ifdef") && (len(rest) == 6 || !isWord(rest[6])):
			line := l.line
			if l.inIfdef {
				l.fail(line, "nested #ifdef is not allowed")
			}
			l.adv(6)
			for l.pos < len(l.src) && (l.src[l.pos] == ' ' || l.src[l.pos] == '\t') {
				l.adv(1)
			}
			start := l.pos
			for l.pos < len(l.src) && isWord(l.src[l.pos]) {
				l.pos++
			}
			name := l.src[start:l.pos]
			if name == "" {
				l.fail(line, "expected a name after #ifdef")
			}
			if l.defined(name) {
				l.inIfdef = true
				continue
			}
			n := strings.Index(l.src[l.pos:], "#endif")
			if n < 0 {
				l.fail(line, "unterminated #ifdef %s: expected #endif", name)
			}
			l.adv(n + 6)
		case strings.HasPrefix(rest, "#endif") && (len(rest) == 6 || !isWord(rest[6])):
			if !l.inIfdef {
				l.fail(l.line, "#endif without #ifdef")
			}
			l.inIfdef = false
			l.adv(6)
		default:
			return
		}
	}
}

func (l *lexer) lex() token {
	l.skip()
	line := l.line
	if l.pos >= len(l.src) {
		if l.inIfdef {
			l.fail(line, "unterminated #ifdef: expected #endif")
		}
		return token{kind: tEOF, line: line, end: l.pos}
	}
	rest := l.src[l.pos:]
	c := rest[0]
	mk := func(k tokKind, n int) token {
		t := token{kind: k, text: rest[:n], line: line}
		l.adv(n)
		t.end = l.pos
		return t
	}
	switch {
	case strings.HasPrefix(rest, "..."):
		return mk(tEllipsis, 3)
	case isWord(c) || (c == '-' && len(rest) > 1 && (isDigit(rest[1]) || (rest[1] == '.' && len(rest) > 2 && isDigit(rest[2])))) ||
		(c == '.' && len(rest) > 1 && isDigit(rest[1])):
		k, n := lexNumberOrWord(rest)
		t := mk(k, n)
		if k == tWord {
			if v, ok := l.defines[t.text]; ok {
				return substitute(t, v)
			}
		}
		return t
	case c == '"':
		return l.lexString(line)
	case c == '`':
		n := strings.IndexByte(rest[1:], '`')
		if n < 0 {
			l.fail(line, "unterminated backquoted command")
		}
		t := token{kind: tCommand, text: rest[1 : n+1], line: line}
		l.adv(n + 2)
		t.end = l.pos
		return t
	case strings.HasPrefix(rest, "%{"):
		n := strings.Index(rest, "}%")
		if n < 0 {
			l.fail(line, "unterminated %%{ code block: expected }%%")
		}
		t := token{kind: tCode, text: strings.TrimSpace(rest[2:n]), line: line}
		l.adv(n + 2)
		t.end = l.pos
		return t
	case strings.HasPrefix(rest, "--") && len(rest) > 2 && isWord(rest[2]):
		n := 2
		for n < len(rest) && (isWord(rest[n]) || rest[n] == '-') {
			n++
		}
		t := token{kind: tOption, text: rest[2:n], line: line}
		if n < len(rest) && rest[n] == '=' {
			v := n + 1
			for v < len(rest) && !strings.ContainsRune(" \t\r\n", rune(rest[v])) {
				v++
			}
			t.val, t.hasVal = rest[n+1:v], true
			n = v
		}
		l.adv(n)
		t.end = l.pos
		return t
	case strings.ContainsRune("<>.,:()[]{}=|+*~-!/", rune(c)):
		return mk(tPunct, 1)
	}
	l.fail(line, "unexpected character %q", c)
	return token{}
}

// lexNumberOrWord applies longest match among integer, float, hex, IPv4
// address and word; on ties address, hex, float and integer beat words.
func lexNumberOrWord(s string) (tokKind, int) {
	neg := s[0] == '-'
	q := 0
	if neg {
		q = 1
	}
	digits := func(i int) int {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return j - i
	}
	d := digits(q)
	best, kind := 0, tEOF
	try := func(k tokKind, n int) {
		if n > best {
			best, kind = n, k
		}
	}
	if d > 0 {
		try(tInt, q+d)
	}
	if e := q + d; e+1 < len(s) && s[e] == '.' && isDigit(s[e+1]) {
		f := e + 1 + digits(e+1)
		if !neg && d > 0 { // IPv4 a.b.c.d
			i, parts := 0, 0
			for parts < 4 {
				n := digits(i)
				if n == 0 {
					break
				}
				i += n
				parts++
				if parts < 4 {
					if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
						i++
					} else {
						break
					}
				}
			}
			if parts == 4 {
				try(tIP, i)
			}
		}
		try(tFloat, f)
	}
	if !neg && len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]) {
		n := 2
		for n < len(s) && isHex(s[n]) {
			n++
		}
		try(tHex, n)
	}
	if !neg {
		n := 0
		for n < len(s) && isWord(s[n]) {
			n++
		}
		try(tWord, n)
	}
	return kind, best
}

// substitute replaces a defined word by its value.
func substitute(t token, v string) token {
	sub := &lexer{file: "define", src: v, line: t.line}
	out := token{kind: tWord, text: v, line: t.line, end: t.end}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(*Error); !ok {
					panic(r)
				}
			}
		}()
		nt := sub.lex()
		sub.skip()
		if nt.kind != tEOF && sub.pos == len(v) {
			switch nt.kind {
			case tInt, tHex, tFloat, tString, tCommand, tWord:
				out.kind, out.text = nt.kind, nt.text
			}
		}
	}()
	return out
}

func (l *lexer) lexString(line int) token {
	var b strings.Builder
	i := 1
	s := l.src[l.pos:]
	for {
		if i >= len(s) {
			l.fail(line, "unterminated string")
		}
		c := s[i]
		if c == '"' {
			i++
			break
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			l.fail(line, "unterminated string")
		}
		e := s[i+1]
		i += 2
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'x':
			j := i
			for j < len(s) && j < i+2 && isHex(s[j]) {
				j++
			}
			if j == i {
				l.fail(line, "bad \\x escape in string")
			}
			v, _ := strconv.ParseUint(s[i:j], 16, 8)
			b.WriteByte(byte(v))
			i = j
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i - 1
			for j < len(s) && j < i+2 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i-1:j], 8, 16)
			b.WriteByte(byte(v))
			i = j
		default:
			b.WriteByte(e)
		}
	}
	t := token{kind: tString, text: b.String(), line: line}
	l.adv(i)
	t.end = l.pos
	return t
}
