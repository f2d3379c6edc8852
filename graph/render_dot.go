package graph

import (
	"bytes"
	"strconv"
	"strings"
)

// renderDOT writes a Graphviz digraph: one cluster per stream (the
// executor, shared, stands outside), nodes shaped and colored by kind,
// edges labelled with their capacity.
func renderDOT(buf *bytes.Buffer, v *view) {
	buf.WriteString("digraph reaction {\n")
	buf.WriteString("  rankdir=LR;\n")
	buf.WriteString("  node [fontsize=10];\n")
	buf.WriteString("  edge [fontsize=9];\n")
	for i, s := range v.streams {
		buf.WriteString("\n  subgraph cluster_" + strconv.Itoa(i) + " {\n")
		buf.WriteString("    label=" + dotString("stream "+visible(s)) + ";\n")
		buf.WriteString("    style=\"rounded\";\n    color=\"#94a3b8\";\n")
		for _, n := range v.nodes {
			if ns, _ := nodeStream(n); ns == s {
				v.dotNode(buf, "    ", n)
			}
		}
		buf.WriteString("  }\n")
	}
	first := true
	for _, n := range v.nodes {
		if ns, _ := nodeStream(n); ns == "" {
			if first {
				buf.WriteByte('\n')
				first = false
			}
			v.dotNode(buf, "  ", n)
		}
	}
	if len(v.edges) > 0 {
		buf.WriteByte('\n')
	}
	for _, e := range v.edges {
		buf.WriteString("  " + dotString(e.From) + " -> " + dotString(e.To) +
			" [label=" + dotString(edgeLabel(e)) + "];\n")
	}
	buf.WriteString("}\n")
}

func (v *view) dotNode(buf *bytes.Buffer, indent string, n *Node) {
	st := styleOf(n.Kind)
	buf.WriteString(indent + dotString(n.ID) + " [shape=" + st.dotShape + ", style=" + dotString(st.dotStyle) +
		", color=" + dotString(st.stroke) + ", fillcolor=" + dotString(st.fill) +
		", label=" + dotLabel(v.label(n)) + "];\n")
}

// dotString quotes s as a DOT ID. Backslashes are doubled: in a label a
// lone backslash would start an escape (\n, \l, \N, ...), and a trailing
// one would escape the closing quote. '&' is written as an entity, since
// Graphviz decodes entities (&amp;, &#60;) in every string.
func dotString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '&':
			b.WriteString("&amp;")
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// dotLabel joins label lines: the first (the node ID) centered, the
// parameters left-justified (\l). Lines must have gone through visible.
func dotLabel(lines []string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, l := range lines {
		q := dotString(l)
		b.WriteString(q[1 : len(q)-1])
		if i == 0 {
			b.WriteString(`\n`)
		} else {
			b.WriteString(`\l`)
		}
	}
	b.WriteByte('"')
	return b.String()
}
