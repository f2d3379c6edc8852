package graph

import (
	"bytes"
	"strconv"
	"strings"
)

// renderMermaid writes a Mermaid flowchart. Node IDs contain ':' and '.',
// which Mermaid does not accept, so nodes are named n0, n1, ... in walk
// order; the first line of each label is the real ID.
func renderMermaid(buf *bytes.Buffer, v *view) {
	ids := make(map[string]string, len(v.nodes))
	mid := func(id string) string {
		if m, ok := ids[id]; ok {
			return m
		}
		m := "n" + strconv.Itoa(len(ids))
		ids[id] = m
		return m
	}
	for _, n := range v.nodes {
		mid(n.ID)
	}

	buf.WriteString("flowchart LR\n")
	for i, s := range v.streams {
		buf.WriteString("  subgraph s" + strconv.Itoa(i) + "[" + mermaidString("stream "+visible(s)) + "]\n")
		for _, n := range v.nodes {
			if ns, _ := nodeStream(n); ns == s {
				v.mermaidNode(buf, "    ", mid(n.ID), n)
			}
		}
		buf.WriteString("  end\n")
	}
	for _, n := range v.nodes {
		if ns, _ := nodeStream(n); ns == "" {
			v.mermaidNode(buf, "  ", mid(n.ID), n)
		}
	}
	for _, e := range v.edges { // ends of dangling edges, labelled too
		for _, id := range []string{e.From, e.To} {
			if _, ok := ids[id]; !ok {
				buf.WriteString("  " + mid(id) + "[" + mermaidString(visible(id)+" (no such node)") + "]\n")
			}
		}
	}
	for _, e := range v.edges {
		buf.WriteString("  " + mid(e.From) + " -->|" + mermaidString(edgeLabel(e)) + "| " + mid(e.To) + "\n")
	}
	for _, k := range []Kind{KindSource, KindPrefilter, KindExtract, KindCounter, KindScheduler, KindExecutor} {
		var members []string
		for _, n := range v.nodes {
			if n.Kind == k {
				members = append(members, mid(n.ID))
			}
		}
		if len(members) > 0 {
			st := styleOf(k)
			buf.WriteString("  classDef " + string(k) + " fill:" + st.fill + ",stroke:" + st.stroke + "\n")
			buf.WriteString("  class " + strings.Join(members, ",") + " " + string(k) + "\n")
		}
	}
}

func (v *view) mermaidNode(buf *bytes.Buffer, indent, id string, n *Node) {
	st := styleOf(n.Kind)
	lines := v.label(n)
	for i, l := range lines {
		lines[i] = mermaidEscape(l)
	}
	buf.WriteString(indent + id + st.open + `"` + strings.Join(lines, "<br/>") + `"` + st.close + "\n")
}

func mermaidString(s string) string { return `"` + mermaidEscape(s) + `"` }

// mermaidEscape makes s safe inside a quoted Mermaid label. Mermaid turns
// #name; and #123; into HTML entities before parsing and renders labels
// as HTML, so '#' itself, quotes, '<', '>' and '&' become entities; a
// backquote right after the opening quote would start a Markdown string.
func mermaidEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '#':
			b.WriteString("#35;")
		case '"':
			b.WriteString("#quot;")
		case '<':
			b.WriteString("#lt;")
		case '>':
			b.WriteString("#gt;")
		case '&':
			b.WriteString("#amp;")
		case '`':
			b.WriteString("#96;")
		case '\n', '\r':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
