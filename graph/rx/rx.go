// Package rx finds the submatches of a compiled regexp faster than the
// standard library on the regexes log filters are made of, with exactly
// the standard library's results.
//
// A filter regex is mostly literal text, `.*` gaps and a few pattern
// captures (an address, a user name). The standard library runs such a
// regex one byte and one instruction at a time and clears a visited bitmap
// of (instructions × line length) bits on every call. A Program instead
// compares literal runs as whole strings, lets a greedy `.*` jump straight
// to the occurrences of the literal that follows it, and keeps no bitmap.
//
// It is a backtracking matcher that explores the alternatives in the
// order the standard library prefers them (leftmost-first, greedy
// operators trying more before less), so the match and every submatch
// are the same. What it does not support it does not attempt: a regex with
// a case-folded literal, a loop whose body can match the empty string, or
// an operator Simplify leaves behind that it does not know, runs on the
// standard library alone. Backtracking without a bitmap can explode on a
// hostile line; each search has a step budget linear in the line's length,
// and a search that spends it is run again by the standard library. So a
// line costs at most a constant factor more than the standard library
// would take, never exponential time.
//
// rx imports the standard library only. A Program is safe for concurrent
// use.
package rx

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"slices"
	"unicode/utf8"
)

// Program is a regexp compiled for FindSubmatchIndex.
type Program struct {
	re     *regexp.Regexp
	insts  []inst // nil: the standard library runs every search
	start  int    // first instruction
	slots  int    // 2 × (groups + 1)
	prefix Finder // every match starts with its literal (empty: unknown)
	anchor bool   // matches only at the start of the input
}

type opcode uint8

const (
	opMatch    opcode = iota // the whole regex matched
	opLit                    // the literal lit
	opRune                   // one rune in class
	opCapture                // record the position in slot, then next
	opAlt                    // try alts in order
	opLoop                   // a star over a body that never matches empty: try body (which comes back here) or next
	opRuneLoop               // between min and max (-1: no limit) runes of class
	opAssert                 // the empty-width condition assert holds here
	opIP                     // the address regex of <ip> patterns (ipSource), then next
)

type inst struct {
	op     opcode
	greedy bool
	next   int
	lit    []byte
	class  *class
	slot   int
	alts   []int
	body   int
	min    int
	max    int
	assert syntax.EmptyOp
	// follow is a literal every match of next begins with, or nil: a rune
	// loop tries only the positions where it occurs.
	follow       []byte
	followFinder Finder // finds follow
	// possessive: a greedy rune loop whose class shares no rune with what
	// next can start with. Giving back a rune cannot help next then (it
	// would have to start with that rune), so only the longest count is
	// tried, without recursion.
	possessive bool
}

// class is a set of runes: a bitmap for ASCII, sorted ranges above.
type class struct {
	ascii [2]uint64
	wide  []rune // pairs lo, hi of runes ≥ 0x80
	nl    bool   // contains '\n' (AnyCharNotNL does not)
}

func (c *class) has(r rune) bool {
	if r < 0x80 {
		return c.ascii[r>>6]&(1<<(r&63)) != 0
	}
	for i := 0; i < len(c.wide); i += 2 {
		if r < c.wide[i] {
			return false
		}
		if r <= c.wide[i+1] {
			return true
		}
	}
	return false
}

func newClass(ranges []rune) *class {
	c := &class{}
	for i := 0; i < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		for r := lo; r <= hi && r < 0x80; r++ {
			c.ascii[r>>6] |= 1 << (r & 63)
		}
		if hi >= 0x80 {
			c.wide = append(c.wide, max(lo, 0x80), hi)
		}
	}
	c.nl = c.has('\n')
	return c
}

// anyRune and anyRuneNotNL are the classes of (?s). and of . .
var (
	anyRune      = newClass([]rune{0, utf8.MaxRune})
	anyRuneNotNL = newClass([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune})
)

