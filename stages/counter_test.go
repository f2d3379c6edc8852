package stages

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestCounterWindow(t *testing.T) {
	type add struct {
		key string
		at  time.Duration // from tStart
	}
	tests := []struct {
		name   string
		retry  int
		period time.Duration
		adds   []add
		want   []bool // triggered, per add
	}{
		{"retry 0 triggers every match", 0, 0, []add{{"a", 0}, {"a", 0}}, []bool{true, true}},
		{"retry 1 triggers every match", 1, time.Hour, []add{{"a", 0}, {"a", time.Second}}, []bool{true, true}},
		{"retry 3 inside window", 3, time.Hour, []add{{"a", 0}, {"a", time.Minute}, {"a", 2 * time.Minute}}, []bool{false, false, true}},
		{"keys count apart", 2, time.Hour, []add{{"a", 0}, {"b", 0}, {"a", 1}, {"b", 1}}, []bool{false, false, true, true}},
		{"trigger clears", 2, time.Hour, []add{{"a", 0}, {"a", 1}, {"a", 2}, {"a", 3}}, []bool{false, true, false, true}},
		{"old matches slide out", 3, time.Hour, []add{{"a", 0}, {"a", 30 * time.Minute}, {"a", 61 * time.Minute}, {"a", 80 * time.Minute}}, []bool{false, false, false, true}},
		{"exactly period old still counts", 2, time.Hour, []add{{"a", 0}, {"a", time.Hour}}, []bool{false, true}},
		{"just over period does not", 2, time.Hour, []add{{"a", 0}, {"a", time.Hour + 1}}, []bool{false, false}},
		{"out of order match", 3, time.Hour, []add{{"a", 10 * time.Minute}, {"a", 5 * time.Minute}, {"a", 65 * time.Minute}}, []bool{false, false, true}},
		{"expired key comes back fresh", 2, time.Hour, []add{{"a", 0}, {"b", 2 * time.Hour}, {"a", 2 * time.Hour}}, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCounter(tt.retry, tt.period, 100)
			for i, a := range tt.adds {
				if got := c.Add(a.key, tStart.Add(a.at)); got != tt.want[i] {
					t.Fatalf("add %d (%s at %v) = %v, want %v", i, a.key, a.at, got, tt.want[i])
				}
			}
		})
	}
}

func TestCounterEviction(t *testing.T) {
	c := NewCounter(3, time.Hour, 2)
	var forgotten []string
	c.OnForget = func(key string, evicted bool) {
		forgotten = append(forgotten, fmt.Sprintf("%s:%v", key, evicted))
	}
	c.Add("a", tStart)
	c.Add("b", tStart.Add(1))
	c.Add("a", tStart.Add(2)) // a is now the most recent: b is the oldest
	c.Add("c", tStart.Add(3)) // evicts b
	if c.Len() != 2 || c.Evictions() != 1 || c.Count("b", tStart.Add(3)) != 0 {
		t.Fatalf("len %d evictions %d b=%d", c.Len(), c.Evictions(), c.Count("b", tStart.Add(3)))
	}
	if c.Count("a", tStart.Add(3)) != 2 {
		t.Fatalf("a lost its matches: %d", c.Count("a", tStart.Add(3)))
	}
	if !slices.Equal(forgotten, []string{"b:true"}) {
		t.Fatalf("OnForget calls %v", forgotten)
	}
	// An evicted key starts over.
	c.Add("b", tStart.Add(4)) // evicts c
	if c.Add("b", tStart.Add(5)) {
		t.Fatal("evicted key kept its count")
	}
	if !c.Add("b", tStart.Add(6)) {
		t.Fatal("b should trigger on its third match after coming back")
	}
}

