package nutsstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"

	"reaction/stages"
)

// defaultGroupBytes is the size of a group on average: a filter gets one
// more group each time its keys take defaultGroupBytes more. Larger groups
// mean fewer nutsdb records (less memory, faster starts and compactions)
// but more bytes rewritten by each fold.
const defaultGroupBytes = 2048

// maxLevel bounds a filter's groups to 2^(maxLevel+1); beyond that (32 GiB
// of keys at the default size) groups only grow.
const maxLevel = 24

// filterMeta is a filter's record: its id in record keys and the state of
// its groups. The groups are a linear hash table (Litwin's linear
// hashing): the address of a key is its hash modulo 2^level, or modulo
// 2^(level+1) for the groups below split, which were split already. A
// group is split (its keys moved between it and group+2^level) whenever
// the filter's entries take more than their share of bytes per group, one
// group at a time: groups stay small whatever the number of keys, and a
// split rewrites two of them, not the whole table.
type filterMeta struct {
	id    uint32
	ref   stages.FilterRef
	level uint8
	split uint32
	counts
}

// counts are what a filter's groups hold.
type counts struct {
	keys    uint64 // keys with matches or pending actions
	bytes   uint64 // their entries' size in group records
	matched uint64 // keys with matches
	pending uint64 // pending actions
}

func entryCounts(key string, e *entry) counts {
	if e.empty() {
		return counts{}
	}
	c := counts{keys: 1, bytes: uint64(entrySize(key, e)), pending: uint64(len(e.pending))}
	if len(e.times) > 0 {
		c.matched = 1
	}
	return c
}

func (c counts) add(d counts) counts {
	return counts{c.keys + d.keys, c.bytes + d.bytes, c.matched + d.matched, c.pending + d.pending}
}

// sub returns c-d, each count at least 0: counts stay above what they
// count (a malformed group's keys, lost, are still counted), never wrap.
func (c counts) sub(d counts) counts {
	return counts{decr(c.keys, d.keys), decr(c.bytes, d.bytes), decr(c.matched, d.matched), decr(c.pending, d.pending)}
}

func decr(n, d uint64) uint64 {
	if d > n {
		return 0
	}
	return n - d
}

func (f *filterMeta) groups() uint64 { return 1<<f.level + uint64(f.split) }

func (f *filterMeta) group(h uint64) uint32 {
	g := h & (1<<f.level - 1)
	if g < uint64(f.split) {
		g = h & (1<<(f.level+1) - 1)
	}
	return uint32(g)
}

// table is the filters that have records. A failed commit reads it again
// from the database.
type table struct {
	byRef map[stages.FilterRef]*filterMeta
	byID  map[uint32]*filterMeta
	next  uint32 // the next id to give: no record of any kind has it
}

func newTable() *table {
	return &table{byRef: map[stages.FilterRef]*filterMeta{}, byID: map[uint32]*filterMeta{}}
}

func (t *table) add(f *filterMeta) {
	t.byRef[f.ref] = f
	t.byID[f.id] = f
	t.next = max(t.next, f.id+1)
}

func (t *table) remove(f *filterMeta) {
	delete(t.byRef, f.ref)
	delete(t.byID, f.id)
}

// entry is one key of a group: its match times and pending actions.
type entry struct {
	times   []byte // 8 bytes each
	pending []pendingRec
}

type pendingRec struct {
	action       string
	due, trigger [timeSize]byte
}

func (e *entry) empty() bool { return len(e.times) == 0 && len(e.pending) == 0 }

// entrySize is the size of e in a group record.
func entrySize(key string, e *entry) int {
	n := uvarintSize(len(key)) + len(key) + uvarintSize(len(e.times)/timeSize) + len(e.times) + uvarintSize(len(e.pending))
	for _, p := range e.pending {
		n += uvarintSize(len(p.action)) + len(p.action) + 2*timeSize
	}
	return n
}

