// Package literal derives, from a parsed regular expression, literals that
// every match must contain. It proves; it never guesses: when in doubt about
// a node (case folding, classes, repetitions that may be empty) it claims
// nothing for that node, which only makes the prefilter weaker, never wrong.
//
// It must not decide anything at runtime and must not be used on a regexp
// parsed with flags other than the ones the regexp package uses
// (syntax.Perl), since the proof follows the tree's semantics.
package literal

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxAlternatives caps the size of any literal set: an exact set (every
// string a node can match) or a required set. Past it, nothing is claimed.
const MaxAlternatives = 64

// Required returns a set of literals such that any text the regex matches
// contains at least one of them. ok is false when no such set can be proven
// (the caller must then pass every line to the regex). The set is sorted,
// without duplicates, without empty strings, and without a literal that
// contains another one of the set.
//
// re should come from syntax.Parse(expr, syntax.Perl) followed by
// Simplify, as regexp.Compile does.
func Required(re *syntax.Regexp) (anyOf []string, ok bool) {
	in := analyze(re)
	if in.req == nil {
		return nil, false
	}
	set := minimize(in.req)
	if len(set) == 0 || len(set) > MaxAlternatives {
		return nil, false
	}
	for _, s := range set {
		if s == "" {
			return nil, false
		}
	}
	return set, true
}

// info is what is known about the texts a node matches.
type info struct {
	// exact, when non-nil, is the complete set of texts the node can
	// match (it may contain ""). nil means unknown or too large.
	exact []string
	// req, when non-nil, is a set of non-empty literals one of which
	// every match contains. nil means none could be proven.
	req []string
}

var emptyOnly = info{exact: []string{""}}

func analyze(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpEmptyMatch,
		syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		// Zero-width: the texts on either side are adjacent.
		return emptyOnly

	case syntax.OpLiteral:
		return literalInfo(re.Rune, re.Flags&syntax.FoldCase != 0)

	case syntax.OpCharClass:
		if len(re.Rune) == 2 && re.Rune[0] == re.Rune[1] && exact(re.Rune[0], false) {
			return exactInfo([]string{string(re.Rune[0])})
		}
		return info{}

	case syntax.OpCapture:
		return analyze(re.Sub[0])

	case syntax.OpQuest:
		sub := analyze(re.Sub[0])
		if sub.exact != nil && len(sub.exact) < MaxAlternatives {
			return info{exact: dedupe(append([]string{""}, sub.exact...))}
		}
		return info{}

	case syntax.OpPlus:
		// x+ contains a match of x.
		return info{req: analyze(re.Sub[0]).best()}

	case syntax.OpRepeat:
		// Simplify removes counted repetitions; kept for unsimplified input.
		if re.Min >= 1 {
			return info{req: analyze(re.Sub[0]).best()}
		}
		return info{}

	case syntax.OpConcat:
		return concat(re.Sub)

	case syntax.OpAlternate:
		return alternate(re.Sub)
	}
	// OpNoMatch, OpStar, OpAnyChar, OpAnyCharNotNL and anything unknown.
	return info{}
}

// exact reports whether a rune of the pattern can be searched as its
// UTF-8 bytes. The regexp package reads an invalid UTF-8 byte as U+FFFD, so
// a U+FFFD in the pattern can match bytes that are not its encoding; under
// (?i) a rune with other cases matches them too.
func exact(r rune, fold bool) bool {
	if r == utf8.RuneError || r < 0 || r > unicode.MaxRune {
		return false
	}
	return !fold || unicode.SimpleFold(r) == r
}

func exactInfo(set []string) info {
	in := info{exact: set}
	in.req = in.best()
	return in
}

// best returns the node's strongest required set: its exact set when that
// has no empty text, else its req.
func (in info) best() []string {
	if in.exact != nil && len(in.exact) > 0 && !slices.Contains(in.exact, "") {
		if in.req == nil || better(in.exact, in.req) {
			return in.exact
		}
	}
	return in.req
}

// literalInfo: a literal is exact unless some of its runes are not (see
// exact); then each run of exact runes is required, and the longest is kept.
func literalInfo(runes []rune, fold bool) info {
	var bestRun []rune
	start := -1
	for i := 0; i <= len(runes); i++ {
		if i < len(runes) && exact(runes[i], fold) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start > len(bestRun) {
			bestRun = runes[start:i]
		}
		start = -1
	}
	switch {
	case len(bestRun) == 0:
		return info{}
	case len(bestRun) == len(runes):
		return exactInfo([]string{string(runes)})
	}
	return info{req: []string{string(bestRun)}}
}

// concat walks the children left to right, multiplying the exact sets of
// adjacent children into runs (`Connection (reset|closed) by` is one run of
// two texts). A finished run and the required set of every child are
// candidates; the best candidate is the concatenation's required set.
func concat(subs []*syntax.Regexp) info {
	run := []string{""} // cross product of the current run of exact children
	allExact := true
	var cands [][]string
	endRun := func() {
		if !slices.Contains(run, "") {
			cands = append(cands, run)
		}
		run = []string{""}
	}
	for _, sub := range subs {
		in := analyze(sub)
		if in.exact == nil {
			allExact = false
			endRun()
			if in.req != nil {
				cands = append(cands, in.req)
			}
			continue
		}
		if len(run)*len(in.exact) > MaxAlternatives {
			allExact = false
			endRun()
		}
		run = cross(run, in.exact)
	}
	if allExact {
		return exactInfo(run)
	}
	endRun()
	var best []string
	for _, c := range cands {
		if best == nil || better(c, best) {
			best = c
		}
	}
	return info{req: best}
}

// alternate: every match matches one branch, so it contains one literal of
// that branch's set; the union of the branches' sets is required.
func alternate(subs []*syntax.Regexp) info {
	var exact, req []string
	exactOK, reqOK := true, true
	for _, sub := range subs {
		in := analyze(sub)
		if exactOK && in.exact != nil && len(exact)+len(in.exact) <= MaxAlternatives {
			exact = append(exact, in.exact...)
		} else {
			exactOK = false
		}
		b := in.best()
		if reqOK && b != nil && len(req)+len(b) <= MaxAlternatives {
			req = append(req, b...)
		} else {
			reqOK = false
		}
	}
	var out info
	if exactOK {
		out.exact = dedupe(exact)
	}
	if reqOK {
		out.req = minimize(req)
	}
	return out
}

func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return dedupe(out)
}

// better reports whether required set a filters better than b: its
// shortest literal is longer; on a tie, it has fewer literals.
func better(a, b []string) bool {
	ma, mb := minLen(a), minLen(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func minLen(set []string) int {
	m := -1
	for _, s := range set {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}

func dedupe(set []string) []string {
	out := slices.Clone(set)
	slices.Sort(out)
	return slices.Compact(out)
}

// minimize sorts and dedupes a required set and drops every literal that
// contains another one: a text containing "Failed password" contains
// "password", so {password, Failed password} is just {password}.
func minimize(set []string) []string {
	set = dedupe(set)
	out := set[:0:0]
	for i, s := range set {
		redundant := false
		for j, t := range set {
			if i != j && len(t) < len(s) && strings.Contains(s, t) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	return out
}
