package stages

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"reaction/graph"
)

// Selector picks filters and keys for Show and Flush.
type Selector struct {
	Stream, Filter string // "" = all
	// Values: pattern name → regex the key's value of that pattern must
	// match as a whole. A filter without one of these patterns is not
	// selected.
	Values map[string]*regexp.Regexp
}

// Snapshot is a consistent view of matches and pending actions.
type Snapshot struct {
	Filters []FilterSnapshot // sorted by stream, filter; only filters with matches or pending actions
}

// FilterSnapshot is the state of one filter.
type FilterSnapshot struct {
	Stream, Filter string
	Patterns       []string      // the pattern names, in the order of every Values
	Matches        []KeyCount    // sorted by values
	Pending        []PendingView // sorted by due time, values, action
}

// KeyCount is a key and its matches inside the window.
type KeyCount struct {
	Values []string
	Count  int
}

// PendingView is a delayed action waiting for its time.
type PendingView struct {
	Values []string
	Action string
	Due    time.Time
}

// ErrNotRunning is returned by control methods that act while the engine
// is not running.
var ErrNotRunning = errors.New("engine not running")

type selection struct {
	filters []*filterRT
	keep    map[int]func([]string) bool // by filter index; nil func: every key
}

func (e *Engine) selectFilters(sel Selector) selection {
	res := selection{keep: map[int]func([]string) bool{}}
	anchored := map[string]*regexp.Regexp{}
	for name, re := range sel.Values {
		anchored[name] = regexp.MustCompile(`^(?:` + re.String() + `)$`) // re compiled, so this does
	}
	for _, f := range e.filters {
		if sel.Stream != "" && f.stream != sel.Stream || sel.Filter != "" && f.name != sel.Filter {
			continue
		}
		type check struct {
			i  int
			re *regexp.Regexp
		}
		var checks []check
		ok := true
		for name, re := range anchored {
			i := slices.Index(f.patterns, name)
			if i < 0 {
				ok = false
				break
			}
			checks = append(checks, check{i, re})
		}
		if !ok {
			continue
		}
		res.filters = append(res.filters, f)
		if len(checks) > 0 {
			res.keep[f.index] = func(values []string) bool {
				for _, c := range checks {
					if c.i >= len(values) || !c.re.MatchString(values[c.i]) {
						return false
					}
				}
				return true
			}
		} else {
			res.keep[f.index] = nil
		}
	}
	sort.Slice(res.filters, func(i, j int) bool {
		a, b := res.filters[i], res.filters[j]
		if a.stream != b.stream {
			return a.stream < b.stream
		}
		return a.name < b.name
	})
	return res
}

// Show returns the selected filters' current matches (counted at
// clock.Now()) and pending actions. Each shard is read under its own lock,
// one at a time: the pipeline is never stopped as a whole.
func (e *Engine) Show(sel Selector) Snapshot {
	s := e.selectFilters(sel)
	return e.snapshot(s, false)
}

// snapshot reads (and with forget, removes) the selected keys' matches.
func (e *Engine) snapshot(s selection, forget bool) Snapshot {
	now := e.clock.Now()
	matches := map[int][]KeyCount{}
	for _, sh := range e.shards {
		sh.mu.Lock()
		for _, f := range s.filters {
			keep := s.keep[f.index]
			c := sh.counters[f.index]
			var gone []string
			c.Each(now, func(key string, n int) {
				values := decodeKey(key, len(f.patterns))
				if keep != nil && !keep(values) {
					return
				}
				matches[f.index] = append(matches[f.index], KeyCount{Values: values, Count: n})
				if forget {
					gone = append(gone, key)
				}
			})
			for i, key := range gone {
				c.Forget(key)
				if e.journal.Enabled() {
					sh.changes = append(sh.changes, Change{Op: OpClear, Filter: f.ref, Key: decodeKey(gone[i], len(f.patterns))})
				}
			}
			if forget {
				sh.stats[f.index].keys.Store(int64(c.Len()))
			}
		}
		sh.mu.Unlock()
		if forget {
			sh.flushChanges()
		}
	}
	var snap Snapshot
	for _, f := range s.filters {
		fs := FilterSnapshot{Stream: f.stream, Filter: f.name, Patterns: slices.Clone(f.patterns), Matches: matches[f.index]}
		if !forget {
			fs.Pending = e.sched.pendingViews(f.index, s.keep[f.index])
		}
		sortSnapshot(&fs)
		if len(fs.Matches) > 0 || len(fs.Pending) > 0 || forget {
			snap.Filters = append(snap.Filters, fs)
		}
	}
	return snap
}

func sortSnapshot(fs *FilterSnapshot) {
	slices.SortFunc(fs.Matches, func(a, b KeyCount) int { return slices.Compare(a.Values, b.Values) })
	slices.SortFunc(fs.Pending, func(a, b PendingView) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		if c := slices.Compare(a.Values, b.Values); c != 0 {
			return c
		}
		return strings.Compare(a.Action, b.Action)
	})
}

