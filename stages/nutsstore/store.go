package nutsstore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

	groupBytes int // bytes of entries per group on average (default defaultGroupBytes); tests lower it
	logBytes   int // size of the log that makes commits fold (default defaultLogBytes)
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

	// commitMu makes commits one at a time; it guards table and wal (Load
	// holds it too), which open replaces (with mu held as well).
	commitMu sync.Mutex
	table    *table
	wal      *wal
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
	if opts.groupBytes <= 0 {
		opts.groupBytes = defaultGroupBytes
	}
	if opts.logBytes <= 0 {
		opts.logBytes = defaultLogBytes
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
	// Values stay on disk: a commit reads the few groups it rewrites, Load
	// reads every group once.
	o.EntryIdxMode = nutsdb.HintKeyAndRAMIdxMode
	o.RWMode = nutsdb.FileIO
	o.SegmentSize = s.opts.SegmentSize
	o.SyncEnable = true
	o.MergeInterval = 0 // compaction is ours to schedule
	o.EnableMergeV2 = false
	o.EnableHintFile = false
	o.CommitBufferSize = 1 << 20
	return o
}

// open repairs the directory, opens nutsdb, creates its bucket, drops the
// records of an older schema, reads the filter records and replays the log.
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
	t, w, err := s.prepare(db)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("state directory %s: %w", s.dir, err), db.Close())
	}
	s.table, s.wal = t, w
	s.lastFile.Store(s.maxSegment())
	return db, nil
}

// prepare creates the bucket of the records, drops the buckets of the v1
// schema (one record per key: nothing reads them any more), reads the
// filter records and replays the log.
func (s *Store) prepare(db *nutsdb.DB) (*table, *wal, error) {
	changed := false
	old := 0
	err := db.Update(func(tx *nutsdb.Tx) error {
		if !tx.ExistBucket(nutsdb.DataStructureBTree, bucketState) {
			changed = true
			if err := tx.NewBucket(nutsdb.DataStructureBTree, bucketState); err != nil {
				return err
			}
		}
		for _, b := range oldBuckets {
			if !tx.ExistBucket(nutsdb.DataStructureBTree, b) {
				continue
			}
			changed = true
			if it := nutsdb.NewIterator(tx, b, nutsdb.IteratorOptions{}); it != nil {
				for ok := it.Valid(); ok; ok = it.Next() {
					old++
				}
				it.Release()
			}
			if err := tx.DeleteBucket(nutsdb.DataStructureBTree, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && changed {
		// nutsdb does not sync its bucket file; records of a bucket it
		// does not know are skipped at the next start.
		err = errors.Join(syncPath(filepath.Join(s.dir, nutsdb.BucketStoreFileName)), syncDir(s.dir))
	}
	if err != nil {
		return nil, nil, err
	}
	if old > 0 {
		s.log.Warn("state: records of an older schema were dropped (one record per key, schema v1)", "dir", s.dir, "records", old)
	}
	if err := unpinKeys(db); err != nil {
		return nil, nil, err
	}
	return s.read(db)
}

// unpinKeys gives each record of nutsdb's index a key of its own. nutsdb
// reads a record's key and value into one buffer and keeps the key, a
// slice of it, in its index: each record read from a file (at Open, by a
// merge) keeps its value in memory although its index does not use it.
// The copy is equal, so the index's order is unchanged.
func unpinKeys(db *nutsdb.DB) error {
	return db.Update(func(tx *nutsdb.Tx) error {
		it := nutsdb.NewIterator(tx, bucketState, nutsdb.IteratorOptions{})
		if it == nil {
			return fmt.Errorf("no bucket %s", bucketState)
		}
		defer it.Release()
		for ok := it.Valid(); ok; ok = it.Next() {
			item := it.Item()
			if cap(item.Key) == len(item.Key) || item.Record == nil {
				continue
			}
			key := bytes.Clone(item.Key)
			item.Key, item.Record.Key = key, key
		}
		return nil
	})
}

// read reads the filter records and replays the log records.
func (s *Store) read(db *nutsdb.DB) (*table, *wal, error) {
	t, w := newTable(), newWAL()
	skipped := 0
	err := db.View(func(tx *nutsdb.Tx) error {
		it := nutsdb.NewIterator(tx, bucketState, nutsdb.IteratorOptions{})
		if it == nil {
			return fmt.Errorf("no bucket %s", bucketState)
		}
		defer it.Release()
		prefix := append([]byte(schema), kindFilter)
		for ok := it.Seek(prefix); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			k, err := parseKey(it.Key())
			if err != nil {
				continue // Load says so
			}
			t.next = max(t.next, k.id+1) // its groups, if any, are never given to another filter
			v, err := it.Value()
			if err != nil {
				return err
			}
			if f, err := decodeFilterValue(k.id, v); err == nil {
				t.add(f)
			}
		}
		prefix = append([]byte(schema), kindLog)
		for ok := it.Seek(prefix); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			k, err := parseKey(it.Key())
			if err != nil {
				continue // Load says so
			}
			v, err := it.Value()
			if err != nil {
				return err
			}
			if err := w.replay(t, k.seq, v); err != nil {
				skipped++
			}
		}
		// Groups left without their filter record (by a repair) are never
		// given to a new filter either: the last group has the highest id.
		last := nutsdb.NewIterator(tx, bucketState, nutsdb.IteratorOptions{Reverse: true})
		defer last.Release()
		ok := last.Seek(append([]byte(schema), kindKeys+1)) // the first record after the groups
		if ok {
			ok = last.Next() // the one before it
		} else {
			ok = last.Rewind() // the last one
		}
		if ok {
			if k, err := parseKey(last.Key()); err == nil && k.kind == kindKeys {
				t.next = max(t.next, k.id+1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if skipped > 0 {
		s.log.Warn("state: log records not understood were skipped", "dir", s.dir, "records", skipped)
	}
	return t, w, nil
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

// Commit makes one batch of changes durable in one nutsdb transaction: one
// log record, and the groups it folds (see wal.go).
func (s *Store) Commit(changes []stages.Change) error {
	if len(changes) == 0 {
		return nil
	}
	p := planChanges(changes)
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	db, gen, err := s.use()
	if err != nil {
		return err
	}
	c := &committer{s: s}
	inFn := false // an error from our own function: nothing was written
	err = db.Update(func(tx *nutsdb.Tx) error {
		c.tx = tx
		if err := c.commit(p); err != nil {
			inFn = true
			return err
		}
		return nil
	})
	var syncErr error
	if err == nil {
		syncErr = s.syncNewSegments()
	} else if inFn {
		// The table and the log changed as the commit went: read them
		// again.
		if t, w, rerr := s.read(db); rerr == nil {
			s.table, s.wal = t, w
		} else {
			inFn = false // reopen
		}
	}
	s.mu.RUnlock()
	if err != nil && !inFn {
		// nutsdb may have written part of the transaction; the next one
		// would be written after it, and nutsdb replays such a sequence
		// wrongly. Reopen, which cuts the unfinished transaction and reads
		// the table and the log again.
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
