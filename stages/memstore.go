package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemStore is a Store kept in memory: the reference for the semantics of
// Changes, used by tests and by runs without a state directory. It is safe
// for concurrent use. Load after Commit gives back what a durable store
// would after a restart.
type MemStore struct {
	mu      sync.Mutex
	filters map[FilterRef]*memFilter
	commits int
	changes int
	closed  bool

	// Fail, when set, is returned by Commit (the changes are not applied).
	Fail error
	// OnCommit, when set, is called with a copy of each committed batch,
	// before Commit returns.
	OnCommit func([]Change)
}

type memFilter struct {
	matches map[string][]time.Time // by encoded key
	pending map[memPendingKey]memPending
}

type memPendingKey struct {
	key    string
	action string
	due    int64
}

type memPending struct {
	key     []string
	trigger time.Time
	due     time.Time
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{filters: map[FilterRef]*memFilter{}} }

var errClosed = errors.New("store closed")

// Commit applies changes in order.
func (m *MemStore) Commit(changes []Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if m.Fail != nil {
		return m.Fail
	}
	for i := range changes {
		m.apply(&changes[i])
	}
	m.commits++
	m.changes += len(changes)
	if m.OnCommit != nil {
		m.OnCommit(slices.Clone(changes))
	}
	return nil
}

func (m *MemStore) apply(c *Change) {
	if c.Op == OpDrop {
		delete(m.filters, c.Filter)
		return
	}
	f := m.filters[c.Filter]
	if f == nil {
		f = &memFilter{matches: map[string][]time.Time{}, pending: map[memPendingKey]memPending{}}
		m.filters[c.Filter] = f
	}
	key := encodeKey(c.Key)
	switch c.Op {
	case OpMatch:
		f.matches[key] = append(f.matches[key], c.Time)
	case OpMatches:
		for _, t := range c.Times {
			f.matches[key] = append(f.matches[key], time.Unix(0, t))
		}
	case OpClear:
		delete(f.matches, key)
	case OpPending:
		f.pending[memPendingKey{key, c.Action, c.Due.UnixNano()}] = memPending{key: slices.Clone(c.Key), trigger: c.Time, due: c.Due}
	case OpDone:
		delete(f.pending, memPendingKey{key, c.Action, c.Due.UnixNano()})
	}
	if len(f.matches) == 0 && len(f.pending) == 0 {
		delete(m.filters, c.Filter)
	}
}

// Load returns the state in a deterministic order: filters by name and
// identity, keys by values, times and due times ascending.
func (m *MemStore) Load(ctx context.Context) (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	st := &State{}
	for ref, f := range m.filters {
		fs := FilterState{Filter: ref}
		for key, times := range f.matches {
			ts := slices.Clone(times)
			slices.SortFunc(ts, time.Time.Compare)
			fs.Matches = append(fs.Matches, KeyMatches{Key: decodeKey(key, 0), Times: ts})
		}
		slices.SortFunc(fs.Matches, func(a, b KeyMatches) int { return slices.Compare(a.Key, b.Key) })
		for k, p := range f.pending {
			fs.Pending = append(fs.Pending, PendingAction{Key: slices.Clone(p.key), Action: k.action, Trigger: p.trigger, Due: p.due})
		}
		slices.SortFunc(fs.Pending, func(a, b PendingAction) int {
			if c := a.Due.Compare(b.Due); c != 0 {
				return c
			}
			if c := slices.Compare(a.Key, b.Key); c != 0 {
				return c
			}
			return strings.Compare(a.Action, b.Action)
		})
		st.Filters = append(st.Filters, fs)
	}
	slices.SortFunc(st.Filters, func(a, b FilterState) int {
		if c := strings.Compare(a.Filter.Name, b.Filter.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Filter.Identity, b.Filter.Identity)
	})
	return st, nil
}

// Commits returns how many Commit calls succeeded, and how many changes they held.
func (m *MemStore) Commits() (commits, changes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commits, m.changes
}

// Close makes further calls fail.
func (m *MemStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
