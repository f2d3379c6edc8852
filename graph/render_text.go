package graph

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// row is one parameter of a node in the text format: a key and one or
// more lines of value, the later ones aligned under the first.
type row struct {
	key   string
	lines []string
}

func kv(key string, lines ...string) row { return row{key, lines} }

// kindWidth is the width of the kind column: len("prefilter"), len("scheduler").
const kindWidth = 9

func renderText(buf *bytes.Buffer, v *view) {
	g := v.g
	filters := 0
	for _, n := range v.nodes {
		if n.Kind == KindExtract {
			filters++
		}
	}
	fmt.Fprintf(buf, "reaction pipeline: %s, %s, %s, %s\n",
		plural(len(v.streams), "stream"), plural(filters, "filter"),
		plural(len(v.nodes), "node"), plural(len(v.edges), "edge"))

	textBlock(buf, "settings", "", settingsRows(g.Settings))
	for _, n := range v.nodes {
		rows := nodeRows(n)
		if cs := v.counters(n.ID); len(cs) > 0 {
			parts := make([]string, len(cs))
			for i, c := range cs {
				parts[i] = c.name + "=" + strconv.FormatUint(c.value, 10)
			}
			rows = append(rows, kv("live", strings.Join(parts, "  ")))
		}
		textBlock(buf, string(n.Kind), n.ID, rows)
	}

	buf.WriteString("\nedges\n")
	var from, to int
	for _, e := range v.edges {
		from = max(from, width(visible(e.From)))
		to = max(to, width(visible(e.To)))
	}
	for _, e := range v.edges {
		label := edgeLabel(e)
		if e.Capacity > 0 {
			label = "capacity " + label
		}
		fmt.Fprintf(buf, "%s%s → %s  (%s)\n", indent(kindWidth+2),
			pad(visible(e.From), from), pad(visible(e.To), to), label)
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// textBlock writes a header line (kind, ID) and the rows under it, keys
// aligned within the block.
func textBlock(buf *bytes.Buffer, kind, id string, rows []row) {
	buf.WriteByte('\n')
	if id == "" {
		buf.WriteString(kind + "\n")
	} else {
		fmt.Fprintf(buf, "%s  %s\n", pad(kind, kindWidth), visible(id))
	}
	keyW := 0
	for _, rw := range rows {
		keyW = max(keyW, width(rw.key))
	}
	for _, rw := range rows {
		for i, line := range rw.lines {
			key := ""
			if i == 0 {
				key = rw.key
			}
			line = strings.TrimRight(pad(key, keyW)+"  "+line, " ")
			buf.WriteString(indent(kindWidth+2) + line + "\n")
		}
	}
}

func width(s string) int         { return utf8.RuneCountInString(s) }
func indent(n int) string        { return strings.Repeat(" ", n) }
func pad(s string, n int) string { return s + indent(max(0, n-width(s))) }

func settingsRows(s Settings) []row {
	var rows []row
	if len(s.Files) > 0 {
		files := make([]string, len(s.Files))
		for i, f := range s.Files {
			files[i] = visible(f)
		}
		rows = append(rows, kv("files", files...))
	}
	dir := "(working directory)"
	if s.StateDirectory != "" {
		dir = visible(s.StateDirectory)
	}
	rows = append(rows, kv("state directory", dir))
	rot := "never"
	if s.RotationInterval > 0 {
		rot = "every " + duration(s.RotationInterval)
	}
	rows = append(rows, kv("state rotation", rot))
	if len(s.Start) > 0 {
		rows = append(rows, kv("start", commands(s.Start)...))
	}
	if len(s.Stop) > 0 {
		rows = append(rows, kv("stop", commands(s.Stop)...))
	}
	return rows
}

func commands(cmds [][]string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = argv(c)
	}
	return out
}

// nodeRows lists every compiled parameter of a node.
func nodeRows(n *Node) []row {
	switch {
	case n.Source != nil:
		s := n.Source
		return []row{
			kv("cmd", argv(s.Cmd)),
			kv("max line", byteSize(s.MaxLine)),
			kv("batch size", strconv.Itoa(s.BatchSize)+" lines"),
			kv("backoff", duration(s.BackoffMin)+" doubling to "+duration(s.BackoffMax)),
		}
	case n.Prefilter != nil:
		var rows []row
		for _, fl := range n.Prefilter.Filters {
			if fl.Always {
				rows = append(rows, kv(visible(fl.Filter), "(none provable: every line goes to the regexes)"))
			} else {
				rows = append(rows, kv(visible(fl.Filter), literalLines(fl.AnyOf)...))
			}
		}
		return append(rows, kv("workers", plural(max(1, n.Prefilter.Workers), "goroutine")+" (prefilter and extract)"))
	case n.Extract != nil:
		return extractRows(n.Extract)
	case n.Counter != nil:
		c := n.Counter
		return []row{
			kv("retry", retry(c)),
			kv("shards", strconv.Itoa(c.Shards)),
			kv("max keys", strconv.Itoa(c.MaxKeys)+" (oldest evicted)"),
		}
	case n.Scheduler != nil:
		s := n.Scheduler
		rows := []row{kv("duplicates", string(s.Duplicates))}
		for _, a := range s.Actions {
			lines := []string{argv(cmdTemplate(a.Cmd, s.Patterns))}
			if when := actionWhen(a); when != "" {
				lines = append(lines, when)
			}
			rows = append(rows, kv("action "+visible(a.Name), lines...))
		}
		return rows
	case n.Executor != nil:
		return []row{
			kv("concurrency", concurrency(n.Executor.Concurrency)),
			kv("timeout", duration(n.Executor.Timeout)),
		}
	}
	return []row{kv("parameters", "(none)")}
}

func extractRows(x *Extract) []row {
	var rows []row
	for i, re := range x.Regexes {
		detail := "expanded " + strconv.Itoa(len(re.Expanded)) + " bytes"
		if len(re.Captures) == 0 {
			detail += ", no capture"
		}
		for _, c := range re.Captures {
			name := "?"
			if c.Pattern >= 0 && c.Pattern < len(x.Patterns) {
				name = x.Patterns[c.Pattern].Name
			}
			detail += ", <" + name + "> = group " + strconv.Itoa(c.Group)
		}
		rows = append(rows, kv("regex["+strconv.Itoa(i)+"]", visible(re.Source), detail))
	}
	for _, p := range x.Patterns {
		rows = append(rows, kv("pattern <"+visible(p.Name)+">", patternLines(p)...))
	}
	if len(x.Tests) > 0 {
		rows = append(rows, kv("tests", plural(len(x.Tests), "inline test")))
	}
	return rows
}

func patternLines(p *Pattern) []string {
	head := string(p.Type)
	if !p.Type.IsIP() {
		head += " " + visible(p.Regex)
	}
	if p.IPv4Mask > 0 {
		head += ", ipv4mask " + strconv.Itoa(p.IPv4Mask)
	}
	if p.IPv6Mask > 0 {
		head += ", ipv6mask " + strconv.Itoa(p.IPv6Mask)
	}
	lines := []string{head}
	if len(p.Ignore) > 0 {
		lines = append(lines, "ignore "+quoteList(p.Ignore))
	}
	if len(p.IgnoreCIDR) > 0 {
		lines = append(lines, "ignorecidr "+strings.Join(cidrs(p), ", "))
	}
	if len(p.IgnoreRegex) > 0 {
		lines = append(lines, "ignoreregex "+quoteList(p.IgnoreRegex))
	}
	return lines
}

// literalLines lists a filter's literals on one line, or one per line
// when they do not fit in a terminal.
func literalLines(anyOf []string) []string {
	const head = "any of "
	if one := head + quoteList(anyOf); width(one) <= 80 {
		return []string{one}
	}
	lines := make([]string, len(anyOf))
	for i, l := range anyOf {
		lines[i] = indent(len(head)) + strconv.Quote(l)
	}
	lines[0] = head + lines[0][len(head):]
	return lines
}
