// Package stages runs a compiled *graph.Graph: one source and one matcher
// goroutine per stream, a fixed set of counter shards, one scheduler and
// one executor, joined by bounded channels. It never reads a configuration
// (stages does not import compile) and never opens a database: the caller
// passes a Store.
package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"reaction/graph"
)

// Options are an Engine's collaborators; zero values mean the real ones.
type Options struct {
	Logger *slog.Logger
	Clock  Clock  // nil: WallClock{}
	Store  Store  // nil: nothing is persisted nor restored
	Runner Runner // nil: ExecRunner{}
	// JournalTick is the longest a state change waits before it is
	// committed (0: DefaultJournalTick).
	JournalTick time.Duration
	// StopTimeout bounds the wait for running actions at shutdown
	// (0: graph.DefaultStopTimeout). It is measured on the wall clock.
	StopTimeout time.Duration
}

// Engine runs one graph. Run is called once; the control methods (Show,
// Flush, Trigger, Stats) may be called at any time from any goroutine.
type Engine struct {
	g           *graph.Graph
	log         *slog.Logger
	clock       Clock
	store       Store
	journal     *Journal
	streams     []*streamRT
	filters     []*filterRT // global filter index → filter
	byName      map[string]*filterRT
	shards      []*shard
	sched       *scheduler
	exec        *Executor
	stopTimeout time.Duration
	eventQueue  int

	state atomic.Int32 // stateNew → stateRunning → stateDone

	// pipeCtx is what pipeline sends and running actions wait on; it is
	// cancelled only by a forced stop (StopTimeout) or at the end of Run.
	pipeCtx context.Context
	abort   context.CancelFunc
	ready   chan struct{}
}

const (
	stateNew int32 = iota
	stateRunning
	stateDone
)

// filterRT is one filter's compiled nodes and the counters its matcher
// writes (only the stream's matcher goroutine writes them).
type filterRT struct {
	index        int // global, stable for the engine's life
	stream, name string
	extract      *graph.Extract
	counter      *graph.Counter
	sched        *graph.Scheduler
	ref          FilterRef
	patterns     []string

	matched, ignored, nomatch atomic.Uint64
}

type streamRT struct {
	name      string
	source    *Source
	prefilter *graph.Prefilter
	filters   []*filterRT // in prefilter order
	queue     int

	in, passed, dropped atomic.Uint64
}

// New prepares an engine for g: it checks the graph and creates every
// stage, but starts nothing.
func New(g *graph.Graph, opts Options) (*Engine, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("invalid graph: %w", err)
	}
	e := &Engine{
		g:           g,
		log:         opts.Logger,
		clock:       opts.Clock,
		store:       opts.Store,
		stopTimeout: opts.StopTimeout,
		byName:      map[string]*filterRT{},
		ready:       make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.clock == nil {
		e.clock = WallClock{}
	}
	if e.stopTimeout <= 0 {
		e.stopTimeout = graph.DefaultStopTimeout
	}
	e.journal = NewJournal(opts.Store, e.clock, opts.JournalTick, e.log)

	shards, matchQueue, jobQueue := 1, 0, 0
	for _, view := range g.Streams() {
		st := &streamRT{
			name:      view.Source.Stream,
			prefilter: view.Prefilter,
			queue:     edgeCapacity(g, graph.SourceID(view.Source.Stream), graph.PrefilterID(view.Source.Stream), graph.DefaultLineQueue),
		}
		st.source = NewSource(view.Source, e.clock, e.log.With("stream", st.name))
		for _, vf := range view.Filters {
			x, c, s := vf.Extract, vf.Counter, vf.Scheduler
			if x == nil || c == nil || s == nil {
				return nil, fmt.Errorf("stream %s: incomplete filter", st.name)
			}
			f := &filterRT{
				index: len(e.filters), stream: x.Stream, name: x.Filter,
				extract: x, counter: c, sched: s,
				ref: FilterRef{Name: x.Stream + "." + x.Filter, Identity: x.Identity()},
			}
			for _, p := range x.Patterns {
				f.patterns = append(f.patterns, p.Name)
			}
			var sp []string
			for _, p := range s.Patterns {
				sp = append(sp, p.Name)
			}
			if !slices.Equal(f.patterns, sp) {
				return nil, fmt.Errorf("filter %s: scheduler patterns %v differ from extract patterns %v", f.ref.Name, sp, f.patterns)
			}
			shards = max(shards, c.Shards)
			matchQueue = max(matchQueue, edgeCapacity(g, graph.ExtractID(x.Stream, x.Filter), graph.CounterID(x.Stream, x.Filter), graph.DefaultMatchQueue))
			e.eventQueue = max(e.eventQueue, edgeCapacity(g, graph.CounterID(x.Stream, x.Filter), graph.SchedulerID(x.Stream, x.Filter), graph.DefaultEventQueue))
			jobQueue = max(jobQueue, edgeCapacity(g, graph.SchedulerID(x.Stream, x.Filter), graph.ExecutorID, graph.DefaultJobQueue))
			st.filters = append(st.filters, f)
			e.filters = append(e.filters, f)
			e.byName[f.ref.Name] = f
		}
		e.streams = append(e.streams, st)
	}
	for range shards {
		e.shards = append(e.shards, newShard(e.filters, shards, matchQueue, e.journal, e.clock))
	}
	e.sched = newScheduler(e.filters, e.clock, e.journal, e.log)
	e.exec = NewExecutor(g.Executor(), opts.Runner, jobQueue, e.log)
	e.pipeCtx, e.abort = context.WithCancel(context.Background())
	e.sched.submit = func(j *Job) {
		if err := e.exec.Submit(e.pipeCtx, j); err != nil {
			e.log.Warn("action not run: engine stopping", "stream", j.Stream, "filter", j.Filter, "action", j.Action, "argv", j.Argv, "error", err)
		}
	}
	return e, nil
}

