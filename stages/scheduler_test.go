package stages

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"reaction/graph"
)

// tSched is a scheduler on a FakeClock whose jobs are recorded instead of
// run: jobs returned by trigger/restore/stop are "run" by the test with
// run(), those submitted by timers land in fired.
type tSched struct {
	s     *scheduler
	clock *FakeClock
	mu    sync.Mutex
	fired []*Job
	store *MemStore
}

func newTSched(t *testing.T, withStore bool, f tFilter) *tSched {
	t.Helper()
	g := tGraph(t, []string{"true"}, f)
	e, err := New(g, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := &tSched{clock: NewFakeClock(tStart)}
	var j *Journal
	if withStore {
		ts.store = NewMemStore()
		j = NewJournal(ts.store, ts.clock, time.Second, slog.New(slog.DiscardHandler))
	}
	ts.s = newScheduler(e.filters, ts.clock, j, slog.New(slog.DiscardHandler))
	ts.s.submit = func(j *Job) {
		ts.mu.Lock()
		ts.fired = append(ts.fired, j)
		ts.mu.Unlock()
		if j.Done != nil {
			j.Done()
		}
	}
	return ts
}

// takeFired returns and forgets the argv of the jobs fired by timers.
func (ts *tSched) takeFired() []string {
	ts.s.submitDue()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := jobArgv(ts.fired)
	ts.fired = nil
	return out
}

func jobArgv(jobs []*Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = strings.Join(j.Argv, " ")
	}
	return out
}

func banUnban() []*graph.Action {
	return []*graph.Action{tAction("ban", 0, "ban", "<ip>"), tAction("unban", time.Hour, "unban", "<ip>")}
}

func TestSchedulerImmediateAndDelayed(t *testing.T) {
	ts := newTSched(t, false, tFilter{name: "f", regex: []string{"<ip>"}, actions: banUnban()})
	jobs, _ := ts.s.trigger(0, []string{"192.0.2.1"}, tStart)
	if got := jobArgv(jobs); !slices.Equal(got, []string{"ban 192.0.2.1"}) {
		t.Fatalf("immediate jobs %v", got)
	}
	ts.clock.Advance(time.Hour - 1)
	if got := ts.takeFired(); len(got) != 0 {
		t.Fatalf("unban ran early: %v", got)
	}
	ts.clock.Advance(1)
	if got := ts.takeFired(); !slices.Equal(got, []string{"unban 192.0.2.1"}) {
		t.Fatalf("at due time: %v", got)
	}
	if v := ts.s.pendingViews(0, nil); len(v) != 0 {
		t.Fatalf("still pending after it ran: %v", v)
	}
}

