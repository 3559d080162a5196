// Command xdptcp runs xdptcp's user-level TCP stack: a demo of unmodified
// net/http over it (on AF_XDP in a namespace pair against Linux's TCP where
// it can, else on an in-memory link), and an HTTP server on a real
// interface (serve).
//
// Usage:
//
//	xdptcp [subcommand] [flags]
//
// With no subcommand it runs demo. "xdptcp help" lists the subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// command is one subcommand; each lives in its own file.
type command struct {
	name    string
	summary string
	// run runs the subcommand; flag.ErrHelp or a *usageError exit 2.
	run func(args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands; the first is the default.
func commands() []command {
	return []command{
		{"demo", "serve net/http on our stack (AF_XDP in a namespace pair where possible) and fetch from Linux, with figures", runDemo},
		{"serve", "serve HTTP (status page, /bytes?n=N) over AF_XDP on an interface: -iface IF -addr A/P [-http :80]", runServe},
		{"conform", "run packetdrill-language scripts against batchtcp and gVisor's TCP: -report FILE writes the side-by-side table", runConform},
		{"bench", "benchmark batchtcp vs gVisor's TCP in process (short, bulk, rr, allocs, scaling): medians, ratios, -json FILE, -plot DIR", runBench},
	}
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: xdptcp [subcommand] [flags]\n\nsubcommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n\nwith no subcommand, xdptcp runs %s; \"xdptcp SUBCOMMAND -h\" shows its flags\n",
		"help", "show this list", commands()[0].name)
}

// run dispatches args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	cmd := cmds[0]
	if len(args) > 0 && (args[0] == "" || args[0][0] != '-') {
		name := args[0]
		args = args[1:]
		if name == "help" || name == "-h" {
			usage(stdout)
			return 0
		}
		found := false
		for _, c := range cmds {
			if c.name == name {
				cmd, found = c, true
			}
		}
		if !found {
			fmt.Fprintf(stderr, "xdptcp: unknown subcommand %q\n", name)
			usage(stderr)
			return 2
		}
	}
	err := cmd.run(args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 2
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintf(stderr, "xdptcp %s: %v\n", cmd.name, err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "xdptcp %s: FAIL: %v\n", cmd.name, err)
		return 1
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// newFlagSet makes a subcommand's flag set that reports errors to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("xdptcp "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning a parse failure into a *usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{} // the flag package has printed it
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	return nil
}