// edgeCapacity is the capacity of the edge from → to, or def when the
// graph has no such edge or leaves it at 0.
func edgeCapacity(g *graph.Graph, from, to string, def int) int {
	for _, e := range g.Out(from) {
		if e.To == to && e.Capacity > 0 {
			return e.Capacity
		}
	}
	return def
}

// Run restores state, starts every stage and blocks. It returns when every
// stream has finished (all commands exited 0 and their lines were fully
// processed, including triggers and immediate actions) or when ctx is
// done; then it shuts down in order: streams stopped (children
// terminated), the pipeline drained, pending onexit actions run, running
// actions awaited up to StopTimeout, journal synced.
//
// Channel ownership: each source goroutine closes its batch channel; the
// matchers (together) close the shards' inputs; the shards (together)
// close the trigger channel; the executor owns its job queue. Closing
// cascades downstream, so draining is the normal end of every goroutine.
// Sends inside the pipeline select on an internal context that is
// cancelled only when StopTimeout expires, so that a stop drains what was
// read rather than dropping it.
//
// Run returns nil after a stop requested through ctx; an error when state
// could not be restored or synced, when a stream failed for good, or when
// actions had to be killed at the StopTimeout.
func (e *Engine) Run(ctx context.Context) error {
	if !e.state.CompareAndSwap(stateNew, stateRunning) {
		return errors.New("engine: Run may be called once")
	}
	defer e.state.Store(stateDone)

	// pipeCtx is cancelled only by a forced stop; srcCtx stops the streams.
	pipeCtx, abort := e.pipeCtx, e.abort
	defer abort()
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	stopAbortHook := context.AfterFunc(pipeCtx, stopSources)
	defer stopAbortHook()

	var forced atomic.Bool
	deadline := time.AfterFunc(math.MaxInt64, func() {
		forced.Store(true)
		e.log.Error("stop timeout: killing running actions and dropping queued ones", "timeout", e.stopTimeout)
		abort()
	})
	defer deadline.Stop()
	var armOnce sync.Once
	arm := func() { armOnce.Do(func() { deadline.Reset(e.stopTimeout) }) }
	stopArmHook := context.AfterFunc(srcCtx, arm)
	defer stopArmHook()

	var errMu sync.Mutex
	var errs []error
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		stopSources()
	}

	execDone := make(chan error, 1)
	go func() { execDone <- e.exec.Run(pipeCtx) }()
	stopDispatch, dispatchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(dispatchDone)
		e.sched.dispatch(pipeCtx, stopDispatch)
	}()

	// Actions due at restore are queued in the background: the streams
	// start at once, whatever the backlog of bans to re-apply.
	var restoreWG sync.WaitGroup
	if jobs, err := e.restore(ctx); err != nil {
		fail(err)
	} else if len(jobs) > 0 {
		restoreWG.Add(1)
		go func() {
			defer restoreWG.Done()
			for _, j := range jobs {
				e.sched.submit(j)
			}
		}()
	}

	triggers := make(chan trigger, e.eventQueue)
	var shardWG, matchWG, sourceWG sync.WaitGroup
	if srcCtx.Err() == nil {
		for _, sh := range e.shards {
			shardWG.Add(1)
			go func() {
				defer shardWG.Done()
				_ = sh.run(pipeCtx, triggers) // only fails on a forced stop
			}()
		}
		for _, st := range e.streams {
			batches := make(chan *Batch, st.queue)
			sourceWG.Add(1)
			go func() {
				defer sourceWG.Done()
				defer close(batches)
				if err := st.source.Run(srcCtx, batches); err != nil {
					e.log.Error("stream failed", "stream", st.name, "error", err)
					fail(fmt.Errorf("stream %s: %w", st.name, err))
				}
			}()
			for range max(1, st.prefilter.Workers) {
				matchWG.Add(1)
				go func() {
					defer matchWG.Done()
					_ = e.match(pipeCtx, st, batches)
				}()
			}
		}
	}
	close(e.ready)
	go func() {
		matchWG.Wait()
		for _, sh := range e.shards {
			close(sh.in)
		}
		shardWG.Wait()
		close(triggers)
	}()
	e.sched.loop(pipeCtx, triggers)
	sourceWG.Wait()
	restoreWG.Wait()

	if srcCtx.Err() == nil {
		// Every stream finished by itself: its lines' actions are part of it.
		_ = e.exec.WaitIdle(srcCtx)
	}
	stopSources()
	arm()
	onexit := e.sched.stop()
	close(stopDispatch)
	<-dispatchDone
	for _, j := range onexit {
		e.sched.submit(j)
	}
	e.exec.Close()
	<-execDone
	// Journal the OpDone of actions that ran, and whatever shards had buffered.
	for _, sh := range e.shards {
		sh.flushChanges()
	}
	if err := e.journal.Close(); err != nil {
		errs = append(errs, fmt.Errorf("state: %w", err))
	}
	if forced.Load() {
		errs = append(errs, fmt.Errorf("stop: actions still running after %s were killed", e.stopTimeout))
	}
	return errors.Join(errs...)
}

