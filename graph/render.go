package graph

// Rendering of a compiled graph for `reaction graph`.
//
// Four formats share one traversal: nodes in Walk order, edges sorted by
// the walk position of their ends, live counters sorted by name. No map
// iteration order reaches the output, so the same graph always renders to
// the same bytes.
//
//   - text: for an operator at a terminal; every compiled parameter.
//   - dot: Graphviz (`reaction graph -f dot | dot -Tsvg > graph.svg`);
//     one cluster per stream, key parameters in node labels.
//   - mermaid: a `flowchart LR` for Markdown pages; same content as dot.
//   - json: every compiled parameter, machine-readable, schema below.
//
// In dot and mermaid labels, lines longer than 120 characters are cut
// with "…"; text and json never cut anything.
//
// # JSON schema, version 1
//
// The document is one object. Fields are always present unless marked
// "omitted when ..."; lists are [] rather than null. Durations are Go
// duration strings ("1m30s", "48h0m0s", "0s"). Fields that mirror a
// configuration key keep that key's spelling (retryperiod, onexit,
// ignorecidr, state_directory, ...); fields that exist only in the
// compiled graph are snake_case (max_line, any_of, max_keys, ...). A
// change that removes or redefines a field bumps "version"; new fields
// may be added without a bump.
//
//	{
//	  "version": 1,
//	  "nodes": [                          // in walk order: sources, prefilters, extracts,
//	                                      // counters, schedulers, executor
//	    {
//	      "id":     "extract:ssh.failedlogin",
//	      "kind":   "source" | "prefilter" | "extract" | "counter" | "scheduler" | "executor",
//	      "stream": "ssh",                // omitted for the executor
//	      "filter": "failedlogin",        // extract, counter and scheduler only
//	      ...parameters of the kind, below...,
//	      "counters": {"lines": 1200}     // live counters by name; omitted when not live
//	    }
//	  ],
//	  "edges": [
//	    {"from": "source:ssh", "to": "prefilter:ssh",
//	     "capacity": 64,                  // items buffered; 0 = direct call, no channel
//	     "unit": "batches"}
//	  ],
//	  "settings": {
//	    "start": [["argv", "..."]],       // run in order before streams start
//	    "stop":  [["argv", "..."]],       // run in order at shutdown
//	    "state_directory": "",            // "" = the working directory
//	    "state_rotation_interval": "24h0m0s",  // "0s" = never
//	    "files": ["/etc/reaction.yml"]    // configuration files compiled
//	  }
//	}
//
// Parameters by kind:
//
//	source:    "cmd": ["argv", ...], "max_line": 65536 (bytes), "batch_size": 128 (lines),
//	           "backoff_min": "1s", "backoff_max": "1m0s"
//	prefilter: "filters": [{"filter": "failedlogin",
//	                        "always": false,       // true: no literal provable, every line passes
//	                        "any_of": ["Failed password", ...]}], // a line passes if it contains one
//	           "workers": 2                // goroutines running prefilter and extracts
//	extract:   "regexes": [{"source": "... <ip> ...",           // as written
//	                        "expanded": "... (...) ...",         // as compiled
//	                        "captures": [{"pattern": "ip", "group": 1}]}],
//	           "patterns": [PATTERN, ...],                     // sorted by name: the key order
//	           "tests": 2                                      // number of inline tests
//	counter:   "retry": 3,                 // ≤ 1: every match triggers
//	           "retryperiod": "6h0m0s",    // "0s" when retry ≤ 1
//	           "shards": 4, "max_keys": 1048576
//	scheduler: "duplicates": "extend" | "ignore" | "rerun",
//	           "key": ["ip", ...],         // pattern names, in the order values are passed
//	           "actions": [{"name": "ban",
//	                        "cmd": ["iptables", "-s", "<ip>", ...],  // argv, <name> = value
//	                        "after": "0s",              // "0s" = immediate
//	                        "onexit": false, "oneshot": false,
//	                        "ipv4only": false, "ipv6only": false}]
//	executor:  "concurrency": 8,           // negative = unlimited
//	           "timeout": "1m0s"
//
//	PATTERN:   {"name": "ip", "type": "regex" | "ip" | "ipv4" | "ipv6",
//	            "regex": "...",            // the capture inserted for <name>
//	            "ignore": ["127.0.0.1"], "ignoreregex": ["..."],
//	            "ignorecidr": ["10.0.0.0/8"],
//	            "ipv4mask": 0, "ipv6mask": 64}   // 0 = no mask

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format is an output format of Render.
type Format string

const (
	FormatText    Format = "text"
	FormatDOT     Format = "dot"
	FormatMermaid Format = "mermaid"
	FormatJSON    Format = "json"
)

// Formats returns the formats Render accepts, the default first.
func Formats() []Format {
	return []Format{FormatText, FormatDOT, FormatMermaid, FormatJSON}
}

