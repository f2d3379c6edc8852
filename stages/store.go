package stages

import (
	"context"
	"time"
)

// Store is the durable state the stages need. The stages own this
// interface; the nutsdb implementation lives in stages/store and an
// in-memory one (MemStore) serves tests and stateless runs.
//
// A Store never decides anything: it records what the counter and the
// scheduler tell it and gives it back at start.
type Store interface {
	// Load returns everything persisted, for the engine to restore.
	Load(ctx context.Context) (*State, error)
	// Commit makes a batch of changes durable, in order, in one
	// transaction. When it returns nil the changes survive a crash.
	Commit(changes []Change) error
	Close() error
}

// FilterRef names a filter in persisted state: its stream.filter name and
// its identity (graph.Extract.Identity), so that state of a filter whose
// regexes or patterns changed is not applied to the new one.
type FilterRef struct {
	Name     string // "stream.filter"
	Identity string
}

// Op is the kind of a Change.
type Op uint8

const (
	OpMatch   Op = iota + 1 // a match of Key at Time
	OpClear                 // forget every match of Key (it triggered, or was flushed)
	OpPending               // action Action of Key is due at Due (trigger at Time)
	OpDone                  // the pending action Action of Key, due at Due, ran or was cancelled
	OpDrop                  // forget everything of Filter
	OpMatches               // matches of Key at each of Times
)

// Change is one state change of one filter.
type Change struct {
	Op     Op
	Filter FilterRef
	Key    []string // the captured values, in the filter's pattern order
	Time   time.Time
	Action string
	Due    time.Time
	Times  []int64 // OpMatches: the times of the matches, Unix nanoseconds, in order
}

// State is what a Store holds: for each filter, the matches still kept and
// the pending delayed actions.
type State struct {
	Filters []FilterState
}

// FilterState is the persisted state of one filter.
type FilterState struct {
	Filter  FilterRef
	Matches []KeyMatches
	Pending []PendingAction
}

// KeyMatches are the match times of one key.
type KeyMatches struct {
	Key   []string
	Times []time.Time
}

// PendingAction is a delayed action waiting for its due time.
type PendingAction struct {
	Key     []string
	Action  string
	Trigger time.Time
	Due     time.Time
}
