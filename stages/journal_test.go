package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"reaction/graph"
)

var tRef = FilterRef{Name: "s.f", Identity: "s.f\x00r:x"}

func TestJournalCoalesces(t *testing.T) {
	store := NewMemStore()
	clock := NewFakeClock(tStart)
	j := NewJournal(store, clock, time.Second, slog.New(slog.DiscardHandler))
	for i := range 1000 {
		j.Append(Change{Op: OpMatch, Filter: tRef, Key: []string{fmt.Sprint(i % 10)}, Time: tStart})
	}
	if c, _ := store.Commits(); c != 0 {
		t.Fatalf("%d commits before the tick", c)
	}
	if clock.Pending() != 1 {
		t.Fatalf("%d timers armed, want one for the whole buffer", clock.Pending())
	}
	clock.Advance(time.Second)
	if c, n := store.Commits(); c != 1 || n != 1000 {
		t.Fatalf("after one tick: %d commits of %d changes, want 1 of 1000", c, n)
	}
	// Idle: no timer, no commit.
	clock.Advance(time.Hour)
	if c, _ := store.Commits(); c != 1 || clock.Pending() != 0 {
		t.Fatalf("idle journal committed or ticked: %d commits, %d timers", c, clock.Pending())
	}
	// A large buffer is committed at once, without waiting for the tick.
	for i := range journalFlushAt {
		j.Append(Change{Op: OpMatch, Filter: tRef, Key: []string{"x"}, Time: tStart.Add(time.Duration(i))})
	}
	if c, _ := store.Commits(); c != 2 {
		t.Fatalf("full buffer: %d commits, want 2", c)
	}
	st, _ := store.Load(t.Context())
	if got := len(st.Filters[0].Matches); got != 11 {
		t.Fatalf("%d keys stored, want 11", got)
	}
}

