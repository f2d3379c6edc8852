package nutsstore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

var errMalformedGroup = errors.New("malformed group record")

// plan is a batch of changes reduced to their effect on each key.
type plan struct {
	filters []*filterPlan // in first-seen order
	byRef   map[stages.FilterRef]*filterPlan
	keys    int
}

type filterPlan struct {
	ref   stages.FilterRef
	drop  bool // forget what is persisted first
	keys  map[string]*keyPlan
	order []*keyPlan // first-seen order
}

func planChanges(changes []stages.Change) *plan {
	p := &plan{byRef: map[stages.FilterRef]*filterPlan{}}
	var buf []byte
	for i := range changes {
		c := &changes[i]
		f := p.byRef[c.Filter]
		if f == nil {
			f = &filterPlan{ref: c.Filter, keys: map[string]*keyPlan{}}
			p.byRef[c.Filter] = f
			p.filters = append(p.filters, f)
		}
		if c.Op == stages.OpDrop {
			p.keys -= len(f.order)
			f.drop, f.order = true, nil
			clear(f.keys)
			continue
		}
		buf = appendValues(buf[:0], c.Key)
		k := f.keys[string(buf)]
		if k == nil {
			k = &keyPlan{key: string(buf)}
			f.keys[k.key] = k
			f.order = append(f.order, k)
			p.keys++
		}
		switch c.Op {
		case stages.OpMatch:
			k.times = appendTime(k.times, c.Time)
		case stages.OpMatches:
			for _, t := range c.Times {
				k.times = appendUnixNano(k.times, t)
			}
		case stages.OpClear:
			k.clear, k.times = true, k.times[:0]
		case stages.OpPending, stages.OpDone:
			k.pendingOp(pendingOp{
				pendingRec: pendingRec{action: c.Action, due: encodeTime(c.Due), trigger: encodeTime(c.Time)},
				put:        c.Op == stages.OpPending,
			})
		}
	}
	return p
}

func notFound(err error) bool {
	return errors.Is(err, nutsdb.ErrKeyNotFound) || errors.Is(err, nutsdb.ErrNotFoundKey)
}

// committer writes one batch in one transaction. It changes the store's
// table and log as it goes: if the transaction fails, they are read again
// from the database.
type committer struct {
	s      *Store
	tx     *nutsdb.Tx
	rec    *logRecord
	groups map[groupRef]*group // read (or created) by this commit
	filter map[uint32]bool     // filters whose record is to write
	read   int                 // bytes of the group records read
}