func TestCounterExpire(t *testing.T) {
	c := NewCounter(5, time.Minute, 0)
	n := 3000
	for i := range n {
		c.Add(fmt.Sprint(i), tStart.Add(time.Duration(i)*time.Millisecond))
	}
	// Half the keys are older than the window 61s after the first ones...
	now := tStart.Add(time.Minute + time.Duration(n/2)*time.Millisecond)
	if got := c.Expire(now); got != n/2 {
		t.Fatalf("Expire dropped %d, want %d", got, n/2)
	}
	if c.Len() != n/2 || c.Count("0", now) != 0 || c.Count(fmt.Sprint(n-1), now) != 1 {
		t.Fatalf("after expire: len %d", c.Len())
	}
	// ...then all of them, and the slab shrinks to what is live.
	c.Expire(now.Add(time.Hour))
	if c.Len() != 0 || int(c.nent) != 0 {
		t.Fatalf("after full expire: len %d, slab %d", c.Len(), int(c.nent))
	}
	if c.Add("x", now.Add(2*time.Hour)) || c.Len() != 1 {
		t.Fatal("counter unusable after compaction")
	}
	// Add expires a little on its own, without Expire calls.
	c2 := NewCounter(3, time.Minute, 0)
	for i := range 100 {
		c2.Add(fmt.Sprint(i), tStart)
	}
	for i := range 100 {
		c2.Add(fmt.Sprint("late", i), tStart.Add(time.Hour))
	}
	if c2.Len() != 100 {
		t.Fatalf("expired keys not dropped by Add: %d keys", c2.Len())
	}
}

func TestCounterCompactKeepsOrderAndTimes(t *testing.T) {
	c := NewCounter(4, 2*time.Hour, 0)
	for i := range 5000 {
		c.Add(fmt.Sprint(i), tStart.Add(time.Duration(i)*time.Second))
	}
	c.Add("4999", tStart.Add(5000*time.Second))
	now := tStart.Add(4000*time.Second + 2*time.Hour) // keys ≥ 4000 live
	c.Expire(now)
	if c.Len() != 1000 || int(c.nent) != 1000 {
		t.Fatalf("len %d slab %d", c.Len(), int(c.nent))
	}
	if c.Count("4999", now) != 2 {
		t.Fatalf("4999 has %d matches", c.Count("4999", now))
	}
	var order []string
	c.Each(now, func(key string, n int) { order = append(order, key) })
	if order[0] != "4999" || order[len(order)-1] != "4000" {
		t.Fatalf("LRU order lost: first %s last %s", order[0], order[len(order)-1])
	}
	if c.Add("4999", now) {
		t.Fatal("third match should not trigger with retry 4")
	}
	if !c.Add("4999", now) {
		t.Fatal("fourth match should trigger")
	}
}

func TestCounterRestore(t *testing.T) {
	c := NewCounter(3, time.Hour, 0)
	now := tStart.Add(2 * time.Hour)
	times := []time.Time{now.Add(-10 * time.Minute), tStart, now.Add(-time.Minute), now.Add(-5 * time.Minute)}
	if n := c.Restore("a", times, now); n != 2 {
		t.Fatalf("Restore kept %d, want the 2 newest inside the window", n)
	}
	if !c.Add("a", now) {
		t.Fatal("2 restored + 1 new should trigger")
	}
	if n := c.Restore("b", []time.Time{tStart}, now); n != 0 || c.Len() != 0 {
		t.Fatal("a key with nothing inside the window is not restored")
	}
}

func TestKeyEncoding(t *testing.T) {
	tests := [][]string{nil, {""}, {"1.2.3.4"}, {"a\x00b"}, {"a", "b"}, {"", ""}, {string(make([]byte, 300))}}
	seen := map[string][]string{}
	for _, values := range tests {
		k := encodeKey(values)
		if prev, ok := seen[k]; ok {
			t.Fatalf("%q and %q encode the same", prev, values)
		}
		seen[k] = values
		got := decodeKey(k, len(values))
		if len(values) == 0 && len(got) == 0 {
			continue
		}
		if !slices.Equal(got, values) {
			t.Fatalf("decode(encode(%q)) = %q", values, got)
		}
	}
}

