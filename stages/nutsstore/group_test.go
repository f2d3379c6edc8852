package nutsstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

// mapGroup is a group decoded into a map, as commits held them before
// they kept groups encoded: the oracle of mergeGroup, splitGroup and
// readGroup.
type mapGroup struct {
	entries map[string]*entry // by encoded key
}

// decodeMapGroup decodes a group record's value; the last entry of a key
// wins.
func decodeMapGroup(v []byte) (*mapGroup, error) {
	g := &mapGroup{entries: map[string]*entry{}}
	r := reader{b: v}
	for len(r.b) > 0 && r.err == nil {
		raw := nextEntry(&r)
		if r.err != nil {
			break
		}
		g.entries[string(raw.key)] = decodeEntry(raw)
	}
	if r.err != nil {
		return nil, errMalformedGroup
	}
	return g, nil
}

// encode encodes g's entries in the order of their keys.
func (g *mapGroup) encode() []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(g.entries)) {
		b = appendEntry(b, k, g.entries[k])
	}
	return b
}

// apply applies k to g, and its effect to c.
func (g *mapGroup) apply(k *keyPlan, c *counts) {
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

// groupGen makes random groups and plans over a few keys, so that plans
// name existing keys and new keys before, between and after them.
type groupGen struct {
	rng  *rand.Rand
	keys []string // encoded, not sorted
}

func newGroupGen(seed uint64) *groupGen {
	g := &groupGen{rng: rand.New(rand.NewPCG(seed, 1))}
	for i := range 30 {
		switch i {
		case 0:
			g.keys = append(g.keys, "") // sorts first; a record can hold it
		case 1:
			g.keys = append(g.keys, string(appendValues(nil, []string{string(make([]byte, 200))}))) // a 2-byte length
		default:
			g.keys = append(g.keys, string(appendValues(nil, []string{fmt.Sprint(g.rng.IntN(1000))})))
		}
	}
	return g
}

func (g *groupGen) key() string { return g.keys[g.rng.IntN(len(g.keys))] }

func (g *groupGen) time() []byte { return appendUnixNano(nil, g.rng.Int64N(4)) }

func (g *groupGen) pendingRec() pendingRec {
	p := pendingRec{action: []string{"unban", "notify", ""}[g.rng.IntN(3)]}
	copy(p.due[:], g.time())
	copy(p.trigger[:], g.time())
	return p
}

// entry returns a random entry, sometimes an empty one (a record can hold
// it).
func (g *groupGen) entry() *entry {
	e := &entry{}
	for range g.rng.IntN(3) {
		e.times = append(e.times, g.time()...)
	}
	for range g.rng.IntN(3) {
		e.pending = append(e.pending, g.pendingRec())
	}
	return e
}

// record returns a random group record: canonical, or with its entries
// out of order, some keys twice, some uvarints longer than they need.
func (g *groupGen) record() []byte {
	var b []byte
	n := g.rng.IntN(12)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = g.key()
	}
	canonical := g.rng.IntN(2) == 0
	if canonical {
		slices.Sort(keys)
		keys = slices.Compact(keys)
	}
	for _, k := range keys {
		e := g.entry()
		if !canonical && g.rng.IntN(4) == 0 {
			// The key's length in a byte more than it needs.
			b = binary.AppendUvarint(b, uint64(len(k)))
			b[len(b)-1] |= 0x80
			b = append(b, 0)
			b = append(b, k...)
			b = append(b, appendEntry(nil, "", e)[1:]...)
			continue
		}
		b = appendEntry(b, k, e)
	}
	return b
}

// plans returns random changes of a group, in log order.
func (g *groupGen) plans() []keyPlan {
	n := g.rng.IntN(10)
	if g.rng.IntN(4) == 0 {
		n = g.rng.IntN(100) // past the keys that mergeGroup searches without a map
	}
	plans := make([]keyPlan, n)
	for i := range plans {
		k := &plans[i]
		k.key = g.key()
		k.clear = g.rng.IntN(3) == 0
		for range g.rng.IntN(3) {
			k.times = append(k.times, g.time()...)
		}
		for range g.rng.IntN(3) {
			k.pendingOp(pendingOp{pendingRec: g.pendingRec(), put: g.rng.IntN(2) == 0})
		}
	}
	return plans
}