// Compile prepares re. It never fails: a regex it cannot run faster is
// left to the standard library, which Fast reports.
func Compile(re *regexp.Regexp) *Program {
	p := &Program{re: re, slots: 2 * (re.NumSubexp() + 1)}
	tree, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil || p.slots > maxSlots {
		return p
	}
	c := &compiler{}
	c.insts = append(c.insts, inst{op: opMatch})
	start, ok := c.compile(tree, 0)
	if !ok {
		return p
	}
	p.insts, p.start = c.insts, start
	p.prefix = NewFinder(c.first(start))
	in := &p.insts[start]
	p.anchor = in.op == opAssert && in.assert == syntax.EmptyBeginText
	for i := range p.insts {
		if in := &p.insts[i]; in.op == opRuneLoop {
			in.follow = c.first(in.next)
			in.followFinder = NewFinder(in.follow)
			if in.greedy {
				s, ok := c.starts(in.next, 0)
				in.possessive = ok && !s.overlaps(in.class)
			}
		}
	}
	return p
}

// Fast reports whether searches run on the Program's own matcher.
func (p *Program) Fast() bool { return p.insts != nil }

type compiler struct {
	insts []inst
}

func (c *compiler) add(in inst) int {
	c.insts = append(c.insts, in)
	return len(c.insts) - 1
}

// compile adds the instructions of re followed by next and returns the
// first one.
func (c *compiler) compile(re *syntax.Regexp, next int) (int, bool) {
	if re.Equal(ipTree) {
		return c.add(inst{op: opIP, next: next}), true
	}
	switch re.Op {
	case syntax.OpEmptyMatch:
		return next, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || slices.Contains(re.Rune, utf8.RuneError) {
			// The standard library matches U+FFFD against any invalid
			// byte: no byte comparison can do that.
			return 0, false
		}
		return c.add(inst{op: opLit, lit: []byte(string(re.Rune)), next: next}), true
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return c.add(inst{op: opRune, class: classOf(re), next: next}), true
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return c.add(inst{op: opAssert, assert: emptyOp(re.Op), next: next}), true
	case syntax.OpCapture:
		end := c.add(inst{op: opCapture, slot: 2*re.Cap + 1, next: next})
		body, ok := c.compile(re.Sub[0], end)
		if !ok {
			return 0, false
		}
		return c.add(inst{op: opCapture, slot: 2 * re.Cap, next: body}), true
	case syntax.OpConcat:
		for i := len(re.Sub) - 1; i >= 0; i-- {
			var ok bool
			if next, ok = c.compile(re.Sub[i], next); !ok {
				return 0, false
			}
		}
		return next, true
	case syntax.OpAlternate:
		alts := make([]int, len(re.Sub))
		for i, sub := range re.Sub {
			var ok bool
			if alts[i], ok = c.compile(sub, next); !ok {
				return 0, false
			}
		}
		return c.add(inst{op: opAlt, alts: alts}), true
	case syntax.OpRepeat:
		if cl := singleRune(re.Sub[0]); cl != nil {
			greedy := re.Flags&syntax.NonGreedy == 0
			return c.add(inst{op: opRuneLoop, class: cl, greedy: greedy, min: re.Min, max: re.Max, next: next}), true
		}
		return c.compile(spellOut(re), next)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		greedy := re.Flags&syntax.NonGreedy == 0
		sub := re.Sub[0]
		if cl := singleRune(sub); cl != nil {
			in := inst{op: opRuneLoop, class: cl, greedy: greedy, max: -1, next: next}
			switch re.Op {
			case syntax.OpPlus:
				in.min = 1
			case syntax.OpQuest:
				in.max = 1
			}
			return c.add(in), true
		}
		if re.Op == syntax.OpQuest {
			body, ok := c.compile(sub, next)
			if !ok {
				return 0, false
			}
			if greedy {
				return c.add(inst{op: opAlt, alts: []int{body, next}}), true
			}
			return c.add(inst{op: opAlt, alts: []int{next, body}}), true
		}
		if canBeEmpty(sub) {
			// The standard library's handling of an empty iteration is not
			// a plain backtracker's: leave such loops to it.
			return 0, false
		}
		loop := c.add(inst{op: opLoop, greedy: greedy, next: next})
		body, ok := c.compile(sub, loop)
		if !ok {
			return 0, false
		}
		c.insts[loop].body = body
		if re.Op == syntax.OpPlus {
			// x+ is x then x*.
			return c.compile(sub, loop)
		}
		return loop, true
	}
	return 0, false
}

