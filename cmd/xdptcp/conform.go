package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/xdptcp/xdptcp/tests/conformance/runner"
)

// defaultCorpus is the repository's conformance corpus, relative to the
// module root (where README's commands run).
const defaultCorpus = "tests/conformance/scripts"

// runConform runs packetdrill-language scripts against batchtcp and gVisor's
// TCP on an in-memory link with a virtual clock.
func runConform(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stacks := fs.String("stack", "both", "batchtcp, gvisor or both")
	ips := fs.String("ip", "both", "ipv4, ipv6 or both (a script's own --ip_version wins)")
	mode := fs.String("mode", "relaxed", "matching: relaxed or strict")
	report := fs.String("report", "", "write the side-by-side markdown table to this file")
	jsonOut := fs.String("json", "", "write every result as JSON to this file")
	verbose := fs.Bool("v", false, "print the failure report of every script that did not pass")
	platform := fs.String("platform", "Linux", "platform defined for #ifdef (Linux or FreeBSD)")
	var defines multiFlag
	fs.Var(&defines, "define", "NAME=VALUE for the scripts (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: xdptcp conform [flags] [script.pkt|dir ...] (default %s)\n", defaultCorpus)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg runner.Config
	switch *mode {
	case "relaxed":
	case "strict":
		cfg.Mode = runner.Strict
	default:
		return &usageError{fmt.Sprintf("conform: -mode %q: relaxed or strict", *mode)}
	}
	cfg.Platform = *platform
	cfg.Defines = map[string]string{}
	for _, d := range defines {
		k, v, ok := strings.Cut(d, "=")
		if !ok {
			return &usageError{fmt.Sprintf("conform: -define %q: want NAME=VALUE", d)}
		}
		cfg.Defines[k] = v
	}
	var sts []runner.Stack
	switch *stacks {
	case "both":
		sts = []runner.Stack{runner.BatchTCP, runner.GVisor}
	case "batchtcp", "gvisor":
		sts = []runner.Stack{runner.Stack(*stacks)}
	default:
		return &usageError{fmt.Sprintf("conform: -stack %q: batchtcp, gvisor or both", *stacks)}
	}
	var ipvs []string
	switch *ips {
	case "both":
		ipvs = []string{"ipv4", "ipv6"}
	case "ipv4", "ipv6":
		ipvs = []string{*ips}
	default:
		return &usageError{fmt.Sprintf("conform: -ip %q: ipv4, ipv6 or both", *ips)}
	}
	var cols []runner.Column
	for _, s := range sts {
		for _, ip := range ipvs {
			cols = append(cols, runner.Column{Stack: s, IPVersion: ip, Mode: cfg.Mode})
		}
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{defaultCorpus}
	}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("conform: %v", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		fl, err := runner.Corpus(p)
		if err != nil {
			return fmt.Errorf("conform: %v", err)
		}
		files = append(files, fl...)
	}
	if len(files) == 0 {
		return fmt.Errorf("conform: no .pkt scripts in %s", strings.Join(paths, " "))
	}
	rows := runner.RunCorpus(files, cols, cfg)

	root := ""
	if len(paths) == 1 {
		root = paths[0]
	}
	bad := 0
	for _, r := range rows {
		for j, res := range r.Results {
			if res.Status == runner.Pass || res.Status == runner.NotApplicable {
				continue
			}
			if cols[j].Stack == runner.BatchTCP && res.Status != runner.Unsupported && res.Status != runner.NotApplicable && !xfail(r.File) {
				bad++
			}
			if *verbose {
				fmt.Fprintf(stdout, "%s\n\n", res.Report())
			}
		}
	}
	fmt.Fprintf(stdout, "%d scripts\n", len(rows))
	for j, c := range cols {
		n := runner.Counts(rows, j)
		fmt.Fprintf(stdout, "  %-16s %s: %4d pass %4d fail %4d unsupported %4d parse errors %4d n/a\n",
			c, c.Mode, n[runner.Pass], n[runner.Fail], n[runner.Unsupported], n[runner.ParseError], n[runner.NotApplicable])
	}
	if *report != "" {
		f, err := os.Create(*report)
		if err != nil {
			return fmt.Errorf("conform: %v", err)
		}
		runner.Markdown(f, rows, cols, root)
		if err := f.Close(); err != nil {
			return fmt.Errorf("conform: %v", err)
		}
		fmt.Fprintf(stdout, "table written to %s\n", *report)
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rows, "", " ")
		if err != nil {
			return fmt.Errorf("conform: %v", err)
		}
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("conform: %v", err)
		}
	}
	if bad > 0 {
		return fmt.Errorf("conform: %d batchtcp runs failed (not counting scripts marked %s)", bad, runner.XFailMarker)
	}
	return nil
}

// xfail reports whether a script records a known batchtcp failure.
func xfail(file string) bool {
	b, err := os.ReadFile(file)
	return err == nil && strings.Contains(string(b), runner.XFailMarker)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
