package stages

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"reaction/graph"
)

// scheduler turns triggers into jobs: immediate actions at once, delayed
// ones at trigger time + After on the clock. It holds the pending delayed
// actions of every filter under one lock; the lock is never held while a
// job is submitted or the journal synced.
//
// What it persists: OpPending when a (non-oneshot) delayed action is
// scheduled, OpDone once it ran or was cancelled. oneshot delayed actions
// are never persisted: they are never replayed.
type scheduler struct {
	mu      sync.Mutex
	clock   Clock
	log     *slog.Logger
	journal *Journal
	filters []*schedFilter // by global filter index
	stopped bool
	due     []*Job        // delayed actions whose timer fired, not yet submitted
	wake    chan struct{} // cap 1: due is not empty

	// submit hands a job to the executor. It must not be called with mu
	// held; it may block while the executor's queue is full.
	submit func(*Job)
}

type schedFilter struct {
	rt      *filterRT
	actions []*graph.Action
	ip      int // index of the first IP-typed pattern, or -1
	pending map[string]*pendingKey

	triggers, ignored, scheduled atomic.Uint64
	npending                     atomic.Int64
}

// pendingKey holds the delayed actions of one key waiting for their time.
type pendingKey struct {
	values []string
	items  []*pendingAction
}

type pendingAction struct {
	action  *graph.Action
	trigger time.Time
	due     time.Time
	timer   Timer
}

func newScheduler(filters []*filterRT, clock Clock, journal *Journal, log *slog.Logger) *scheduler {
	s := &scheduler{clock: clock, log: log, journal: journal, wake: make(chan struct{}, 1)}
	for _, f := range filters {
		sf := &schedFilter{rt: f, actions: f.sched.Actions, ip: -1, pending: map[string]*pendingKey{}}
		for i, p := range f.sched.Patterns {
			if p.Type.IsIP() {
				sf.ip = i
				break
			}
		}
		s.filters = append(s.filters, sf)
	}
	return s
}

// applies tells whether action a runs for values: ipv4only and ipv6only
// actions run only for a first IP-typed value of their family.
func (f *schedFilter) applies(a *graph.Action, values []string) bool {
	if !a.IPv4Only && !a.IPv6Only {
		return true
	}
	fam := 0
	if f.ip >= 0 && f.ip < len(values) {
		fam = graph.Family(values[f.ip])
	}
	return (!a.IPv4Only || fam == 4) && (!a.IPv6Only || fam == 6)
}

func (f *schedFilter) job(a *graph.Action, values []string) *Job {
	return &Job{Stream: f.rt.stream, Filter: f.rt.name, Action: a.Name, Argv: a.Expand(values)}
}

// trigger handles one trigger of filter fi for values at t, under the
// duplicates policy. It returns the jobs to run now and whether the
// journal must be synced before they run (a delayed action was scheduled:
// it must be durable before the immediate actions act).
func (s *scheduler) trigger(fi int, values []string, t time.Time) (jobs []*Job, sync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, false
	}
	f := s.filters[fi]
	f.triggers.Add(1)
	key := encodeKey(values)
	immediate := true
	if pk := f.pending[key]; pk != nil && len(pk.items) > 0 {
		switch f.rt.sched.Duplicates {
		case graph.DuplicatesIgnore:
			f.ignored.Add(1)
			return nil, false
		case graph.DuplicatesRerun:
		default: // extend
			s.cancelLocked(f, key, pk)
			immediate = false
		}
	}
	for _, a := range f.actions {
		if !f.applies(a, values) {
			continue
		}
		if a.After <= 0 {
			if immediate {
				jobs = append(jobs, f.job(a, values))
			}
			continue
		}
		if s.scheduleLocked(f, key, values, a, t, t.Add(a.After)) {
			sync = true
		}
	}
	return jobs, sync
}

// scheduleLocked arms a delayed action and reports whether it was journaled.
func (s *scheduler) scheduleLocked(f *schedFilter, key string, values []string, a *graph.Action, trigger, due time.Time) bool {
	pk := f.pending[key]
	if pk == nil {
		pk = &pendingKey{values: values}
		f.pending[key] = pk
	}
	pa := &pendingAction{action: a, trigger: trigger, due: due}
	pk.items = append(pk.items, pa)
	f.scheduled.Add(1)
	f.npending.Add(1)
	pa.timer = s.clock.AfterFunc(due.Sub(s.clock.Now()), func() { s.fire(f, key, pa) })
	if a.OneShot || !s.journal.Enabled() {
		return false
	}
	s.journal.Append(Change{Op: OpPending, Filter: f.rt.ref, Key: values, Time: trigger, Action: a.Name, Due: due})
	return true
}

// cancelLocked stops every pending action of a key and journals them done.
func (s *scheduler) cancelLocked(f *schedFilter, key string, pk *pendingKey) {
	for _, pa := range pk.items {
		pa.timer.Stop()
		s.doneLocked(f, pk.values, pa)
	}
	f.npending.Add(-int64(len(pk.items)))
	delete(f.pending, key)
}

