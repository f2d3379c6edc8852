package stages

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Keys of every length the arena tells apart (the longest it holds, those
// with an allocation of their own past it, those longer than klen counts)
// behave as short ones through evictions, arena rewrites, compaction and
// dirty marks.
func TestCounterLongKeys(t *testing.T) {
	lens := []int{0, 15, maxArenaKey - 1, maxArenaKey, maxArenaKey + 1, bigKey - 1, bigKey, bigKey + 1, 100_000}
	key := func(n int) string {
		s := fmt.Sprint(n, "/")
		return s + strings.Repeat("x", max(0, lens[n%len(lens)]-len(s)))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, dc := range []diffCase{{4, 40, 100, 20_000}, {maxSlab + 8, 40, 100, 20_000}} {
		c := NewCounter(dc.retry, 1000*time.Hour, dc.max)
		c.track = true
		checkDifferential(t, c, dc, key, r)
		if len(c.big) > dc.max {
			t.Fatalf("%+v: %d slots for long keys, %d keys at most", dc, len(c.big), dc.max)
		}
		now := tStart.Add(time.Hour)
		before := eachOf(c, now)
		c.compact()
		if after := eachOf(c, now); !slices.Equal(after, before) {
			t.Fatalf("%+v: compaction changed the keys", dc)
		}
	}
}

// eachOf lists what c.Each gives at now: key, count.
func eachOf(c *Counter, now time.Time) []string {
	var out []string
	c.Each(now, func(key string, n int) { out = append(out, fmt.Sprint(key, n)) })
	return out
}

// A table too large for the spare bits of a slot loses its hash bits, then
// displacement bits, and stays right: with slots of 12 bits, a table of
// 512 slots has no hash bits left, and one of 4,096 no displacement.
func TestCounterSlotBits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		dc      diffCase
		dispMax uint32
	}{
		{diffCase{4, 300, 600, 20_000}, 7},
		{diffCase{4, 600, 1200, 30_000}, 3},
		{diffCase{maxSlab + 8, 1200, 2400, 40_000}, 1},
		{diffCase{4, 2500, 5000, 60_000}, 0},
	} {
		c := NewCounter(tc.dc.retry, 1000*time.Hour, tc.dc.max)
		c.slotBits = 12
		c.setTable(minTable)
		c.track = true
		checkDifferential(t, c, tc.dc, func(n int) string { return fmt.Sprint(n) }, r)
		if c.tagMask != 0 || c.dispMax != tc.dispMax {
			t.Fatalf("%+v: table of %d slots: hash bits %#x, displacement up to %d, want none and %d", tc.dc, len(c.table), c.tagMask, c.dispMax, tc.dispMax)
		}
	}
}

// Entries, slab, over and the key arena are cut in chunks: none grows past
// its size (growing never copies a large array), a chunk of the slab holds
// the times of a chunk of entries, and keys, times and spilled times read
// back right on both sides of chunk boundaries, and after compaction.
func TestCounterChunks(t *testing.T) {
	const n = 3*chunkLen + 100
	for _, retry := range []int{4, 1_000_000_000} {
		c := NewCounter(retry, time.Hour, 0)
		want := map[string]int{}
		for k := range n {
			key := fmt.Sprint("key", k)
			for m := range k%3 + 1 {
				c.Add(key, tStart.Add(time.Duration(k*3+m)))
			}
			want[key] = k%3 + 1
		}
		check := func(when string) {
			t.Helper()
			now := tStart.Add(time.Minute)
			for key, m := range want {
				var k int
				fmt.Sscanf(key, "key%d", &k)
				got := c.Times(key, now)
				if len(got) != m || m > 0 && !got[0].Equal(tStart.Add(time.Duration(k*3))) {
					t.Fatalf("retry %d, %s: %s has times %v, want %d from %d ns", retry, when, key, got, m, k*3)
				}
			}
			checkChunks(t, c.entries, chunkLen, 0)
			checkChunks(t, c.times, chunkLen*c.slab, 0)
			checkChunks(t, c.over, chunkLen, 0)
			checkChunks(t, c.keys, keyChunk, maxArenaKey)
			if want := (int(c.nent) + chunkLen - 1) / chunkLen; len(c.entries) != want || len(c.times) != want {
				t.Fatalf("retry %d, %s: %d entries in %d chunks, slab in %d", retry, when, c.nent, len(c.entries), len(c.times))
			}
			for k, ch := range c.entries {
				if len(c.times[k]) != len(ch)*c.slab {
					t.Fatalf("retry %d, %s: chunk %d holds %d entries and %d times, slab %d", retry, when, k, len(ch), len(c.times[k]), c.slab)
				}
			}
		}
		check("filled")
		if len(c.entries) != 4 {
			t.Fatalf("retry %d: %d chunks of entries for %d keys", retry, len(c.entries), n)
		}
		if retry > maxSlab && len(c.over) != 2 {
			t.Fatalf("retry %d: %d chunks of over", retry, len(c.over))
		}
		for k := range n {
			if k%5 != 0 {
				key := fmt.Sprint("key", k)
				c.Forget(key)
				want[key] = 0
			}
		}
		c.compact()
		check("compacted")
		if len(c.entries) != 1 || int(c.nent) != c.Len() {
			t.Fatalf("retry %d: compacted into %d chunks of entries, %d entries for %d keys", retry, len(c.entries), c.nent, c.Len())
		}
	}
}

