package compile

import (
	"errors"
	"fmt"
	"sort"

	"reaction/graph"
)

// Expression compiles a regex written like a filter's, with the patterns
// of a compiled configuration, into a one-regex Extract: what
// `reaction test-regex REGEX` tests lines against. It expands <name>s
// exactly as filters do.
func Expression(r *Result, src string) (*graph.Extract, error) {
	byName := map[string]*graph.Pattern{}
	var names []string
	for _, p := range r.Graph.Patterns {
		byName[p.Name] = p
		names = append(names, p.Name)
	}
	refs := regexRefs(src)
	var used []string
	seen := map[string]bool{}
	for _, rf := range refs {
		if byName[rf.name] == nil {
			msg := fmt.Sprintf("unknown pattern <%s>", rf.name)
			if s := suggest(rf.name, names); s != "" {
				msg += fmt.Sprintf(", did you mean <%s>?", s)
			}
			return nil, errors.New(msg)
		}
		if seen[rf.name] {
			return nil, fmt.Errorf("<%s> appears twice: a regex captures a pattern at most once", rf.name)
		}
		seen[rf.name] = true
		used = append(used, rf.name)
	}
	sort.Strings(used)
	idx := map[string]int{}
	x := &graph.Extract{}
	for i, name := range used {
		idx[name] = i
		x.Patterns = append(x.Patterns, byName[name])
	}
	expanded, re, groups, err := expandRegex(src, refs, func(name string) string { return byName[name].Regex })
	if err != nil {
		return nil, errors.New(regexError(err))
	}
	gr := &graph.Regex{Source: src, Expanded: expanded, Re: re}
	for k, rf := range refs {
		gr.Captures = append(gr.Captures, graph.Capture{Pattern: idx[rf.name], Group: groups[k]})
	}
	sort.Slice(gr.Captures, func(i, j int) bool { return gr.Captures[i].Pattern < gr.Captures[j].Pattern })
	x.Regexes = []*graph.Regex{gr}
	return x, nil
}