func uvarintSize(n int) int {
	s := 1
	for ; n >= 0x80; n >>= 7 {
		s++
	}
	return s
}

// group is a group record being rewritten by a commit. It stays encoded,
// as in its record: a fold merges its changes into the entries (see
// mergeGroup) and a split partitions them, each in one pass that copies
// the entries they do not change; a decoded group (a map of entries) took
// about 8 times the record's size, for every group a commit holds until
// its transaction is written.
type group struct {
	existed bool   // it has a record, to delete if it ends up empty
	dirty   bool   // to write
	data    []byte // its entries, canonical (see readGroup); never changed in place
}

// rawEntry is an entry as it is encoded in a group record.
type rawEntry struct {
	key      []byte
	times    []byte
	npending int
	pending  []byte
}

// nextEntry decodes the entry at the start of r.
func nextEntry(r *reader) rawEntry {
	var e rawEntry
	e.key = r.bytes()
	e.times = r.next(r.count(timeSize) * timeSize)
	e.npending = r.count(pendingSize)
	start := r.b
	for range e.npending {
		r.bytes()
		r.next(2 * timeSize)
	}
	if r.err == nil {
		e.pending = start[:len(start)-len(r.b)]
	}
	return e
}

// nextPending decodes the pending action at the start of r.
func nextPending(r *reader) (action, due, trigger []byte) {
	action = r.bytes()
	t := r.next(2 * timeSize)
	if r.err != nil {
		return nil, nil, nil
	}
	return action, t[:timeSize], t[timeSize:]
}

// decodeEntry decodes a group record's entry. Its times refer to the
// record's bytes.
func decodeEntry(raw rawEntry) *entry {
	e := &entry{times: raw.times}
	pr := reader{b: raw.pending}
	for range raw.npending {
		action, due, trigger := nextPending(&pr)
		p := pendingRec{action: string(action)}
		copy(p.due[:], due)
		copy(p.trigger[:], trigger)
		e.pending = append(e.pending, p)
	}
	return e
}

// appendEntry encodes an entry as a group record holds it.
func appendEntry(b []byte, key string, e *entry) []byte {
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(len(e.times)/timeSize))
	b = append(b, e.times...)
	b = binary.AppendUvarint(b, uint64(len(e.pending)))
	for _, p := range e.pending {
		b = appendPendingRec(b, p)
	}
	return b
}

// appendPendingRec encodes a pending action as entries and log ops hold it.
func appendPendingRec(b []byte, p pendingRec) []byte {
	b = appendString(b, p.action)
	b = append(b, p.due[:]...)
	return append(b, p.trigger[:]...)
}

// readGroup returns the entries of a group record in canonical form: in
// the bytewise order of their keys, no key twice, each encoded as
// appendEntry does (lengths and counts in their shortest uvarints), which
// is what this package writes. A record in that form (any record it
// wrote) is returned as it is. Another one (a disk can hold anything) is
// normalised as decoding it into a map and encoding that did: the last
// entry of a key wins. It fails if the record does not decode.
func readGroup(v []byte) ([]byte, error) {
	r := reader{b: v}
	var last []byte
	canonical := true
	for i := 0; len(r.b) > 0; i++ {
		size := len(r.b)
		e := nextEntry(&r)
		if r.err != nil {
			return nil, errMalformedGroup
		}
		if canonical && (i > 0 && bytes.Compare(last, e.key) >= 0 || size-len(r.b) != rawEntrySize(e)) {
			canonical = false
		}
		last = e.key
	}
	if canonical {
		return v, nil
	}
	var entries []rawEntry
	for r = (reader{b: v}); len(r.b) > 0; {
		entries = append(entries, nextEntry(&r))
	}
	slices.SortStableFunc(entries, func(a, b rawEntry) int { return bytes.Compare(a.key, b.key) })
	var b []byte
	for i, e := range entries {
		if i+1 < len(entries) && bytes.Equal(e.key, entries[i+1].key) {
			continue
		}
		b = appendEntry(b, string(e.key), decodeEntry(e))
	}
	return b, nil
}

