package daemon

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const base = 100 << 20
	var calls []int64
	m := newMemoryLimit(base, nil, time.Hour, func(l int64) int64 { calls = append(calls, l); return 0 }, nil)
	calls = nil
	for _, tt := range []struct {
		live uint64
		want []int64 // set calls made by this step
	}{
		{10 << 20, nil},
		{base * 4 / 5, nil}, // a quarter of headroom under the limit: it holds
		{base / 9 * 8, nil}, // an eighth: the base holds still
		{base/9*8 + 8, []int64{(base/9*8 + 8) / 4 * 5}}, // less: the limit follows the live heap
		{base, []int64{base * 5 / 4}},                   // outgrown
		{base, nil},                                     // no change, no call
		{300 << 20, []int64{375 << 20}},                 // up
		{200 << 20, []int64{250 << 20}},                 // and down with it
		{base*4/5 + 4, []int64{base + 5}},               // just over the base still
		{base*4/5 - 4, []int64{base}},                   // restored, never below the base
		{10 << 20, nil},
		{math.MaxUint64, []int64{math.MaxInt64}}, // no overflow
	} {
		calls = nil
		m.step(tt.live)
		if !slices.Equal(calls, tt.want) {
			t.Errorf("live %d MiB: set %v, want %v", tt.live>>20, calls, tt.want)
		}
	}
}

// The limit is set on creation; Run restores the previous one when it
// returns.
func TestMemoryLimitRunRestores(t *testing.T) {
	limit := int64(math.MaxInt64)
	var calls []int64
	set := func(l int64) int64 { calls = append(calls, l); old := limit; limit = l; return old }
	m := newMemoryLimit(64<<20, nil, time.Hour, set, func() uint64 { return 0 })
	if limit != 64<<20 {
		t.Errorf("limit %d once created, want it set", limit)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []int64{64 << 20, math.MaxInt64}; !slices.Equal(calls, want) || limit != math.MaxInt64 {
		t.Errorf("set %v, limit now %d; want %v and the old limit back", calls, limit, want)
	}
}