func (s *scheduler) doneLocked(f *schedFilter, values []string, pa *pendingAction) {
	if !pa.action.OneShot {
		s.journal.Append(Change{Op: OpDone, Filter: f.rt.ref, Key: values, Time: pa.trigger, Action: pa.action.Name, Due: pa.due})
	}
}

// removeLocked takes pa out of its key's pending list; false if it is no
// longer there (it ran, or was cancelled or flushed meanwhile).
func (s *scheduler) removeLocked(f *schedFilter, key string, pa *pendingAction) (*pendingKey, bool) {
	pk := f.pending[key]
	if pk == nil {
		return nil, false
	}
	i := slices.Index(pk.items, pa)
	if i < 0 {
		return nil, false
	}
	pk.items = slices.Delete(pk.items, i, i+1)
	if len(pk.items) == 0 {
		delete(f.pending, key)
	}
	f.npending.Add(-1)
	return pk, true
}

// pendingJob is the job of a delayed action: once it ran, it is journaled done.
func (s *scheduler) pendingJob(f *schedFilter, values []string, pa *pendingAction) *Job {
	j := f.job(pa.action, values)
	if !pa.action.OneShot && s.journal.Enabled() {
		j.Done = func() {
			s.journal.Append(Change{Op: OpDone, Filter: f.rt.ref, Key: values, Time: pa.trigger, Action: pa.action.Name, Due: pa.due})
		}
	}
	return j
}

