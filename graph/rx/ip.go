package rx

import "regexp/syntax"

// ipSource is the address regex that <ip> patterns insert (graph.RegexIP,
// which a graph test keeps equal to it): an IPv6 address, possibly with an
// embedded IPv4 tail, or an IPv4 address.
//
//	IPv6 = G{2,7} T     G = H{0,4}:     T = V4 | H{0,4}     H = [0-9a-fA-F]
//	V4   = (D{1,3}\.){3} D{1,3}         D = [0-9]
//
// Matched instruction by instruction it costs 25 steps for an IPv4
// address and 60 for an IPv6 one, most of them choice points. Yet its
// matches at a position are few and easy to list in the order the
// backtracker reaches them, which opIP does:
//
//   - G cannot give anything back: H cannot match ':', so G matches
//     exactly the run of up to 4 hex digits before a ':'. The groups
//     from a position are a fixed chain; G{2,7} (spelled xx(x(x…)?)?)
//     tries the longest chain of up to 7 first, then one group fewer,
//     down to 2.
//   - After c groups, T tries V4 first, then H{0,4} from the longest
//     run (up to 4 hex digits) down to none.
//   - In V4 the first three D{1,3} likewise match exactly a run of 1 to 3
//     digits before a '.'; the last one tries its run (up to 3) first,
//     then one digit fewer, down to 1.
//   - IPv4 (the second alternative) is V4 at the position itself.
//
// Every end is tried with the rest of the program, in that order; the
// first that leads to a match is the standard library's match.
// TestIPAgrees compares it with the standard library on lines made to
// make the rest of the program refuse the first ends.
const ipSource = `(?:[0-9a-fA-F]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-fA-F]{0,4})|(?:[0-9]{1,3}\.){3}[0-9]{1,3}`

// IPSource returns the address regex a Program matches by hand.
func IPSource() string { return ipSource }

var ipTree = func() *syntax.Regexp {
	re, err := syntax.Parse(ipSource, syntax.Perl)
	if err != nil {
		panic(err)
	}
	return re
}()

// ipStarts holds the bytes an address can begin with.
var ipStarts = newClass([]rune{'0', ':', 'A', 'F', 'a', 'f'})

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// run returns how many bytes from pos satisfy ok, counting up to limit.
func run(in []byte, pos, limit int, ok func(byte) bool) int {
	n := 0
	for n < limit && pos+n < len(in) && ok(in[pos+n]) {
		n++
	}
	return n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// v4 matches the three dotted groups of V4 at pos: it returns where the
// last group starts and how many digits it may take (1 to 3), or -1.
func v4(in []byte, pos int) (last, digits int) {
	for range 3 {
		r := run(in, pos, 4, isDigit)
		if r == 0 || r > 3 || pos+r >= len(in) || in[pos+r] != '.' {
			return -1, 0
		}
		pos += r + 1
	}
	r := run(in, pos, 3, isDigit)
	if r == 0 {
		return -1, 0
	}
	return pos, r
}

// ip tries the rest of the program (i.next) at each end of an address
// starting at pos, in the backtracker's order (see ipSource).
func (m *machine) ip(i *inst, pos int) bool {
	in := m.in
	h := m.tp
	var after [8]int // after[c]: the end of the chain of c groups
	after[0] = pos
	k := 0
	for q := pos; k < 7; k++ {
		r := run(in, q, 5, isHex)
		if r > 4 || q+r >= len(in) || in[q+r] != ':' {
			break
		}
		q += r + 1
		after[k+1] = q
	}
	m.budget -= after[k] - pos + 1
	try := func(end int) (stop, ok bool) {
		m.budget--
		return m.try(i.next, end, h)
	}
	for c := k; c >= 2; c-- {
		at := after[c]
		if last, d := v4(in, at); last >= 0 {
			for ; d >= 1; d-- {
				if stop, ok := try(last + d); stop {
					return ok
				}
			}
		}
		for d := run(in, at, 4, isHex); d >= 0; d-- {
			if stop, ok := try(at + d); stop {
				return ok
			}
		}
	}
	if last, d := v4(in, pos); last >= 0 {
		for ; d >= 1; d-- {
			if stop, ok := try(last + d); stop {
				return ok
			}
		}
	}
	return false
}