// rawEntrySize is the size of a decoded entry as appendEntry encodes it:
// an entry of another size has a uvarint longer than it needs.
func rawEntrySize(e rawEntry) int {
	n := uvarintSize(len(e.key)) + len(e.key) + uvarintSize(len(e.times)/timeSize) + len(e.times) + uvarintSize(e.npending)
	pr := reader{b: e.pending}
	for range e.npending {
		action, _, _ := nextPending(&pr)
		n += uvarintSize(len(action)) + len(action) + 2*timeSize
	}
	return n
}

// mergeGroup appends to b the entries of data (canonical, see readGroup)
// with ops applied in log order, each with its effect on c (its key's
// entryCounts before and after it) as it comes, to the entry of its key,
// decoded (found by binary search) when an op first names it. The changed
// keys sorted, it then copies the bytes of the entries between them as
// they are, encodes the changed entries again (one left empty goes) and
// inserts the new keys in their place. Only changed entries are decoded,
// and only until the fold returns. Sorting the ops instead took more time
// than the map of every entry did, for a group that waits for a thousand
// ops of a hundred keys (BenchmarkCommit10kMatches).
func mergeGroup(b, data []byte, ops []logOp, c *counts) ([]byte, error) {
	offs := make([]int, 0, 128) // of data's entries, then its end
	for r := (reader{b: data}); len(r.b) > 0; {
		offs = append(offs, len(data)-len(r.b))
		if nextEntry(&r); r.err != nil {
			return nil, errMalformedGroup // not canonical: a bug
		}
	}
	n := len(offs)
	offs = append(offs, len(data))

	var changed []changedKey
	var slot map[string]int // in changed, once they are many
	var k keyPlan
	for _, op := range ops {
		r := reader{b: op.enc()}
		decodeOp(&r, &k)
		if r.err != nil {
			return nil, fmt.Errorf("log record %d: %w", op.rec.seq, r.err)
		}
		s, ok := 0, false
		if slot != nil {
			s, ok = slot[k.key]
		} else {
			s = slices.IndexFunc(changed, func(ck changedKey) bool { return ck.key == k.key })
			ok = s >= 0
		}
		if !ok {
			s = len(changed)
			at := sort.Search(n, func(i int) bool { return string(entryAt(data, offs[i]).key) >= k.key })
			ck := changedKey{key: k.key, at: at}
			if at < n {
				if e := entryAt(data, offs[at]); string(e.key) == k.key {
					ck.e, ck.found = decodeEntry(e), true
				}
			}
			changed = append(changed, ck)
			switch {
			case slot != nil:
				slot[k.key] = s
			case len(changed) == 16: // past a few keys, a map costs less than searching them
				slot = make(map[string]int, 2*len(changed))
				for i, ck := range changed {
					slot[ck.key] = i
				}
			}
		}
		ck := &changed[s]
		if ck.e == nil {
			if !k.creates() {
				continue // a clear or a done of nothing
			}
			ck.e = &entry{}
		}
		before := entryCounts(k.key, ck.e)
		k.applyTo(ck.e)
		*c = c.sub(before).add(entryCounts(k.key, ck.e))
		if ck.e.empty() {
			ck.e = nil
		}
	}

	slices.SortFunc(changed, func(a, b changedKey) int { return strings.Compare(a.key, b.key) })
	next := 0 // the first entry of data not written yet
	for _, ck := range changed {
		b = append(b, data[offs[next]:offs[ck.at]]...)
		next = ck.at
		if ck.found {
			next++
		}
		if ck.e != nil {
			b = appendEntry(b, ck.key, ck.e)
		}
	}
	return append(b, data[offs[next]:]...), nil
}