// fire queues a delayed action whose time has come. It never blocks: a
// timer callback may not wait for the executor (a mass unban would park
// one goroutine per action); dispatch submits the queue.
func (s *scheduler) fire(f *schedFilter, key string, pa *pendingAction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return // stays persisted: replayed at the next start
	}
	if pk, ok := s.removeLocked(f, key, pa); ok {
		s.due = append(s.due, s.pendingJob(f, pk.values, pa))
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// dispatch submits the delayed actions that fire, until done is closed
// (then it submits what is left and returns) or ctx is done.
func (s *scheduler) dispatch(ctx context.Context, done <-chan struct{}) {
	for {
		select {
		case <-s.wake:
			s.submitDue()
		case <-done:
			s.submitDue()
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *scheduler) submitDue() {
	s.mu.Lock()
	jobs := s.due
	s.due = nil
	s.mu.Unlock()
	for _, j := range jobs {
		s.submit(j)
	}
}

// restore re-arms a filter's persisted pending actions at now. Due ones
// run at once; future ones keep their original due time, and then the
// key's immediate actions run again (bans lifted by `stop` commands are
// re-applied). oneshot actions, and actions no longer in the filter, are
// dropped.
func (s *scheduler) restore(fi int, pending []PendingAction, now time.Time) []*Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.filters[fi]
	byName := map[string]*graph.Action{}
	for _, a := range f.actions {
		byName[a.Name] = a
	}
	// The actions of a key are taken together: sorted by key (a no-op on
	// a store's sorted state), each run of equal keys is one key's.
	byKey := func(a, b PendingAction) int { return slices.Compare(a.Key, b.Key) }
	if !slices.IsSortedFunc(pending, byKey) {
		pending = slices.Clone(pending)
		slices.SortStableFunc(pending, byKey)
	}
	type group struct {
		values []string
		items  []PendingAction
	}
	var jobs []*Job
	for len(pending) > 0 {
		n := 1
		for n < len(pending) && slices.Equal(pending[n].Key, pending[0].Key) {
			n++
		}
		g := group{values: pending[0].Key, items: pending[:n]}
		pending = pending[n:]
		key := encodeKey(g.values)
		var due []*Job
		future := false
		for _, p := range g.items {
			a := byName[p.Action]
			drop := func(why string) {
				s.log.Warn("state: pending action dropped", "stream", f.rt.stream, "filter", f.rt.name, "action", p.Action, "values", g.values, "reason", why)
				s.journal.Append(Change{Op: OpDone, Filter: f.rt.ref, Key: p.Key, Time: p.Trigger, Action: p.Action, Due: p.Due})
			}
			switch {
			case a == nil || a.After <= 0:
				drop("no such delayed action in the configuration")
				continue
			case a.OneShot:
				s.journal.Append(Change{Op: OpDone, Filter: f.rt.ref, Key: p.Key, Time: p.Trigger, Action: p.Action, Due: p.Due})
				continue
			case !f.applies(a, g.values):
				drop("action does not apply to the value's address family")
				continue
			}
			pa := &pendingAction{action: a, trigger: p.Trigger, due: p.Due}
			if !p.Due.After(now) {
				due = append(due, s.pendingJob(f, g.values, pa))
				continue
			}
			future = true
			pk := f.pending[key]
			if pk == nil {
				pk = &pendingKey{values: g.values}
				f.pending[key] = pk
			}
			pk.items = append(pk.items, pa)
			f.npending.Add(1)
			pa.timer = s.clock.AfterFunc(p.Due.Sub(now), func() { s.fire(f, key, pa) })
		}
		if future {
			for _, a := range f.actions {
				if a.After <= 0 && !a.OneShot && f.applies(a, g.values) {
					jobs = append(jobs, f.job(a, g.values))
				}
			}
		}
		jobs = append(jobs, due...)
	}
	return jobs
}

// stop disarms every pending action and returns the jobs of those marked
// onexit. The others stay persisted. After stop, timers do nothing.
func (s *scheduler) stop() []*Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	var jobs []*Job
	for _, f := range s.filters {
		keys := make([]string, 0, len(f.pending))
		for k := range f.pending {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic order of onexit actions
		for _, k := range keys {
			pk := f.pending[k]
			kept := pk.items[:0]
			for _, pa := range pk.items {
				pa.timer.Stop()
				if pa.action.OnExit {
					jobs = append(jobs, s.pendingJob(f, pk.values, pa))
					f.npending.Add(-1)
				} else {
					kept = append(kept, pa)
				}
			}
			clear(pk.items[len(kept):])
			pk.items = kept
			if len(kept) == 0 {
				delete(f.pending, k)
			}
		}
	}
	return jobs
}

// running reports whether triggers are still accepted.
func (s *scheduler) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.stopped
}

// loop consumes triggers until the channel is closed (or ctx is done). It
// takes the triggers that are already waiting as one burst, and a journal
// Sync that began after a burst was scheduled comes before the burst's
// immediate actions run. It returns once every job it made is submitted.
func (s *scheduler) loop(ctx context.Context, triggers <-chan trigger) {
	const burst = 256
	// Group commit: a burst's jobs wait, in order, for a Sync that began
	// after their delayed actions were journaled; while a Sync runs, the
	// next bursts are scheduled and one Sync then covers them all, so the
	// triggers never wait for the disk. At most maxWaiting jobs wait: past
	// that, scheduling waits for the Sync.
	const maxWaiting = 4096
	var (
		mu         sync.Mutex
		cond       = sync.NewCond(&mu)
		waiting    []*Job
		needSync   bool
		wake       = make(chan struct{}, 1)
		syncerDone = make(chan struct{})
	)
	go func() {
		defer close(syncerDone)
		for {
			_, open := <-wake
			mu.Lock()
			batch, sync := waiting, needSync
			waiting, needSync = nil, false
			cond.Broadcast()
			mu.Unlock()
			if sync {
				_ = s.journal.Sync() // on failure, logged; the bans still run
			}
			for _, j := range batch {
				s.submit(j)
			}
			if !open {
				return
			}
		}
	}()
	defer func() {
		close(wake)
		<-syncerDone
	}()
	var jobs []*Job
	for {
		var t trigger
		var ok bool
		select {
		case t, ok = <-triggers:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		jobs = jobs[:0]
		burstSync := false
		for n := 0; ; n++ {
			js, sync := s.trigger(t.filter, t.values, t.t)
			jobs = append(jobs, js...)
			burstSync = burstSync || sync
			if n == burst {
				break
			}
			select {
			case t, ok = <-triggers:
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		mu.Lock()
		for len(waiting) >= maxWaiting {
			cond.Wait()
		}
		waiting = append(waiting, jobs...)
		needSync = needSync || burstSync
		mu.Unlock()
		clear(jobs)
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// pendingViews returns the pending actions of filter fi whose values keep
// is true (nil: all).
func (s *scheduler) pendingViews(fi int, keep func([]string) bool) []PendingView {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PendingView
	for _, pk := range s.filters[fi].pending {
		if keep != nil && !keep(pk.values) {
			continue
		}
		for _, pa := range pk.items {
			out = append(out, PendingView{Values: slices.Clone(pk.values), Action: pa.action.Name, Due: pa.due})
		}
	}
	return out
}

// flush takes out the pending actions of filter fi whose values keep is
// true and returns the jobs to run now: every one but the oneshot ones,
// which are cancelled.
func (s *scheduler) flush(fi int, keep func([]string) bool) ([]PendingView, []*Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.filters[fi]
	var views []PendingView
	var jobs []*Job
	for key, pk := range f.pending {
		if keep != nil && !keep(pk.values) {
			continue
		}
		for _, pa := range pk.items {
			pa.timer.Stop()
			views = append(views, PendingView{Values: slices.Clone(pk.values), Action: pa.action.Name, Due: pa.due})
			if pa.action.OneShot {
				continue
			}
			jobs = append(jobs, s.pendingJob(f, pk.values, pa))
		}
		f.npending.Add(-int64(len(pk.items)))
		delete(f.pending, key)
	}
	return views, jobs
}
