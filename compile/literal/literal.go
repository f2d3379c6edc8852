// Package literal derives, from a parsed regular expression, literals that
// every match must contain. It proves; it never guesses.
package literal

import "regexp/syntax"

// Required returns a set of literals such that any text the regex matches
// contains at least one of them. ok is false when no such set can be proven
// (the caller must then pass every line to the regex).
func Required(re *syntax.Regexp) (anyOf []string, ok bool) {
	return nil, false // placeholder until the derivation lands
}