// Growing by many chunks moves nothing: an entry, its times in the slab,
// a slot of over and a key's bytes keep their address once their chunk is
// full, so that no growth step copied them (a flat slice would, holding
// the old and the new array at once).
func TestCounterGrowthCopiesNothing(t *testing.T) {
	for _, retry := range []int{4, 1_000_000_000} {
		c := NewCounter(retry, time.Hour, 0)
		add := func(k int) {
			key := fmt.Sprint("key", k)
			for m := range k%3 + 1 {
				c.Add(key, tStart.Add(time.Duration(k*3+m)))
			}
		}
		k := 0
		// Until each part has a second chunk: its first is full, at its final place.
		for ; len(c.entries) < 2 || len(c.keys) < 2 || retry > maxSlab && len(c.over) < 2; k++ {
			add(k)
		}
		e, ts, key := c.entry(0), &c.slabOf(0)[0], &c.keys[0][0]
		var o *overTimes
		if retry > maxSlab {
			o = &c.over[0][0]
		}
		chunks := len(c.entries)
		for ; len(c.entries) < chunks+16; k++ {
			add(k)
		}
		if c.entry(0) != e || &c.slabOf(0)[0] != ts || &c.keys[0][0] != key || o != nil && &c.over[0][0] != o {
			t.Fatalf("retry %d: growing from %d to %d chunks of entries moved the first chunk (entry %v, slab %v, key %v, over %v)",
				retry, chunks, len(c.entries), c.entry(0) == e, &c.slabOf(0)[0] == ts, &c.keys[0][0] == key, o == nil || &c.over[0][0] == o)
		}
		if got := c.Times("key0", tStart.Add(time.Minute)); len(got) != 1 || !got[0].Equal(tStart) {
			t.Fatalf("retry %d: key0 has times %v after growth", retry, got)
		}
	}
}

// checkChunks fails unless cs holds chunks of at most size elements, all
// but the first allocated whole, all but the last full (but for less than
// slack at their end).
func checkChunks[T any](t *testing.T, cs [][]T, size, slack int) {
	t.Helper()
	for i, ch := range cs {
		if cap(ch) > size || i > 0 && cap(ch) != size || i < len(cs)-1 && len(ch) < size-slack {
			t.Fatalf("chunk %d of %d (%T) holds %d of %d, size %d", i, len(cs), ch, len(ch), cap(ch), size)
		}
	}
}

// Under a flood of new dirty keys the dirty list stops growing: the next
// takeDirty walks the entries and still hands each dirty key over once,
// with its times, and none that went away; the list is never empty while
// keys are dirty (a shard skips a counter whose list is empty).
func TestCounterDirtyFlood(t *testing.T) {
	for _, retry := range []int{3, 1_000_000_000} {
		c := NewCounter(retry, time.Hour, 0)
		c.track = true
		const n = 50_000
		want := map[string]string{}
		for k := range n {
			key := fmt.Sprint(k)
			c.Add(key, tStart)
			want[key] = "append 1"
			switch {
			case k%7 == 0:
				c.Forget(key)
				delete(want, key)
			case k%5 == 0:
				c.Add(key, tStart)
				want[key] = "append 2"
			}
			if len(c.dirty) == 0 || len(c.dirty) > max(1024, int(c.nent)/16) {
				t.Fatalf("retry %d, key %d: %d listed for %d entries", retry, k, len(c.dirty), c.nent)
			}
		}
		if !c.dirtyAll {
			t.Fatalf("retry %d: dirty list of %d for %d keys", retry, len(c.dirty), c.Len())
		}
		got := map[string]string{}
		c.takeDirty(tStart.UnixNano(), func(key string, rewrite bool, times []int64) {
			if _, dup := got[key]; dup || rewrite {
				t.Fatalf("retry %d: %s taken twice or rewritten (it has no record)", retry, key)
			}
			got[key] = fmt.Sprint("append ", len(times))
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("retry %d: took %d keys, want %d", retry, len(got), len(want))
		}
		c.Add("1", tStart)
		if len(c.dirty) != 1 || c.dirtyAll {
			t.Fatalf("retry %d: after takeDirty, one dirty key listed %d times (all %v)", retry, len(c.dirty), c.dirtyAll)
		}
	}
}
