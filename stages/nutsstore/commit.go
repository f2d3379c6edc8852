package nutsstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

var errMalformedGroup = errors.New("malformed group record")

// plan is a batch of changes reduced to its effect on each key.
type plan struct {
	filters []*filterPlan // in first-seen order
	byRef   map[stages.FilterRef]*filterPlan
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
		}
		switch c.Op {
		case stages.OpMatch:
			k.times = appendTime(k.times, c.Time)
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

// applier writes a plan in one transaction, on a copy of the table.
type applier struct {
	tx         *nutsdb.Tx
	table      *table
	groupBytes uint64
	warn       func(msg string, args ...any)
	buf        []byte
}

func (a *applier) apply(p *plan) error {
	for _, f := range p.filters {
		if err := a.filter(f); err != nil {
			return fmt.Errorf("filter %s: %w", f.ref.Name, err)
		}
	}
	return nil
}

// filterWork is one filter's part of a transaction.
type filterWork struct {
	*applier
	f      *filterMeta
	fresh  bool            // no group has a record to read
	stale  map[string]bool // records of a dropped filter, to delete unless rewritten
	groups map[uint32]*group
}

func (a *applier) filter(fp *filterPlan) error {
	old := a.table.byRef[fp.ref]
	w := &filterWork{applier: a, groups: map[uint32]*group{}}
	if old != nil {
		f := *old
		w.f = &f
	}
	if fp.drop && w.f != nil {
		keys, _, err := a.tx.PrefixScanEntries(bucketState, groupPrefix(w.f.id), "", 0, nutsdb.ScanNoLimit, true, false)
		if err != nil && !errors.Is(err, nutsdb.ErrPrefixScan) {
			return err
		}
		w.stale = make(map[string]bool, len(keys))
		for _, k := range keys {
			w.stale[string(k)] = true
		}
		w.f.level, w.f.split, w.f.counts = 0, 0, counts{}
		w.fresh = true
	}
	if w.f == nil {
		w.f = &filterMeta{id: a.table.next, ref: fp.ref}
		a.table.next++
		w.fresh = true
	}
	for _, k := range fp.order {
		if err := w.key(k); err != nil {
			return err
		}
	}
	return w.write(old)
}

// get returns group n, read from its record the first time.
func (w *filterWork) get(n uint32) (*group, error) {
	if g := w.groups[n]; g != nil {
		return g, nil
	}
	g := &group{n: n, entries: map[string]*entry{}}
	w.groups[n] = g
	key := groupKey(w.f.id, n)
	if w.fresh {
		g.existed = w.stale[string(key)]
		return g, nil
	}
	v, err := w.tx.Get(bucketState, key)
	if notFound(err) {
		return g, nil
	}
	if err != nil {
		return nil, err
	}
	g.existed = true
	if err := decodeGroup(g, v); err != nil {
		// Load skips it too: it is rewritten with what this batch says.
		w.warn("state: a group record not understood is overwritten", "filter", w.f.ref.Name, "record", fmt.Sprintf("%q", key), "error", err)
		clear(g.entries) // its keys stay counted: the filter is never taken for empty
	}
	return g, nil
}

func (w *filterWork) key(k *keyPlan) error {
	g, err := w.get(w.f.group(hashKey(k.key)))
	if err != nil {
		return err
	}
	e := g.entries[k.key]
	if e == nil {
		if !k.creates() {
			return nil // a clear or a done of nothing
		}
		e = &entry{}
		g.entries[k.key] = e
	}
	before := entryCounts(k.key, e)
	k.applyTo(e)
	g.dirty = true
	w.f.counts = w.f.counts.sub(before).add(entryCounts(k.key, e))
	if e.empty() {
		delete(g.entries, k.key)
	}
	for w.f.bytes > w.groupBytes*w.f.groups() && w.f.level < maxLevel {
		if err := w.splitOne(); err != nil {
			return err
		}
	}
	return nil
}

// splitOne splits the next group of the linear hash table.
func (w *filterWork) splitOne() error {
	f := w.f
	from, err := w.get(f.split)
	if err != nil {
		return err
	}
	to, err := w.get(f.split + 1<<f.level)
	if err != nil {
		return err
	}
	mask := uint64(1)<<(f.level+1) - 1
	for k, e := range from.entries {
		if hashKey(k)&mask == uint64(to.n) {
			to.entries[k] = e
			delete(from.entries, k)
		}
	}
	from.dirty, to.dirty = true, true
	f.split++
	if f.split == 1<<f.level {
		f.level, f.split = f.level+1, 0
	}
	return nil
}

// write puts the changed groups and the filter record, and deletes what
// ended up empty.
func (w *filterWork) write(old *filterMeta) error {
	tx := w.tx
	for _, n := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[n]
		if !g.dirty {
			continue
		}
		key := groupKey(w.f.id, n)
		delete(w.stale, string(key))
		if len(g.entries) == 0 {
			if g.existed {
				if err := tx.Delete(bucketState, key); err != nil && !notFound(err) {
					return err
				}
			}
			continue
		}
		w.buf = encodeGroup(w.buf[:0], g)
		if err := tx.Put(bucketState, key, slices.Clone(w.buf), nutsdb.Persistent); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(w.stale)) {
		if err := tx.Delete(bucketState, []byte(k)); err != nil && !notFound(err) {
			return err
		}
	}
	key := filterKey(w.f.id)
	if w.f.keys == 0 {
		// Every group is empty: the filter has no records any more.
		delete(w.table.byRef, w.f.ref)
		if old != nil {
			if err := tx.Delete(bucketState, key); err != nil && !notFound(err) {
				return err
			}
		}
		return nil
	}
	w.table.byRef[w.f.ref] = w.f
	if old != nil && *old == *w.f {
		return nil
	}
	return tx.Put(bucketState, key, appendFilterValue(nil, w.f), nutsdb.Persistent)
}
