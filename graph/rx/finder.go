package rx

import "bytes"

// Finder finds the occurrences of one literal in log lines. It looks for
// the literal's rarest byte with bytes.IndexByte, which is vectorised, and
// compares the literal only where that byte occurs. bytes.Index instead
// looks for the first byte, and the literals filters need mostly start
// with a byte that log text is full of (the space of " from ", the a of
// "authentication failure;").
//
// On inputs of up to 64 bytes it is bytes.Index, which compares them
// at every position at once. A line crowded with the rare byte (lines are written by attackers) makes
// it fall back to bytes.Index, so a search never costs more than a small
// constant times bytes.Index's.
//
// A Finder is immutable and safe for concurrent use.
type Finder struct {
	lit  []byte
	rare byte
	off  int // lit[off] == rare
}

// NewFinder prepares a Finder for lit.
func NewFinder(lit []byte) Finder {
	f := Finder{lit: lit}
	for i, c := range lit {
		if byteRank[c] < byteRank[f.rare] || i == 0 {
			f.rare, f.off = c, i
		}
	}
	return f
}

// Literal returns the literal f finds.
func (f *Finder) Literal() []byte { return f.lit }

// Rare returns the byte f looks for, and its offset in the literal.
func (f *Finder) Rare() (c byte, off int) { return f.rare, f.off }

// Index returns the index of the first occurrence of the literal in s, or
// -1. It is bytes.Index(s, literal).
func (f *Finder) Index(s []byte) int {
	n := len(f.lit)
	switch {
	case n == 0:
		return 0
	case n == 1:
		return bytes.IndexByte(s, f.lit[0])
	case n > len(s):
		return -1
	case len(s) <= 64:
		// bytes.Index compares short inputs at every position at once.
		return bytes.Index(s, f.lit)
	}
	// The rare byte of a match starting at p is at p+off, p ≤ len(s)-n.
	last := len(s) - n + f.off // last position the rare byte can have
	fails := 0
	for i := f.off; i <= last; {
		j := bytes.IndexByte(s[i:last+1], f.rare)
		if j < 0 {
			return -1
		}
		i += j
		start := i - f.off
		if string(s[start:start+n]) == string(f.lit) {
			return start
		}
		fails++
		if fails > 4+(i>>4) {
			// The rare byte is not rare in this line.
			if k := bytes.Index(s[start+1:], f.lit); k >= 0 {
				return start + 1 + k
			}
			return -1
		}
		i++
	}
	return -1
}

// byteRank orders bytes from the rarest (0) to the most common in log
// lines: control bytes and bytes of multi-byte runes, rare punctuation,
// uppercase letters, common punctuation, digits, lowercase letters by
// their frequency in English text, and last the space. Only the order
// matters, and only for speed: any order gives the same results.
var byteRank = func() (r [256]uint8) {
	common := "!\"#$%&'*+;<>?@\\^`{|}~" +
		"QZXJKVWYUGBFHOPLDINMRECTSA" +
		"()[],=_-/" +
		"98765432.:10" +
		"zqjxkvbpygfwmucldrhsnioate" +
		"\t "
	for i := range r {
		r[i] = 0
	}
	for i := 0; i < len(common); i++ {
		r[common[i]] = uint8(1 + i*254/len(common))
	}
	return r
}()
