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
