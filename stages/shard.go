package stages

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"reaction/graph"
)

// Keys. A key is the tuple of a filter's captured values, encoded without
// ambiguity: each value is preceded by its length (uvarint), so that no
// value content (not even NUL) can make two tuples collide.
//
// A value that is an IPv4 address written as dotted decimals (what the ip
// pattern type gives) takes 6 bytes instead of up to 16: keyIPv4, then the
// address's 4 bytes. The counter keeps every key it tracks, and most are
// addresses: a million of them take 9 MB less. keyIPv4 is the uvarint 0
// written on two bytes, which AppendUvarint never writes (it writes 0 as
// one byte), so it cannot be taken for a length.
const keyIPv4 = "\x80\x00"

func appendKey(dst []byte, values []string) []byte {
	for _, v := range values {
		if a, ok := graph.CanonicalIPv4(v); ok {
			b := a.As4()
			dst = append(dst, keyIPv4...)
			dst = append(dst, b[:]...)
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func encodeKey(values []string) string { return string(appendKey(nil, values)) }

// decodeKey returns the n values of key; an address written in 4 bytes
// is given back in dotted decimals, the other values alias key.
func decodeKey(key string, n int) []string { return decodeKeyValues(key, n, false) }

// decodeKeyCopy is decodeKey for a key that may change or go away: no
// value aliases it.
func decodeKeyCopy(key string, n int) []string { return decodeKeyValues(key, n, true) }

func decodeKeyValues(key string, n int, copied bool) []string {
	values := make([]string, 0, n)
	for len(key) > 0 {
		if len(key) >= len(keyIPv4)+4 && key[:len(keyIPv4)] == keyIPv4 {
			a := key[len(keyIPv4) : len(keyIPv4)+4]
			values = append(values, netip.AddrFrom4([4]byte{a[0], a[1], a[2], a[3]}).String())
			key = key[len(keyIPv4)+4:]
			continue
		}
		var l uint64
		w := 0
		for shift := 0; w < len(key); shift += 7 {
			b := key[w]
			w++
			l |= uint64(b&0x7f) << shift
			if b < 0x80 {
				break
			}
		}
		if l > uint64(len(key)-w) {
			break // cannot happen for keys made by appendKey
		}
		v := key[w : w+int(l)]
		if copied {
			v = strings.Clone(v)
		}
		values = append(values, v)
		key = key[w+int(l):]
	}
	for len(values) < n {
		values = append(values, "")
	}
	return values
}

// bytesString views b as a string without copying. The string must not
// outlive b's next change; Counter.Add copies the keys it keeps.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// appendShardKey appends what a key's shard is the hash of: the filter's
// global index, then the encoded key (which starts at len(dst)+4).
func appendShardKey(dst []byte, filter int, values []string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(filter))
	return appendKey(dst, values)
}

func shardOf(shardKey []byte, shards int) int { return int(xxhash.Sum64(shardKey) % uint64(shards)) }

// match is one counted match travelling from a matcher to a shard.
type match struct {
	filter   int32
	off, end int32 // the encoded key in matchBatch.keys (values: decodeKey)
	t        time.Time
}

// matchBatch carries matches to one shard; batches are recycled.
type matchBatch struct {
	items []match
	keys  []byte
}

const matchBatchSize = 128

var matchBatches = sync.Pool{New: func() any {
	return &matchBatch{items: make([]match, 0, matchBatchSize), keys: make([]byte, 0, matchBatchSize*16)}
}}

func getMatchBatch() *matchBatch { return matchBatches.Get().(*matchBatch) }

func (b *matchBatch) release() {
	clear(b.items) // drop references to values
	b.items = b.items[:0]
	b.keys = b.keys[:0]
	matchBatches.Put(b)
}

// trigger is a key that reached its filter's retry count.
type trigger struct {
	filter int
	values []string
	t      time.Time
}

// shardStats are one shard's counters for one filter, written by the
// shard's goroutine only and summed by Engine.Stats.
type shardStats struct {
	matches, triggers, evictions atomic.Uint64
	keys                         atomic.Int64
}

// shard owns a slice of every filter's keys: one Counter per filter. Its
// goroutine takes mu once per match batch, so that control requests
// (show, flush) read a consistent state without stalling the pipeline.
//
// Durable state is write-behind: counting a match only marks its key
// dirty; the journal collects from the shard when it is about to commit
// (collect), under mu, first the changes gathered since (the OpClear of
// keys that triggered or were forgotten), then each dirty key's times.
// Nothing is handed over outside mu, so the journal's order is the
// shard's: a key's times are never written after a later OpClear of it.
type shard struct {
	mu       sync.Mutex
	counters []*Counter // by global filter index
	stats    []shardStats
	in       chan *matchBatch

	filters []*filterRT
	journal *Journal
	clock   Clock

	changes []Change // journal changes gathered under mu, for the next collect
	touched bool     // something was gathered or marked dirty since flushChanges
}

func newShard(filters []*filterRT, shards int, queue int, journal *Journal, clock Clock) *shard {
	s := &shard{
		counters: make([]*Counter, len(filters)),
		stats:    make([]shardStats, len(filters)),
		in:       make(chan *matchBatch, queue),
		filters:  filters,
		journal:  journal,
		clock:    clock,
	}
	journaled := journal.Enabled()
	for i, f := range filters {
		max := f.counter.MaxKeys
		if max > 0 {
			max = (max + shards - 1) / shards
		}
		c := NewCounter(f.counter.Retry, f.counter.Period, max)
		c.track = journaled
		f := f
		c.OnForget = func(key string, evicted bool) {
			if evicted {
				s.stats[f.index].evictions.Add(1)
			}
			if journaled && c.forgotStored {
				s.changes = append(s.changes, Change{Op: OpClear, Filter: f.ref, Key: decodeKey(key, len(f.patterns))})
				s.touched = true
			}
		}
		s.counters[i] = c
	}
	if journaled {
		journal.addSource(s.collect)
	}
	return s
}

// sweepEvery is how often a shard drops expired keys when no match does it.
const sweepEvery = time.Minute

// run counts the matches of each batch, then sends its triggers to the
// scheduler. A trigger's OpClear is gathered before the trigger is sent,
// so the journal commit that makes the trigger's actions durable (the
// scheduler syncs before immediate actions) holds it too. It returns when
// in is closed and drained, or when ctx is done.
func (s *shard) run(ctx context.Context, triggers chan<- trigger) error {
	sweep := make(chan struct{}, 1)
	tick := func() {
		select {
		case sweep <- struct{}{}:
		default:
		}
	}
	timer := s.clock.AfterFunc(sweepEvery, tick)
	defer func() { timer.Stop() }()
	var fired []trigger
	for {
		var b *matchBatch
		var ok bool
		select {
		case b, ok = <-s.in:
			if !ok {
				return nil
			}
		case <-sweep:
			s.mu.Lock()
			now := s.clock.Now()
			for i, c := range s.counters {
				if c.Expire(now) > 0 {
					s.stats[i].keys.Store(int64(c.Len()))
				}
			}
			s.mu.Unlock()
			s.flushChanges()
			timer = s.clock.AfterFunc(sweepEvery, tick)
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		fired = s.count(b, fired[:0])
		b.release()
		s.flushChanges()
		for _, t := range fired {
			select {
			case triggers <- t:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// count applies one batch under the shard lock and returns its triggers.
// A counted match only marks its key dirty (Counter.track); a key that
// triggers is cleared in the store only if it has a record there.
func (s *shard) count(b *matchBatch, fired []trigger) []trigger {
	journal := s.journal.Enabled()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range b.items {
		c := s.counters[m.filter]
		st := &s.stats[m.filter]
		st.matches.Add(1)
		switch {
		case c.Add(bytesString(b.keys[m.off:m.end]), m.t):
			st.triggers.Add(1)
			f := s.filters[m.filter]
			values := decodeKeyCopy(bytesString(b.keys[m.off:m.end]), len(f.patterns))
			if journal && c.stride > 0 && c.forgotStored {
				s.changes = append(s.changes, Change{Op: OpClear, Filter: f.ref, Key: values})
				s.touched = true
			}
			fired = append(fired, trigger{filter: int(m.filter), values: values, t: m.t})
		case c.track:
			s.touched = true // the key is dirty
		}
		st.keys.Store(int64(c.Len()))
	}
	return fired
}

// journalCollectAt is the backlog of a shard (about the times its next
// collect would give, a key weighing keyWeight) that makes it start a
// commit at once rather than at the
// tick: a flood of new keys, or of matches of keys with many times, is
// committed in batches of bounded size. The commit runs in the background
// (Journal.Kick) while the shard goes on counting, unless the backlog
// reached journalStallAt: then the Store is not keeping up, and the shard
// waits for it, so that the backlog stays bounded. The bound is also the
// peak of a flood's commit (every shard's backlog as Changes, then the
// Store's plan of it): at 4x journalCollectAt, a million new keys had the
// live heap peak near 250 MB; at 2x, near 145 MB, with the same throughput.
// A key has since weighed twice its changes (keyWeight): with the log's
// budget at a third of the groups, the daemon's maxrss under that flood
// went from 145-158 MB to 133-136 MB.
const (
	journalCollectAt = 4 * journalFlushAt
	journalStallAt   = 2 * journalCollectAt
)

// flushChanges sees to it that the journal commits what the shard
// gathered and marked dirty: at its next tick (arming it if needed), at
// once in the background when the gathered changes reached journalFlushAt
// or the whole backlog journalCollectAt, at once and waiting for it past
// journalStallAt. It must not be called under mu.
func (s *shard) flushChanges() {
	if !s.journal.Enabled() {
		return
	}
	s.mu.Lock()
	pending, touched := len(s.changes), s.touched || len(s.changes) > 0
	backlog := s.backlogLocked()
	s.touched = false
	s.mu.Unlock()
	switch {
	case backlog >= journalStallAt:
		_ = s.journal.Sync() // logged by Sync; what it collected stays buffered for a retry
	case pending >= journalFlushAt || backlog >= journalCollectAt:
		s.journal.Kick()
	case touched:
		s.journal.arm()
	}
}

func (s *shard) backlogLocked() int {
	n := len(s.changes)
	for _, c := range s.counters {
		n += c.backlog
	}
	return n
}

// collect appends to dst, under the lock, the changes gathered since the
// last collect, then each dirty key's record: OpClear and its times when
// it is rewritten, its new times when appended to. It is the journal's
// source (Journal.addSource) and must not call back into the journal.
func (s *shard) collect(dst []Change) []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	backlog := s.backlogLocked()
	n := len(s.changes)
	for _, c := range s.counters {
		n += 2 * c.ndirty // at most an OpClear and an OpMatches each
	}
	// The batch's array is kept for the next commit while a flood goes
	// on (Journal.Sync): it is grown by what is handed over, not by the
	// backlog, which counts every time a key may have.
	dst = slices.Grow(dst, n)
	dst = append(dst, s.changes...)
	if cap(s.changes) > 2*journalFlushAt {
		s.changes = nil
	} else {
		clear(s.changes)
		s.changes = s.changes[:0]
	}
	now := s.clock.Now().UnixNano()
	arena := make([]int64, 0, backlog) // the times of the OpMatches changes
	for fi, c := range s.counters {
		if len(c.dirty) == 0 {
			continue
		}
		f := s.filters[fi]
		c.takeDirty(now, func(key string, rewrite bool, times []int64) {
			values := decodeKeyCopy(key, len(f.patterns))
			if rewrite {
				dst = append(dst, Change{Op: OpClear, Filter: f.ref, Key: values})
			}
			if len(times) > 0 {
				arena = append(arena, times...) // times is the counter's: copied
				dst = append(dst, Change{Op: OpMatches, Filter: f.ref, Key: values, Times: arena[len(arena)-len(times) : len(arena) : len(arena)]})
			}
		})
	}
	return dst
}