// logOps encodes plans as the log holds them.
func logOps(plans []keyPlan) []logOp {
	rec := &logRecord{seq: 1}
	var ops []logOp
	for i := range plans {
		off := len(rec.ops)
		rec.ops = appendOp(rec.ops, &plans[i])
		ops = append(ops, logOp{rec, uint32(off), uint32(len(rec.ops))})
	}
	return ops
}

// counts returns counts to start from: sometimes below what the group
// holds (a disk can hold anything), where the order of the changes
// matters.
func (g *groupGen) counts() counts {
	if g.rng.IntN(2) == 0 {
		return counts{1 << 40, 1 << 40, 1 << 40, 1 << 40}
	}
	return counts{uint64(g.rng.IntN(4)), uint64(g.rng.IntN(100)), uint64(g.rng.IntN(4)), uint64(g.rng.IntN(4))}
}

// TestMergeGroup checks readGroup and mergeGroup against decoding the
// record into a map, applying the plans one after the other and encoding
// it: the same record, the same counts.
func TestMergeGroup(t *testing.T) {
	gen := newGroupGen(1)
	for i := range 20000 {
		rec := gen.record()
		orig := slices.Clone(rec)
		plans := gen.plans()
		c0 := gen.counts()

		m, err := decodeMapGroup(rec)
		if err != nil {
			t.Fatalf("case %d: a generated record does not decode: %v", i, err)
		}
		data, err := readGroup(rec)
		if err != nil {
			t.Fatalf("case %d: readGroup: %v", i, err)
		}
		if want := m.encode(); !bytes.Equal(data, want) {
			t.Fatalf("case %d: readGroup(%q) = %q, want %q", i, rec, data, want)
		}
		wantC := c0
		for j := range plans {
			m.apply(&plans[j], &wantC)
		}
		want := m.encode()
		gotC := c0
		got, err := mergeGroup(nil, data, logOps(plans), &gotC)
		if err != nil {
			t.Fatalf("case %d: mergeGroup: %v", i, err)
		}
		if !bytes.Equal(got, want) || gotC != wantC {
			t.Fatalf("case %d: record %q, plans %+v:\ngot  %q %+v\nwant %q %+v", i, rec, plans, got, gotC, want, wantC)
		}
		if !bytes.Equal(rec, orig) {
			t.Fatalf("case %d: the record read was changed", i)
		}
	}
}

// TestReadGroupMalformed cuts and damages records: readGroup fails where
// decoding into a map failed, and otherwise gives its encoding.
func TestReadGroupMalformed(t *testing.T) {
	gen := newGroupGen(2)
	failed := 0
	for i := range 20000 {
		rec := gen.record()
		if len(rec) == 0 {
			continue
		}
		if gen.rng.IntN(2) == 0 {
			rec = rec[:gen.rng.IntN(len(rec))]
		} else {
			rec[gen.rng.IntN(len(rec))] = byte(gen.rng.IntN(256))
		}
		m, werr := decodeMapGroup(rec)
		data, err := readGroup(rec)
		if (err != nil) != (werr != nil) {
			t.Fatalf("case %d: readGroup(%q): %v, want %v", i, rec, err, werr)
		}
		if err != nil {
			failed++
			continue
		}
		if want := m.encode(); !bytes.Equal(data, want) {
			t.Fatalf("case %d: readGroup(%q) = %q, want %q", i, rec, data, want)
		}
	}
	if failed < 1000 {
		t.Fatalf("only %d damaged records failed", failed)
	}
}