// spellOut writes x{n,m} as Simplify does, so that the standard library
// and rx explore the same alternatives in the same order: n copies of x,
// then m-n nested optional copies, x{2,5} = xx(x(x(x)?)?)?, or for
// x{n,} n-1 copies then x+. Unlike Simplify it leaves x itself alone: a
// counted rune loop inside x stays one loop instead of becoming nested
// alternatives, which is what makes an address pattern cheap.
func spellOut(re *syntax.Regexp) *syntax.Regexp {
	sub, flags := re.Sub[0], re.Flags&syntax.NonGreedy
	op := func(o syntax.Op, subs ...*syntax.Regexp) *syntax.Regexp {
		return &syntax.Regexp{Op: o, Flags: flags, Sub: subs}
	}
	switch {
	case re.Min == 0 && re.Max == 0:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	case re.Max == -1 && re.Min == 0:
		return op(syntax.OpStar, sub)
	case re.Max == -1:
		cat := op(syntax.OpConcat)
		for range re.Min - 1 {
			cat.Sub = append(cat.Sub, sub)
		}
		cat.Sub = append(cat.Sub, op(syntax.OpPlus, sub))
		return cat
	case re.Min == 1 && re.Max == 1:
		return sub
	}
	cat := op(syntax.OpConcat)
	for range re.Min {
		cat.Sub = append(cat.Sub, sub)
	}
	if re.Max > re.Min {
		suffix := op(syntax.OpQuest, sub)
		for range re.Max - re.Min - 1 {
			suffix = op(syntax.OpQuest, op(syntax.OpConcat, sub, suffix))
		}
		cat.Sub = append(cat.Sub, suffix)
	}
	return cat
}

func classOf(re *syntax.Regexp) *class {
	switch re.Op {
	case syntax.OpAnyChar:
		return anyRune
	case syntax.OpAnyCharNotNL:
		return anyRuneNotNL
	case syntax.OpLiteral:
		return newClass([]rune{re.Rune[0], re.Rune[0]})
	}
	return newClass(re.Rune)
}

// singleRune returns the class of a regex that matches exactly one rune,
// or nil.
func singleRune(re *syntax.Regexp) *class {
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return classOf(re)
	case syntax.OpLiteral:
		if len(re.Rune) == 1 && re.Flags&syntax.FoldCase == 0 && re.Rune[0] != utf8.RuneError {
			return classOf(re)
		}
	}
	return nil
}

func emptyOp(op syntax.Op) syntax.EmptyOp {
	switch op {
	case syntax.OpBeginLine:
		return syntax.EmptyBeginLine
	case syntax.OpEndLine:
		return syntax.EmptyEndLine
	case syntax.OpBeginText:
		return syntax.EmptyBeginText
	case syntax.OpEndText:
		return syntax.EmptyEndText
	case syntax.OpWordBoundary:
		return syntax.EmptyWordBoundary
	}
	return syntax.EmptyNoWordBoundary
}

// canBeEmpty reports whether re may match the empty string (conservatively:
// true when unsure).
func canBeEmpty(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCharClass:
		return len(re.Rune) == 0 // matches nothing at all; be careful anyway
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return canBeEmpty(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !canBeEmpty(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if canBeEmpty(s) {
				return true
			}
		}
		return false
	case syntax.OpRepeat:
		return re.Min == 0 || canBeEmpty(re.Sub[0])
	}
	return true
}

