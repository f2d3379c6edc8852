package nutsstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

// Load returns every persisted match and pending action: filters by name
// and identity, keys by values, times ascending, pending actions by due
// time, key and action (the order of stages.MemStore).
func (s *Store) Load(ctx context.Context) (*stages.State, error) {
	s.commitMu.Lock() // the log in memory is that of the records read
	defer s.commitMu.Unlock()
	db, _, err := s.use()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	l := loader{filters: map[uint32]*loadFilter{}, actions: map[string]string{}, wal: s.wal}
	err = db.View(func(tx *nutsdb.Tx) error {
		it := nutsdb.NewIterator(tx, bucketState, nutsdb.IteratorOptions{})
		if it == nil {
			return fmt.Errorf("no bucket %s", bucketState)
		}
		defer it.Release()
		// Records come in key order: filter records, then the groups of
		// each filter, then the log records (whose changes are in s.wal).
		for n, ok := 0, it.Valid(); ok; n, ok = n+1, it.Next() {
			if n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			key := it.Key()
			k, err := parseKey(key)
			if err != nil {
				l.skip(key, err)
				continue
			}
			if k.kind == kindLog {
				continue
			}
			value, err := it.Value()
			if err != nil {
				return fmt.Errorf("record %q: %w", key, err)
			}
			if k.kind == kindFilter {
				l.filter(k.id, key, value)
			} else {
				l.group(k, key, value)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state directory %s: load: %w", s.dir, err)
	}
	l.rest()
	if l.skipped > 0 {
		s.log.Warn("state: records not understood were skipped", "dir", s.dir, "records", l.skipped, "example", l.example)
	}
	return l.state(), nil
}

// loader builds the State from the records and the log.
type loader struct {
	filters map[uint32]*loadFilter
	actions map[string]string // interned action names
	wal     *wal

	strs  []string    // slab for keys' values
	times []time.Time // slab for match times

	// The values of one group's keys are one string: its bytes are
	// gathered in chars, at offsets, and given to the slots of strs.
	chars []byte
	offs  []int
	slots []*string

	skipped int
	example string
}

type loadFilter struct {
	stages.FilterState
	folded map[uint32]bool // groups with changes in the log, done
}

func (l *loader) skip(key []byte, err error) {
	if l.skipped == 0 {
		l.example = fmt.Sprintf("%q: %v", key, err)
	}
	l.skipped++
}

func (l *loader) filter(id uint32, key, value []byte) {
	f, err := decodeFilterValue(id, value)
	if err != nil {
		l.skip(key, err)
		return
	}
	changes := uint64(0) // in the log: each may add a key with matches, a pending action
	for _, d := range l.wal.dirty[id] {
		changes += uint64(len(d.ops))
	}
	l.filters[id] = &loadFilter{FilterState: stages.FilterState{
		Filter:  f.ref,
		Matches: make([]stages.KeyMatches, 0, min(f.matched+changes, 1<<24)),
		Pending: make([]stages.PendingAction, 0, min(f.pending+changes, 1<<24)),
	}}
}

func (l *loader) group(k recordKey, key, value []byte) {
	f := l.filters[k.id]
	if f == nil {
		l.skip(key, errors.New("group of a filter without a record"))
		return
	}
	d := l.wal.dirty[k.id][k.group]
	if d == nil {
		if !l.entries(f, value, nil) {
			l.skip(key, errMalformedGroup)
		}
		return
	}
	ops := l.ops(d)
	if !l.entries(f, value, ops) {
		l.skip(key, errMalformedGroup) // the log's changes are still applied, as a commit would
		ops = l.ops(d)
	}
	l.addLogged(f, k.group, ops)
}

// entries adds the keys of a group record to f, each key that has changes
// in ops with them (taking it out of ops). It reports false, having added
// nothing, if the record does not decode.
func (l *loader) entries(f *loadFilter, value []byte, ops map[string][]keyPlan) bool {
	matches, pending := len(f.Matches), len(f.Pending)
	l.chars, l.offs, l.slots = l.chars[:0], l.offs[:0], l.slots[:0]
	r := reader{b: value}
	for len(r.b) > 0 && r.err == nil {
		e := nextEntry(&r)
		if r.err != nil {
			break
		}
		if changes, ok := ops[string(e.key)]; ok {
			key := string(e.key)
			delete(ops, key)
			ent := &entry{times: e.times}
			pr := reader{b: e.pending}
			for range e.npending {
				action, due, trigger := nextPending(&pr)
				p := pendingRec{action: l.action(action)}
				copy(p.due[:], due)
				copy(p.trigger[:], trigger)
				ent.pending = append(ent.pending, p)
			}
			for i := range changes {
				changes[i].applyTo(ent)
			}
			if !l.add(f, key, ent) {
				r.fail()
			}
			continue
		}
		values := l.values(&reader{b: e.key}, &r)
		if r.err != nil {
			break
		}
		if len(e.times) > 0 {
			f.Matches = append(f.Matches, stages.KeyMatches{Key: values, Times: l.decodeTimes(e.times)})
		}
		pr := reader{b: e.pending}
		for range e.npending {
			action, due, trigger := nextPending(&pr)
			f.Pending = append(f.Pending, stages.PendingAction{Key: values, Action: l.action(action), Trigger: decodeTime(trigger), Due: decodeTime(due)})
		}
	}
	if r.err != nil {
		f.Matches, f.Pending = f.Matches[:matches], f.Pending[:pending]
		return false
	}
	chars := string(l.chars)
	for i, p := range l.slots {
		*p = chars[l.offs[i]:l.offs[i+1]]
	}
	return true
}

func (l *loader) action(b []byte) string {
	name, ok := l.actions[string(b)]
	if !ok {
		name = string(b)
		l.actions[name] = name
	}
	return name
}

// ops decodes the changes a group waits for, by key, in log order.
func (l *loader) ops(d *dirtyGroup) map[string][]keyPlan {
	ops := make(map[string][]keyPlan, len(d.ops))
	for _, op := range d.ops {
		var k keyPlan
		r := reader{b: op.enc()}
		decodeOp(&r, &k)
		if r.err != nil {
			l.skip(logKey(op.rec.seq), r.err)
			continue
		}
		ops[k.key] = append(ops[k.key], k)
	}
	return ops
}

// addLogged adds the keys of group n that only the log's changes have, and
// marks the group done.
func (l *loader) addLogged(f *loadFilter, n uint32, ops map[string][]keyPlan) {
	if f.folded == nil {
		f.folded = map[uint32]bool{}
	}
	f.folded[n] = true
	for key, changes := range ops {
		ent := &entry{}
		for i := range changes {
			changes[i].applyTo(ent)
		}
		if !l.add(f, key, ent) {
			l.skip([]byte(key), errBadKey)
		}
	}
}

// add adds a key and its entry to f. It reports false if the key does not
// decode.
func (l *loader) add(f *loadFilter, key string, e *entry) bool {
	values := decodeValues(key)
	if values == nil {
		return false
	}
	if len(e.times) > 0 {
		f.Matches = append(f.Matches, stages.KeyMatches{Key: values, Times: l.decodeTimes(e.times)})
	}
	for _, p := range e.pending {
		f.Pending = append(f.Pending, stages.PendingAction{Key: values, Action: l.action([]byte(p.action)), Trigger: decodeTime(p.trigger[:]), Due: decodeTime(p.due[:])})
	}
	return true
}

// rest adds the keys of the groups that have changes in the log and no
// record.
func (l *loader) rest() {
	for id, groups := range l.wal.dirty {
		f := l.filters[id]
		if f == nil {
			continue // a filter record not understood
		}
		for n, d := range groups {
			if !f.folded[n] {
				l.addLogged(f, n, l.ops(d))
			}
		}
	}
}

// decodeValues decodes an encoded key; its values are substrings of it.
func decodeValues(key string) []string {
	n, w := stringUvarint(key)
	if w <= 0 || n > uint64(len(key)) {
		return nil
	}
	rest := key[w:]
	values := make([]string, 0, n)
	for range n {
		l, w := stringUvarint(rest)
		if w <= 0 || l > uint64(len(rest)-w) {
			return nil
		}
		values = append(values, rest[w:w+int(l)])
		rest = rest[w+int(l):]
	}
	if rest != "" {
		return nil
	}
	return values
}

// stringUvarint is binary.Uvarint of a string.
func stringUvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -1
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// values decodes an encoded key into the slab; its strings are filled in
// once the group is read. A malformed key fails rec.
func (l *loader) values(r, rec *reader) []string {
	n := r.count(1)
	if uint64(cap(l.strs)-len(l.strs)) < uint64(n) {
		l.strs = make([]string, 0, max(4096, n))
	}
	start := len(l.strs)
	for range n {
		v := r.bytes()
		l.strs = append(l.strs, "")
		if len(l.offs) == 0 {
			l.offs = append(l.offs, 0)
		}
		l.chars = append(l.chars, v...)
		l.offs = append(l.offs, len(l.chars))
		l.slots = append(l.slots, &l.strs[len(l.strs)-1])
	}
	if r.err != nil || len(r.b) != 0 {
		rec.fail()
		return nil
	}
	return l.strs[start:len(l.strs):len(l.strs)]
}

func (l *loader) decodeTimes(b []byte) []time.Time {
	n := len(b) / timeSize
	if cap(l.times)-len(l.times) < n {
		l.times = make([]time.Time, 0, max(4096, n))
	}
	start := len(l.times)
	for ; len(b) > 0; b = b[timeSize:] {
		l.times = append(l.times, decodeTime(b))
	}
	times := l.times[start:len(l.times):len(l.times)]
	if !slices.IsSortedFunc(times, time.Time.Compare) {
		slices.SortFunc(times, time.Time.Compare)
	}
	return times
}

func (l *loader) state() *stages.State {
	st := &stages.State{Filters: make([]stages.FilterState, 0, len(l.filters))}
	var order, tmp []sortItem
	for _, f := range l.filters {
		if len(f.Matches) == 0 && len(f.Pending) == 0 {
			continue
		}
		order, tmp = sortMatches(f.Matches, order, tmp)
		order, tmp = sortPending(f.Pending, order, tmp)
		st.Filters = append(st.Filters, f.FilterState)
	}
	slices.SortFunc(st.Filters, func(a, b stages.FilterState) int {
		if c := strings.Compare(a.Filter.Name, b.Filter.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Filter.Identity, b.Filter.Identity)
	})
	return st
}

// sortItem is an element to sort: a prefix of its sort key that decides
// most comparisons, and its index. Sorting these, then moving the elements
// once, is several times faster than sorting the elements.
type sortItem struct {
	hi, lo uint64
	i      int
}

func (a *sortItem) compare(b *sortItem) int {
	if a.hi != b.hi {
		return cmp.Compare(a.hi, b.hi)
	}
	return cmp.Compare(a.lo, b.lo)
}

// keyPrefix packs the first 16 bytes of a key's first value (an IPv4
// address whole) so that prefixes that differ compare as the keys do.
func keyPrefix(key []string) (hi, lo uint64) {
	if len(key) == 0 {
		return 0, 0
	}
	var b [16]byte
	copy(b[:], key[0])
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func compareKeys(a, b []string) int {
	if len(a) == 1 && len(b) == 1 {
		return strings.Compare(a[0], b[0])
	}
	return slices.Compare(a, b)
}

// sortMatches sorts matches by key (slices.Compare), as stages.MemStore.
func sortMatches(m []stages.KeyMatches, order, tmp []sortItem) ([]sortItem, []sortItem) {
	order = order[:0]
	for i := range m {
		hi, lo := keyPrefix(m[i].Key)
		order = append(order, sortItem{hi, lo, i})
	}
	tmp = sortItems(order, tmp, func(i, j int) int { return compareKeys(m[i].Key, m[j].Key) })
	permute(m, order)
	return order, tmp
}

// sortPending sorts pending actions by due time, key and action, as
// stages.MemStore.
func sortPending(p []stages.PendingAction, order, tmp []sortItem) ([]sortItem, []sortItem) {
	order = order[:0]
	for i := range p {
		due := encodeTime(p[i].Due)
		hi, _ := keyPrefix(p[i].Key)
		order = append(order, sortItem{binary.BigEndian.Uint64(due[:]), hi, i})
	}
	tmp = sortItems(order, tmp, func(i, j int) int {
		x, y := &p[i], &p[j]
		if c := compareKeys(x.Key, y.Key); c != 0 {
			return c
		}
		return strings.Compare(x.Action, y.Action)
	})
	permute(p, order)
	return order, tmp
}

// sortItems sorts order by hi, lo, then tie of their indexes: a radix sort
// on hi (skipping the bytes that every item has the same), then a
// comparison sort of each run of equal hi. tmp is scratch space, returned
// for the next call.
func sortItems(order, tmp []sortItem, tie func(i, j int) int) []sortItem {
	compare := func(a, b sortItem) int {
		if c := a.compare(&b); c != 0 {
			return c
		}
		return tie(a.i, b.i)
	}
	n := len(order)
	if n < 1024 {
		slices.SortFunc(order, compare)
		return tmp
	}
	if cap(tmp) < n {
		tmp = make([]sortItem, n)
	}
	src, dst := order, tmp[:n]
	for shift := 0; shift < 64; shift += 8 {
		var at [256]int
		for i := range src {
			at[byte(src[i].hi>>shift)]++
		}
		if at[byte(src[0].hi>>shift)] == n {
			continue
		}
		pos := 0
		for b, c := range at {
			at[b], pos = pos, pos+c
		}
		for _, it := range src {
			b := byte(it.hi >> shift)
			dst[at[b]] = it
			at[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &order[0] {
		copy(order, src)
	}
	for start := 0; start < n; {
		end := start + 1
		for end < n && order[end].hi == order[start].hi {
			end++
		}
		if end-start > 1 {
			slices.SortFunc(order[start:end], compare)
		}
		start = end
	}
	return tmp
}

// permute puts s[order[k].i] at k for every k, in place: it follows each
// cycle of the permutation once, marking order as it goes.
func permute[T any](s []T, order []sortItem) {
	for start := range order {
		if order[start].i < 0 {
			continue
		}
		held := s[start]
		k := start
		for {
			from := order[k].i
			order[k].i = -1
			if from == start {
				s[k] = held
				break
			}
			s[k] = s[from]
			k = from
		}
	}
}
