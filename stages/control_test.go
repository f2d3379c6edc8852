package stages

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"reaction/graph"
)

// startEngine runs e in the background and waits until it is ready; the
// returned stop cancels it and returns Run's error.
func startEngine(t *testing.T, e *Engine) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before ready: %v", err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

func awaitRan(t *testing.T, ran <-chan []string, want ...string) {
	t.Helper()
	var got []string
	for range want {
		select {
		case argv := <-ran:
			got = append(got, strings.Join(argv, " "))
		case <-time.After(time.Minute):
			t.Fatalf("ran %v, still waiting for %v", got, want)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

func TestEngineControl(t *testing.T) {
	store := NewMemStore()
	clock := NewFakeClock(tStart)
	g := tGraph(t, []string{"sleep", "1000"},
		tFilter{name: "f", regex: []string{"from <ip>"}, retry: 5, period: time.Hour, actions: banUnban()},
		tFilter{name: "u", regex: []string{"user <user> from <ip>"}, retry: 5, period: time.Hour, actions: []*graph.Action{tAction("lock", 0, "lock", "<user>@<ip>")}},
	)
	ref := func(f string) FilterRef {
		return FilterRef{Name: "s." + f, Identity: g.Node(graph.ExtractID("s", f)).Extract.Identity()}
	}
	store.Commit([]Change{
		{Op: OpMatch, Filter: ref("f"), Key: []string{"192.0.2.1"}, Time: tStart.Add(-time.Minute)},
		{Op: OpMatch, Filter: ref("f"), Key: []string{"192.0.2.1"}, Time: tStart.Add(-2 * time.Minute)},
		{Op: OpMatch, Filter: ref("f"), Key: []string{"192.0.2.2"}, Time: tStart.Add(-time.Minute)},
		{Op: OpMatch, Filter: ref("u"), Key: []string{"192.0.2.1", "bob"}, Time: tStart.Add(-time.Minute)},
	})
	runner := &RecordingRunner{Ran: make(chan []string, 16)}
	e, err := New(g, Options{Clock: clock, Store: store, Runner: runner, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Trigger("s", "f", map[string]string{"ip": "192.0.2.1"}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Trigger before Run = %v", err)
	}
	stop := startEngine(t, e)

	t.Run("show", func(t *testing.T) {
		snap := e.Show(Selector{})
		want := []FilterSnapshot{
			{Stream: "s", Filter: "f", Patterns: []string{"ip"}, Matches: []KeyCount{{[]string{"192.0.2.1"}, 2}, {[]string{"192.0.2.2"}, 1}}},
			{Stream: "s", Filter: "u", Patterns: []string{"ip", "user"}, Matches: []KeyCount{{[]string{"192.0.2.1", "bob"}, 1}}},
		}
		if !equalSnap(snap.Filters, want) {
			t.Fatalf("Show = %+v\nwant %+v", snap.Filters, want)
		}
		snap = e.Show(Selector{Values: map[string]*regexp.Regexp{"ip": regexp.MustCompile(`192\.0\.2\.1`)}})
		if len(snap.Filters) != 2 || len(snap.Filters[0].Matches) != 1 {
			t.Fatalf("Show ip=192.0.2.1: %+v", snap.Filters)
		}
		// The regex must match the whole value; a pattern the filter lacks deselects it.
		if snap := e.Show(Selector{Values: map[string]*regexp.Regexp{"ip": regexp.MustCompile(`192`)}}); len(snap.Filters) != 0 {
			t.Fatalf("partial regex matched: %+v", snap.Filters)
		}
		if snap := e.Show(Selector{Values: map[string]*regexp.Regexp{"user": regexp.MustCompile(`.*`)}}); len(snap.Filters) != 1 || snap.Filters[0].Filter != "u" {
			t.Fatalf("user=.* selected %+v", snap.Filters)
		}
		if snap := e.Show(Selector{Stream: "s", Filter: "u"}); len(snap.Filters) != 1 || snap.Filters[0].Filter != "u" {
			t.Fatalf("-l s.u selected %+v", snap.Filters)
		}
	})

	t.Run("trigger", func(t *testing.T) {
		for _, tt := range []struct {
			filter string
			values map[string]string
			err    string
		}{
			{"nope", map[string]string{"ip": "192.0.2.1"}, "no filter s.nope"},
			{"f", map[string]string{}, "missing value for <ip>"},
			{"f", map[string]string{"ip": "1.2.3.4.5"}, "<ip>: \"1.2.3.4.5\" is not a valid ip value"},
			{"f", map[string]string{"ip": "192.0.2.1", "port": "22"}, "has no pattern <port>"},
			{"u", map[string]string{"ip": "192.0.2.1", "user": "a b"}, "<user>"},
		} {
			if err := e.Trigger("s", tt.filter, tt.values); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Trigger(%s, %v) = %v, want an error with %q", tt.filter, tt.values, err, tt.err)
			}
		}
		if err := e.Trigger("s", "f", map[string]string{"ip": "::ffff:192.0.2.3"}); err != nil {
			t.Fatal(err)
		}
		awaitRan(t, runner.Ran, "ban 192.0.2.3")
		if err := e.Trigger("s", "u", map[string]string{"ip": "2001:db8::1", "user": "eve"}); err != nil {
			t.Fatal(err)
		}
		awaitRan(t, runner.Ran, "lock eve@2001:db8::1")
		snap := e.Show(Selector{Filter: "f", Values: map[string]*regexp.Regexp{"ip": regexp.MustCompile(`192\.0\.2\.3`)}})
		want := []FilterSnapshot{{Stream: "s", Filter: "f", Patterns: []string{"ip"}, Pending: []PendingView{{[]string{"192.0.2.3"}, "unban", tStart.Add(time.Hour)}}}}
		if !equalSnap(snap.Filters, want) {
			t.Fatalf("Show after trigger = %+v", snap.Filters)
		}
	})

	t.Run("flush", func(t *testing.T) {
		snap, err := e.Flush(Selector{Values: map[string]*regexp.Regexp{"ip": regexp.MustCompile(`192\.0\.2\.[13]`)}})
		if err != nil {
			t.Fatal(err)
		}
		want := []FilterSnapshot{
			{Stream: "s", Filter: "f", Patterns: []string{"ip"}, Matches: []KeyCount{{[]string{"192.0.2.1"}, 2}}, Pending: []PendingView{{[]string{"192.0.2.3"}, "unban", tStart.Add(time.Hour)}}},
			{Stream: "s", Filter: "u", Patterns: []string{"ip", "user"}, Matches: []KeyCount{{[]string{"192.0.2.1", "bob"}, 1}}},
		}
		if !equalSnap(snap.Filters, want) {
			t.Fatalf("Flush = %+v\nwant %+v", snap.Filters, want)
		}
		awaitRan(t, runner.Ran, "unban 192.0.2.3")
		left := e.Show(Selector{})
		want = []FilterSnapshot{{Stream: "s", Filter: "f", Patterns: []string{"ip"}, Matches: []KeyCount{{[]string{"192.0.2.2"}, 1}}}}
		if !equalSnap(left.Filters, want) {
			t.Fatalf("Show after flush = %+v", left.Filters)
		}
		// The forgetting is durable at once.
		st, _ := store.Load(t.Context())
		for _, fs := range st.Filters {
			for _, m := range fs.Matches {
				if m.Key[0] != "192.0.2.2" {
					t.Errorf("flushed match still persisted: %s %v", fs.Filter.Name, m.Key)
				}
			}
		}
	})

	t.Run("stats", func(t *testing.T) {
		st := e.Stats()
		if got := st[graph.CounterID("s", "f")]["keys"]; got != 1 {
			t.Errorf("counter keys %d, want 1 (192.0.2.2)", got)
		}
		if got := st[graph.SchedulerID("s", "f")]; got["triggers"] != 1 || got["pending"] != 0 {
			t.Errorf("scheduler stats %v", got)
		}
		if got := st[graph.ExecutorID]["ran"]; got != 3 {
			t.Errorf("executor ran %d, want 3", got)
		}
	})

	// Hours later, nothing flushed fires again (checked once Run has
	// awaited every action).
	clock.Advance(2 * time.Hour)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Flush(Selector{}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Flush after Run = %v", err)
	}
	select {
	case argv := <-runner.Ran:
		t.Fatalf("unexpected action %v", argv)
	default:
	}
}

func equalSnap(a, b []FilterSnapshot) bool {
	return slices.EqualFunc(a, b, func(x, y FilterSnapshot) bool {
		return x.Stream == y.Stream && x.Filter == y.Filter && slices.Equal(x.Patterns, y.Patterns) &&
			slices.EqualFunc(x.Matches, y.Matches, func(p, q KeyCount) bool { return p.Count == q.Count && slices.Equal(p.Values, q.Values) }) &&
			slices.EqualFunc(x.Pending, y.Pending, func(p, q PendingView) bool {
				return p.Action == q.Action && p.Due.Equal(q.Due) && slices.Equal(p.Values, q.Values)
			})
	})
}