// Render writes g in format f. live, when not nil, maps a node ID to
// counters by name (from a running daemon); they are shown next to their
// node, sorted by name. Counters of IDs that are not in g are ignored.
// Render does not validate g, but does not fail on a graph that Validate
// would reject either. The output is written with a single Write.
func Render(w io.Writer, g *Graph, f Format, live map[string]map[string]uint64) error {
	if g == nil {
		return fmt.Errorf("render %s: nil graph", f)
	}
	v := newView(g, live)
	var buf bytes.Buffer
	switch f {
	case FormatText:
		renderText(&buf, v)
	case FormatDOT:
		renderDOT(&buf, v)
	case FormatMermaid:
		renderMermaid(&buf, v)
	case FormatJSON:
		if err := renderJSON(&buf, v); err != nil {
			return fmt.Errorf("render json: %w", err)
		}
	default:
		return fmt.Errorf("unknown graph format %q (want one of %s)", f, formatList())
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func formatList() string {
	var s []string
	for _, f := range Formats() {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}

// view is the traversal every format shares.
type view struct {
	g       *Graph
	nodes   []*Node        // walk order
	pos     map[string]int // node ID → index in nodes
	edges   []Edge         // sorted by walk position of From, then To
	streams []string       // in order of first appearance in the walk
	live    map[string]map[string]uint64
}

func newView(g *Graph, live map[string]map[string]uint64) *view {
	v := &view{g: g, nodes: g.Walk(), pos: map[string]int{}, live: live}
	for i, n := range v.nodes {
		if _, dup := v.pos[n.ID]; !dup {
			v.pos[n.ID] = i
		}
		if s, _ := nodeStream(n); s != "" && !slices.Contains(v.streams, s) {
			v.streams = append(v.streams, s)
		}
	}
	v.edges = slices.Clone(g.Edges)
	at := func(id string) int {
		if i, ok := v.pos[id]; ok {
			return i
		}
		return len(v.nodes) // dangling ends last, in insertion order
	}
	slices.SortStableFunc(v.edges, func(a, b Edge) int {
		if c := at(a.From) - at(b.From); c != 0 {
			return c
		}
		return at(a.To) - at(b.To)
	})
	return v
}

// counter is one live counter of a node.
type counter struct {
	name  string
	value uint64
}

func (v *view) counters(id string) []counter {
	m := v.live[id]
	out := make([]counter, 0, len(m))
	for name, value := range m {
		out = append(out, counter{name, value})
	}
	slices.SortFunc(out, func(a, b counter) int { return strings.Compare(a.name, b.name) })
	return out
}

// nodeStream returns the stream and filter a node belongs to ("" when none).
func nodeStream(n *Node) (stream, filter string) {
	switch {
	case n.Source != nil:
		return n.Source.Stream, ""
	case n.Prefilter != nil:
		return n.Prefilter.Stream, ""
	case n.Extract != nil:
		return n.Extract.Stream, n.Extract.Filter
	case n.Counter != nil:
		return n.Counter.Stream, n.Counter.Filter
	case n.Scheduler != nil:
		return n.Scheduler.Stream, n.Scheduler.Filter
	}
	return "", ""
}

// duration renders d for people: "48h" rather than "48h0m0s".
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func byteSize(n int) string {
	if n > 0 && n%(1<<20) == 0 {
		return strconv.Itoa(n>>20) + " MiB"
	}
	if n > 0 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

func concurrency(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func edgeLabel(e Edge) string {
	if e.Capacity == 0 {
		return "direct call"
	}
	return strconv.Itoa(e.Capacity) + " " + e.Unit
}

// argTemplate renders one action argument with <name> placeholders.
func argTemplate(arg Arg, patterns []*Pattern) string {
	var b strings.Builder
	for _, p := range arg {
		switch {
		case p.Pattern < 0:
			b.WriteString(p.Text)
		case p.Pattern < len(patterns):
			b.WriteString("<" + patterns[p.Pattern].Name + ">")
		default:
			b.WriteString("<?>")
		}
	}
	return b.String()
}

func cmdTemplate(cmd []Arg, patterns []*Pattern) []string {
	out := make([]string, len(cmd))
	for i, arg := range cmd {
		out[i] = argTemplate(arg, patterns)
	}
	return out
}

// argv joins a command for reading. An argument that would not read as
// one word (empty, spaces, quotes, control characters) is Go-quoted, so
// `sh -c "a; b"` shows three arguments. Otherwise this is what
// Action.String returns.
func argv(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if needsQuote(a) {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func needsQuote(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '\'' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// visible replaces control characters and invalid UTF-8 with Go escapes,
// so that a value from a configuration cannot break a line or a layout.
func visible(s string) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// quoteList renders literals as a Go-quoted, comma-separated list.
func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func patternNames(ps []*Pattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func cidrs(p *Pattern) []string {
	out := make([]string, len(p.IgnoreCIDR))
	for i, c := range p.IgnoreCIDR {
		out[i] = c.String()
	}
	return out
}

// actionWhen says when an action runs and with which flags, or "" for an
// immediate action without flags.
func actionWhen(a *Action) string {
	var parts []string
	if a.After > 0 {
		parts = append(parts, "after "+duration(a.After))
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{a.OnExit, "onexit"}, {a.OneShot, "oneshot"}, {a.IPv4Only, "ipv4only"}, {a.IPv6Only, "ipv6only"}} {
		if f.set {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, ", ")
}

func retry(c *Counter) string {
	if c.Retry <= 1 {
		return "every match triggers"
	}
	return strconv.Itoa(c.Retry) + " within " + duration(c.Period)
}

// cut shortens a label line for dot and mermaid.
func cut(s string) string {
	const max = 120
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// label returns the lines of a node's label in dot and mermaid: the ID,
// then the key parameters, then the live counters. Lines are raw: each
// format escapes them.
func (v *view) label(n *Node) []string {
	lines := []string{n.ID}
	switch {
	case n.Source != nil:
		s := n.Source
		lines = append(lines, argv(s.Cmd),
			"batch "+strconv.Itoa(s.BatchSize)+" lines, max line "+byteSize(s.MaxLine))
	case n.Prefilter != nil:
		for _, fl := range n.Prefilter.Filters {
			if fl.Always {
				lines = append(lines, fl.Filter+": every line (no literal provable)")
			} else {
				lines = append(lines, fl.Filter+": "+quoteList(fl.AnyOf))
			}
		}
		lines = append(lines, plural(max(1, n.Prefilter.Workers), "worker"))
	case n.Extract != nil:
		for _, r := range n.Extract.Regexes {
			lines = append(lines, r.Source)
		}
		for _, p := range n.Extract.Patterns {
			lines = append(lines, "<"+p.Name+"> "+patternSummary(p))
		}
	case n.Counter != nil:
		c := n.Counter
		trigger := "triggers on every match"
		if c.Retry > 1 {
			trigger = "retry " + retry(c)
		}
		lines = append(lines, trigger, plural(c.Shards, "shard")+", max "+plural(c.MaxKeys, "key"))
	case n.Scheduler != nil:
		s := n.Scheduler
		lines = append(lines, "duplicates "+string(s.Duplicates))
		for _, a := range s.Actions {
			when := actionWhen(a)
			if when == "" {
				when = "now"
			}
			lines = append(lines, a.Name+": "+when)
		}
	case n.Executor != nil:
		lines = append(lines, "concurrency "+concurrency(n.Executor.Concurrency),
			"timeout "+duration(n.Executor.Timeout))
	}
	for _, c := range v.counters(n.ID) {
		lines = append(lines, c.name+" = "+strconv.FormatUint(c.value, 10))
	}
	for i, l := range lines {
		lines[i] = cut(visible(l))
	}
	return lines
}

// patternSummary is the one-line description of a pattern in diagrams.
func patternSummary(p *Pattern) string {
	parts := []string{string(p.Type)}
	if p.IPv4Mask > 0 {
		parts = append(parts, "/"+strconv.Itoa(p.IPv4Mask)+" v4")
	}
	if p.IPv6Mask > 0 {
		parts = append(parts, "/"+strconv.Itoa(p.IPv6Mask)+" v6")
	}
	if n := len(p.Ignore) + len(p.IgnoreRegex) + len(p.IgnoreCIDR); n > 0 {
		parts = append(parts, plural(n, "ignore rule"))
	}
	return strings.Join(parts, ", ")
}

// kindStyle is how dot and mermaid draw a kind.
type kindStyle struct {
	dotShape string
	dotStyle string
	fill     string
	stroke   string
	open     string // mermaid shape delimiters
	close    string
}

func styleOf(k Kind) kindStyle {
	switch k {
	case KindSource:
		return kindStyle{"cds", "filled", "#dbeafe", "#1d4ed8", "([", "])"}
	case KindPrefilter:
		return kindStyle{"box", "filled,dashed", "#fef9c3", "#a16207", "[/", `\]`}
	case KindExtract:
		return kindStyle{"box", "filled", "#dcfce7", "#15803d", "[", "]"}
	case KindCounter:
		return kindStyle{"cylinder", "filled", "#ffedd5", "#c2410c", "[(", ")]"}
	case KindScheduler:
		return kindStyle{"box", "rounded,filled", "#ede9fe", "#6d28d9", "(", ")"}
	case KindExecutor:
		return kindStyle{"component", "filled", "#fee2e2", "#b91c1c", "[[", "]]"}
	}
	return kindStyle{"box", "filled", "#f3f4f6", "#374151", "[", "]"}
}
