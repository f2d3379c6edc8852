package nutsstore

// The log.
//
// A commit does not rewrite the groups of the keys it changes: it writes
// its changes (reduced per key) as one log record, whose size is that of
// the changes. The changes wait in the log, in memory by group, until their
// group is folded: read, changed and written back, once for all the
// changes it has waited for. A commit folds groups when the log is over
// its budget (Store.logBudget: defaultLogBytes, or a third of the size of
// the groups when that is more), those of the oldest record first, at most as
// many groups as it has changes (and a few) and at most maxFoldBytes of
// them: its cost stays bounded by what it changed, and a group is
// rewritten about once per log's worth of changes, not once per change.
//
// A log record is deleted once its changes are all folded and so are those
// of every older record: records go in order. A commit that folds a group
// lists it in its own log record, so that the replay at Open, which takes
// the changes of each record for the groups they address now and then
// drops those of the groups that the record folded, keeps exactly the
// changes not folded yet, even those of a record that was partly folded, or
// whose keys moved to another group when their group was split (a split
// folds its group and lists both halves).
//
// A batch whose record would take more than a quarter of the log's budget
// (or of a segment) is folded at once. A record whose changes its own commit folded
// is written without them (only the groups it folded), or not at all when
// no older record is left.
//
// Group and filter records only ever hold folded changes; Load applies the
// log on top of them.

// defaultLogBytes is the size of the log past which commits fold groups.
// The log's changes are in memory too, and Load applies them: 4 MiB is
// little memory and a fast replay, and it halves how often a small state
// (thousands of keys) is rewritten by folds compared with 2 MiB.
const defaultLogBytes = 4 << 20

// wal is what the log holds that is not folded yet.
type wal struct {
	seq     uint64       // of the newest record
	records []*logRecord // every record still needed, oldest first
	bytes   int          // their size
	dirty   map[uint32]map[uint32]*dirtyGroup
}

func newWAL() *wal { return &wal{dirty: map[uint32]map[uint32]*dirtyGroup{}} }

// logRecord is one log record.
type logRecord struct {
	seq     uint64
	size    int
	written bool       // it is in the database (else it is being committed)
	refs    int        // groups that still wait for its changes
	groups  []groupRef // the groups its changes went to
	ops     []byte     // its changes, encoded (see appendOp)
}

type groupRef struct{ id, group uint32 }

// dirtyGroup is the changes a group waits for, in commit order.
type dirtyGroup struct {
	ops []logOp
}

// logOp is one key's changes in one log record: rec.ops[off:end]. It is
// kept for every change in the log, so it is small (16 bytes).
type logOp struct {
	rec      *logRecord
	off, end uint32
}

func (op logOp) enc() []byte { return op.rec.ops[op.off:op.end:op.end] }

// add queues op for group g of filter id.
func (w *wal) add(g groupRef, op logOp) {
	groups := w.dirty[g.id]
	if groups == nil {
		groups = map[uint32]*dirtyGroup{}
		w.dirty[g.id] = groups
	}
	d := groups[g.group]
	if d == nil {
		d = &dirtyGroup{}
		groups[g.group] = d
	}
	if n := len(d.ops); n == 0 || d.ops[n-1].rec != op.rec {
		op.rec.refs++
		op.rec.groups = append(op.rec.groups, g)
	}
	d.ops = append(d.ops, op)
}

// take removes and returns the changes group g waits for: they are folded.
func (w *wal) take(g groupRef) []logOp {
	groups := w.dirty[g.id]
	d := groups[g.group]
	if d == nil {
		return nil
	}
	delete(groups, g.group)
	if len(groups) == 0 {
		delete(w.dirty, g.id)
	}
	var last *logRecord
	for _, op := range d.ops {
		if op.rec != last {
			op.rec.refs--
			last = op.rec
		}
	}
	return d.ops
}

// waits reports whether group g waits for changes of record r.
func (w *wal) waits(g groupRef, r *logRecord) bool {
	d := w.dirty[g.id][g.group]
	return d != nil && d.ops[0].rec == r
}

// trim removes the oldest records that nothing waits for, and returns them.
func (w *wal) trim() []*logRecord {
	n := 0
	for n < len(w.records) && w.records[n].refs == 0 {
		w.bytes -= w.records[n].size
		n++
	}
	done := w.records[:n:n]
	w.records = w.records[n:]
	return done
}

// replay adds the changes of a record read at Open, for the groups their
// keys address now; ids not in t are filters dropped since. It then drops
// the changes of the groups the record folded. A record that does not
// decode is kept (to be deleted in its turn) but none of its changes is.
func (w *wal) replay(t *table, seq uint64, value []byte) error {
	rec := &logRecord{seq: seq, size: len(value), written: true, ops: value}
	w.records = append(w.records, rec)
	w.bytes += rec.size
	w.seq = max(w.seq, seq)
	type placed struct {
		g        groupRef
		off, end uint32
	}
	var ops []placed
	var folded []groupRef
	r := reader{b: value}
	var k keyPlan
	for range r.count(2) {
		id := uint32(r.uvarint())
		f := t.byID[id]
		for range r.count(3) {
			start := r.b
			decodeOp(&r, &k)
			if r.err != nil {
				break
			}
			if f != nil {
				off := len(value) - len(start)
				ops = append(ops, placed{groupRef{id, f.group(hashKey(k.key))}, uint32(off), uint32(len(value) - len(r.b))})
			}
		}
		t.next = max(t.next, id+1)
	}
	for range r.count(2) {
		g := groupRef{uint32(r.uvarint()), uint32(r.uvarint())}
		folded = append(folded, g)
		t.next = max(t.next, g.id+1)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return r.err
	}
	for _, p := range ops {
		w.add(p.g, logOp{rec, p.off, p.end})
	}
	for _, g := range folded {
		w.take(g)
	}
	return nil
}
