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
	db, _, err := s.use()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	l := loader{filters: map[uint32]*stages.FilterState{}, actions: map[string]string{}}
	err = db.View(func(tx *nutsdb.Tx) error {
		it := nutsdb.NewIterator(tx, bucketState, nutsdb.IteratorOptions{})
		if it == nil {
			return fmt.Errorf("no bucket %s", bucketState)
		}
		defer it.Release()
		// Records come in key order: filter records, then the groups of
		// each filter, one filter after the other.
		for n, ok := 0, it.Valid(); ok; n, ok = n+1, it.Next() {
			if n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			key := it.Key()
			kind, id, _, err := parseKey(key)
			if err != nil {
				l.skip(key, err)
				continue
			}
			value, err := it.Value()
			if err != nil {
				return fmt.Errorf("record %q: %w", key, err)
			}
			if kind == kindFilter {
				l.filter(id, key, value)
			} else {
				l.group(id, key, value)
			}
		}
		l.endRun()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state directory %s: load: %w", s.dir, err)
	}
	if l.skipped > 0 {
		s.log.Warn("state: records not understood were skipped", "dir", s.dir, "records", l.skipped, "example", l.example)
	}
	return l.state(), nil
}

// loader builds the State from the records. The groups of a filter are
// adjacent, so each filter's Matches and Pending are one run of slices
// allocated for all filters.
type loader struct {
	filters map[uint32]*stages.FilterState
	actions map[string]string // interned action names

	allMatches []stages.KeyMatches
	allPending []stages.PendingAction
	cur        *stages.FilterState
	curID      uint32
	matchStart int
	pendStart  int
	matched    uint64 // matched keys and pending actions of every filter,
	pending    uint64 // as their records say

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
	l.filters[id] = &stages.FilterState{Filter: f.ref}
	l.matched += f.matched
	l.pending += f.pending
}

// endRun gives the current filter its runs of matches and pending actions.
func (l *loader) endRun() {
	if l.cur == nil {
		return
	}
	l.cur.Matches = addRun(l.cur.Matches, l.allMatches[l.matchStart:len(l.allMatches):len(l.allMatches)])
	l.cur.Pending = addRun(l.cur.Pending, l.allPending[l.pendStart:len(l.allPending):len(l.allPending)])
	l.cur = nil
}

// addRun returns run, or s and run if s has a run already (the records of
// one filter are adjacent: that does not happen).
func addRun[T any](s, run []T) []T {
	if len(s) == 0 {
		return run
	}
	return append(s, run...)
}

func (l *loader) group(id uint32, key, value []byte) {
	if l.cur == nil || l.curID != id {
		l.endRun()
		fs := l.filters[id]
		if fs == nil {
			l.skip(key, errors.New("group of a filter without a record"))
			return
		}
		l.cur, l.curID = fs, id
		l.matchStart, l.pendStart = len(l.allMatches), len(l.allPending)
	}
	if l.allMatches == nil {
		l.allMatches = make([]stages.KeyMatches, 0, min(l.matched, 1<<24))
		l.allPending = make([]stages.PendingAction, 0, min(l.pending, 1<<24))
	}
	matches, pending := len(l.allMatches), len(l.allPending)
	l.chars, l.offs, l.slots = l.chars[:0], l.offs[:0], l.slots[:0]
	r := reader{b: value}
	for len(r.b) > 0 && r.err == nil {
		e := nextEntry(&r)
		values := l.values(&reader{b: e.key}, &r)
		if r.err != nil {
			break
		}
		if len(e.times) > 0 {
			l.allMatches = append(l.allMatches, stages.KeyMatches{Key: values, Times: l.decodeTimes(e.times)})
		}
		pr := reader{b: e.pending}
		for range e.npending {
			action, due, trigger := nextPending(&pr)
			name, ok := l.actions[string(action)]
			if !ok {
				name = string(action)
				l.actions[name] = name
			}
			l.allPending = append(l.allPending, stages.PendingAction{Key: values, Action: name, Trigger: decodeTime(trigger), Due: decodeTime(due)})
		}
	}
	if r.err != nil {
		l.allMatches, l.allPending = l.allMatches[:matches], l.allPending[:pending]
		l.skip(key, errMalformedGroup)
		return
	}
	chars := string(l.chars)
	for i, p := range l.slots {
		*p = chars[l.offs[i]:l.offs[i+1]]
	}
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
	var order []sortItem
	for _, fs := range l.filters {
		if len(fs.Matches) == 0 && len(fs.Pending) == 0 {
			continue
		}
		order = sortMatches(fs.Matches, order)
		order = sortPending(fs.Pending, order)
		st.Filters = append(st.Filters, *fs)
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
func sortMatches(m []stages.KeyMatches, order []sortItem) []sortItem {
	order = order[:0]
	for i := range m {
		hi, lo := keyPrefix(m[i].Key)
		order = append(order, sortItem{hi, lo, i})
	}
	slices.SortFunc(order, func(a, b sortItem) int {
		if c := a.compare(&b); c != 0 {
			return c
		}
		return compareKeys(m[a.i].Key, m[b.i].Key)
	})
	permute(m, order)
	return order
}

// sortPending sorts pending actions by due time, key and action, as
// stages.MemStore.
func sortPending(p []stages.PendingAction, order []sortItem) []sortItem {
	order = order[:0]
	for i := range p {
		due := encodeTime(p[i].Due)
		hi, _ := keyPrefix(p[i].Key)
		order = append(order, sortItem{binary.BigEndian.Uint64(due[:]), hi, i})
	}
	slices.SortFunc(order, func(a, b sortItem) int {
		if c := a.compare(&b); c != 0 {
			return c
		}
		x, y := &p[a.i], &p[b.i]
		if c := compareKeys(x.Key, y.Key); c != 0 {
			return c
		}
		return strings.Compare(x.Action, y.Action)
	})
	permute(p, order)
	return order
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