// Ready is closed once Run has restored the state and started every
// stage: from then on Show, Flush and Trigger see the restored state.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// match is one of a stream's matchers (graph.Prefilter.Workers of them
// share the stream's batches): for each line, the prefilter's candidate
// filters are tried in order; each counted match goes, with its encoded
// key, into the batch of the key's shard. Batches are sent when full and
// whenever the source has nothing more buffered, so a quiet log never
// delays a trigger.
func (e *Engine) match(ctx context.Context, st *streamRT, in <-chan *Batch) error {
	pf := NewPrefilter(st.prefilter)
	nshards := len(e.shards)
	out := make([]*matchBatch, nshards)
	send := func(i int) error {
		b := out[i]
		out[i] = nil
		select {
		case e.shards[i].in <- b:
			return nil
		case <-ctx.Done():
			b.release()
			return ctx.Err()
		}
	}
	counts := make([][3]uint64, len(st.filters)) // matched, ignored, nomatch
	var cands []int
	var masks, found []uint64
	var scratch []byte
	var values []string
	for {
		var b *Batch
		var ok bool
		select {
		case b, ok = <-in:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return nil
		}
		var passed uint64
		found = pf.scanBatch(b, found)
		for k, line := range b.Lines {
			cands, masks = pf.candidatesFound(line, found[k], cands[:0], masks[:0], true)
			if len(cands) > 0 {
				passed++
			}
			for k, ci := range cands {
				f := st.filters[ci]
				var matched bool
				var reason graph.Reason
				// The values may share the line's bytes: they are copied
				// into the key below, and the shard decodes them from it.
				values, _, matched, reason = f.extract.MatchInto(line, masks[k], values)
				switch {
				case !matched:
					counts[ci][2]++
					continue
				case reason != graph.ReasonOK:
					counts[ci][1]++
					continue
				}
				counts[ci][0]++
				scratch = binary.LittleEndian.AppendUint32(scratch[:0], uint32(f.index))
				scratch = appendKey(scratch, values)
				i := int(xxhash.Sum64(scratch) % uint64(nshards))
				mb := out[i]
				if mb == nil {
					mb = getMatchBatch()
					out[i] = mb
				}
				off := len(mb.keys)
				mb.keys = append(mb.keys, scratch[4:]...)
				mb.items = append(mb.items, match{filter: int32(f.index), off: int32(off), end: int32(len(mb.keys)), t: b.Time})
				if len(mb.items) >= matchBatchSize {
					if err := send(i); err != nil {
						b.Release()
						return err
					}
				}
			}
		}
		st.in.Add(uint64(len(b.Lines)))
		st.passed.Add(passed)
		st.dropped.Add(uint64(len(b.Lines)) - passed)
		b.Release()
		for i, c := range counts {
			if c != [3]uint64{} {
				f := st.filters[i]
				f.matched.Add(c[0])
				f.ignored.Add(c[1])
				f.nomatch.Add(c[2])
				counts[i] = [3]uint64{}
			}
		}
		if len(in) > 0 {
			continue // more is buffered: keep filling the match batches
		}
		for i := range out {
			if out[i] != nil {
				if err := send(i); err != nil {
					return err
				}
			}
		}
	}
}

