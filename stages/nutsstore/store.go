package nutsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

// DefaultSegmentSize is the size of a nutsdb data file. nutsdb's default
// (256 MiB) is never compacted for a small database, since a merge needs two
// files, and is slow to replay at every start.
const DefaultSegmentSize = 8 << 20

// ErrLocked is returned by Open when another process holds the directory.
var ErrLocked = errors.New("state directory is locked by another reaction")

// ErrUnusable is returned by every call after a failed commit that could
// not be repaired in place (nutsdb could not even be closed): the database
// on disk is repaired at the next start.
var ErrUnusable = errors.New("state database unusable until reaction restarts")

var errClosed = errors.New("state store is closed")

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// SegmentSize is the size of each data file (default 8 MiB).
	SegmentSize int64
	// RotationInterval is how often Run compacts the database; 0: never.
	RotationInterval time.Duration
	// Clock times Run and names the damaged-* directories (default: the
	// wall clock).
	Clock stages.Clock
}

// Store is a stages.Store kept in a nutsdb database. It is safe for
// concurrent use.
type Store struct {
	dir   string
	opts  Options
	log   *slog.Logger
	clock stages.Clock
	lock  *os.File

	// mu guards db: operations hold it shared, Close and the reopen after a
	// failed commit hold it exclusively.
	mu        sync.RWMutex
	db        *nutsdb.DB
	gen       int          // incremented by each reopen
	broken    error        // a reopen failed: every call fails with it
	lastFile  atomic.Int64 // highest segment id known to be in a synced directory
	recovered []string
}

var _ stages.Store = (*Store)(nil)

// Open opens (creating) the database in dir. A second process on the same dir
// gets an error wrapping ErrLocked whose message names the lock and the directory.
//
// Damage left by a crash or a power loss is repaired first (see the package
// documentation); Recovered says what was done.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = stages.WallClock{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger, clock: opts.Clock, lock: lock}
	db, err := s.open()
	if err != nil {
		s.unlock()
		return nil, err
	}
	s.db = db
	return s, nil
}

func (s *Store) nutsOptions() nutsdb.Options {
	o := nutsdb.DefaultOptions
	o.Dir = s.dir
	o.EntryIdxMode = nutsdb.HintKeyValAndRAMIdxMode
	o.RWMode = nutsdb.FileIO
	o.SegmentSize = s.opts.SegmentSize
	o.SyncEnable = true
	o.MergeInterval = 0 // compaction is ours to schedule
	o.EnableMergeV2 = false
	o.EnableHintFile = false
	o.CommitBufferSize = 1 << 20
	return o
}