// commit writes p: drops, the log record, the folds it owes, the groups and
// filter records they changed.
func (c *committer) commit(p *plan) error {
	t, w := c.s.table, c.s.wal
	c.groups, c.filter = map[groupRef]*group{}, map[uint32]bool{}
	c.rec = &logRecord{seq: w.seq + 1}
	w.seq = c.rec.seq
	w.records = append(w.records, c.rec)

	// The changes, as the log record's sections.
	var ops []byte
	type placed struct {
		g          groupRef
		start, end int
	}
	var place []placed
	sections := 0
	for _, fp := range p.filters {
		f := t.byRef[fp.ref]
		if fp.drop && f != nil {
			if err := c.drop(f); err != nil {
				return err
			}
			f = nil
		}
		if len(fp.order) == 0 {
			continue
		}
		if f == nil {
			f = &filterMeta{id: t.next, ref: fp.ref}
			t.add(f)
			c.filter[f.id] = true
		}
		sections++
		ops = binary.AppendUvarint(ops, uint64(f.id))
		ops = binary.AppendUvarint(ops, uint64(len(fp.order)))
		for _, k := range fp.order {
			start := len(ops)
			ops = appendOp(ops, k)
			place = append(place, placed{groupRef{f.id, f.group(hashKey(k.key))}, start, len(ops)})
		}
	}
	for _, pl := range place {
		w.add(pl.g, logOp{c.rec, uint32(pl.start), uint32(pl.end)})
	}
	c.rec.ops = ops
	c.rec.size = len(ops) + 2
	w.bytes += c.rec.size

	// A large batch is folded at once: its record would take much of the
	// log, or not fit in a segment.
	budget := c.s.logBudget()
	if int64(len(ops)) > min(int64(budget), c.s.opts.SegmentSize)/4 {
		for _, g := range c.rec.groups {
			if w.dirty[g.id][g.group] != nil {
				if err := c.fold(g); err != nil {
					return err
				}
			}
		}
	}

	// Folds: the groups of the oldest records while the log is over its
	// budget, at most as many groups as this batch has keys, and a few,
	// and at most maxFoldBytes of them.
	for limit := p.keys + minFolds; w.bytes > budget && limit > 0 && c.read < maxFoldBytes && len(w.records) > 0; {
		head := w.records[0]
		for _, g := range head.groups {
			if limit == 0 || c.read >= maxFoldBytes {
				break
			}
			if w.waits(g, head) {
				if err := c.fold(g); err != nil {
					return err
				}
				limit--
			}
		}
		if err := c.trim(); err != nil {
			return err
		}
		if len(w.records) > 0 && w.records[0] == head {
			break // the limit
		}
	}
	if err := c.splits(); err != nil {
		return err
	}

	// The groups, then the log record that lists them (unless no record
	// is older and nothing waits for its changes: it is not needed; its
	// changes are not written when they are all folded).
	var folded []byte
	nfolded := 0
	for _, g := range slices.SortedFunc(maps.Keys(c.groups), compareGroupRefs) {
		gr := c.groups[g]
		if !gr.dirty {
			continue
		}
		if err := c.writeGroup(g, gr); err != nil {
			return err
		}
		nfolded++
		folded = binary.AppendUvarint(folded, uint64(g.id))
		folded = binary.AppendUvarint(folded, uint64(g.group))
	}
	if err := c.trim(); err != nil {
		return err
	}
	if len(w.records) > 0 && w.records[len(w.records)-1] == c.rec {
		if c.rec.refs == 0 {
			sections, ops = 0, nil
		}
		value := binary.AppendUvarint(make([]byte, 0, len(ops)+len(folded)+8), uint64(sections))
		value = append(value, ops...)
		value = binary.AppendUvarint(value, uint64(nfolded))
		value = append(value, folded...)
		w.bytes += len(value) - c.rec.size
		c.rec.size, c.rec.written = len(value), true
		if err := c.tx.Put(bucketState, logKey(c.rec.seq), value, nutsdb.Persistent); err != nil {
			return err
		}
	}
	return c.writeFilters()
}

// minFolds is how many groups a commit may fold besides one per key it
// changes, so that the log shrinks even under commits of one change.
const minFolds = 16

// maxFoldBytes bounds the bytes of group records that one commit reads to
// fold them, and as much again to split groups: what it reads, and what it
// writes, is held until the transaction is written. Under a flood of a million
// new keys (BenchmarkFlood1M) the log still stays near its budget.
const maxFoldBytes = 1 << 20

// logBudget is the size of the log past which commits fold: the log's
// budget (Options), or a third of the size of the groups when that is
// more, so that a group is rewritten about once for each third of the
// data's size that the log took, whatever the number of keys (a fixed
// budget means that a large state is rewritten whole every few commits of
// a flood). The log's changes are in memory: a third rather than a half
// keeps a million keys' daemon under 150 MB through a flood of new keys,
// for as much CPU (the folds' reads and writes are cheap next to the
// changes themselves) and a third more bytes written.
func (s *Store) logBudget() int {
	if s.opts.logBytes != defaultLogBytes {
		return s.opts.logBytes // a test's
	}
	var data uint64
	for _, f := range s.table.byID {
		data += f.bytes
	}
	return max(s.opts.logBytes, int(min(data/3, 1<<30)))
}

func compareGroupRefs(a, b groupRef) int {
	if c := cmp.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.group, b.group)
}

// trim deletes the log records that are no longer needed.
func (c *committer) trim() error {
	for _, r := range c.s.wal.trim() {
		if !r.written {
			continue // this commit's: never written
		}
		if err := c.tx.Delete(bucketState, logKey(r.seq)); err != nil && !notFound(err) {
			return err
		}
	}
	return nil
}

// drop deletes every record of f and forgets its changes in the log (they
// stay in log records, for an id that no filter will have again).
func (c *committer) drop(f *filterMeta) error {
	keys, _, err := c.tx.PrefixScanEntries(bucketState, groupPrefix(f.id), "", 0, nutsdb.ScanNoLimit, true, false)
	if err != nil && !errors.Is(err, nutsdb.ErrPrefixScan) {
		return err
	}
	for _, k := range keys {
		if err := c.tx.Delete(bucketState, slices.Clone(k)); err != nil && !notFound(err) {
			return err
		}
	}
	if err := c.tx.Delete(bucketState, filterKey(f.id)); err != nil && !notFound(err) {
		return err
	}
	for g := range c.s.wal.dirty[f.id] {
		c.s.wal.take(groupRef{f.id, g})
	}
	for g := range c.groups {
		if g.id == f.id {
			delete(c.groups, g)
		}
	}
	delete(c.filter, f.id)
	c.s.table.remove(f)
	return nil
}

