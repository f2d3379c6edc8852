package nutsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

// Compact rewrites the live records into new segments and removes the old
// ones (nutsdb's legacy Merge: it rewrites each live record in its own
// synced transaction, so it takes time, but commits go on meanwhile). It
// logs the directory's size before and after.
func (s *Store) Compact() error {
	db, _, err := s.use()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	start := time.Now()
	before, err := dirUsage(s.dir)
	if err != nil {
		return fmt.Errorf("state directory %s: compact: %w", s.dir, err)
	}
	err = db.Merge()
	if errors.Is(err, nutsdb.ErrDontNeedMerge) {
		s.log.Debug("state: nothing to compact", "dir", s.dir, "files", before.files)
		return nil
	}
	if err == nil {
		err = errors.Join(syncDir(s.dir), unpinKeys(db))
	}
	if err != nil {
		return fmt.Errorf("state directory %s: compact: %w", s.dir, err)
	}
	after, err := dirUsage(s.dir)
	if err != nil {
		return fmt.Errorf("state directory %s: compact: %w", s.dir, err)
	}
	s.log.Info("state: compacted", "dir", s.dir, "duration", time.Since(start).Round(time.Millisecond),
		"files_before", before.files, "files_after", after.files,
		"bytes_before", before.allocated, "bytes_after", after.allocated,
		"apparent_before", before.apparent, "apparent_after", after.apparent)
	return nil
}

// Run compacts the database every Options.RotationInterval until ctx is
// done; with no interval it only waits. A compaction in progress is waited
// for before Run returns. Errors are logged, not returned: a database that
// cannot be compacted still works.
func (s *Store) Run(ctx context.Context) error {
	every := s.opts.RotationInterval
	if every <= 0 {
		<-ctx.Done()
		return nil
	}
	var (
		mu      sync.Mutex
		timer   stages.Timer
		stopped bool
		running sync.WaitGroup
		tick    func()
	)
	tick = func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		running.Add(1)
		mu.Unlock()
		defer running.Done()
		if err := s.Compact(); err != nil {
			s.log.Error("state: compaction failed", "dir", s.dir, "error", err)
		}
		mu.Lock()
		if !stopped {
			timer = s.clock.AfterFunc(every, tick)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = s.clock.AfterFunc(every, tick)
	mu.Unlock()
	<-ctx.Done()
	mu.Lock()
	stopped = true
	timer.Stop()
	mu.Unlock()
	running.Wait()
	return nil
}
