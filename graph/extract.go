package graph

import "unsafe"

// Match applies the filter's regexes to a line, in order; the first regex
// that matches decides. It returns matched=false when none matches. When
// one matches but a captured value is invalid or ignored, it returns
// matched=true with the Reason and no values. Otherwise values holds the
// normalized value of each of x.Patterns, in order (nil for a filter
// without patterns), and which is the index of the regex that matched.
//
// Every regex of a filter captures the same patterns (compile enforces
// it), so every value of a key is set.
//
// This is the one definition of what a filter captures: the runtime, the
// inline tests and test-regex all call it.
func (x *Extract) Match(line []byte) (values []string, which int, matched bool, reason Reason) {
	return x.MatchSome(line, AllRegexes)
}

// AllRegexes is the mask of MatchSome that tries every regex.
const AllRegexes = ^uint64(0)

// MatchSome is Match trying only the regexes whose bit is set in mask
// (regex i is bit i; regexes from the 64th on are always tried). The
// prefilter knows which regexes' literals a line lacks: those cannot match.
func (x *Extract) MatchSome(line []byte, mask uint64) (values []string, which int, matched bool, reason Reason) {
	return x.match(line, mask, nil, false)
}

// MatchInto is MatchSome for the hot path: it reuses values (appending to
// values[:0]) and the values it returns may share line's bytes, so they
// are valid only until line changes. A caller that keeps them must copy
// them first.
func (x *Extract) MatchInto(line []byte, mask uint64, values []string) ([]string, int, bool, Reason) {
	return x.match(line, mask, values, true)
}

func (x *Extract) match(line []byte, mask uint64, into []string, alias bool) (values []string, which int, matched bool, reason Reason) {
	var buf [16]int
	for i, r := range x.Regexes {
		if i < 64 && mask&(1<<i) == 0 {
			continue
		}
		if len(r.Captures) == 0 {
			if r.Prog != nil && r.Prog.Match(line) || r.Prog == nil && r.Re.Match(line) {
				return nil, i, true, ReasonOK
			}
			continue
		}
		var loc []int
		if r.Prog != nil {
			loc = r.Prog.FindSubmatchIndex(line, buf[:0])
		} else {
			loc = r.Re.FindSubmatchIndex(line)
		}
		if loc == nil {
			continue
		}
		if alias {
			values = into[:0]
			for range x.Patterns {
				values = append(values, "")
			}
		} else {
			values = make([]string, len(x.Patterns))
		}
		for _, c := range r.Captures {
			start, end := loc[2*c.Group], loc[2*c.Group+1]
			if start < 0 {
				return nil, i, true, Reason("<" + x.Patterns[c.Pattern].Name + "> captured nothing")
			}
			var raw string
			if alias && end > start {
				raw = unsafe.String(&line[start], end-start)
			} else {
				raw = string(line[start:end])
			}
			v, why := x.Patterns[c.Pattern].Check(raw)
			if why != ReasonOK {
				return nil, i, true, why
			}
			values[c.Pattern] = v
		}
		return values, i, true, ReasonOK
	}
	return nil, -1, false, ReasonOK
}