// BenchmarkCounterAdd: "live" keys all fit under the cap (the usual case:
// attackers come back); "flood" has twice as many distinct keys as the
// cap, so every other match evicts the oldest key and copies a new one.
func BenchmarkCounterAdd(b *testing.B) {
	for _, bc := range []struct {
		name      string
		keys, max int
	}{{"live", 1 << 12, 1 << 15}, {"flood", 1 << 16, 1 << 15}} {
		b.Run(bc.name, func(b *testing.B) {
			keys := make([]string, bc.keys)
			for i := range keys {
				keys[i] = string(appendKey(nil, []string{fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)}))
			}
			c := NewCounter(5, time.Hour, bc.max)
			b.ReportAllocs()
			b.ResetTimer()
			t := tStart
			for i := range b.N {
				t = t.Add(time.Microsecond)
				c.Add(keys[(i*7919)&(len(keys)-1)], t)
			}
		})
	}
}

// counterModel is the obvious implementation the Counter must agree with
// (no expiry: the differential test keeps every match inside the window).
type counterModel struct {
	retry, max int
	times      map[string][]int64
	lru        []string // least recently matched first
}

func (m *counterModel) add(key string, now int64) bool {
	if m.retry <= 1 {
		return true
	}
	if i := slices.Index(m.lru, key); i >= 0 {
		m.lru = append(slices.Delete(m.lru, i, i+1), key)
	} else {
		if len(m.lru) >= m.max {
			delete(m.times, m.lru[0])
			m.lru = m.lru[1:]
		}
		m.lru = append(m.lru, key)
	}
	if len(m.times[key])+1 >= m.retry {
		m.forget(key)
		return true
	}
	m.times[key] = append(m.times[key], now)
	return false
}

func (m *counterModel) forget(key string) {
	delete(m.times, key)
	if i := slices.Index(m.lru, key); i >= 0 {
		m.lru = slices.Delete(m.lru, i, i+1)
	}
}

func TestCounterDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dc := range []diffCase{{4, 50, 200, 200_000}, {2, 7, 20, 50_000}, {6, 1000, 3000, 30_000}, {3, 1, 5, 10_000}, {maxSlab + 8, 30, 60, 100_000}} {
		for _, track := range []bool{false, true} {
			c := NewCounter(dc.retry, 1000*time.Hour, dc.max)
			c.track = track
			checkDifferential(t, c, dc, func(n int) string { return fmt.Sprint(n) }, r)
		}
	}
}

// diffCase is a run of random operations on a Counter and on counterModel:
// ops among keys distinct keys, with retry and a cap of max keys.
type diffCase struct{ retry, max, keys, ops int }

// checkDifferential runs dc on c (made with dc's retry and max, and a
// period that nothing outlives) and fails at the first difference; key
// names key n. With c.track set, it takes the dirty keys now and then: a
// key handed over must have the model's times (rewrite), or their newest
// (append).
func checkDifferential(t *testing.T, c *Counter, dc diffCase, key func(int) string, r *rand.Rand) {
	t.Helper()
	m := &counterModel{retry: dc.retry, max: dc.max, times: map[string][]int64{}}
	now := tStart
	for op := range dc.ops {
		now = now.Add(time.Duration(r.IntN(1000)))
		k := key(r.IntN(dc.keys))
		switch {
		case r.IntN(20) == 0:
			if got, want := c.Forget(k), m.times[k] != nil; got != want {
				t.Fatalf("%+v op %d: Forget(%.20q) = %v, want %v", dc, op, k, got, want)
			}
			m.forget(k)
			continue
		case c.track && r.IntN(100) == 0:
			c.takeDirty(now.UnixNano(), func(k string, rewrite bool, times []int64) {
				want := m.times[k]
				if !rewrite && len(times) <= len(want) {
					want = want[len(want)-len(times):]
				}
				if !slices.Equal(times, want) {
					t.Fatalf("%+v op %d: %.20q handed over with %v (rewrite %v), want %v", dc, op, k, times, rewrite, want)
				}
			})
		}
		if got, want := c.Add(k, now), m.add(k, now.UnixNano()); got != want {
			t.Fatalf("%+v op %d: Add(%.20q) = %v, want %v", dc, op, k, got, want)
		}
		if c.Len() != len(m.lru) {
			t.Fatalf("%+v op %d: Len %d, want %d", dc, op, c.Len(), len(m.lru))
		}
	}
	var order []string
	c.Each(now, func(k string, n int) {
		order = append(order, k)
		if n != len(m.times[k]) {
			t.Fatalf("%+v: %.20q counts %d, want %d", dc, k, n, len(m.times[k]))
		}
	})
	slices.Reverse(order)
	if !slices.Equal(order, m.lru) {
		t.Fatalf("%+v: LRU order differs", dc)
	}
}