// open repairs the directory, opens nutsdb and creates the buckets.
func (s *Store) open() (*nutsdb.DB, error) {
	notes, err := repair(s.dir, s.opts.SegmentSize, s.clock.Now())
	for _, n := range notes {
		s.log.Warn("state: repaired the database", "dir", s.dir, "repair", n)
	}
	s.recovered = append(s.recovered, notes...)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: repair: %w", s.dir, err)
	}
	db, err := nutsdb.Open(s.nutsOptions())
	if errors.Is(err, nutsdb.ErrDirLocked) {
		return nil, fmt.Errorf("%w: %s is held (state directory %s)", ErrLocked, filepath.Join(s.dir, nutsdb.FLockName), s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", s.dir, err)
	}
	created := false
	err = db.Update(func(tx *nutsdb.Tx) error {
		for _, b := range []string{bucketMatches, bucketPending} {
			if !tx.ExistBucket(nutsdb.DataStructureBTree, b) {
				created = true
				if err := tx.NewBucket(nutsdb.DataStructureBTree, b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && created {
		// nutsdb does not sync its bucket file; records of a bucket it
		// does not know are skipped at the next start.
		err = errors.Join(syncPath(filepath.Join(s.dir, nutsdb.BucketStoreFileName)), syncDir(s.dir))
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("state directory %s: %w", s.dir, err), db.Close())
	}
	s.lastFile.Store(s.maxSegment())
	return db, nil
}

func (s *Store) maxSegment() int64 {
	segs, err := listSegments(s.dir)
	if err != nil || len(segs) == 0 {
		return 0
	}
	return segs[len(segs)-1].id
}

// Recovered returns what was repaired when the database was opened (or
// reopened after a failed commit), one sentence per repair.
func (s *Store) Recovered() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.recovered)
}

// use returns the database for one operation, with mu held shared.
func (s *Store) use() (*nutsdb.DB, int, error) {
	s.mu.RLock()
	switch {
	case s.broken != nil:
		err := s.broken
		s.mu.RUnlock()
		return nil, 0, err
	case s.db == nil:
		s.mu.RUnlock()
		return nil, 0, errClosed
	}
	return s.db, s.gen, nil
}

// Commit makes one batch of changes durable in one nutsdb transaction.
func (s *Store) Commit(changes []stages.Change) error {
	if len(changes) == 0 {
		return nil
	}
	p := planChanges(changes)
	db, gen, err := s.use()
	if err != nil {
		return err
	}
	inFn := false // an error from our own function: nothing was written
	err = db.Update(func(tx *nutsdb.Tx) error {
		if err := p.apply(tx); err != nil {
			inFn = true
			return err
		}
		return nil
	})
	var syncErr error
	if err == nil {
		syncErr = s.syncNewSegments()
	}
	s.mu.RUnlock()
	if err != nil && !inFn {
		// nutsdb may have written part of the transaction; the next one
		// would be written after it, and nutsdb replays such a sequence
		// wrongly. Reopen, which cuts the unfinished transaction.
		s.reopen(gen, err)
	}
	if err != nil {
		return fmt.Errorf("state: commit %d changes: %w", len(changes), err)
	}
	if syncErr != nil {
		return fmt.Errorf("state: commit %d changes: sync %s: %w", len(changes), s.dir, syncErr)
	}
	return nil
}

// syncNewSegments syncs the directory when a commit created a segment, so
// that the new file's name survives a power loss too.
func (s *Store) syncNewSegments() error {
	next := filepath.Join(s.dir, fmt.Sprintf("%d%s", s.lastFile.Load()+1, nutsdb.DataSuffix))
	if _, err := os.Stat(next); err != nil {
		return nil
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.lastFile.Store(s.maxSegment())
	return nil
}

func (s *Store) reopen(gen int, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.db == nil || s.broken != nil {
		return // done by someone else, or closed
	}
	s.gen++
	s.log.Error("state: commit failed, reopening the database", "dir", s.dir, "error", cause)
	closeErr, panicked := closeDB(s.db)
	s.db = nil
	if panicked {
		// nutsdb keeps its directory lock: it cannot be opened again by
		// this process.
		s.broken = fmt.Errorf("%w: after a failed commit (%v), nutsdb could not be closed: %v", ErrUnusable, cause, closeErr)
		s.log.Error("state: the database cannot be reopened until reaction restarts", "dir", s.dir, "error", closeErr)
		return
	}
	db, err := s.open()
	if err != nil {
		s.broken = fmt.Errorf("%w: after a failed commit (%v), reopening failed: %w", ErrUnusable, cause, errors.Join(closeErr, err))
		s.log.Error("state: reopening the database failed", "dir", s.dir, "error", err)
		return
	}
	s.db = db
}

// closeDB closes db; nutsdb panics when a commit failed while it was
// creating a segment (its active file is then nil).
func closeDB(db *nutsdb.DB) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("nutsdb Close panicked: %v", r), true
		}
	}()
	return db.Close(), false
}

// Close closes the database and releases the directory.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	var err error
	if s.db != nil {
		err, _ = closeDB(s.db)
		s.db = nil
	}
	s.unlock()
	if s.broken == nil {
		s.broken = errClosed
	}
	if err != nil {
		return fmt.Errorf("state directory %s: close: %w", s.dir, err)
	}
	return nil
}

func (s *Store) unlock() {
	_ = s.lock.Truncate(0)
	_ = s.lock.Close() // releases the flock
	s.lock = nil
}

