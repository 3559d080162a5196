// Package script is the front end of the packetdrill-language conformance
// runner: a lexer and parser that turn a whole script into an AST.
//
// The language is described in shared/PACKETDRILL.md. Features the runner
// cannot honour are parsed and marked Unsupported (with a reason) rather than
// failing the parse; malformed scripts yield an *Error carrying file:line.
package script

import "fmt"

// Error is a parse error with its position.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Script is a parsed packetdrill script.
type Script struct {
	File    string
	Options []Option
	// Init is the untimed command before the first event, if any.
	Init *Command
	// Events are the timed events in script order.
	Events []Event
	// Cleanup is the untimed command after the last event, if any.
	Cleanup *Command
	// Unsupported lists every construct marked unsupported, in order.
	Unsupported []Note
}

// Note records an unsupported construct.
type Note struct {
	Line   int
	Reason string
}

// Option is a `--name[=value]` line.
type Option struct {
	Line     int
	Name     string
	Raw      string // value text as written (up to a blank)
	HasValue bool
	// Value is the typed value for known options: int64, float64, bool or
	// string (for ip_version, addresses, non_fatal, define, ...). Nil for
	// unknown options.
	Value       any
	Unsupported string
}

// TimeKind says how an event time is anchored.
type TimeKind int

// Time kinds.
const (
	TimeAbsolute TimeKind = iota // T
	TimeRelative                 // +T
	TimeAny                      // *
)

// Time is an event time. All values are microseconds.
type Time struct {
	Kind  TimeKind
	Usecs int64
	// Range is set for A~B windows; End is B and EndRelative says whether
	// it was written with '+'.
	Range       bool
	End         int64
	EndRelative bool
	// Blocking is set for T...E calls; BlockEnd is E (on T's base).
	Blocking bool
	BlockEnd int64
}

// EventKind says what an event does.
type EventKind int

// Event kinds.
const (
	EventPacket EventKind = iota
	EventCall
	EventCommand
	EventCode
)

// Event is one timed statement; exactly one of Packet, Call, Command, Code
// is set, according to Kind.
type Event struct {
	Line    int
	Time    Time
	Kind    EventKind
	Packet  *Packet
	Call    *Call
	Command *Command
	Code    *Code
}

// Direction of a packet.
type Direction int

// Directions.
const (
	Inbound  Direction = iota // '<', injected into the stack
	Outbound                  // '>', the stack must send it
)

// Packet is a TCP segment event.
type Packet struct {
	Line   int
	Dir    Direction
	IPInfo []IPItem // from [..] or (..) after the direction
	// Ports is set when "sport>dport" was written.
	HasPorts   bool
	SrcPort    int64
	DstPort    int64
	Flags      string // as written, e.g. "S.", ".", "P.", "-"
	Start, End int64
	Len        int64
	SeqAny     bool // fork `...(len)`: sequence unchecked
	SeqRaw     bool // fork `s:e(l)!`: raw numbers
	HasAck     bool
	Ack        int64
	HasWin     bool
	Win        int64
	HasUrg     bool
	Urg        int64
	HasOptions bool
	// OptionsAny is `<...>` (outbound only: options unchecked).
	OptionsAny  bool
	Options     []TCPOption
	Unsupported string
}

// IPItem is one item of an ipinfo list, e.g. {tos 0x1} or {ect0}.
type IPItem struct {
	Name  string
	Value string
}

// TCPOption is one entry of a `<...>` option list.
type TCPOption struct {
	Line int
	// Kind: nop, eol, mss, wscale, sackOK, sack, TS, md5, FO, FOEXP, ECN,
	// or a fork generic name (exp-FO, gen-K, exp-XXXX), or "raw".
	Kind   string
	Value  int64       // mss, wscale
	Blocks []SackBlock // sack
	TSVal  int64
	TSAny  bool // fork `TS val ...`
	TSEcr  int64
	EcrRaw bool   // fork `ecr N!`
	Data   string // md5/FO/FOEXP/raw/generic data as written ("" if bare)
	// ECN holds AccECN counters in order, e.g. {e0b 1} {ceb 2}.
	ECN []IPItem
}

// SackBlock is one SACK block L:R.
type SackBlock struct{ Left, Right int64 }

// Call is a system call event.
type Call struct {
	Line int
	Name string
	Args []Expr
	// Result is the expected return value (number or symbol).
	Result Expr
	// Errno is the expected errno symbol, "" if not written.
	Errno string
	// Note is the free parenthesised text after the result, if any.
	Note        string
	HasNote     bool
	Unsupported string
}

// ExprKind classifies an expression.
type ExprKind int

// Expression kinds.
const (
	ExprInt      ExprKind = iota // Int (Hex says whether written in hex)
	ExprSymbol                   // Text: a symbol such as AF_INET or NULL
	ExprString                   // Text: decoded string
	ExprEllipsis                 // ...
	ExprOr                       // Elems: A|B|C
	ExprList                     // Elems: [a, b]
	ExprStruct                   // Fields: {name=value, ...}
	ExprFunc                     // Text(Elems): htons(8080), inet_addr("1.2.3.4")
)

// Expr is a system call argument or result.
type Expr struct {
	Line   int
	Kind   ExprKind
	Int    int64
	Hex    bool
	Text   string
	Elems  []Expr
	Fields []Field
}

// Field is a struct member. Name is "" for a positional member (iovec
// `{..., 10}`). Arg is set for `msg_iov(1)=...` style names.
type Field struct {
	Name  string
	Arg   *Expr
	Value Expr
}

// Command is a backquoted shell command.
type Command struct {
	Line int
	Text string
	// Sysctls holds the settings when the command consists only of
	// `sysctl -w|-q name=value` invocations.
	Sysctls     []Sysctl
	Unsupported string
}

// Sysctl is one name=value setting.
type Sysctl struct {
	Name  string
	Value string
}

// Code is a %{ python }% block.
type Code struct {
	Line        int
	Text        string
	Unsupported string
}