// A filter whose retry is never meant to be reached (counting only) must
// not reserve room for retry-1 match times per key: memory follows the
// matches that come, and compaction keeps them.
func TestCounterLargeRetry(t *testing.T) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := NewCounter(100_000_000, time.Hour, 0)
	const keys = 5000
	for round := range 3 {
		for i := range keys {
			if c.Add(fmt.Sprint(i), tStart.Add(time.Duration(i*3+round)*time.Second)) {
				t.Fatalf("key %d triggered at match %d of 100,000,000", i, round+1)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Fatalf("%d keys with 3 matches took %d bytes", keys, grown)
	}
	// Keys ≥ 4000 are still inside the window: compaction keeps their times.
	now := tStart.Add(time.Hour + 4000*3*time.Second)
	if n := c.Expire(now); n != 4000 {
		t.Fatalf("Expire dropped %d keys, want 4000", n)
	}
	if int(c.nent) != keys-4000 {
		t.Fatalf("not compacted: %d entries for %d keys", int(c.nent), c.Len())
	}
	if got := c.Count("4500", now); got != 3 {
		t.Fatalf("4500 counts %d after compaction, want 3", got)
	}
	c.Restore("r", []time.Time{now.Add(-2 * time.Second), now.Add(-time.Second), now.Add(-3 * time.Second)}, now)
	if got := c.Times("r", now); len(got) != 3 || !got[0].Equal(now.Add(-3*time.Second)) {
		t.Fatalf("restored times %v", got)
	}
	small := NewCounter(5, time.Hour, 0)
	if small.slab != 4 || c.slab != spillAt {
		t.Fatalf("slab %d for retry 5, %d for retry 100,000,000", small.slab, c.slab)
	}
}

// TestCounterFloodMemory: a million distinct keys stay within a budget,
// with a small retry and with one never reached (the times of a key past
// spillAt of them get a slice of their own: here, every eighth key has
// three matches), with and without dirty marks (a shard with a journal).
// The budget is on top of the key bytes (6 per key here).
func TestCounterFloodMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a million keys")
	}
	for _, tc := range []struct {
		retry  int
		budget float64 // bytes per key
	}{{3, 42}, {1_000_000_000, 51}} {
		for _, track := range []bool{false, true} {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c := NewCounter(tc.retry, time.Hour, 0)
			c.track = track
			var buf []byte
			keyBytes := 0
			for i := range 1_000_000 {
				buf = appendKey(buf[:0], []string{fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)})
				keyBytes += len(buf)
				c.Add(bytesString(buf), tStart)
				if tc.retry > 3 && i%8 == 0 {
					c.Add(bytesString(buf), tStart)
					c.Add(bytesString(buf), tStart)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perKey := (float64(after.HeapAlloc) - float64(before.HeapAlloc) - float64(keyBytes)) / 1e6
			t.Logf("1M keys (retry %d, track %v): %.1f bytes per key and %.1f of key", tc.retry, track, perKey, float64(keyBytes)/1e6)
			if perKey > tc.budget {
				t.Errorf("retry %d, track %v: %.1f bytes per key besides the key, want ≤ %.0f", tc.retry, track, perKey, tc.budget)
			}
			runtime.KeepAlive(c)
		}
	}
}

