package stages

import (
	"bytes"
	"math/bits"
	"slices"

	"reaction/graph"
	"reaction/graph/rx"
)

// Prefilter decides which filters of a stream may match a line, from the
// literals every match of a filter must contain (graph.FilterLiterals). It
// only ever says "maybe": a filter it passes may still not match, a filter
// it rejects cannot (compile/literal proves it).
//
// A Prefilter is used by one goroutine only: it reuses per-line buffers.
// Make one per stream runner; NewPrefilter is cheap next to a stream's
// lifetime.
type Prefilter struct {
	filters []graph.FilterLiterals

	always []uint64 // bitset of the filters without literals
	seen   []uint64 // per-line scratch: filters passed so far

	// lits are the distinct literals; litFilters[i] the filters literal
	// i lets through, and litRegexes[i][k] the regexes of litFilters[i][k]
	// it lets through (bit j: regex j).
	lits       [][]byte
	finders    []rx.Finder // finders[i] finds lits[i]
	litFilters [][]int32
	litRegexes [][]uint64

	base  []uint64 // per filter: the regexes tried whenever it passes
	masks []uint64 // per-line scratch: regexes of each filter passed so far

	// loop lists the literals searched one by one, each by its rarest byte:
	// all of them when there are few, else those too short for skip.
	loop []int32
	skip *skipScanner // nil when every literal is in loop

	// wide lists the literals of loop searched through a whole batch at
	// once (bit j of a scanBatch result: wide[j]), grouped by the rare
	// byte their Finder looks for; narrow the others, searched line by
	// line.
	wide, narrow []int32
	groups       []rareGroup
	lineFree     bool // no filter passes a line without a wide literal
}

// rareGroup is the wide literals whose Finders look for the same byte:
// one search of a batch for that byte serves them all.
type rareGroup struct {
	rare    byte
	members []rareMember
}

type rareMember struct {
	bit uint64     // 1 << its index in wide
	f   *rx.Finder // the literal's, in finders
}

// Above this many distinct literals, a search per literal costs more
// than one skipping scan for all of them.
const maxLoopLiterals = 8

// NewPrefilter compiles a stream's prefilter.
func NewPrefilter(p *graph.Prefilter) *Prefilter {
	words := (len(p.Filters) + 63) / 64
	pf := &Prefilter{
		filters: p.Filters,
		always:  make([]uint64, words),
		seen:    make([]uint64, words),
		base:    make([]uint64, len(p.Filters)),
		masks:   make([]uint64, len(p.Filters)),
	}
	index := map[string]int32{}
	for f, fl := range p.Filters {
		if fl.Always || len(fl.AnyOf) == 0 || slices.Contains(fl.AnyOf, "") {
			pf.always[f/64] |= 1 << (f % 64)
			pf.base[f] = graph.AllRegexes
			continue
		}
		// Which regexes each literal lets through: those whose own
		// literals include it. Without per-regex literals, or for a regex
		// that has none, every regex.
		regexesOf := func(l string) uint64 {
			if len(fl.Regexes) == 0 {
				return graph.AllRegexes
			}
			var bits uint64
			for j, req := range fl.Regexes[:min(len(fl.Regexes), 64)] {
				if slices.Contains(req, l) {
					bits |= 1 << j
				}
			}
			return bits // regexes from the 64th on are always tried
		}
		for j, req := range fl.Regexes[:min(len(fl.Regexes), 64)] {
			if len(req) == 0 {
				pf.base[f] |= 1 << j
			}
		}
		for _, l := range fl.AnyOf {
			i, ok := index[l]
			if !ok {
				i = int32(len(pf.lits))
				index[l] = i
				pf.lits = append(pf.lits, []byte(l))
				pf.finders = append(pf.finders, rx.NewFinder([]byte(l)))
				pf.litFilters = append(pf.litFilters, nil)
				pf.litRegexes = append(pf.litRegexes, nil)
			}
			if fs := pf.litFilters[i]; len(fs) == 0 || fs[len(fs)-1] != int32(f) {
				pf.litFilters[i] = append(fs, int32(f))
				pf.litRegexes[i] = append(pf.litRegexes[i], regexesOf(l))
			}
		}
	}
	var long []int32
	for i, l := range pf.lits {
		if len(pf.lits) > maxLoopLiterals && len(l) >= minWindow {
			long = append(long, int32(i))
		} else {
			pf.loop = append(pf.loop, int32(i))
		}
	}
	if len(long) > 0 {
		pf.skip = newSkipScanner(pf.lits, long)
	}
	for _, i := range pf.loop {
		if len(pf.lits[i]) < minWide || len(pf.wide) == 64 {
			pf.narrow = append(pf.narrow, i)
			continue
		}
		rare, _ := pf.finders[i].Rare()
		g := slices.IndexFunc(pf.groups, func(g rareGroup) bool { return g.rare == rare })
		if g < 0 {
			g = len(pf.groups)
			pf.groups = append(pf.groups, rareGroup{rare: rare})
		}
		pf.groups[g].members = append(pf.groups[g].members, rareMember{bit: 1 << len(pf.wide), f: &pf.finders[i]})
		pf.wide = append(pf.wide, i)
	}
	pf.lineFree = len(pf.narrow) == 0 && pf.skip == nil && !slices.ContainsFunc(pf.always, func(w uint64) bool { return w != 0 })
	return pf
}

