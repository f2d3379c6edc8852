package compile

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// ref is a `<name>` in a filter regex or an action argument: text[start:end].
type ref struct {
	name       string
	start, end int
}

func isNameStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isNameByte(c byte) bool  { return isNameStart(c) || (c >= '0' && c <= '9') || c == '-' }

// validPatternName tells whether a pattern can be referred to as <name>.
func validPatternName(name string) bool {
	if name == "" || !isNameStart(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return false
		}
	}
	return true
}

// nameAt returns the `<name>` starting at s[i] == '<', if there is one.
func nameAt(s string, i int) (ref, bool) {
	j := i + 1
	if j >= len(s) || !isNameStart(s[j]) {
		return ref{}, false
	}
	for j < len(s) && isNameByte(s[j]) {
		j++
	}
	if j >= len(s) || s[j] != '>' {
		return ref{}, false
	}
	return ref{name: s[i+1 : j], start: i, end: j + 1}, true
}

// regexRefs finds the `<name>`s of a regex. A backslash-escaped `\<` is
// literal text, and the names of the regex's own named groups,
// `(?P<name>` and `(?<name>`, are not references.
func regexRefs(s string) []ref {
	var refs []ref
	open := -1 // index of the last unescaped '(', -1 for none
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			open = i
		case '<':
			if open >= 0 && ((open == i-2 && s[i-1] == '?') || (open == i-3 && s[i-2:i] == "?P")) {
				continue
			}
			if r, ok := nameAt(s, i); ok {
				refs = append(refs, r)
				i = r.end - 1
			}
		}
	}
	return refs
}

// argRefs finds the `<name>`s of an action argument that name one of the
// given patterns; other `<...>` text is literal.
func argRefs(s string, isPattern func(string) bool) []ref {
	var refs []ref
	for i := 0; i < len(s); i++ {
		if s[i] != '<' {
			continue
		}
		if r, ok := nameAt(s, i); ok && isPattern(r.name) {
			refs = append(refs, r)
			i = r.end - 1
		}
	}
	return refs
}

// expandRegex replaces each ref of src by a named capture group holding
// its pattern's regex, compiles the result, and returns the submatch
// index of each ref's group. The groups are named after the patterns when
// that is unambiguous (readable in `reaction graph`), otherwise with
// generated names that clash with none of the regex's own groups.
func expandRegex(src string, refs []ref, regexOf func(name string) string) (expanded string, re *regexp.Regexp, groups []int, err error) {
	for level := 0; level < 8; level++ {
		names := make([]string, len(refs))
		for k, r := range refs {
			if level == 0 {
				names[k] = strings.ReplaceAll(r.name, "-", "_")
			} else {
				names[k] = fmt.Sprintf("%s_%d_%d", strings.Repeat("_", level), k, level)
			}
		}
		var b strings.Builder
		last := 0
		for k, r := range refs {
			b.WriteString(src[last:r.start])
			b.WriteString("(?P<" + names[k] + ">(?:" + regexOf(r.name) + "))")
			last = r.end
		}
		b.WriteString(src[last:])
		expanded = b.String()
		re, err = regexp.Compile(expanded)
		if err != nil {
			return "", nil, nil, err
		}
		count := map[string]int{}
		for _, n := range re.SubexpNames() {
			count[n]++
		}
		unique := true
		for _, n := range names {
			unique = unique && count[n] == 1
		}
		if !unique {
			continue
		}
		groups = make([]int, len(refs))
		for k, n := range names {
			groups[k] = re.SubexpIndex(n)
		}
		return expanded, re, groups, nil
	}
	return "", nil, nil, errors.New("cannot name the capture groups of the patterns without clashing with the regex's own groups")
}

// regexError phrases a regexp compile error for the configuration's author.
func regexError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid regex: %s: `%s`", se.Code, se.Expr)
	}
	return "invalid regex: " + err.Error()
}