// Flush forgets the selected keys' matches and runs their pending delayed
// actions now (oneshot ones are cancelled instead), and returns what was
// flushed. The forgetting is durable when Flush returns; each flushed
// action is journaled done once it ran, so one interrupted by a crash is
// run again at the next start.
func (e *Engine) Flush(sel Selector) (Snapshot, error) {
	if e.state.Load() != stateRunning || !e.sched.running() {
		return Snapshot{}, ErrNotRunning
	}
	s := e.selectFilters(sel)
	snap := e.snapshot(s, true)
	var jobs []*Job
	for i := range snap.Filters {
		fs := &snap.Filters[i]
		f := e.byName[fs.Stream+"."+fs.Filter]
		views, js := e.sched.flush(f.index, s.keep[f.index])
		fs.Pending = views
		sortSnapshot(fs)
		jobs = append(jobs, js...)
	}
	snap.Filters = slices.DeleteFunc(snap.Filters, func(fs FilterSnapshot) bool { return len(fs.Matches) == 0 && len(fs.Pending) == 0 })
	if err := e.journal.Sync(); err != nil {
		return snap, fmt.Errorf("state: %w", err)
	}
	for _, j := range jobs {
		e.sched.submit(j)
	}
	return snap, nil
}

// Trigger runs a filter's actions for the given values as if the filter
// had triggered at clock.Now() (its duplicates policy applies). Every
// pattern of the filter needs a value, which must be valid for the
// pattern (it is normalized; ignore rules do not apply to a manual trigger).
func (e *Engine) Trigger(stream, filter string, values map[string]string) error {
	f := e.byName[stream+"."+filter]
	if f == nil {
		return fmt.Errorf("no filter %s.%s", stream, filter)
	}
	vals := make([]string, len(f.extract.Patterns))
	var errs []error
	for i, p := range f.extract.Patterns {
		raw, ok := values[p.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("missing value for <%s>", p.Name))
			continue
		}
		v, err := p.Normalize(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vals[i] = v
	}
	names := make([]string, 0, len(values))
	for name := range values {
		if !slices.Contains(f.patterns, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		errs = append(errs, fmt.Errorf("filter %s.%s has no pattern <%s>", stream, filter, name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s.%s: %w", stream, filter, err)
	}
	if e.state.Load() != stateRunning {
		return ErrNotRunning
	}
	jobs, sync := e.sched.trigger(f.index, vals, e.clock.Now())
	if sync {
		if err := e.journal.Sync(); err != nil {
			e.log.Error("state: trigger not durable", "filter", f.ref.Name, "error", err)
		}
	}
	for _, j := range jobs {
		e.sched.submit(j)
	}
	return nil
}

// Stats returns every node's counters: graph node ID → counter name →
// value. The values are atomics read while the pipeline runs, so they are
// each exact but not a snapshot of one instant.
func (e *Engine) Stats() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, st := range e.streams {
		if st.source != nil {
			ss := st.source.Stats()
			out[graph.SourceID(st.name)] = map[string]uint64{
				"lines":    ss.Lines.Load(),
				"cut":      ss.Cut.Load(),
				"batches":  ss.Batches.Load(),
				"restarts": ss.Restarts.Load(),
				"failures": ss.Failures.Load(),
			}
		}
		out[graph.PrefilterID(st.name)] = map[string]uint64{
			"in":      st.in.Load(),
			"passed":  st.passed.Load(),
			"dropped": st.dropped.Load(),
		}
	}
	for _, f := range e.filters {
		out[graph.ExtractID(f.stream, f.name)] = map[string]uint64{
			"matched": f.matched.Load(),
			"ignored": f.ignored.Load(),
			"nomatch": f.nomatch.Load(),
		}
		var matches, triggers, evictions uint64
		var keys int64
		for _, sh := range e.shards {
			ss := &sh.stats[f.index]
			matches += ss.matches.Load()
			triggers += ss.triggers.Load()
			evictions += ss.evictions.Load()
			keys += ss.keys.Load()
		}
		out[graph.CounterID(f.stream, f.name)] = map[string]uint64{
			"matches": matches, "triggers": triggers, "keys": uint64(max(keys, 0)), "evictions": evictions,
		}
		sf := e.sched.filters[f.index]
		out[graph.SchedulerID(f.stream, f.name)] = map[string]uint64{
			"triggers":  sf.triggers.Load(),
			"ignored":   sf.ignored.Load(),
			"scheduled": sf.scheduled.Load(),
			"pending":   uint64(max(sf.npending.Load(), 0)),
		}
	}
	out[graph.ExecutorID] = e.exec.stats()
	if js := e.journal.stats(); js != nil {
		out["journal"] = js
	}
	return out
}
