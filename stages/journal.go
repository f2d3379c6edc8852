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
	journalFlushAt   = 4096    // buffered changes that make Append commit at once
	journalMaxBuffer = 1 << 20 // changes kept for a retry after a failed commit
)

// Journal is the write-behind path from the stages to the Store: changes
// are buffered and committed together, in one Store.Commit per tick (the
// first buffered change arms the tick, so an idle daemon never wakes up),
// at once when the buffer is large, or when Sync is called.
//
// A nil Journal, or one without a Store, does nothing: Enabled tells the
// stages not to even build their changes.
type Journal struct {
	store Store
	clock Clock
	tick  time.Duration
	log   *slog.Logger

	mu     sync.Mutex
	buf    []Change
	spare  []Change
	timer  Timer
	closed bool

	commitMu sync.Mutex // one commit at a time, in order

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
	if !full && j.timer == nil && !j.closed {
		j.timer = j.clock.AfterFunc(j.tick, j.onTick)
	}
	j.mu.Unlock()
	if full {
		_ = j.Sync() // logged by Sync; the changes stay buffered for a retry
	}
}

func (j *Journal) onTick() {
	j.mu.Lock()
	j.timer = nil
	j.mu.Unlock()
	_ = j.Sync()
}

// Sync commits every change appended before it was called and returns
// when they are durable (or the Store's error). On error the changes stay
// buffered, in order, for the next commit.
func (j *Journal) Sync() error {
	if !j.Enabled() {
		return nil
	}
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	j.mu.Lock()
	batch := j.buf
	j.buf, j.spare = j.spare[:0], nil
	j.mu.Unlock()
	if len(batch) == 0 {
		j.mu.Lock()
		j.spare = batch
		j.mu.Unlock()
		return nil
	}
	err := j.store.Commit(batch)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.failures.Add(1)
		if len(batch)+len(j.buf) <= journalMaxBuffer {
			j.buf = append(batch, j.buf...)
		} else {
			j.lost.Add(uint64(len(batch)))
		}
		if j.timer == nil && !j.closed {
			j.timer = j.clock.AfterFunc(j.tick, j.onTick)
		}
		j.log.Error("state: commit failed", "changes", len(batch), "error", err)
		return err
	}
	j.commits.Add(1)
	j.committed.Add(uint64(len(batch)))
	clear(batch)
	j.spare = batch[:0]
	return nil
}

// Close commits what is buffered and stops the tick. Appends after Close
// are still buffered and committed by an explicit Sync.
func (j *Journal) Close() error {
	if !j.Enabled() {
		return nil
	}
	j.mu.Lock()
	j.closed = true
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
	j.mu.Unlock()
	return j.Sync()
}

func (j *Journal) stats() map[string]uint64 {
	if !j.Enabled() {
		return nil
	}
	j.mu.Lock()
	buffered := len(j.buf)
	j.mu.Unlock()
	return map[string]uint64{
		"commits":   j.commits.Load(),
		"committed": j.committed.Load(),
		"buffered":  uint64(buffered),
		"failures":  j.failures.Load(),
		"lost":      j.lost.Load(),
	}
}