// entryAt decodes the entry of a group record at off.
func entryAt(data []byte, off int) rawEntry { return nextEntry(&reader{b: data[off:]}) }

// changedKey is a key that a fold changes.
type changedKey struct {
	key   string
	e     *entry // what is left of its entry, if anything
	at    int    // its entry in the group, or the one it goes before
	found bool   // it had an entry
}

// splitGroup partitions the entries of data (canonical) between the keys
// whose hash, masked, is to, and the others, in one pass; both stay in
// order. They share one array, each with its own capacity.
func splitGroup(data []byte, mask, to uint64) (stay, move []byte) {
	moves := func(e rawEntry) bool { return hashKeyBytes(e.key)&mask == to }
	n := 0
	for r := (reader{b: data}); len(r.b) > 0; {
		size := len(r.b)
		if e := nextEntry(&r); !moves(e) {
			n += size - len(r.b)
		}
	}
	buf := make([]byte, len(data))
	stay, move = buf[:0:n], buf[n:n:len(data)]
	for r := (reader{b: data}); len(r.b) > 0; {
		start := r.b
		e := nextEntry(&r)
		if moves(e) {
			move = append(move, start[:len(start)-len(r.b)]...)
		} else {
			stay = append(stay, start[:len(start)-len(r.b)]...)
		}
	}
	return stay, move
}

// unionGroups returns the entries of a and of b (both canonical), in
// order; b's entry of a key that both have wins.
func unionGroups(a, b []byte) []byte {
	out := make([]byte, 0, len(a)+len(b))
	ra, rb := reader{b: a}, reader{b: b}
	var ea, eb rawEntry
	var sa, sb []byte // the bytes of ea, eb; nil when read
	for {
		if sa == nil && len(ra.b) > 0 {
			start := ra.b
			ea = nextEntry(&ra)
			sa = start[:len(start)-len(ra.b)]
		}
		if sb == nil && len(rb.b) > 0 {
			start := rb.b
			eb = nextEntry(&rb)
			sb = start[:len(start)-len(rb.b)]
		}
		switch {
		case sa == nil && sb == nil:
			return out
		case sb == nil || sa != nil && bytes.Compare(ea.key, eb.key) < 0:
			out, sa = append(out, sa...), nil
		default:
			if sa != nil && bytes.Equal(ea.key, eb.key) {
				sa = nil
			}
			out, sb = append(out, sb...), nil
		}
	}
}

// keyPlan is what a batch does to one key, reduced: a flood of matches of
// one key is one append.
type keyPlan struct {
	key     string // encoded values
	clear   bool   // forget the persisted times first
	times   []byte // times to append
	pending []pendingOp
}

type pendingOp struct {
	pendingRec
	put bool // else delete
}

// creates reports whether the plan gives a key without an entry one.
func (k *keyPlan) creates() bool {
	if len(k.times) > 0 {
		return true
	}
	for _, p := range k.pending {
		if p.put {
			return true
		}
	}
	return false
}

func (k *keyPlan) pendingOp(p pendingOp) {
	for i := range k.pending {
		if k.pending[i].action == p.action && k.pending[i].due == p.due {
			k.pending[i] = p
			return
		}
	}
	k.pending = append(k.pending, p)
}

// applyTo applies the plan to e.
func (k *keyPlan) applyTo(e *entry) {
	if k.clear {
		e.times = nil
	}
	if len(k.times) > 0 {
		e.times = append(slices.Clip(e.times), k.times...)
	}
	for _, op := range k.pending {
		i := slices.IndexFunc(e.pending, func(p pendingRec) bool { return p.action == op.action && p.due == op.due })
		switch {
		case op.put && i >= 0:
			e.pending[i].trigger = op.trigger
		case op.put:
			e.pending = append(e.pending, op.pendingRec)
		case i >= 0:
			e.pending = slices.Delete(e.pending, i, i+1)
		}
	}
}