// restore loads the Store's state and gives every filter whose identity
// is unchanged its matches (those still inside the window) and its pending
// actions back. State of other filters is dropped with a warning. It
// returns the actions to run now.
func (e *Engine) restore(ctx context.Context) ([]*Job, error) {
	if e.store == nil {
		return nil, nil
	}
	st, err := e.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("state: load: %w", err)
	}
	now := e.clock.Now()
	var jobs []*Job
	var dropped []string
	var keys, pending int
	for _, fs := range st.Filters {
		f := e.byName[fs.Filter.Name]
		if f == nil || f.ref.Identity != fs.Filter.Identity {
			why := "filter no longer in the configuration"
			if f != nil {
				why = "filter's regexes or patterns changed"
			}
			e.log.Warn("state: dropping the state of a filter", "filter", fs.Filter.Name, "reason", why, "keys", len(fs.Matches), "pending", len(fs.Pending))
			e.journal.Append(Change{Op: OpDrop, Filter: fs.Filter})
			dropped = append(dropped, fs.Filter.Name)
			continue
		}
		for _, km := range fs.Matches {
			if len(km.Key) != len(f.patterns) {
				e.journal.Append(Change{Op: OpClear, Filter: f.ref, Key: km.Key})
				continue
			}
			var buf []byte
			buf = appendShardKey(buf, f.index, km.Key)
			sh := e.shards[shardOf(buf, len(e.shards))]
			sh.mu.Lock()
			c := sh.counters[f.index]
			key := bytesString(buf[4:])
			n := c.Restore(key, km.Times, now)
			kept := c.Times(key, now)
			sh.stats[f.index].keys.Store(int64(c.Len()))
			sh.mu.Unlock()
			if n > 0 {
				keys++
			}
			if n < len(km.Times) {
				// Some matches are outside the window (or beyond retry-1):
				// persist only what was restored.
				e.journal.Append(Change{Op: OpClear, Filter: f.ref, Key: km.Key})
				for _, t := range kept {
					e.journal.Append(Change{Op: OpMatch, Filter: f.ref, Key: km.Key, Time: t})
				}
			}
		}
		var ok []PendingAction
		for _, p := range fs.Pending {
			if len(p.Key) != len(f.patterns) {
				e.journal.Append(Change{Op: OpDone, Filter: f.ref, Key: p.Key, Time: p.Trigger, Action: p.Action, Due: p.Due})
				continue
			}
			ok = append(ok, p)
		}
		pending += len(ok)
		jobs = append(jobs, e.sched.restore(f.index, ok, now)...)
	}
	for _, sh := range e.shards {
		sh.flushChanges()
	}
	if err := e.journal.Sync(); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	e.log.Info("state restored", "keys", keys, "pending", pending, "actions to run", len(jobs), "dropped filters", strings.Join(dropped, ","))
	return jobs, nil
}