func TestSchedulerDuplicates(t *testing.T) {
	tests := []struct {
		dup graph.Duplicates
		// second trigger 30 minutes after the first
		wantSecond []string        // immediate jobs of the second trigger
		wantDue    []time.Duration // due times of the pending unbans after it
	}{
		{graph.DuplicatesExtend, nil, []time.Duration{90 * time.Minute}},
		{graph.DuplicatesIgnore, nil, []time.Duration{time.Hour}},
		{graph.DuplicatesRerun, []string{"ban 192.0.2.1"}, []time.Duration{time.Hour, 90 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(string(tt.dup), func(t *testing.T) {
			ts := newTSched(t, true, tFilter{name: "f", regex: []string{"<ip>"}, dup: tt.dup, actions: banUnban()})
			values := []string{"192.0.2.1"}
			ts.s.trigger(0, values, tStart)
			ts.clock.Advance(30 * time.Minute)
			jobs, _ := ts.s.trigger(0, values, ts.clock.Now())
			if got := jobArgv(jobs); !slices.Equal(got, tt.wantSecond) {
				t.Fatalf("second trigger ran %v, want %v", got, tt.wantSecond)
			}
			var due []time.Duration
			for _, v := range ts.s.pendingViews(0, nil) {
				due = append(due, v.Due.Sub(tStart))
			}
			slices.Sort(due)
			if !slices.Equal(due, tt.wantDue) {
				t.Fatalf("pending due %v, want %v", due, tt.wantDue)
			}
			// The timers agree with what is shown, and the store too.
			ts.journalSync(t)
			st, _ := ts.store.Load(t.Context())
			if len(st.Filters) != 1 || len(st.Filters[0].Pending) != len(tt.wantDue) {
				t.Fatalf("persisted pending %+v", st)
			}
			ts.clock.Advance(2 * time.Hour)
			if got := ts.takeFired(); len(got) != len(tt.wantDue) {
				t.Fatalf("fired %v, want %d unbans", got, len(tt.wantDue))
			}
			ts.journalSync(t)
			if st, _ := ts.store.Load(t.Context()); len(st.Filters) != 0 {
				t.Fatalf("state after every unban ran: %+v", st)
			}
		})
	}
}

func (ts *tSched) journalSync(t *testing.T) {
	t.Helper()
	if err := ts.s.journal.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestSchedulerAddressFamily(t *testing.T) {
	v4only := tAction("v4", 0, "iptables", "<ip>")
	v4only.IPv4Only = true
	v6only := tAction("v6", 0, "ip6tables", "<ip>")
	v6only.IPv6Only = true
	v6later := tAction("v6later", time.Hour, "ip6tables-del", "<ip>")
	v6later.IPv6Only = true
	ts := newTSched(t, false, tFilter{name: "f", regex: []string{"<ip>"}, actions: []*graph.Action{v4only, v6only, v6later}})
	tests := []struct {
		value string
		want  []string
	}{
		{"192.0.2.1", []string{"iptables 192.0.2.1"}},
		{"2001:db8::1", []string{"ip6tables 2001:db8::1"}},
		{"2001:db8::/64", []string{"ip6tables 2001:db8::/64"}},
		{"10.0.0.0/8", []string{"iptables 10.0.0.0/8"}},
	}
	for _, tt := range tests {
		jobs, _ := ts.s.trigger(0, []string{tt.value}, tStart)
		if got := jobArgv(jobs); !slices.Equal(got, tt.want) {
			t.Errorf("%s: ran %v, want %v", tt.value, got, tt.want)
		}
	}
	ts.clock.Advance(time.Hour)
	got := ts.takeFired()
	slices.Sort(got)
	if want := []string{"ip6tables-del 2001:db8::/64", "ip6tables-del 2001:db8::1"}; !slices.Equal(got, want) {
		t.Errorf("delayed v6-only ran %v, want %v", got, want)
	}
}

func TestSchedulerOnExitAtStop(t *testing.T) {
	onexit := tAction("unban", time.Hour, "unban", "<ip>")
	onexit.OnExit = true
	later := tAction("report", 2*time.Hour, "report", "<ip>")
	ts := newTSched(t, true, tFilter{name: "f", regex: []string{"<ip>"}, actions: []*graph.Action{tAction("ban", 0, "ban", "<ip>"), onexit, later}})
	ts.s.trigger(0, []string{"192.0.2.2"}, tStart)
	ts.s.trigger(0, []string{"192.0.2.1"}, tStart)
	jobs := ts.s.stop()
	if got := jobArgv(jobs); !slices.Equal(got, []string{"unban 192.0.2.1", "unban 192.0.2.2"}) {
		t.Fatalf("onexit jobs %v", got)
	}
	for _, j := range jobs {
		j.Done()
	}
	ts.clock.Advance(3 * time.Hour)
	if got := ts.takeFired(); len(got) != 0 {
		t.Fatalf("timers fired after stop: %v", got)
	}
	// The onexit ones ran (done); the others stay persisted for the next start.
	ts.journalSync(t)
	st, _ := ts.store.Load(t.Context())
	var left []string
	for _, p := range st.Filters[0].Pending {
		left = append(left, p.Action+" "+p.Key[0])
	}
	if want := []string{"report 192.0.2.1", "report 192.0.2.2"}; !slices.Equal(left, want) {
		t.Fatalf("persisted after stop %v, want %v", left, want)
	}
	if jobs, _ := ts.s.trigger(0, []string{"192.0.2.3"}, tStart); len(jobs) != 0 {
		t.Fatal("trigger accepted after stop")
	}
}

func TestSchedulerOneShot(t *testing.T) {
	notify := tAction("notify", 0, "mail", "<ip>")
	notify.OneShot = true
	later := tAction("later", time.Hour, "mail-later", "<ip>")
	later.OneShot = true
	actions := append(banUnban(), notify, later)
	ts := newTSched(t, true, tFilter{name: "f", regex: []string{"<ip>"}, actions: actions})
	jobs, sync := ts.s.trigger(0, []string{"192.0.2.1"}, tStart)
	if got := jobArgv(jobs); !slices.Equal(got, []string{"ban 192.0.2.1", "mail 192.0.2.1"}) {
		t.Fatalf("trigger ran %v", got)
	}
	if !sync {
		t.Fatal("a persisted delayed action must ask for a sync")
	}
	ts.journalSync(t)
	st, _ := ts.store.Load(t.Context())
	if p := st.Filters[0].Pending; len(p) != 1 || p[0].Action != "unban" {
		t.Fatalf("persisted %+v: oneshot actions are never persisted", p)
	}
	// A restart replays the unban (and re-bans), never the oneshot ones.
	ts2 := newTSched(t, false, tFilter{name: "f", regex: []string{"<ip>"}, actions: actions})
	pending := append(st.Filters[0].Pending, PendingAction{Key: []string{"192.0.2.1"}, Action: "later", Trigger: tStart, Due: tStart.Add(time.Hour)})
	ts2.clock.Advance(10 * time.Minute)
	got := jobArgv(ts2.s.restore(0, pending, ts2.clock.Now()))
	if !slices.Equal(got, []string{"ban 192.0.2.1"}) {
		t.Fatalf("restore ran %v, want the ban only", got)
	}
	ts2.clock.Advance(time.Hour)
	if got := ts2.takeFired(); !slices.Equal(got, []string{"unban 192.0.2.1"}) {
		t.Fatalf("after restore fired %v", got)
	}
}

func TestSchedulerRestore(t *testing.T) {
	actions := append(banUnban(), tAction("forget", 3*time.Hour, "forget", "<ip>"))
	ts := newTSched(t, true, tFilter{name: "f", regex: []string{"<ip>"}, actions: actions})
	now := tStart.Add(2 * time.Hour)
	ts.clock.Advance(2 * time.Hour)
	p := func(ip, action string, due time.Duration) PendingAction {
		return PendingAction{Key: []string{ip}, Action: action, Trigger: tStart, Due: tStart.Add(due)}
	}
	jobs := ts.s.restore(0, []PendingAction{
		p("192.0.2.1", "unban", time.Hour),     // past: runs at once, no re-ban
		p("192.0.2.2", "unban", 3*time.Hour),   // future: re-ban now, unban at its original time
		p("192.0.2.3", "unban", time.Hour),     // past...
		p("192.0.2.3", "forget", 3*time.Hour),  // ...with a future one: re-ban too
		p("192.0.2.4", "removed", 3*time.Hour), // no longer configured: dropped
	}, now)
	want := []string{"unban 192.0.2.1", "ban 192.0.2.2", "ban 192.0.2.3", "unban 192.0.2.3"}
	if got := jobArgv(jobs); !slices.Equal(got, want) {
		t.Fatalf("restore ran %v, want %v", got, want)
	}
	var due []string
	for _, v := range ts.s.pendingViews(0, nil) {
		due = append(due, v.Action+" "+v.Values[0]+" "+v.Due.Sub(tStart).String())
	}
	slices.Sort(due)
	if w := []string{"forget 192.0.2.3 3h0m0s", "unban 192.0.2.2 3h0m0s"}; !slices.Equal(due, w) {
		t.Fatalf("rescheduled %v, want %v", due, w)
	}
	ts.clock.Advance(time.Hour - 1)
	if got := ts.takeFired(); len(got) != 0 {
		t.Fatalf("fired before the original due time: %v", got)
	}
	ts.clock.Advance(1)
	got := ts.takeFired()
	slices.Sort(got)
	if w := []string{"forget 192.0.2.3", "unban 192.0.2.2"}; !slices.Equal(got, w) {
		t.Fatalf("at the original due time %v, want %v", got, w)
	}
}

// extend reschedules from the new trigger's time, not from the first one.
func TestSchedulerExtendFromNow(t *testing.T) {
	ts := newTSched(t, false, tFilter{name: "f", regex: []string{"<ip>"}, actions: banUnban()})
	v := []string{"192.0.2.1"}
	ts.s.trigger(0, v, tStart)
	for range 3 {
		ts.clock.Advance(50 * time.Minute)
		if jobs, _ := ts.s.trigger(0, v, ts.clock.Now()); len(jobs) != 0 {
			t.Fatalf("extend re-ran immediate actions: %v", jobArgv(jobs))
		}
	}
	ts.clock.Advance(59 * time.Minute)
	if got := ts.takeFired(); len(got) != 0 {
		t.Fatalf("unban ran %v before an hour after the last trigger", got)
	}
	ts.clock.Advance(time.Minute)
	if got := ts.takeFired(); !slices.Equal(got, []string{"unban 192.0.2.1"}) {
		t.Fatalf("fired %v, want exactly one unban", got)
	}
	// After the unban, a new trigger bans again.
	if jobs, _ := ts.s.trigger(0, v, ts.clock.Now()); len(jobs) != 1 {
		t.Fatal("trigger after the unban did not ban")
	}
}

func TestSchedulerFlush(t *testing.T) {
	notify := tAction("notify", time.Hour, "notify", "<ip>")
	notify.OneShot = true
	ts := newTSched(t, true, tFilter{name: "f", regex: []string{"<ip>"}, actions: append(banUnban(), notify)})
	ts.s.trigger(0, []string{"192.0.2.1"}, tStart)
	ts.s.trigger(0, []string{"192.0.2.2"}, tStart)
	views, jobs := ts.s.flush(0, func(v []string) bool { return v[0] == "192.0.2.1" })
	if len(views) != 2 || !slices.Equal(jobArgv(jobs), []string{"unban 192.0.2.1"}) {
		t.Fatalf("flush: views %v jobs %v (oneshot must not run)", views, jobArgv(jobs))
	}
	ts.clock.Advance(2 * time.Hour)
	got := ts.takeFired()
	slices.Sort(got)
	if w := []string{"notify 192.0.2.2", "unban 192.0.2.2"}; !slices.Equal(got, w) {
		t.Fatalf("fired %v, want %v: flushed actions must not fire again", got, w)
	}
}

// Timers never wait for the executor: a mass unban while the executor is
// saturated queues the jobs instead of parking one goroutine per action.
func TestSchedulerFireNeverBlocks(t *testing.T) {
	ts := newTSched(t, false, tFilter{name: "f", regex: []string{"<ip>"}, actions: banUnban()})
	blocked := make(chan *Job) // nobody reads: a full executor queue
	ts.s.submit = func(j *Job) { blocked <- j }
	for i := range 50 {
		ts.s.trigger(0, []string{fmt.Sprintf("192.0.2.%d", i)}, tStart)
	}
	ts.clock.Advance(time.Hour) // would hang if a timer submitted by itself
	if n := len(ts.s.due); n != 50 {
		t.Fatalf("%d jobs queued, want 50", n)
	}
	got := make(chan int)
	go func() {
		n := 0
		for range blocked {
			if n++; n == 50 {
				break
			}
		}
		got <- n
	}()
	done := make(chan struct{})
	close(done)
	ts.s.dispatch(t.Context(), done)
	if n := <-got; n != 50 {
		t.Fatalf("dispatch submitted %d jobs", n)
	}
}
