package compile

import (
	"fmt"
	"sort"
	"strings"

	"reaction/graph"
)

// RunTests runs the inline tests of every filter of a compiled graph
// through graph.Extract.Match, the one definition of what a filter
// captures. The error is an *Errors whose paths are
// streams.S.filters.F.tests[i]; Load runs the tests too, so a
// configuration whose tests fail does not load.
//
// A test expects either a match with Values (one per pattern the filter
// captures; none for a filter without patterns), NoMatch, or, when the
// filter captures patterns and the test has no Values, a match whose value
// is ignored.
func RunTests(g *graph.Graph) error {
	d := &diag{}
	for _, n := range g.Of(graph.KindExtract) {
		x := n.Extract
		paths := make([]string, len(x.Tests))
		for i := range x.Tests {
			paths[i] = fmt.Sprintf("%s.%s.%s.%s.%s[%d]", keyStreams, x.Stream, keyFilters, x.Filter, keyTests, i)
		}
		d.list = append(d.list, runTests(x, paths)...)
	}
	return d.err()
}

// runTests runs a filter's tests; paths[i] is the config path of test i.
func runTests(x *graph.Extract, paths []string) []*Error {
	var errs []*Error
	for i, t := range x.Tests {
		if msg := runTest(x, t); msg != "" {
			errs = append(errs, &Error{Path: paths[i], Msg: msg})
		}
	}
	return errs
}

// runTest returns why a test fails, or "".
func runTest(x *graph.Extract, t graph.Test) string {
	values, which, matched, reason := x.Match([]byte(t.Line))
	got := func() string {
		switch {
		case !matched:
			return "no regex matched"
		case reason != graph.ReasonOK:
			return fmt.Sprintf("regex[%d] matched and the line was dropped (%s)", which, reason)
		case len(x.Patterns) == 0:
			return fmt.Sprintf("regex[%d] matched", which)
		default:
			return fmt.Sprintf("regex[%d] matched and captured %s", which, showValues(x.Patterns, values))
		}
	}
	switch {
	case t.NoMatch:
		if matched {
			return "expected no match, but " + got()
		}
	case len(t.Values) == 0 && len(x.Patterns) > 0: // expects an ignored value
		if !matched || reason == graph.ReasonOK {
			return "expected a match with an ignored value, but " + got()
		}
	default:
		ok := matched && reason == graph.ReasonOK
		for i, p := range x.Patterns {
			ok = ok && values[i] == t.Values[p.Name]
		}
		if !ok {
			if len(x.Patterns) == 0 {
				return "expected a match, but " + got()
			}
			want := make([]string, len(x.Patterns))
			for i, p := range x.Patterns {
				want[i] = t.Values[p.Name]
			}
			return fmt.Sprintf("expected %s, but %s", showValues(x.Patterns, want), got())
		}
	}
	return ""
}

func showValues(pats []*graph.Pattern, values []string) string {
	parts := make([]string, len(pats))
	for i, p := range pats {
		parts[i] = fmt.Sprintf("<%s> = %q", p.Name, values[i])
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