// Load returns every persisted match and pending action: filters by name
// and identity, keys by values, times ascending, pending actions by due
// time, key and action (the order of stages.MemStore).
func (s *Store) Load(ctx context.Context) (*stages.State, error) {
	db, _, err := s.use()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	l := loader{filters: map[stages.FilterRef]*stages.FilterState{}, actions: map[string]string{}}
	err = db.View(func(tx *nutsdb.Tx) error {
		for _, b := range []string{bucketMatches, bucketPending} {
			keys, values, err := tx.GetAll(b)
			if err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
			l.cur = nil
			if b == bucketMatches {
				l.allMatches = make([]stages.KeyMatches, 0, len(keys))
			} else {
				l.allPending = make([]stages.PendingAction, 0, len(keys))
			}
			for i := range keys {
				if i%4096 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				if b == bucketMatches {
					l.match(keys[i], values[i])
				} else {
					l.pending(keys[i], values[i])
				}
			}
			l.endRun()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state directory %s: load: %w", s.dir, err)
	}
	if l.skipped > 0 {
		s.log.Warn("state: records not understood were skipped", "dir", s.dir, "records", l.skipped, "example", l.example)
	}
	return l.state(), nil
}

// loader builds the State from the records of one bucket after the other.
// The keys of a filter are adjacent in a bucket (they share a prefix), so
// each filter's Matches and Pending are one run of a slice allocated for
// all.
type loader struct {
	filters map[stages.FilterRef]*stages.FilterState
	actions map[string]string // interned action names

	allMatches []stages.KeyMatches
	allPending []stages.PendingAction
	curKey     []byte // encoded filter of cur
	cur        *stages.FilterState
	runStart   int // where cur's run starts in allMatches or allPending
	pendingRun bool

	strs  []string    // slab for keys' values
	times []time.Time // slab for match times

	skipped int
	example string
}

func (l *loader) skip(key []byte, err error) {
	if l.skipped == 0 {
		l.example = fmt.Sprintf("%q: %v", key, err)
	}
	l.skipped++
}

// endRun gives the current filter its run of matches or pending actions.
func (l *loader) endRun() {
	if l.cur == nil {
		return
	}
	if l.pendingRun {
		l.cur.Pending = l.allPending[l.runStart:len(l.allPending):len(l.allPending)]
	} else {
		l.cur.Matches = l.allMatches[l.runStart:len(l.allMatches):len(l.allMatches)]
	}
	l.cur = nil
}

func (l *loader) filter(f []byte, pendingRun bool) {
	if l.cur != nil && bytes.Equal(f, l.curKey) {
		return
	}
	l.endRun()
	ref := decodeFilter(f)
	fs := l.filters[ref]
	if fs == nil {
		fs = &stages.FilterState{Filter: ref}
		l.filters[ref] = fs
	}
	l.cur, l.curKey, l.pendingRun = fs, append(l.curKey[:0], f...), pendingRun
	if pendingRun {
		l.runStart = len(l.allPending)
	} else {
		l.runStart = len(l.allMatches)
	}
}

// values decodes a key's values into the slab.
func (l *loader) values(r *keyReader) []string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) { // each value takes at least one byte
		r.err = errBadKey
		return nil
	}
	if uint64(cap(l.strs)-len(l.strs)) < n {
		l.strs = make([]string, 0, max(4096, int(n)))
	}
	start := len(l.strs)
	for range n {
		l.strs = append(l.strs, string(r.bytes()))
	}
	return l.strs[start:len(l.strs):len(l.strs)]
}

func (l *loader) match(key, value []byte) {
	f, rest, err := splitKey(key)
	if err != nil {
		l.skip(key, err)
		return
	}
	r := keyReader{b: rest}
	values := l.values(&r)
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadKey
	}
	if r.err == nil && len(value)%timeSize != 0 {
		r.err = errors.New("malformed match times")
	}
	if r.err != nil {
		l.skip(key, r.err)
		return
	}
	n := len(value) / timeSize
	if cap(l.times)-len(l.times) < n {
		l.times = make([]time.Time, 0, max(4096, n))
	}
	start := len(l.times)
	for ; len(value) > 0; value = value[timeSize:] {
		l.times = append(l.times, decodeTime(value))
	}
	times := l.times[start:len(l.times):len(l.times)]
	if !slices.IsSortedFunc(times, time.Time.Compare) {
		slices.SortFunc(times, time.Time.Compare)
	}
	l.filter(f, false)
	l.allMatches = append(l.allMatches, stages.KeyMatches{Key: values, Times: times})
}

func (l *loader) pending(key, value []byte) {
	f, rest, err := splitKey(key)
	if err != nil {
		l.skip(key, err)
		return
	}
	r := keyReader{b: rest}
	values := l.values(&r)
	action := r.bytes()
	due := r.time()
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadKey
	}
	if r.err == nil && len(value) != timeSize {
		r.err = errors.New("malformed trigger time")
	}
	if r.err != nil {
		l.skip(key, r.err)
		return
	}
	name, ok := l.actions[string(action)]
	if !ok {
		name = string(action)
		l.actions[name] = name
	}
	l.filter(f, true)
	l.allPending = append(l.allPending, stages.PendingAction{Key: values, Action: name, Trigger: decodeTime(value), Due: due})
}

func (l *loader) state() *stages.State {
	st := &stages.State{Filters: make([]stages.FilterState, 0, len(l.filters))}
	for _, fs := range l.filters {
		slices.SortFunc(fs.Matches, func(a, b stages.KeyMatches) int { return slices.Compare(a.Key, b.Key) })
		slices.SortFunc(fs.Pending, func(a, b stages.PendingAction) int {
			if c := a.Due.Compare(b.Due); c != 0 {
				return c
			}
			if c := slices.Compare(a.Key, b.Key); c != 0 {
				return c
			}
			return strings.Compare(a.Action, b.Action)
		})
		st.Filters = append(st.Filters, *fs)
	}
	slices.SortFunc(st.Filters, func(a, b stages.FilterState) int {
		if c := strings.Compare(a.Filter.Name, b.Filter.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Filter.Identity, b.Filter.Identity)
	})
	return st
}