// A key that keeps matching slowly never triggers; its persisted record
// must still hold only the matches inside the window.
func TestShardBoundsPersistedMatches(t *testing.T) {
	store := NewMemStore()
	g := tGraph(t, []string{"true"}, tFilter{name: "f", regex: []string{"from <ip>"}, retry: 3, period: time.Hour, actions: banUnban()})
	e, err := New(g, Options{Store: store, Clock: NewFakeClock(tStart), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	values := []string{"192.0.2.1"}
	key := appendKey(nil, values)
	sh := e.shards[shardOf(appendShardKey(nil, 0, values), len(e.shards))]
	for i := range 10 {
		b := getMatchBatch()
		b.keys = append(b.keys, key...)
		b.items = append(b.items, match{filter: 0, end: int32(len(key)), t: tStart.Add(time.Duration(i) * 50 * time.Minute)})
		if fired := sh.count(b, nil); len(fired) != 0 {
			t.Fatalf("match %d triggered", i)
		}
		b.release()
		sh.flushChanges()
	}
	if err := e.journal.Sync(); err != nil {
		t.Fatal(err)
	}
	st, _ := store.Load(t.Context())
	got := st.Filters[0].Matches[0].Times
	if want := []time.Time{tStart.Add(400 * time.Minute), tStart.Add(450 * time.Minute)}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("persisted %v, want %v", got, want)
	}
}

// tMatch is one match of filter 0 for a shard test: values at t.
type tMatch struct {
	values []string
	t      time.Time
}

// countBatch has sh count ms as one batch, as its goroutine would, and
// returns the triggers.
func countBatch(sh *shard, ms ...tMatch) []trigger {
	b := getMatchBatch()
	for _, m := range ms {
		off := len(b.keys)
		b.keys = appendKey(b.keys, m.values)
		b.items = append(b.items, match{filter: 0, off: int32(off), end: int32(len(b.keys)), t: m.t})
	}
	fired := sh.count(b, nil)
	b.release()
	sh.flushChanges()
	return fired
}

// countStore is a Store that keeps nothing and counts what it is given.
type countStore struct {
	mu               sync.Mutex
	commits, changes int
}

func (s *countStore) Load(context.Context) (*State, error) { return &State{}, nil }
func (s *countStore) Close() error                         { return nil }
func (s *countStore) Commit(changes []Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	s.changes += len(changes)
	return nil
}

// BenchmarkShardCount is the per-match cost of a shard counting batches
// of 128 matches of 1,000 keys, with the journal off and on (a store that
// only counts what it is given, so that the stage's own cost shows; a
// Sync every 250,000 matches, as a 1 s tick at that rate). "count" never
// reaches its retry (a counting-only filter, 6h window); "retry3"
// triggers on every third match of a key.
func BenchmarkShardCount(b *testing.B) {
	for _, retry := range []int{100_000_000, 3} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("retry%d/journal=%v", retry, on)
			if retry > 3 {
				name = fmt.Sprintf("count/journal=%v", on)
			}
			b.Run(name, func(b *testing.B) {
				var store *countStore
				opts := Options{Clock: NewFakeClock(tStart), Logger: slog.New(slog.DiscardHandler)}
				if on {
					store = &countStore{}
					opts.Store = store
				}
				g := tGraph(b, []string{"true"}, tFilter{name: "f", regex: []string{"from <ip>"}, retry: retry, period: 6 * time.Hour, actions: banUnban()})
				e, err := New(g, opts)
				if err != nil {
					b.Fatal(err)
				}
				sh := e.shards[0]
				const keys, perSync = 1000, 250_000
				values := make([][]string, keys)
				for i := range values {
					values[i] = []string{fmt.Sprintf("10.0.%d.%d", i>>8, i&255)}
				}
				batch := make([]tMatch, 0, matchBatchSize)
				t := tStart
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					t = t.Add(time.Microsecond)
					batch = append(batch, tMatch{values[(i*7919)%keys], t})
					if len(batch) == matchBatchSize || i == b.N-1 {
						countBatch(sh, batch...)
						batch = batch[:0]
					}
					if (i+1)%perSync == 0 || i == b.N-1 {
						if err := e.journal.Sync(); err != nil {
							b.Fatal(err)
						}
					}
				}
				if store != nil {
					b.ReportMetric(float64(store.changes)/float64(b.N), "changes/match")
				}
			})
		}
	}
}