// get returns group g, read from its record the first time.
func (c *committer) get(g groupRef) (*group, error) {
	if gr := c.groups[g]; gr != nil {
		return gr, nil
	}
	gr := &group{}
	c.groups[g] = gr
	key := groupKey(g.id, g.group)
	v, err := c.tx.Get(bucketState, key)
	if notFound(err) {
		return gr, nil
	}
	if err != nil {
		return nil, err
	}
	gr.existed = true
	c.read += len(v)
	if gr.data, err = readGroup(v); err != nil {
		// Load skips it too: it is rewritten with what the log says. Its
		// keys stay counted: the filter is never taken for empty.
		c.s.log.Warn("state: a group record not understood is overwritten", "record", fmt.Sprintf("%q", key), "error", err)
	}
	return gr, nil
}

// fold applies the changes group g waits for, in one merge (mergeGroup).
func (c *committer) fold(g groupRef) error {
	gr, err := c.get(g)
	if err != nil {
		return err
	}
	f := c.s.table.byID[g.id]
	if ops := c.s.wal.take(g); len(ops) > 0 {
		size := len(gr.data) // and what each op adds, at most its own size
		for _, op := range ops {
			size += int(op.end - op.off)
		}
		data, err := mergeGroup(make([]byte, 0, size), gr.data, ops, &f.counts)
		if err != nil {
			return err
		}
		gr.data = data
	}
	gr.dirty = true
	c.filter[g.id] = true
	return nil
}

// splits splits groups of the filters whose counts changed while they hold
// more than their share.
//
// A commit splits groups worth at most maxFoldBytes: under a flood of new
// keys, groups grow past their share for a while rather than have one
// commit split (read, decode, rewrite) thousands of them; the commits that
// follow catch up.
func (c *committer) splits() error {
	limit := c.read + maxFoldBytes
	for _, id := range slices.Sorted(maps.Keys(c.filter)) {
		f := c.s.table.byID[id]
		for f.bytes > uint64(c.s.opts.groupBytes)*f.groups() && f.level < maxLevel && c.read < limit {
			if err := c.split(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// split splits the next group of f's linear hash table, folding it first.
func (c *committer) split(f *filterMeta) error {
	from := groupRef{f.id, f.split}
	to := groupRef{f.id, f.split + 1<<f.level}
	for _, g := range []groupRef{from, to} { // to waits for nothing: no key addressed it
		if err := c.fold(g); err != nil {
			return err
		}
	}
	src, dst := c.groups[from], c.groups[to]
	var move []byte
	src.data, move = splitGroup(src.data, uint64(1)<<(f.level+1)-1, uint64(to.group))
	if len(dst.data) == 0 {
		dst.data = move
	} else {
		// to has a record that no key addressed (one this package never
		// writes): its keys stay, but for those of from.
		dst.data = unionGroups(dst.data, move)
	}
	f.split++
	if f.split == 1<<f.level {
		f.level, f.split = f.level+1, 0
	}
	return nil
}

func (c *committer) writeGroup(g groupRef, gr *group) error {
	key := groupKey(g.id, g.group)
	if len(gr.data) == 0 {
		if gr.existed {
			if err := c.tx.Delete(bucketState, key); err != nil && !notFound(err) {
				return err
			}
		}
		return nil
	}
	return c.tx.Put(bucketState, key, gr.data, nutsdb.Persistent)
}

// writeFilters writes the records of the filters this commit created or
// whose groups changed; a filter with no key left, folded or not, goes.
func (c *committer) writeFilters() error {
	t := c.s.table
	for _, id := range slices.Sorted(maps.Keys(c.filter)) {
		f := t.byID[id]
		key := filterKey(id)
		if f.keys == 0 && len(c.s.wal.dirty[id]) == 0 {
			t.remove(f)
			if err := c.tx.Delete(bucketState, key); err != nil && !notFound(err) {
				return err
			}
			continue
		}
		if err := c.tx.Put(bucketState, key, appendFilterValue(nil, f), nutsdb.Persistent); err != nil {
			return err
		}
	}
	return nil
}
