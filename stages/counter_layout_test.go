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
