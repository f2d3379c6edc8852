package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"reaction/graph"
	"reaction/stages"
)

// tracer follows lines through one stream's compiled nodes, with the same
// stage cores the daemon runs: prefilter, extract, and a counter per
// filter that keeps its state from one line to the next.
type tracer struct {
	stream   graph.Stream
	only     string // filter name, "" for every filter of the stream
	pf       *stages.Prefilter
	counters []*stages.Counter
	now      func() time.Time
	n        int
}

func newTracer(g *graph.Graph, sel string) (*tracer, error) {
	name, only, _ := strings.Cut(sel, ".")
	for _, s := range g.Streams() {
		if s.Source.Stream != name {
			continue
		}
		t := &tracer{stream: s, only: only, pf: stages.NewPrefilter(s.Prefilter), now: time.Now}
		found := only == ""
		for _, f := range s.Filters {
			t.counters = append(t.counters, stages.NewCounter(f.Counter.Retry, f.Counter.Period, f.Counter.MaxKeys))
			found = found || f.Extract.Filter == only
		}
		if !found {
			return nil, fmt.Errorf("stream %s has no filter %q", name, only)
		}
		return t, nil
	}
	var names []string
	for _, s := range g.Streams() {
		names = append(names, s.Source.Stream)
	}
	return nil, fmt.Errorf("no stream %q (streams: %s)", name, strings.Join(names, ", "))
}

// traceStep is what one node did with a line; also the JSON output.
type traceStep struct {
	Node   string            `json:"node"`
	Passed bool              `json:"passed"`
	Detail string            `json:"detail"`
	Values map[string]string `json:"values,omitempty"`
}

type lineTrace struct {
	N     int         `json:"n"`
	Line  string      `json:"line"`
	Steps []traceStep `json:"steps"`
}

func (t *tracer) trace(line string) lineTrace {
	t.n++
	now := t.now()
	lt := lineTrace{N: t.n, Line: line}
	stream := t.stream.Source.Stream
	lt.Steps = append(lt.Steps, traceStep{Node: graph.SourceID(stream), Passed: true, Detail: fmt.Sprintf("read %d bytes", len(line))})
	for i, d := range t.pf.Explain([]byte(line)) {
		f := t.stream.Filters[i]
		if t.only != "" && f.Extract.Filter != t.only {
			continue
		}
		step := traceStep{Node: graph.PrefilterID(stream), Passed: d.Passed}
		switch {
		case d.Always:
			step.Detail = f.Extract.Filter + ": passed (no literal is required by every regex)"
		case d.Passed:
			step.Detail = fmt.Sprintf("%s: passed, line contains %q", f.Extract.Filter, d.Literal)
		default:
			step.Detail = fmt.Sprintf("%s: dropped, line contains none of %s", f.Extract.Filter, quoteList(t.stream.Prefilter.Filters[i].AnyOf))
		}
		lt.Steps = append(lt.Steps, step)
		if !d.Passed {
			continue
		}
		lt.Steps = append(lt.Steps, t.filter(i, f, line, now)...)
	}
	return lt
}

func (t *tracer) filter(i int, f graph.Filter, line string, now time.Time) []traceStep {
	x := f.Extract
	id := graph.ExtractID(x.Stream, x.Filter)
	values, which, matched, reason := x.Match([]byte(line))
	switch {
	case !matched:
		return []traceStep{{Node: id, Detail: fmt.Sprintf("no regex matched (%d tried)", len(x.Regexes))}}
	case reason != graph.ReasonOK:
		return []traceStep{{Node: id, Detail: fmt.Sprintf("regex[%d] %q matched, value dropped: %s", which, x.Regexes[which].Source, reason)}}
	}
	step := traceStep{Node: id, Passed: true, Detail: fmt.Sprintf("regex[%d] %q matched", which, x.Regexes[which].Source)}
	if len(values) > 0 {
		step.Values = map[string]string{}
		for k, p := range x.Patterns {
			step.Values[p.Name] = values[k]
		}
	}
	steps := []traceStep{step}
	key := strings.Join(values, "\x00")
	shown := strings.Join(values, " ")
	if shown == "" {
		shown = "(the filter's single key)"
	}
	c := f.Counter
	cid := graph.CounterID(x.Stream, x.Filter)
	triggered := t.counters[i].Add(key, now)
	if !triggered {
		steps = append(steps, traceStep{Node: cid, Detail: fmt.Sprintf("%s: %d of %d matches within %s", shown, t.counters[i].Count(key, now), c.Retry, c.Period)})
		return steps
	}
	if c.Retry > 1 {
		steps = append(steps, traceStep{Node: cid, Passed: true, Detail: fmt.Sprintf("%s: %d of %d matches within %s: triggered", shown, c.Retry, c.Retry, c.Period)})
	} else {
		steps = append(steps, traceStep{Node: cid, Passed: true, Detail: shown + ": triggered on the first match"})
	}
	s := f.Scheduler
	for _, a := range s.Actions {
		when := "now"
		if a.After > 0 {
			when = "after " + a.After.String()
		}
		step := traceStep{Node: graph.SchedulerID(x.Stream, x.Filter), Passed: true,
			Detail: fmt.Sprintf("%s %s: %s", a.Name, when, strings.Join(quoteArgs(a.Expand(values)), " "))}
		if a.IPv4Only || a.IPv6Only {
			if fam := graph.Family(values[firstIP(s.Patterns)]); (a.IPv4Only && fam != 4) || (a.IPv6Only && fam != 6) {
				step.Passed, step.Detail = false, a.Name+": not run for this address family"
			}
		}
		steps = append(steps, step)
	}
	return steps
}

// firstIP returns the index of the first IP-typed pattern, 0 when none
// (then Family of a non-address is 0 and ipvNonly actions are skipped).
func firstIP(pats []*graph.Pattern) int {
	for i, p := range pats {
		if p.Type.IsIP() {
			return i
		}
	}
	return 0
}

func quoteList(lits []string) string {
	q := make([]string, len(lits))
	for i, l := range lits {
		q[i] = fmt.Sprintf("%q", l)
	}
	return strings.Join(q, ", ")
}

// quoteArgs shows argv elements that would not read as one word quoted.
func quoteArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return out
}

func printTrace(w io.Writer, lt lineTrace, format string) error {
	if format == "json" {
		return json.NewEncoder(w).Encode(lt)
	}
	fmt.Fprintf(w, "line %d: %s\n", lt.N, lt.Line)
	width := 0
	for _, s := range lt.Steps {
		width = max(width, len(s.Node))
	}
	for _, s := range lt.Steps {
		mark := "✗"
		if s.Passed {
			mark = "✓"
		}
		fmt.Fprintf(w, "  %s %-*s  %s\n", mark, width, s.Node, s.Detail)
		for _, name := range sortedKeys(s.Values) {
			fmt.Fprintf(w, "    %-*s  <%s> = %s\n", width, "", name, s.Values[name])
		}
	}
	return nil
}