// TestSplitGroup checks splitGroup, and unionGroups into a group that has
// entries already, against moving the entries of a map.
func TestSplitGroup(t *testing.T) {
	gen := newGroupGen(3)
	for i := range 20000 {
		src, err := readGroup(gen.record())
		if err != nil {
			t.Fatal(err)
		}
		var dst []byte
		if gen.rng.IntN(4) == 0 { // never written by this package
			dst, _ = readGroup(gen.record())
		}
		level := gen.rng.IntN(3)
		mask := uint64(1)<<(level+1) - 1
		to := uint64(gen.rng.IntN(1<<level)) + 1<<level
		ms, _ := decodeMapGroup(src)
		md, _ := decodeMapGroup(dst)
		for k, e := range ms.entries {
			if hashKey(k)&mask == to {
				md.entries[k] = e
				delete(ms.entries, k)
			}
		}
		stay, move := splitGroup(src, mask, to)
		if len(dst) > 0 {
			move = unionGroups(dst, move)
		}
		if want := ms.encode(); !bytes.Equal(stay, want) {
			t.Fatalf("case %d: %q stays of %q, want %q", i, stay, src, want)
		}
		if want := md.encode(); !bytes.Equal(move, want) {
			t.Fatalf("case %d: %q moves from %q to %q, want %q", i, move, src, dst, want)
		}
	}
}

// tamperGroup replaces the value of group 0 of the first filter.
func tamperGroup(t *testing.T, s *Store, change func(v []byte) []byte) {
	t.Helper()
	if err := s.db.Update(func(tx *nutsdb.Tx) error {
		v, err := tx.Get(bucketState, groupKey(0, 0))
		if err != nil {
			return err
		}
		return tx.Put(bucketState, groupKey(0, 0), change(slices.Clone(v)), nutsdb.Persistent)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestGroupRecordNotCanonical folds a group whose record has its entries
// out of order and a key twice (the last one is the key's entry, as when
// it was decoded into a map): it is written back in order, each key once.
func TestGroupRecordNotCanonical(t *testing.T) {
	s := openT(t, t.TempDir(), Options{logBytes: 1}) // every commit folds what the log holds
	var first []stages.Change
	for i := range 6 {
		first = append(first, match(ssh, time.Duration(i)*time.Second, benchIP(i)), pending(ssh, "unban", 0, time.Hour, benchIP(i)))
	}
	commitT(t, s, first...)
	tamperGroup(t, s, func(v []byte) []byte {
		var entries [][]byte
		for r := (reader{b: v}); len(r.b) > 0; {
			start := r.b
			nextEntry(&r)
			entries = append(entries, start[:len(start)-len(r.b)])
		}
		stale := appendEntry(nil, string(appendValues(nil, []string{benchIP(3)})), &entry{times: appendTime(nil, t0)})
		var b []byte
		b = append(b, stale...) // before the key's entry: it does not count
		for _, e := range slices.Backward(entries) {
			b = append(b, e...)
		}
		return b
	})
	more := []stages.Change{match(ssh, time.Hour, benchIP(2)), clearKey(ssh, benchIP(4)), match(ssh, time.Hour, benchIP(9))}
	commitT(t, s, more...)
	same(t, "folded", loadT(t, s), reference(t, first, more))
	checkInvariants(t, s)
}

// TestGroupRecordNotUnderstood folds a group whose record does not decode:
// it is overwritten with what the log says, with a warning, and its keys
// stay counted.
func TestGroupRecordNotUnderstood(t *testing.T) {
	var logs syncBuffer
	s := openT(t, t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), logBytes: 1})
	commitT(t, s, match(ssh, 0, benchIP(1)), match(ssh, 0, benchIP(2)))
	tamperGroup(t, s, func(v []byte) []byte { return v[:len(v)-1] })
	more := []stages.Change{match(ssh, time.Hour, benchIP(2)), match(ssh, time.Hour, benchIP(3))}
	commitT(t, s, more...)
	if !strings.Contains(logs.String(), "a group record not understood is overwritten") {
		t.Fatalf("no warning in %q", logs.String())
	}
	same(t, "overwritten", loadT(t, s), reference(t, more))
	if f := s.table.byRef[ssh]; f.keys != 4 {
		t.Fatalf("%d keys counted, want the 2 lost and the 2 written", f.keys)
	}
}
