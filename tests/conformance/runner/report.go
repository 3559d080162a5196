package runner

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Column is one configuration of a corpus run.
type Column struct {
	Stack     Stack
	IPVersion string
	Mode      Mode
}

func (c Column) String() string { return fmt.Sprintf("%s %s", c.Stack, c.IPVersion) }

// Row is one script's results, one per column.
type Row struct {
	File    string
	Rule    string // the script's first comment line: which rule it checks
	Results []*Result
	// Notes are the script's "// gvisor: ..." comment lines: why gVisor's
	// TCP does not pass it.
	Notes []string
}

// NotApplicable marks a column whose IP version the script does not run in
// (it pins the other one).
const NotApplicable Status = "n/a"

// StrictMarker in a script comment asks for strict matching against batchtcp:
// the script is written for batchtcp's defaults.
const StrictMarker = "@strict"

// XFailMarker in a script comment records a known batchtcp failure; the
// comment names the issue it belongs to. The corpus test fails if such a
// script starts to pass.
const XFailMarker = "@xfail"

// Pinned reports whether a script fixes its IP version itself.
func Pinned(src []byte) bool { return pinnedVersion(src) != "" }

// RunCorpus runs every file in every column, in parallel, and returns the
// rows sorted by file. A column whose IP version a script pins is run with
// the script's version and marked so in the result.
func RunCorpus(files []string, cols []Column, base Config) []Row {
	rows := make([]Row, len(files))
	type job struct{ i, j int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	srcs := make([][]byte, len(files))
	for i, f := range files {
		src, _ := os.ReadFile(f)
		srcs[i] = src
		rows[i] = Row{File: f, Rule: Rule(src), Notes: Notes(src, "gvisor:"), Results: make([]*Result, len(cols))}
	}
	workers := max(4, 2*runtime.GOMAXPROCS(0))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for jb := range jobs {
				c := base
				col := cols[jb.j]
				c.Stack, c.IPVersion, c.Mode = col.Stack, col.IPVersion, col.Mode
				if srcs[jb.i] == nil {
					rows[jb.i].Results[jb.j] = &Result{File: files[jb.i], Stack: c.Stack, Status: ParseError, Msg: "unreadable"}
					continue
				}
				if pin := pinnedVersion(srcs[jb.i]); pin != "" && pin != col.IPVersion {
					rows[jb.i].Results[jb.j] = &Result{File: files[jb.i], Stack: c.Stack, Mode: c.Mode, IPVersion: col.IPVersion,
						Status: NotApplicable, Msg: "the script pins --ip_version=" + pin}
					continue
				}
				rows[jb.i].Results[jb.j] = RunSource(files[jb.i], srcs[jb.i], c)
			}
		}()
	}
	for i := range files {
		for j := range cols {
			jobs <- job{i, j}
		}
	}
	close(jobs)
	wg.Wait()
	sort.Slice(rows, func(a, b int) bool { return rows[a].File < rows[b].File })
	return rows
}

// pinnedVersion returns the IP version a script's option line fixes.
func pinnedVersion(src []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(l, "--ip_version="); ok && (v == "ipv4" || v == "ipv6") {
			return v
		}
	}
	return ""
}

// Notes returns the text of the script's comment lines that start with
// prefix (e.g. "// gvisor: ...").
func Notes(src []byte, prefix string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "//") {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "//"))
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(l, prefix)))
		}
	}
	return out
}

// Rule returns a script's first comment line (without the slashes).
func Rule(src []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "//") {
			return strings.TrimSpace(strings.TrimPrefix(l, "//"))
		}
		if l != "" && !strings.HasPrefix(l, "--") {
			return ""
		}
	}
	return ""
}

// Counts tallies the statuses of one column.
func Counts(rows []Row, j int) map[Status]int {
	m := map[Status]int{}
	for _, r := range rows {
		m[r.Results[j].Status]++
	}
	return m
}

// Markdown writes the side-by-side table: counts per column, then one row
// per script, then the details of every script that did not pass
// everywhere.
func Markdown(w io.Writer, rows []Row, cols []Column, root string) {
	fmt.Fprintf(w, "| configuration | pass | fail | unsupported | parse error | n/a (other IP version) |\n|---|---|---|---|---|---|\n")
	for j, c := range cols {
		n := Counts(rows, j)
		fmt.Fprintf(w, "| %s (%s) | %d | %d | %d | %d | %d |\n", c, c.Mode, n[Pass], n[Fail], n[Unsupported], n[ParseError], n[NotApplicable])
	}
	fmt.Fprintf(w, "\n| script | rule |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c)
	}
	fmt.Fprintf(w, "\n|---|---|")
	for range cols {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |", rel(root, r.File), strings.ReplaceAll(r.Rule, "|", "\\|"))
		for _, res := range r.Results {
			fmt.Fprintf(w, " %s |", mark(res.Status))
		}
		fmt.Fprintln(w)
	}
	var diff []Row
	for _, r := range rows {
		for _, res := range r.Results {
			if res.Status != Pass && res.Status != NotApplicable {
				diff = append(diff, r)
				break
			}
		}
	}
	if len(diff) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Where a configuration did not pass\n\n")
	for _, r := range diff {
		fmt.Fprintf(w, "- **%s**", rel(root, r.File))
		if len(r.Notes) > 0 {
			fmt.Fprintf(w, " — %s", strings.Join(r.Notes, " "))
		}
		fmt.Fprintln(w)
		for j, res := range r.Results {
			if res.Status == Pass || res.Status == NotApplicable {
				continue
			}
			msg := res.Msg
			if res.Expected != "" {
				msg += fmt.Sprintf(" (expected `%s`, got `%s`)", res.Expected, res.Actual)
			}
			fmt.Fprintf(w, "  - %s: %s at line %d: %s\n", cols[j], res.Status, res.Line, strings.ReplaceAll(msg, "\n", " "))
		}
	}
}

func mark(s Status) string {
	switch s {
	case Pass:
		return "pass"
	case Fail:
		return "**FAIL**"
	case Unsupported:
		return "unsupported"
	case NotApplicable:
		return "–"
	}
	return string(s)
}

func rel(root, f string) string {
	if root == "" {
		return f
	}
	if r, err := filepath.Rel(root, f); err == nil {
		return r
	}
	return f
}
