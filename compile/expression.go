package compile

import (
	"errors"
	"sort"

	"reaction/graph"
)

// Expression compiles a regex written like a filter's, with the patterns
// of a compiled configuration, into a one-regex Extract: what
// `reaction test-regex REGEX` tests lines against. It goes through the
// code that compiles filter regexes, so <name>s expand, capture and fail
// exactly as they do in a filter. The error is a plain error whose text
// has one line per problem.
func Expression(r *Result, src string) (*graph.Extract, error) {
	d := &diag{}
	b := &builder{d: d, patterns: map[string]*graph.Pattern{}, broken: map[string]bool{}}
	for _, p := range r.Graph.Patterns {
		b.patterns[p.Name] = p
		b.names = append(b.names, p.Name)
	}
	sort.Strings(b.names)
	x, _, _ := b.regexes("", "", []str{{v: src}})
	if err := d.err(); err != nil {
		return nil, errors.New(err.Error())
	}
	return x, nil
}