// first returns a literal that every match starting at instruction pc
// begins with, or nil.
func (c *compiler) first(pc int) []byte {
	for range len(c.insts) {
		in := &c.insts[pc]
		switch in.op {
		case opLit:
			return in.lit
		case opCapture:
			pc = in.next
		case opRuneLoop:
			if in.min == 0 {
				return nil
			}
			if r, ok := soleRune(in.class); ok {
				return utf8.AppendRune(nil, r)
			}
			return nil
		case opRune:
			if r, ok := soleRune(in.class); ok {
				return utf8.AppendRune(nil, r)
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// starts returns a class holding every rune a match starting at
// instruction pc can begin with; a match that consumes nothing must reach
// opMatch without any assertion. ok is false when that cannot be told.
func (c *compiler) starts(pc, depth int) (set *class, ok bool) {
	if depth > 16 {
		return nil, false
	}
	in := &c.insts[pc]
	switch in.op {
	case opMatch:
		return &class{}, true
	case opLit:
		r, _ := utf8.DecodeRune(in.lit)
		return newClass([]rune{r, r}), true
	case opRune:
		return in.class, true
	case opIP:
		return ipStarts, true // an address is never empty
	case opCapture:
		return c.starts(in.next, depth+1)
	case opRuneLoop:
		if in.min > 0 {
			return in.class, true
		}
		s, ok := c.starts(in.next, depth+1)
		if !ok {
			return nil, false
		}
		return s.union(in.class), true
	case opAlt, opLoop:
		alts := in.alts
		if in.op == opLoop {
			alts = []int{in.body, in.next}
		}
		u := &class{}
		for _, a := range alts {
			s, ok := c.starts(a, depth+1)
			if !ok {
				return nil, false
			}
			u = u.union(s)
		}
		return u, true
	}
	return nil, false
}

func (c *class) union(d *class) *class {
	u := &class{ascii: [2]uint64{c.ascii[0] | d.ascii[0], c.ascii[1] | d.ascii[1]}}
	u.wide = append(append(u.wide, c.wide...), d.wide...) // overlaps only reads pairs
	u.nl = c.nl || d.nl
	return u
}

// overlaps reports whether c and d share a rune.
func (c *class) overlaps(d *class) bool {
	if c.ascii[0]&d.ascii[0] != 0 || c.ascii[1]&d.ascii[1] != 0 {
		return true
	}
	for i := 0; i < len(c.wide); i += 2 {
		for j := 0; j < len(d.wide); j += 2 {
			if c.wide[i] <= d.wide[j+1] && d.wide[j] <= c.wide[i+1] {
				return true
			}
		}
	}
	return false
}

// soleRune returns the only rune of c, if it has exactly one.
func soleRune(c *class) (rune, bool) {
	var found rune = -1
	for w, bits := range c.ascii {
		for bits != 0 {
			if found >= 0 {
				return 0, false
			}
			b := rune(0)
			for bits&(1<<b) == 0 {
				b++
			}
			found = rune(w*64) + b
			bits &^= 1 << b
		}
	}
	if len(c.wide) == 2 && c.wide[0] == c.wide[1] && found < 0 {
		return c.wide[0], true
	}
	if len(c.wide) == 0 && found >= 0 {
		return found, true
	}
	return 0, false
}

// FindSubmatchIndex is regexp.Regexp.FindSubmatchIndex: the leftmost
// match of b and its submatches as index pairs, -1 for a group that took
// no part, or nil. The result is appended to dst[:0].
func (p *Program) FindSubmatchIndex(b []byte, dst []int) []int {
	if p.insts == nil || len(b) > maxInput {
		return p.slow(b, dst)
	}
	m := machine{p: p, in: b, budget: 1024 + 32*len(b)}
	if m.search() {
		return append(dst[:0], m.caps[:p.slots]...)
	}
	if m.budget < 0 {
		return p.slow(b, dst)
	}
	return nil
}

func (p *Program) slow(b []byte, dst []int) []int {
	loc := p.re.FindSubmatchIndex(b)
	if loc == nil {
		return nil
	}
	return append(dst[:0], loc...)
}

// Match is regexp.Regexp.Match.
func (p *Program) Match(b []byte) bool {
	if p.insts == nil || len(b) > maxInput {
		return p.re.Match(b)
	}
	m := machine{p: p, in: b, budget: 1024 + 32*len(b)}
	if m.search() {
		return true
	}
	if m.budget < 0 {
		return p.re.Match(b)
	}
	return false
}

// machine is the state of one search. It lives on the stack of
// FindSubmatchIndex: nothing in it is written through a pointer that could
// escape, and its arrays are fixed (a search that needs more stack runs on
// the standard library).
type machine struct {
	p      *Program
	in     []byte
	end    int
	budget int // steps left; below 0 the search is abandoned
	caps   [maxSlots]int
	sp     int
	stack  [24]int32 // positions of rune loops being backtracked
	tp     int
	trail  [24]undo // captures to undo when the path that set them fails
}

// Positions on the stack and the trail are int32 to keep the machine small
// (it is zeroed on every search); longer inputs go to the standard library.
const maxInput = 1<<31 - 1

type undo struct{ slot, old int32 }

// rewind undoes the captures set since the trail was at height h.
func (m *machine) rewind(h int) {
	for m.tp > h {
		m.tp--
		u := m.trail[m.tp]
		m.caps[u.slot] = int(u.old)
	}
}

// maxSlots bounds the submatch slots a Program handles itself.
const maxSlots = 2 * 8

// push puts a position on the stack, abandoning the search when it is full.
func (m *machine) push(pos int) {
	if m.sp == len(m.stack) {
		m.budget = -1
		return
	}
	m.stack[m.sp] = int32(pos)
	m.sp++
}

func (m *machine) search() bool {
	p, in := m.p, m.in
	for pos := 0; pos <= len(in); {
		if len(p.prefix.lit) > 0 {
			i := p.prefix.Index(in[pos:])
			if i < 0 {
				return false
			}
			pos += i
		}
		for i := range m.p.slots {
			m.caps[i] = -1
		}
		m.tp = 0
		if m.run(p.start, pos) {
			m.caps[0], m.caps[1] = pos, m.end
			return true
		}
		if m.budget < 0 || p.anchor || pos == len(in) {
			return false
		}
		_, w := decode(in[pos:])
		pos += w
	}
	return false
}

// decode returns the rune at the start of b and its width as the standard
// library steps through input: an invalid byte is utf8.RuneError, width 1.
func decode(b []byte) (rune, int) {
	if len(b) == 0 {
		return -1, 0
	}
	if b[0] < utf8.RuneSelf {
		return rune(b[0]), 1
	}
	return utf8.DecodeRune(b)
}

// run reports whether the program matches from instruction pc at input
// position pos; on success m.end is where the match ends and m.caps holds
// the submatches.
func (m *machine) run(pc, pos int) bool {
	in := m.in
	for {
		m.budget--
		if m.budget < 0 {
			return false
		}
		i := &m.p.insts[pc]
		switch i.op {
		case opMatch:
			m.end = pos
			return true
		case opLit:
			if !bytes.HasPrefix(in[pos:], i.lit) {
				return false
			}
			pos += len(i.lit)
			pc = i.next
		case opRune:
			r, w := decode(in[pos:])
			if w == 0 || !i.class.has(r) {
				return false
			}
			pos += w
			pc = i.next
		case opCapture:
			// Recorded on the trail: a choice point that fails rewinds it.
			if m.tp == len(m.trail) {
				m.budget = -1
				return false
			}
			m.trail[m.tp] = undo{int32(i.slot), int32(m.caps[i.slot])}
			m.tp++
			m.caps[i.slot] = pos
			pc = i.next
		case opAlt:
			last := len(i.alts) - 1
			h := m.tp
			for _, a := range i.alts[:last] {
				if stop, ok := m.try(a, pos, h); stop {
					return ok
				}
			}
			pc = i.alts[last]
		case opLoop:
			first, second := i.body, i.next
			if !i.greedy {
				first, second = second, first
			}
			h := m.tp
			if stop, ok := m.try(first, pos, h); stop {
				return ok
			}
			pc = second
		case opRuneLoop:
			if !i.possessive {
				return m.runeLoop(i, pos)
			}
			n := 0
			for n != i.max && pos < len(in) {
				if c := in[pos]; c < utf8.RuneSelf {
					if i.class.ascii[c>>6]&(1<<(c&63)) == 0 {
						break
					}
					pos++
				} else {
					r, w := utf8.DecodeRune(in[pos:])
					if !i.class.has(r) {
						break
					}
					pos += w
				}
				n++
			}
			if n < i.min {
				return false
			}
			m.budget -= n
			pc = i.next
		case opAssert:
			if !m.holds(i.assert, pos) {
				return false
			}
			pc = i.next
		case opIP:
			return m.ip(i, pos)
		}
	}
}

// runeLoop matches between i.min and i.max runes of i.class from pos, then
// the rest of the program, trying the counts in i's order of preference.
func (m *machine) runeLoop(i *inst, pos int) bool {
	in := m.in
	h := m.tp
	if !i.greedy {
		for n := 0; ; n++ {
			if n >= i.min && (i.follow == nil || bytes.HasPrefix(in[pos:], i.follow)) {
				if stop, ok := m.try(i.next, pos, h); stop {
					return ok
				}
			}
			if n == i.max {
				return false
			}
			r, w := decode(in[pos:])
			if w == 0 || !i.class.has(r) {
				return false
			}
			pos += w
			m.budget--
		}
	}
	if f := i.follow; f != nil && i.min <= 1 && i.max < 0 && (i.class == anyRune || i.class == anyRuneNotNL) {
		// A greedy .* before a literal: every rune up to the end of the
		// line (or of the input) is taken, and the literal's occurrences
		// are rune boundaries, so jump from the last one backwards.
		end := len(in)
		if i.class == anyRuneNotNL {
			if j := bytes.IndexByte(in[pos:], '\n'); j >= 0 {
				end = pos + j
			}
		}
		return m.jumpBack(i, pos+i.min, min(len(in), end+len(f)))
	}
	// Greedy: take as many runes as allowed, remembering where each ended,
	// then give them back one at a time.
	base := m.sp
	defer func() { m.sp = base }()
	narrow := true // every rune so far is one byte wide (an invalid byte is too)
	end, n := pos, 0
	for n != i.max {
		r, w := decode(in[end:])
		if w == 0 || !i.class.has(r) {
			break
		}
		if w != 1 {
			narrow = false
		}
		if !narrow {
			if m.sp == base {
				for p := pos; p < end; p++ { // the narrow runes before this one
					m.push(p)
				}
			}
			m.push(end)
		}
		end += w
		n++
		m.budget--
	}
	if m.budget < 0 || n < i.min {
		return false
	}
	if narrow {
		// Every rune was one byte: positions pos+min … end.
		lo := pos + i.min
		if f := i.follow; f != nil {
			return m.jumpBack(i, lo, min(len(in), end+len(f)))
		}
		for at := end; at >= lo; at-- {
			if stop, ok := m.try(i.next, at, h); stop {
				return ok
			}
		}
		return false
	}
	// stack[base+k] is where rune k+1 starts, which is where k runes end;
	// n runes end at end.
	for k := n; k >= i.min; k-- {
		at := end
		if k < n {
			at = int(m.stack[base+k])
		}
		if i.follow != nil && !bytes.HasPrefix(in[at:], i.follow) {
			m.budget--
			continue
		}
		if stop, ok := m.try(i.next, at, h); stop {
			return ok
		}
	}
	return false
}

// jumpBack tries the rest of the program after a greedy rune loop at each
// occurrence of the literal i.follow that lies in in[lo:hi], from the last
// one to the first. Every position in [lo, hi-len(follow)] must be one the
// loop can end at.
func (m *machine) jumpBack(i *inst, lo, hi int) bool {
	// Collect them with forward searches (vectorised, where LastIndex is
	// not), then try them backwards.
	f := i.follow
	h := m.tp
	base := m.sp
	defer func() { m.sp = base }()
	for lo <= hi-len(f) {
		j := i.followFinder.Index(m.in[lo:hi])
		if j < 0 {
			break
		}
		m.push(lo + j)
		lo += j + 1
		m.budget--
	}
	if m.budget < 0 {
		return false
	}
	for k := m.sp - 1; k >= base; k-- {
		if stop, ok := m.try(i.next, int(m.stack[k]), h); stop {
			return ok
		}
	}
	return false
}

// try runs the rest of the program from pc at pos as one alternative of
// a choice point whose trail height was h. stop reports that the search is
// decided, with ok its outcome (a match, or the budget spent); otherwise
// the alternative failed and its captures are undone.
func (m *machine) try(pc, pos, h int) (stop, ok bool) {
	if m.run(pc, pos) {
		return true, true
	}
	if m.budget < 0 {
		return true, false
	}
	m.rewind(h)
	return false, false
}

// holds reports whether the empty-width condition op holds at pos.
func (m *machine) holds(op syntax.EmptyOp, pos int) bool {
	in := m.in
	switch op {
	case syntax.EmptyBeginText:
		return pos == 0
	case syntax.EmptyEndText:
		return pos == len(in)
	case syntax.EmptyBeginLine:
		return pos == 0 || in[pos-1] == '\n'
	case syntax.EmptyEndLine:
		return pos == len(in) || in[pos] == '\n'
	}
	before := pos > 0 && isWordByte(in[pos-1])
	after := pos < len(in) && isWordByte(in[pos])
	if op == syntax.EmptyWordBoundary {
		return before != after
	}
	return before == after
}

// isWordByte is syntax.IsWordChar for a byte: a byte ≥ 0x80 belongs to a
// rune that is never an ASCII word character.
func isWordByte(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}
