package stages

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultJournalTick is the longest a change waits in the journal before
// it is committed, unless something calls Sync first.
const DefaultJournalTick = time.Second

const (
	journalFlushAt   = 4096               // buffered changes that make Append commit at once
	journalMaxBuffer = 1 << 20            // changes kept for a retry after a failed commit
	journalKeepCap   = 2 * journalFlushAt // a larger batch's array is kept only until an idle tick
)

// Journal is the write-behind path from the stages to the Store: changes
// are buffered and committed together, in one Store.Commit per tick (the
// first buffered change arms the tick, so an idle daemon never wakes up),
// at once when the buffer is large, or when Sync is called.
//
// Besides the changes appended to it, each commit holds what its sources
// (the counter shards, addSource) hand over when it is about to be made:
// a shard keeps its counted matches as dirty keys and gives each of them
// once per commit, however many matches it had. A source arms the tick
// (arm) when it starts holding something.
//
// A nil Journal, or one without a Store, does nothing: Enabled tells the
// stages not to even build their changes.
type Journal struct {
	store Store
	clock Clock
	tick  time.Duration
	log   *slog.Logger

	mu         sync.Mutex
	buf        []Change // appended since the last commit began
	spare      []Change // buf's next array
	failed     []Change // the batch of a failed commit, to retry first
	batchSpare []Change // the next batch's array
	timer      Timer
	closed     bool
	sources    []func(dst []Change) []Change

	armed atomic.Bool // timer != nil || closed: arm has nothing to do

	commitMu sync.Mutex // one commit at a time, in order

	kicked  atomic.Bool    // a Kick's commit is on its way
	kickers sync.WaitGroup // Kick's goroutines, which Close waits for

	commits, committed, failures, lost atomic.Uint64
}

// NewJournal returns a journal that commits to store at most tick after a
// change (tick ≤ 0: DefaultJournalTick), timed by clock. A nil store gives
// a disabled journal.
func NewJournal(store Store, clock Clock, tick time.Duration, log *slog.Logger) *Journal {
	if tick <= 0 {
		tick = DefaultJournalTick
	}
	if clock == nil {
		clock = WallClock{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Journal{store: store, clock: clock, tick: tick, log: log}
}

// Enabled reports whether changes are recorded at all.
func (j *Journal) Enabled() bool { return j != nil && j.store != nil }

// Append buffers changes, in order. It copies the Change values but keeps
// their Key slices, which must not be modified afterwards.
func (j *Journal) Append(changes ...Change) {
	if !j.Enabled() || len(changes) == 0 {
		return
	}
	j.mu.Lock()
	j.buf = append(j.buf, changes...)
	full := len(j.buf) >= journalFlushAt
	if !full {
		j.armLocked()
	}
	j.mu.Unlock()
	if full {
		_ = j.Sync() // logged by Sync; the changes stay buffered for a retry
	}
}

// addSource makes every commit hand dst to src, after the changes
// appended before it, to append what src holds. src runs under the
// journal's commit lock: it must not call Append, Sync or Close.
func (j *Journal) addSource(src func(dst []Change) []Change) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sources = append(j.sources, src)
}

// arm makes sure that a tick comes to commit what a source holds. It
// costs an atomic load when the tick is already armed.
func (j *Journal) arm() {
	if !j.Enabled() || j.armed.Load() {
		return
	}
	j.mu.Lock()
	j.armLocked()
	j.mu.Unlock()
}

func (j *Journal) armLocked() {
	if j.timer == nil && !j.closed {
		j.timer = j.clock.AfterFunc(j.tick, j.onTick)
	}
	j.armed.Store(true)
}

func (j *Journal) onTick() {
	j.mu.Lock()
	j.timer = nil
	if !j.closed {
		// Before the collection: what a source gets after it arms again.
		j.armed.Store(false)
	}
	j.mu.Unlock()
	_ = j.Sync()
}

// Sync commits every change appended, and everything the sources held,
// before it was called, and returns when they are durable (or the Store's
// error). On error the batch stays buffered, whole and in order, to come
// first in the next commit.
//
// A batch holds what a failed commit left, then what the sources hand
// over, then the changes appended: a trigger's OpClear (held by its
// shard before the trigger reaches the scheduler) comes before the
// OpPending of its actions. Once matches are counted, no appended change
// is an OpMatch or OpClear (a shard gathers those of its keys itself).
func (j *Journal) Sync() error {
	if !j.Enabled() {
		return nil
	}
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	j.mu.Lock()
	batch := j.failed
	if batch == nil {
		batch, j.batchSpare = j.batchSpare[:0], nil
	}
	j.failed = nil
	appended := j.buf
	j.buf, j.spare = j.spare[:0], nil
	sources := j.sources
	j.mu.Unlock()
	for _, src := range sources {
		batch = src(batch)
	}
	batch = append(batch, appended...)
	clear(appended)
	j.mu.Lock()
	j.spare = appended[:0]
	empty := len(batch) == 0
	if empty && cap(batch) <= journalKeepCap {
		j.batchSpare = batch
	}
	j.mu.Unlock()
	if empty {
		return nil
	}
	err := j.store.Commit(batch)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.failures.Add(1)
		if len(batch)+len(j.buf) <= journalMaxBuffer {
			j.failed = batch
		} else {
			j.lost.Add(uint64(len(batch)))
		}
		j.armLocked()
		j.log.Error("state: commit failed", "changes", len(batch), "error", err)
		return err
	}
	j.commits.Add(1)
	j.committed.Add(uint64(len(batch)))
	clear(batch)
	j.batchSpare = batch[:0]
	if cap(batch) > journalKeepCap {
		// Reused while a flood goes on; the first tick with nothing to
		// commit drops it, so that an idle daemon does not keep it.
		j.armLocked()
	}
	return nil
}

// Kick has a commit made soon, in the background, and returns at once: a
// shard that gathered a large backlog goes on counting while the Store
// writes and syncs it. One kicked commit at a time: a Kick while one is on
// its way only arms the tick, and what that commit did not collect goes
// with the tick's commit or with the next Kick once it is done.
func (j *Journal) Kick() {
	if !j.Enabled() {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.armLocked()
	if j.closed || !j.kicked.CompareAndSwap(false, true) {
		return
	}
	j.kickers.Add(1)
	go func() {
		defer j.kickers.Done()
		_ = j.Sync() // logged by Sync
		j.kicked.Store(false)
	}()
}

// Close commits what is buffered and stops the tick. Appends after Close
// are still buffered and committed by an explicit Sync.
func (j *Journal) Close() error {
	if !j.Enabled() {
		return nil
	}
	j.mu.Lock()
	j.closed = true
	j.armed.Store(true)
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
	j.mu.Unlock()
	j.kickers.Wait()
	return j.Sync()
}

func (j *Journal) stats() map[string]uint64 {
	if !j.Enabled() {
		return nil
	}
	j.mu.Lock()
	buffered := len(j.buf) + len(j.failed)
	j.mu.Unlock()
	return map[string]uint64{
		"commits":   j.commits.Load(),
		"committed": j.committed.Load(),
		"buffered":  uint64(buffered),
		"failures":  j.failures.Load(),
		"lost":      j.lost.Load(),
	}
}