// minWide is the shortest literal searched through a whole batch: a
// shorter one is likely to occur in most lines, and then costs a search
// per occurrence rather than one per line.
const minWide = 4

// Candidates appends to dst the indices (into the graph.Prefilter's
// Filters) of the filters that may match line, in increasing order. It
// does not allocate beyond growing dst.
func (p *Prefilter) Candidates(line []byte, dst []int) []int {
	dst, _ = p.candidates(line, dst, nil, false)
	return dst
}

// CandidateRegexes is Candidates that also appends to masks, for each
// candidate filter, the regexes of it that may match (a mask for
// graph.Extract.MatchSome): those whose required literal is in the line.
func (p *Prefilter) CandidateRegexes(line []byte, dst []int, masks []uint64) ([]int, []uint64) {
	return p.candidates(line, dst, masks, true)
}

func (p *Prefilter) candidates(line []byte, dst []int, masks []uint64, withMasks bool) ([]int, []uint64) {
	return p.candidatesFound(line, p.findWide(line), dst, masks, withMasks)
}

// findWide returns the set of wide literals that occur in line (bit j:
// wide[j]).
func (p *Prefilter) findWide(line []byte) uint64 {
	var found uint64
	for j, i := range p.wide {
		if p.finders[i].Index(line) >= 0 {
			found |= 1 << j
		}
	}
	return found
}

// scanBatch appends to found, for each line of b, the set of wide
// literals that occur in it, as findWide does line by line. It searches
// each literal through the batch's whole buffer at once: the rare bytes
// of filter literals are so rare that one long vectorised search costs
// far less than one per line, and lines without any (most) cost nothing.
func (p *Prefilter) scanBatch(b *Batch, found []uint64) []uint64 {
	n := len(b.Lines)
	found = slices.Grow(found[:0], n)[:n]
	clear(found)
	buf, offs := b.data(), b.offs
	for _, g := range p.groups {
		hits, k := 0, 0
		for pos := 0; pos < len(buf); {
			h := bytes.IndexByte(buf[pos:], g.rare)
			if h < 0 {
				break
			}
			h += pos
			pos = h + 1
			if hits++; hits > 64+pos/8 {
				// Not rare in these lines (they may be written to be
				// so): search them one by one, where the Finders fall
				// back to bytes.Index.
				p.scanLines(b, g, found)
				break
			}
			for _, m := range g.members {
				lit := m.f.Literal()
				_, off := m.f.Rare()
				start := h - off
				if start < 0 || start+len(lit) > len(buf) || string(buf[start:start+len(lit)]) != string(lit) {
					continue
				}
				// The line the occurrence starts in (occurrences come in
				// order, give or take the offsets of the rare byte), if
				// it ends there.
				for k+1 < n && int(offs[k+1]) <= start {
					k++
				}
				for k > 0 && int(offs[k]) > start {
					k--
				}
				if int(offs[k]) <= start && start+len(lit) <= int(offs[k])+len(b.Lines[k]) {
					found[k] |= m.bit
				}
			}
		}
	}
	return found
}

// scanLines is scanBatch for group g, line by line.
func (p *Prefilter) scanLines(b *Batch, g rareGroup, found []uint64) {
	for _, m := range g.members {
		for k, line := range b.Lines {
			if m.f.Index(line) >= 0 {
				found[k] |= m.bit
			}
		}
	}
}