func TestJournalSyncAndFailure(t *testing.T) {
	store := NewMemStore()
	clock := NewFakeClock(tStart)
	var logs tLog
	j := NewJournal(store, clock, time.Second, logs.logger())
	j.Append(Change{Op: OpPending, Filter: tRef, Key: []string{"a"}, Action: "unban", Due: tStart.Add(time.Hour)})
	store.Fail = errors.New("disk full")
	if err := j.Sync(); err == nil || !strings.Contains(logs.String(), "disk full") {
		t.Fatalf("Sync = %v; log %q", err, logs.String())
	}
	j.Append(Change{Op: OpDone, Filter: tRef, Key: []string{"a"}, Action: "unban", Due: tStart.Add(time.Hour)})
	j.Append(Change{Op: OpPending, Filter: tRef, Key: []string{"b"}, Action: "unban", Due: tStart.Add(time.Hour)})
	store.Fail = nil
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	// The failed changes were kept, in order, before the later ones.
	st, _ := store.Load(t.Context())
	if p := st.Filters[0].Pending; len(p) != 1 || p[0].Key[0] != "b" {
		t.Fatalf("after retry: %+v", st)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestJournalDisabled(t *testing.T) {
	for _, j := range []*Journal{nil, NewJournal(nil, nil, 0, nil)} {
		j.Append(Change{Op: OpMatch})
		if j.Enabled() || j.Sync() != nil || j.Close() != nil {
			t.Fatal("a journal without store must do nothing")
		}
	}
}

func TestMemStoreApply(t *testing.T) {
	m := NewMemStore()
	other := FilterRef{Name: "s.g", Identity: "s.g"}
	due := tStart.Add(time.Hour)
	err := m.Commit([]Change{
		{Op: OpMatch, Filter: tRef, Key: []string{"b"}, Time: tStart.Add(2)},
		{Op: OpMatch, Filter: tRef, Key: []string{"b"}, Time: tStart.Add(1)},
		{Op: OpMatch, Filter: tRef, Key: []string{"a"}, Time: tStart},
		{Op: OpMatch, Filter: tRef, Key: []string{"c"}, Time: tStart},
		{Op: OpClear, Filter: tRef, Key: []string{"c"}},
		{Op: OpPending, Filter: tRef, Key: []string{"c"}, Action: "unban", Time: tStart, Due: due},
		{Op: OpPending, Filter: tRef, Key: []string{"d"}, Action: "unban", Time: tStart, Due: due},
		{Op: OpDone, Filter: tRef, Key: []string{"d"}, Action: "unban", Due: due},
		{Op: OpMatch, Filter: other, Key: []string{"x"}, Time: tStart},
		{Op: OpDrop, Filter: other},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := m.Load(context.Background())
	want := &State{Filters: []FilterState{{
		Filter: tRef,
		Matches: []KeyMatches{
			{Key: []string{"a"}, Times: []time.Time{tStart}},
			{Key: []string{"b"}, Times: []time.Time{tStart.Add(1), tStart.Add(2)}},
		},
		Pending: []PendingAction{{Key: []string{"c"}, Action: "unban", Trigger: tStart, Due: due}},
	}}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", st, want)
	}
}

// The order that makes bans safe across a crash: the delayed action (the
// unban) is durable before the immediate one (the ban) runs.
func TestEngineSyncsBeforeImmediateActions(t *testing.T) {
	var mu sync.Mutex
	var events []string
	store := NewMemStore()
	store.OnCommit = func(changes []Change) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range changes {
			if c.Op == OpPending {
				events = append(events, "durable "+c.Action+" "+c.Key[0])
			}
		}
	}
	runner := &RecordingRunner{Result: func(argv []string) (int, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "ran "+strings.Join(argv, " "))
		return 0, nil, nil
	}}
	g := tGraph(t, shLines("from 192.0.2.1", "from 192.0.2.2"), tFilter{
		name: "f", regex: []string{"from <ip>"}, actions: banUnban(),
	})
	e, err := New(g, Options{Clock: NewFakeClock(tStart), Store: store, Runner: runner, Logger: slog.New(slog.DiscardHandler), JournalTick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	pos := func(s string) int {
		i := slices.Index(events, s)
		if i < 0 {
			t.Fatalf("no event %q in %v", s, events)
		}
		return i
	}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if pos("durable unban "+ip) > pos("ran ban "+ip) {
			t.Errorf("ban of %s ran before its unban was durable: %v", ip, events)
		}
	}
}

// Restore at start: due actions run at once, future ones keep their
// original due time and their key is banned again, matches inside the
// window count again, a removed filter's state is dropped with a warning.
func TestEngineRestore(t *testing.T) {
	store := NewMemStore()
	now := tStart.Add(10 * time.Hour)
	f := tFilter{name: "f", regex: []string{"from <ip>"}, retry: 3, period: time.Hour, actions: banUnban()}
	g := tGraph(t, shLines("from 192.0.2.9", "from 192.0.2.8"), f)
	ref := FilterRef{Name: "s.f", Identity: g.Node(graph.ExtractID("s", "f")).Extract.Identity()}
	gone := FilterRef{Name: "s.gone", Identity: "s.gone\x00r:x"}
	changed := FilterRef{Name: "s.f", Identity: "s.f\x00r:old regex"}
	pend := func(ip string, due time.Time) Change {
		return Change{Op: OpPending, Filter: ref, Key: []string{ip}, Action: "unban", Time: due.Add(-time.Hour), Due: due}
	}
	match := func(ref FilterRef, ip string, at time.Time) Change {
		return Change{Op: OpMatch, Filter: ref, Key: []string{ip}, Time: at}
	}
	if err := store.Commit([]Change{
		pend("192.0.2.1", now.Add(-time.Minute)),                                                               // due: runs at once
		pend("192.0.2.2", now.Add(30*time.Minute)),                                                             // future: re-ban, keep due
		match(ref, "192.0.2.9", now.Add(-50*time.Minute)),                                                      // 2 of 3 inside the window...
		match(ref, "192.0.2.9", now.Add(-10*time.Minute)),                                                      // ...+ 1 line → ban
		match(ref, "192.0.2.8", now.Add(-70*time.Minute)),                                                      // outside the window: 1 line is not enough
		match(ref, "192.0.2.8", now.Add(-65*time.Minute)),                                                      //
		match(gone, "192.0.2.7", now.Add(-time.Minute)),                                                        // filter removed
		{Op: OpPending, Filter: changed, Key: []string{"192.0.2.6"}, Action: "unban", Due: now.Add(time.Hour)}, // identity changed
	}); err != nil {
		t.Fatal(err)
	}
	var logs tLog
	runner := &RecordingRunner{}
	clock := NewFakeClock(now)
	e, err := New(g, Options{Clock: clock, Store: store, Runner: runner, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	want := []string{"ban 192.0.2.2", "ban 192.0.2.9", "unban 192.0.2.1"}
	if got := argvs(runner.Calls()); !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for _, name := range []string{`filter=s.gone`, `filter=s.f reason="filter's regexes or patterns changed"`} {
		if !strings.Contains(logs.String(), "level=WARN msg=\"state: dropping the state of a filter\" "+name) {
			t.Errorf("no warning naming %s in\n%s", name, logs.String())
		}
	}
	st, _ := store.Load(t.Context())
	if len(st.Filters) != 1 || st.Filters[0].Filter != ref {
		t.Fatalf("persisted filters after restore: %+v", st.Filters)
	}
	var pending []string
	for _, p := range st.Filters[0].Pending {
		pending = append(pending, p.Key[0]+" "+p.Due.Sub(now).String())
	}
	// 192.0.2.2 keeps its original due time; 192.0.2.9 was banned at now.
	if w := []string{"192.0.2.2 30m0s", "192.0.2.9 1h0m0s"}; !slices.Equal(pending, w) {
		t.Fatalf("persisted pending %v, want %v", pending, w)
	}
	if m := st.Filters[0].Matches; len(m) != 1 || m[0].Key[0] != "192.0.2.8" || len(m[0].Times) != 1 {
		t.Fatalf("persisted matches %+v, want only the new line of 192.0.2.8", m)
	}
}

// Write-behind: a shard's counted matches reach the store as dirty keys,
// collected when the journal commits. These tests drive the shards of an
// engine that is not running, as their goroutines would.

// tShardEngine returns an engine over store whose filter f (keyed by
// <ip>) triggers at retry within period, tracking at most maxKeys keys (0:
// the default).
func tShardEngine(t testing.TB, store Store, clock Clock, retry, maxKeys int, period time.Duration) *Engine {
	t.Helper()
	g := tGraph(t, []string{"true"}, tFilter{name: "f", regex: []string{"from <ip>"}, retry: retry, period: period, maxKeys: maxKeys, actions: banUnban()})
	e, err := New(g, Options{Store: store, Clock: clock, Logger: slog.New(slog.DiscardHandler), JournalTick: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// countAll counts ms as the matchers would send them: each to its key's
// shard, one batch per shard. It returns the triggered keys.
func countAll(e *Engine, ms ...tMatch) (fired []string) {
	per := make([][]tMatch, len(e.shards))
	for _, m := range ms {
		i := shardOf(appendShardKey(nil, 0, m.values), len(e.shards))
		per[i] = append(per[i], m)
	}
	for i, ms := range per {
		if len(ms) > 0 {
			for _, tr := range countBatch(e.shards[i], ms...) {
				fired = append(fired, tr.values[0])
			}
		}
	}
	return fired
}

func at(ip string, t time.Time) tMatch { return tMatch{[]string{ip}, t} }

// persisted returns the stored match times of filter f, by IP.
func persisted(t *testing.T, store *MemStore) map[string][]int64 {
	t.Helper()
	st, err := store.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int64{}
	for _, fs := range st.Filters {
		for _, km := range fs.Matches {
			for _, tm := range km.Times {
				out[km.Key[0]] = append(out[km.Key[0]], tm.UnixNano())
			}
		}
	}
	return out
}

// counted returns the match times the engine's counters hold inside the
// window at now, by IP.
func counted(e *Engine, now time.Time) map[string][]int64 {
	out := map[string][]int64{}
	for _, sh := range e.shards {
		sh.mu.Lock()
		c := sh.counters[0]
		c.Each(now, func(key string, n int) {
			for _, tm := range c.Times(key, now) {
				ip := decodeKey(key, 1)[0]
				out[ip] = append(out[ip], tm.UnixNano())
			}
		})
		sh.mu.Unlock()
	}
	return out
}

// commitLog records the batches a MemStore commits.
type commitLog struct {
	mu      sync.Mutex
	batches [][]Change
}

func (l *commitLog) record(store *MemStore) {
	store.OnCommit = func(changes []Change) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.batches = append(l.batches, changes)
	}
}

func (l *commitLog) take() [][]Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.batches
	l.batches = nil
	return b
}

// describe renders the changes of key ip: "clear", "+<ns from base>".
func describe(changes []Change, ip string, base time.Time) []string {
	var out []string
	for _, c := range changes {
		if c.Key[0] != ip {
			continue
		}
		switch c.Op {
		case OpClear:
			out = append(out, "clear")
		case OpMatch:
			out = append(out, fmt.Sprintf("+%d", c.Time.Sub(base)))
		case OpMatches:
			for _, ns := range c.Times {
				out = append(out, fmt.Sprintf("+%d", time.Unix(0, ns).Sub(base)))
			}
		default:
			out = append(out, fmt.Sprint("op", c.Op))
		}
	}
	return out
}

// A flood of N matches of K keys costs O(K) changes per commit, not
// O(N): each dirty key's record once, however many matches it had, and
// no OpClear for a key that triggered before it was ever written. The
// tick is armed by the dirty keys alone (nothing is appended), and an
// idle journal arms nothing.
func TestJournalCoalescesAFlood(t *testing.T) {
	const keys, rounds, perRound = 47, 10, 3000
	for _, retry := range []int{3, 10} {
		t.Run(fmt.Sprint("retry ", retry), func(t *testing.T) {
			store := NewMemStore()
			var log commitLog
			log.record(store)
			clock := NewFakeClock(tStart)
			e := tShardEngine(t, store, clock, retry, 0, time.Hour)
			triggers := 0
			for r := range rounds {
				ms := make([]tMatch, 0, perRound)
				for i := range perRound {
					ms = append(ms, at(fmt.Sprintf("192.0.2.%d", (i*7)%keys), clock.Now().Add(time.Duration(i-perRound)*time.Microsecond)))
				}
				triggers += len(countAll(e, ms...))
				if c, _ := store.Commits(); c != r {
					t.Fatalf("round %d: %d commits before the tick", r, c)
				}
				clock.Advance(time.Second)
			}
			batches := log.take()
			if len(batches) != rounds {
				t.Fatalf("%d commits for %d ticks", len(batches), rounds)
			}
			for i, b := range batches {
				if len(b) > keys*(retry+1) {
					t.Errorf("commit %d: %d changes for %d keys and %d matches, want at most %d", i, len(b), keys, perRound, keys*(retry+1))
				}
			}
			if triggers < rounds*perRound/retry/2 {
				t.Fatalf("only %d triggers", triggers)
			}
			if got, want := persisted(t, store), counted(e, clock.Now()); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("persisted\n%v\nwant what the counters hold\n%v", got, want)
			}
			clock.Advance(time.Hour)
			if c, _ := store.Commits(); c != rounds || clock.Pending() != 0 {
				t.Fatalf("idle: %d commits, %d timers armed", c, clock.Pending())
			}
		})
	}
}

// A counting-only filter (a retry never reached: each key's times kept
// in a slice) appends each commit's new times to the key's record instead
// of rewriting it, and rewrites it once the times that slid out of the
// window outnumber the live ones, so that the record stays within twice
// what the counter holds.
func TestJournalAppendsLargeRecords(t *testing.T) {
	store := NewMemStore()
	var log commitLog
	log.record(store)
	clock := NewFakeClock(tStart)
	e := tShardEngine(t, store, clock, 100_000_000, 0, time.Hour)
	ips := []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}
	const perRound = 100
	for r := range 30 {
		var ms []tMatch
		for i := range perRound {
			ms = append(ms, at(ips[i%len(ips)], clock.Now().Add(time.Duration(i-perRound)*time.Millisecond)))
		}
		if fired := countAll(e, ms...); len(fired) > 0 {
			t.Fatalf("triggered %v", fired)
		}
		if err := e.journal.Sync(); err != nil {
			t.Fatal(err)
		}
		b := log.take()[0]
		clears, times := 0, 0
		for _, c := range b {
			switch c.Op {
			case OpClear:
				clears++
			case OpMatch:
				times++
			case OpMatches:
				times += len(c.Times)
			}
		}
		switch {
		case r == 0 && (clears != 0 || times != perRound):
			t.Fatalf("first commit: %d times, %d clears: want every time, and no clear (no key has a record yet)", times, clears)
		case r > 0 && r < 6 && (clears != 0 || times != perRound):
			// Rounds are 10 minutes apart: nothing slid out yet.
			t.Fatalf("commit %d: %d times, %d clears: want the %d new times appended", r, times, clears, perRound)
		}
		now := clock.Now()
		stored, live := persisted(t, store), counted(e, now)
		for _, ip := range ips {
			if len(stored[ip]) > 2*len(live[ip])+perRound {
				t.Fatalf("round %d: %s has %d persisted times for %d live", r, ip, len(stored[ip]), len(live[ip]))
			}
			var inWindow []int64
			for _, ns := range stored[ip] {
				if ns >= now.Add(-time.Hour).UnixNano() {
					inWindow = append(inWindow, ns)
				}
			}
			if !slices.Equal(inWindow, live[ip]) {
				t.Fatalf("round %d: %s persisted %v inside the window, counted %v", r, ip, inWindow, live[ip])
			}
		}
		clock.Advance(10 * time.Minute)
	}
}

// The order that keeps a key's record right: a key triggers (its OpClear
// is gathered), then matches again (it is dirty) before the journal
// commits. The commit holds the trigger's OpClear before the key's new
// record, never the other way round; a key that triggers before it was
// ever written costs nothing.
func TestJournalCollectOrder(t *testing.T) {
	store := NewMemStore()
	var log commitLog
	log.record(store)
	clock := NewFakeClock(tStart)
	e := tShardEngine(t, store, clock, 3, 0, time.Hour)
	t1, t2, t3, t4 := tStart.Add(1), tStart.Add(2), tStart.Add(3), tStart.Add(4)
	countAll(e, at("a", t1))
	if err := e.journal.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := describe(log.take()[0], "a", tStart); !slices.Equal(got, []string{"+1"}) {
		t.Fatalf("first commit of a: %v", got)
	}
	if fired := countAll(e, at("a", t2), at("a", t3), at("a", t4), at("b", t1), at("b", t2), at("b", t3), at("b", t4)); !slices.Equal(fired, []string{"a", "b"}) && !slices.Equal(fired, []string{"b", "a"}) {
		t.Fatalf("triggered %v", fired)
	}
	if err := e.journal.Sync(); err != nil {
		t.Fatal(err)
	}
	b := log.take()[0]
	if got := describe(b, "a", tStart); !slices.Equal(got, []string{"clear", "+4"}) {
		t.Fatalf("a triggered then matched again: committed %v, want the trigger's clear, then a's new record", got)
	}
	if got := describe(b, "b", tStart); !slices.Equal(got, []string{"+4"}) {
		t.Fatalf("b, never written, triggered then matched again: committed %v, want only its new record", got)
	}
	if got := persisted(t, store); fmt.Sprint(got) != fmt.Sprint(map[string][]int64{"a": {t4.UnixNano()}, "b": {t4.UnixNano()}}) {
		t.Fatalf("persisted %v", got)
	}
}

// The shards count while commits collect from them (here a goroutine
// syncing in a loop, besides the scheduler's syncs and the final one):
// whatever the interleaving, the store ends up holding exactly what the
// counters hold.
func TestJournalRacesTheShards(t *testing.T) {
	const keys, lines, retry = 40, 3000, 7
	var in []string
	for i := range lines {
		in = append(in, fmt.Sprintf("from 192.0.2.%d", i%keys))
	}
	store := NewMemStore()
	g := tGraph(t, shLines(in...), tFilter{name: "f", regex: []string{"from <ip>"}, retry: retry, period: time.Hour, actions: banUnban()})
	clock := NewFakeClock(tStart)
	e, err := New(g, Options{Store: store, Clock: clock, Runner: &RecordingRunner{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				_ = e.journal.Sync()
			}
		}
	}()
	runEngine(t, e)
	close(stop)
	<-stopped
	live := counted(e, clock.Now())
	if len(live) != keys || len(live["192.0.2.1"]) != lines/keys%retry {
		t.Fatalf("counted %d keys, %d times for 192.0.2.1", len(live), len(live["192.0.2.1"]))
	}
	if got := persisted(t, store); fmt.Sprint(got) != fmt.Sprint(live) {
		t.Fatalf("persisted\n%v\nwant what the counters hold\n%v", got, live)
	}
}

// What a Sync committed survives a restart to the nanosecond, minus what
// slid out of the window meanwhile; a match counted after the last commit
// is lost, as after a crash (kill -9).
func TestJournalRestartRestoresExactTimes(t *testing.T) {
	for _, retry := range []int{5, 100_000_000} {
		t.Run(fmt.Sprint("retry ", retry), func(t *testing.T) {
			store := NewMemStore()
			e := tShardEngine(t, store, NewFakeClock(tStart), retry, 0, time.Hour)
			odd := func(min int) time.Time { return tStart.Add(time.Duration(min)*time.Minute + time.Duration(min*7919)) }
			countAll(e, at("a", odd(-50)), at("a", odd(-40)), at("b", odd(-30)), at("c", odd(-65)), at("c", odd(-5)))
			if err := e.journal.Sync(); err != nil {
				t.Fatal(err)
			}
			countAll(e, at("a", odd(-20)), at("a", odd(-10)), at("d", odd(-9)), at("d", odd(-8)), at("d", odd(-7)), at("d", odd(-6)), at("d", odd(-5)))
			if err := e.journal.Sync(); err != nil {
				t.Fatal(err)
			}
			now := tStart.Add(time.Minute) // c's first match is out of the window now
			want := counted(e, now)
			if ns := func(ms ...int) (out []int64) {
				for _, m := range ms {
					out = append(out, odd(m).UnixNano())
				}
				return out
			}; !slices.Equal(want["a"], ns(-50, -40, -20, -10)) || !slices.Equal(want["c"], ns(-5)) {
				t.Fatalf("counted before the restart: %v", want)
			}
			if _, ok := want["d"]; ok != (retry > 5) {
				t.Fatalf("d (5 matches, retry %d) counted %v", retry, want["d"])
			}
			countAll(e, at("a", odd(0))) // never committed

			e2 := tShardEngine(t, store, NewFakeClock(now), retry, 0, time.Hour)
			runEngine(t, e2)
			if got := counted(e2, now); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("restored\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// A trigger's OpClear is held by its shard before the trigger reaches
// the scheduler: the commit that makes the trigger's unban durable (the
// scheduler syncs before the ban runs) holds the OpClear first.
func TestJournalTriggerClearsBeforePending(t *testing.T) {
	store := NewMemStore()
	var log commitLog
	log.record(store)
	e := tShardEngine(t, store, NewFakeClock(tStart), 3, 0, time.Hour)
	countAll(e, at("a", tStart), at("a", tStart.Add(1)))
	if err := e.journal.Sync(); err != nil {
		t.Fatal(err)
	}
	log.take()
	if fired := countAll(e, at("a", tStart.Add(2))); len(fired) != 1 {
		t.Fatalf("triggered %v", fired)
	}
	if _, sync := e.sched.trigger(0, []string{"a"}, tStart.Add(2)); !sync {
		t.Fatal("the unban was not journaled")
	}
	if err := e.journal.Sync(); err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for _, c := range log.take()[0] {
		ops = append(ops, c.Op)
	}
	if !slices.Equal(ops, []Op{OpClear, OpPending}) {
		t.Fatalf("committed ops %v, want the trigger's OpClear then the unban's OpPending", ops)
	}
}

// A failed commit keeps what it collected from the shards: retried first,
// before what the shards hold by then, it leaves the record right.
func TestJournalRetriesCollected(t *testing.T) {
	store := NewMemStore()
	var logs tLog
	e := tShardEngine(t, store, NewFakeClock(tStart), 3, 0, time.Hour)
	e.journal.log = logs.logger()
	countAll(e, at("a", tStart.Add(1)), at("b", tStart.Add(1)))
	store.Fail = errors.New("disk full")
	if err := e.journal.Sync(); err == nil {
		t.Fatal("Sync succeeded on a failing store")
	}
	countAll(e, at("a", tStart.Add(2)))
	if fired := countAll(e, at("b", tStart.Add(2)), at("b", tStart.Add(3))); len(fired) != 1 {
		t.Fatalf("triggered %v", fired)
	}
	if got := e.journal.stats()["buffered"]; got != 2 {
		t.Fatalf("%d changes buffered after the failure, want a's and b's records (2)", got)
	}
	store.Fail = nil
	if err := e.journal.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := persisted(t, store), map[string][]int64{"a": {tStart.Add(1).UnixNano(), tStart.Add(2).UnixNano()}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("persisted %v, want %v (b triggered)", got, want)
	}
}