// A tracking counter (a shard with a journal) marks a key dirty once
// however many matches it gets; takeDirty hands each dirty key over once,
// whole when its record must be rewritten. Marks die with their key and
// survive compaction, and the list of marks stays within twice the dirty
// keys under a flood of keys evicted before they are taken.
func TestCounterDirtyMarks(t *testing.T) {
	take := func(c *Counter, now time.Time) map[string]string {
		out := map[string]string{}
		c.takeDirty(now.UnixNano(), func(key string, rewrite bool, times []int64) {
			if _, dup := out[key]; dup {
				t.Fatalf("%s taken twice", key)
			}
			how := "append"
			if rewrite {
				how = "rewrite"
			}
			out[key] = fmt.Sprint(how, " ", len(times))
		})
		if c.ndirty != 0 || len(c.dirty) != 0 {
			t.Fatalf("after takeDirty: %d dirty, %d listed", c.ndirty, len(c.dirty))
		}
		return out
	}
	c := NewCounter(3, time.Hour, 10)
	c.track = true
	for i := range 10_000 {
		c.Add(fmt.Sprint(i), tStart)
		if len(c.dirty) > 2*c.ndirty+64 || c.ndirty > c.Len() {
			t.Fatalf("key %d: %d listed for %d dirty, %d keys", i, len(c.dirty), c.ndirty, c.Len())
		}
	}
	want := map[string]string{}
	for i := 9990; i < 10_000; i++ {
		want[fmt.Sprint(i)] = "append 1" // no record yet: nothing to rewrite
	}
	if got := take(c, tStart); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the flood, took %v", got)
	}
	c.Add("9998", tStart)
	c.Add("9999", tStart)
	if !c.Add("9999", tStart) || !c.forgotStored {
		t.Fatal("9999 triggered: its record must be cleared")
	}
	c.Add("9999", tStart)
	if got := take(c, tStart); fmt.Sprint(got) != fmt.Sprint(map[string]string{"9998": "rewrite 2", "9999": "append 1"}) {
		t.Fatalf("took %v", got)
	}
	c.Add("new", tStart)
	if c.Forget("new"); c.forgotStored {
		t.Fatal("a key never taken has no record to clear")
	}
	if got := take(c, tStart); len(got) != 0 {
		t.Fatalf("took %v after the only dirty key was forgotten", got)
	}

	// Compaction renumbers the entries: the marks follow their keys.
	c = NewCounter(4, 2*time.Hour, 0)
	c.track = true
	for i := range 5000 {
		c.Add(fmt.Sprint(i), tStart.Add(time.Duration(i)*time.Second))
	}
	take(c, tStart)
	c.Add("4999", tStart.Add(5000*time.Second))
	c.Add("4500", tStart.Add(5000*time.Second))
	now := tStart.Add(4000*time.Second + 2*time.Hour)
	c.Expire(now)
	if int(c.nent) != 1000 {
		t.Fatalf("not compacted: %d entries", int(c.nent))
	}
	if got := take(c, now); fmt.Sprint(got) != fmt.Sprint(map[string]string{"4500": "rewrite 2", "4999": "rewrite 2"}) {
		t.Fatalf("after compaction, took %v", got)
	}

	// A large retry: a key with a record gets its new times appended, until
	// the times that slid out outnumber the live ones.
	c = NewCounter(100_000_000, time.Hour, 0)
	c.track = true
	for m := range 3 {
		c.Add("a", tStart.Add(time.Duration(m)*time.Minute))
	}
	steps := []map[string]string{take(c, tStart)}
	c.Add("a", tStart.Add(3*time.Minute))
	c.Add("a", tStart.Add(4*time.Minute))
	steps = append(steps, take(c, tStart), take(c, tStart))
	c.Add("a", tStart.Add(2*time.Hour)) // a expired (OnForget clears its record) and comes back new
	c.Restore("r", []time.Time{tStart.Add(2 * time.Hour)}, tStart.Add(2*time.Hour))
	c.Add("r", tStart.Add(2*time.Hour))
	steps = append(steps, take(c, tStart.Add(2*time.Hour)))
	// A key whose times fit in the slab (spillAt) is rewritten; one that
	// outgrows it while it has a record is rewritten once, then appended to.
	c.Add("r", tStart.Add(2*time.Hour+time.Second))
	steps = append(steps, take(c, tStart.Add(2*time.Hour)))
	c.Add("r", tStart.Add(2*time.Hour+2*time.Second))
	steps = append(steps, take(c, tStart.Add(2*time.Hour)))
	if got, want := fmt.Sprint(steps), fmt.Sprint([]map[string]string{{"a": "append 3"}, {"a": "append 2"}, {}, {"a": "append 1", "r": "rewrite 2"}, {"r": "rewrite 3"}, {"r": "append 1"}}); got != want {
		t.Fatalf("took %s, want %s", got, want)
	}
}