// candidatesFound is candidates for a line whose wide literals found are
// known (from findWide or scanBatch).
func (p *Prefilter) candidatesFound(line []byte, found uint64, dst []int, masks []uint64, withMasks bool) ([]int, []uint64) {
	if found == 0 && p.lineFree {
		return dst, masks
	}
	seen := p.seen
	for found != 0 {
		p.pass(p.wide[bits.TrailingZeros64(found)])
		found &= found - 1
	}
	for _, i := range p.narrow {
		fs := p.litFilters[i]
		if len(fs) == 1 && seen[fs[0]/64]&(1<<(fs[0]%64)) != 0 && p.masks[fs[0]]&p.litRegexes[i][0] == p.litRegexes[i][0] {
			continue // nothing to learn: its only filter passed, with these regexes
		}
		if p.finders[i].Index(line) >= 0 {
			p.pass(i)
		}
	}
	if p.skip != nil {
		p.skip.scan(line, p)
	}
	for w := range seen {
		word := seen[w] | p.always[w]
		seen[w] = 0
		for word != 0 {
			f := w*64 + bits.TrailingZeros64(word)
			dst = append(dst, f)
			if withMasks {
				masks = append(masks, p.masks[f]|p.base[f])
			}
			p.masks[f] = 0
			word &= word - 1
		}
	}
	return dst, masks
}

// pass records that literal i is in the line.
func (p *Prefilter) pass(i int32) {
	for k, f := range p.litFilters[i] {
		p.seen[f/64] |= 1 << (f % 64)
		p.masks[f] |= p.litRegexes[i][k]
	}
}

// skipScanner finds many literals in one pass that skips most of the line,
// in the manner of Wu–Manber: each literal is represented by its first m
// bytes (its window); a table tells, for every pair of bytes, how far the
// end of a window can be from it, so a pair that ends no window lets the
// scan jump ahead by up to m-1 bytes. Where a window may end, the windows
// ending in that pair are compared, and then their literals.
type skipScanner struct {
	m       int
	shift   [1 << 16]uint8     // byte pair (little-endian) → safe jump
	ends    map[uint16][]int32 // byte pair → windows ending with it
	windows [][]byte
	lits    [][]int32 // window → literals starting with it
}

// minWindow is the shortest literal the skip scanner takes: shorter ones
// would allow too short jumps for every other literal.
const (
	minWindow = 4
	maxWindow = 8
)

func newSkipScanner(lits [][]byte, long []int32) *skipScanner {
	m := maxWindow
	for _, i := range long {
		m = min(m, len(lits[i]))
	}
	s := &skipScanner{m: m, ends: map[uint16][]int32{}}
	for i := range s.shift {
		s.shift[i] = uint8(m - 1)
	}
	index := map[string]int32{}
	for _, i := range long {
		w := lits[i][:m]
		j, ok := index[string(w)]
		if !ok {
			j = int32(len(s.windows))
			index[string(w)] = j
			s.windows = append(s.windows, w)
			s.lits = append(s.lits, nil)
			for q := 1; q < m; q++ { // pair w[q-1:q+1] is m-1-q bytes before the end
				pair := uint16(w[q-1]) | uint16(w[q])<<8
				s.shift[pair] = min(s.shift[pair], uint8(m-1-q))
			}
			pair := uint16(w[m-2]) | uint16(w[m-1])<<8
			s.ends[pair] = append(s.ends[pair], j)
		}
		s.lits[j] = append(s.lits[j], i)
	}
	return s
}

func (s *skipScanner) scan(line []byte, p *Prefilter) {
	m := s.m
	for end := m - 1; end < len(line); {
		pair := uint16(line[end-1]) | uint16(line[end])<<8
		if jump := s.shift[pair]; jump > 0 {
			end += int(jump)
			continue
		}
		start := end + 1 - m
		for _, w := range s.ends[pair] {
			if !bytes.Equal(line[start:end+1], s.windows[w]) {
				continue
			}
			for _, i := range s.lits[w] {
				if l := p.lits[i]; len(l) == m || bytes.HasPrefix(line[start:], l) {
					p.pass(i)
				}
			}
		}
		end++
	}
}

// PrefilterDecision is the prefilter's verdict on one filter for one line,
// as `test-regex --trace` shows it.
type PrefilterDecision struct {
	Filter  string
	Passed  bool
	Always  bool   // the filter has no required literal: every line passes
	Literal string // the literal that let the line through, "" when not passed or Always
}

// Explain returns the decision for every filter, in filter order. It is
// slow and allocates; it is for tracing a line, not for the hot path.
// Its verdicts are those of Candidates.
func (p *Prefilter) Explain(line []byte) []PrefilterDecision {
	out := make([]PrefilterDecision, len(p.filters))
	for f, fl := range p.filters {
		d := PrefilterDecision{Filter: fl.Filter}
		if p.always[f/64]&(1<<(f%64)) != 0 {
			d.Passed, d.Always = true, true
		} else {
			for _, l := range fl.AnyOf {
				if bytes.Contains(line, []byte(l)) {
					d.Passed, d.Literal = true, l
					break
				}
			}
		}
		out[f] = d
	}
	return out
}
