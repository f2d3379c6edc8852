package nutsstore

import (
	"encoding/binary"
	"maps"
	"slices"

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

// group is a group record being rewritten by a commit.
type group struct {
	existed bool // it has a record, to delete if it ends up empty
	dirty   bool
	entries map[string]*entry // by encoded key
}

// apply applies k to g, and its effect to c.
func (g *group) apply(k *keyPlan, c *counts) {
	e := g.entries[k.key]
	if e == nil {
		if !k.creates() {
			return // a clear or a done of nothing
		}
		e = &entry{}
		g.entries[k.key] = e
	}
	before := entryCounts(k.key, e)
	k.applyTo(e)
	*c = c.sub(before).add(entryCounts(k.key, e))
	if e.empty() {
		delete(g.entries, k.key)
	}
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

// decodeGroup decodes a group record's value into g.
func decodeGroup(g *group, v []byte) error {
	r := reader{b: v}
	for len(r.b) > 0 && r.err == nil {
		raw := nextEntry(&r)
		if r.err != nil {
			break
		}
		e := &entry{times: raw.times}
		pr := reader{b: raw.pending}
		for range raw.npending {
			action, due, trigger := nextPending(&pr)
			p := pendingRec{action: string(action)}
			copy(p.due[:], due)
			copy(p.trigger[:], trigger)
			e.pending = append(e.pending, p)
		}
		g.entries[string(raw.key)] = e
	}
	if r.err != nil {
		return errMalformedGroup
	}
	return nil
}

// encodeGroup encodes g's entries in the order of their keys.
func encodeGroup(b []byte, g *group) []byte {
	keys := slices.Sorted(maps.Keys(g.entries))
	for _, k := range keys {
		e := g.entries[k]
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(e.times)/timeSize))
		b = append(b, e.times...)
		b = binary.AppendUvarint(b, uint64(len(e.pending)))
		for _, p := range e.pending {
			b = appendString(b, p.action)
			b = append(b, p.due[:]...)
			b = append(b, p.trigger[:]...)
		}
	}
	return b
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