// A shard whose backlog calls for a commit goes on counting while the
// Store writes it (Journal.Kick), up to journalStallAt: there it waits for
// the Store, and for its own commit.
func TestShardCommitsInTheBackground(t *testing.T) {
	store := NewMemStore()
	inCommit, release := make(chan int, 8), make(chan struct{})
	store.OnCommit = func(c []Change) {
		inCommit <- len(c)
		<-release
	}
	g := tGraph(t, []string{"true"}, tFilter{name: "f", regex: []string{"from <ip>"}, retry: 3, period: time.Hour, actions: banUnban()})
	e, err := New(g, Options{Store: store, Clock: NewFakeClock(tStart), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sh := e.shards[0]
	keys := 0
	countUpTo := func(backlog int) { // new keys, one batch, until the shard's backlog reaches backlog
		b := getMatchBatch()
		for {
			sh.mu.Lock()
			n := sh.backlogLocked()
			sh.mu.Unlock()
			if n >= backlog {
				break
			}
			b.keys, b.items = b.keys[:0], b.items[:0]
			b.keys = appendKey(b.keys, []string{fmt.Sprintf("10.%d.%d.%d", keys>>16, (keys>>8)&255, keys&255)})
			b.items = append(b.items, match{filter: 0, end: int32(len(b.keys)), t: tStart})
			sh.count(b, nil)
			keys++
		}
		b.release()
	}
	countUpTo(journalCollectAt)
	sh.flushChanges() // kicks a commit, which blocks in the store
	if n := <-inCommit; n == 0 {
		t.Fatal("kicked commit of nothing")
	}
	// The shard counts on meanwhile: this flush returns at once.
	countUpTo(journalCollectAt)
	sh.flushChanges()
	// Past journalStallAt, a flush waits for the store, then commits.
	countUpTo(journalStallAt)
	flushed := make(chan struct{})
	go func() { sh.flushChanges(); close(flushed) }()
	close(release)
	<-flushed
	if c, _ := store.Commits(); c != 2 {
		t.Fatalf("%d commits when the stalled flush returned, want 2 (the kicked one, then its own)", c)
	}
	if err := e.journal.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := store.Load(t.Context())
	if got := len(st.Filters[0].Matches); got != keys {
		t.Fatalf("%d keys stored, want %d", got, keys)
	}
}
