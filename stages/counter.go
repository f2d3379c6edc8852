package stages

import (
	"math/bits"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Counter counts the matches of each key of one filter inside a sliding
// window. It is the synchronous core of the counter stage: a shard
// goroutine owns it, and tests call it directly. It is not safe for
// concurrent use.
//
// The number of keys is capped: a new key beyond the cap evicts the key
// matched least recently, and the eviction is counted.
//
// Layout, because a flood of distinct values must stay cheap (besides
// the key's own bytes, about 41 bytes per key with retry 3: an entry of
// 16, two times of 8, 8 of table at a million keys; 50 with a large
// retry when every eighth key has a third match; few allocations,
// nothing for the GC to scan): entries live in chunks of chunkLen, linked
// by index in least-recently-matched order, and their match times in a
// slab cut in chunks of the same entries; key bytes live in an arena of
// 64 KiB chunks. Each of them grows by one chunk and copies none, so that
// a flood of new keys never holds an old and a new copy of a large array
// at once. An open-addressing table of 4-byte slots (linear probing,
// backward-shift deletion, at most 5/8 full) maps a key's hash to its
// entry, and keeps bits of the hash in the slot so that a probe rarely
// touches an entry. Entries, slab, arena and table are rebuilt smaller
// when most keys are gone, so memory follows live keys.
//
// Write-behind (a shard with a journal sets track): a key whose matches
// changed since they were last handed to the journal is marked dirty, and
// takeDirty hands over each dirty key once, however many matches it had,
// in what the store's record of the key must become. A counted match
// costs a flag test (with a large retry, also its time kept apart until
// it is handed over); memory follows the dirty keys, not the matches, and
// under a flood of new keys not even them (see listDirty).
type Counter struct {
	retry  int
	period int64 // nanoseconds
	max    int
	stride int // match times kept per key at most: retry-1
	slab   int // match times per entry in the slab: stride, or spillAt for a large retry

	entries  [][]counterEntry // entry i is entries[i>>chunkBits][i&(chunkLen-1)]
	times    [][]int64        // slab, in chunks of chunkLen entries: the match times of entry i, ascending, are its slabOf[:n]
	nent     int32            // entries made: live ones and the free list
	over     [][]overTimes    // a large retry: the times of the entries with more than slab of them (entryOver), in chunks
	nover    int32            // slots of over made
	overFree []int32          // free slots of over
	keys     [][]byte         // arena of short keys, in chunks of keyChunk bytes
	arena    int              // arena bytes spent, dead ones included
	dead     int              // arena bytes of removed keys, and chunk tails left unused
	big      [][]byte         // keys longer than maxArenaKey, by counterEntry.off (klen bigKey)
	bigFree  []uint32         // free slots of big
	table    []uint32         // slots (see setTable), 0 when empty; len is a power of two
	tbits    uint             // log2 len(table)
	dispMax  uint32           // the largest displacement a slot holds
	tagMask  uint32           // the bits of a slot that hold bits of the key's hash
	slotBits uint             // 32; tests lower it to run out of tag and displacement bits with few keys
	live     int
	head     int32 // most recently matched; -1 when empty
	tail     int32 // least recently matched
	free     int32 // free list through counterEntry.next

	evictions uint64

	track        bool    // mark the keys whose matches change dirty, for takeDirty
	dirty        []int32 // dirty entries, with stale and repeated indices (see listDirty)
	dirtyAll     bool    // the dirty list stopped growing: takeDirty walks every entry (see listDirty)
	ndirty       int     // entries marked dirty
	backlog      int     // about what the next takeDirty gives, in times (a key weighs keyWeight)
	forgotStored bool    // the key removed last had a record in the store

	// OnForget, when set, is called with every key the counter drops by
	// itself: evicted to make room (evicted) or expired. It is not called
	// for keys that trigger or are forgotten on request.
	OnForget func(key string, evicted bool)
}

// The key's hash is not kept: the table's slot holds it for probing, and
// the rare walks that need it (rehash, remove) hash the key again, which
// keeps an entry at 16 bytes. So does n in a byte: the slab holds at most
// maxSlab times, and an entry whose times are kept apart (entryOver) has
// them in a slice of their own, whose length counts them.
type counterEntry struct {
	off        uint32 // key: chunk<<16 | position in the arena, or index in big (klen bigKey)
	prev, next int32
	klen       uint16
	n          uint8 // match times in the slab (0 with entryOver)
	flags      uint8
}

const (
	entryDirty  = 1 << iota // matches changed since takeDirty last handed the key over
	entryStored             // the store has a record of the key's matches, or will once what was handed over is committed
	entryListed             // scratch of compactDirty
	entryOver               // the times are in overAt(slabOf(i)[0]), not in the slab
)

// Entries, slab and over are cut in chunks of chunkLen entries or slots,
// so that growing allocates one chunk and copies none, and never holds two
// copies of a large array at once. A chunk of the slab holds the times of
// a chunk of entries: slab times per entry. An entry costs one more
// dependent load than in a flat slice (the chunk's header): the hot paths
// look an entry and its slab up once and pass them along.
const (
	chunkBits = 12
	chunkLen  = 1 << chunkBits
)

func (c *Counter) entry(i int32) *counterEntry {
	return &c.entries[uint32(i)>>chunkBits][uint32(i)&(chunkLen-1)]
}

// slabOf returns the slots of the slab for the times of entry i.
func (c *Counter) slabOf(i int32) []int64 {
	ch := c.times[uint32(i)>>chunkBits]
	b := int(uint32(i)&(chunkLen-1)) * c.slab
	return ch[b : b+c.slab : b+c.slab]
}

func (c *Counter) overAt(x int64) *overTimes { return &c.over[x>>chunkBits][x&(chunkLen-1)] }

// overTimes are the match times of a key with more times than the slab
// holds (a counter with a large retry: entryOver). When
// the key has a record in the store, the record is appended to rather
// than rewritten (a large retry means many times per key): fresh are the
// times not handed over yet, stale (see staleOf) how many times handed
// over are no longer in ts (slid out of the window); the record is
// rewritten when they outnumber the live times, so that it stays within
// twice their size.
type overTimes struct {
	ts    []int64 // ascending
	fresh []int64
}

// staleOf points at stale (see overTimes) of entry i, whose times are in
// over: its slab holds the slot of over, then stale (spillAt ≥ 2), which
// keeps over's slots at 48 bytes.
func (c *Counter) staleOf(i int32) *int64 { return &c.slabOf(i)[1] }

const minTable = 8

// The key arena is cut in chunks that a key never spans, so that it grows
// by one chunk and never copies the keys it holds; a chunk is addressed by
// 16 bits of counterEntry.off and a position by the other 16. A key longer
// than maxArenaKey (attackers write the log lines: keys may be long) gets
// an allocation of its own in big instead, so that a chunk wastes at most
// a sixteenth of itself at its end.
const (
	keyChunk    = 1 << 16
	maxArenaKey = keyChunk / 16
	bigKey      = 1<<16 - 1 // counterEntry.klen of a key in big
)

// maxSlab is the largest retry-1 whose match times are preallocated in the
// slab. A larger retry (a filter meant to count for a long time, or never
// to trigger) would reserve memory for matches that mostly never come: the
// slab holds spillAt times per key, and a key with more moves them to a
// slice of its own (over), grown as they come. Under a flood of distinct
// keys, most have one or two matches: they cost what they cost with a
// small retry (measured with 1,000,000 keys of two matches: 145 bytes per
// key when every key had its own slices, 75 with spillAt 2).
const (
	maxSlab = 32
	spillAt = 2 // at least 2: see staleOf
)

// NewCounter returns a counter that triggers when a key has retry matches
// no older than period, tracking at most maxKeys keys (≤ 0: unlimited).
// With retry ≤ 1 every match triggers and nothing is tracked.
func NewCounter(retry int, period time.Duration, maxKeys int) *Counter {
	c := &Counter{retry: retry, period: int64(period), max: maxKeys, head: -1, tail: -1, free: -1, slotBits: 32}
	if retry > 1 {
		c.stride = retry - 1
		c.slab = c.stride
		if c.stride > maxSlab {
			c.slab = spillAt
		}
		c.setTable(minTable)
	}
	return c
}

// setTable replaces the table with an empty one of n slots (a power of
// two). A slot is 4 bytes: from the low bits, the entry's index+1 (log2 n
// bits: the table is more than 5/8 larger than the entries), its
// displacement from its home slot (3 bits), then hash bits (the high
// half of the hash, as the low half picks the home slot) so that a probe
// rarely touches an entry. A bigger table leaves fewer bits for the rest:
// a displacement that does not fit is saturated, and the key's hash tells
// the real one (removal, rarely); with no hash bits left, every probe
// compares keys. Slower, never wrong.
func (c *Counter) setTable(n int) {
	tb := uint(bits.TrailingZeros(uint(n)))
	if tb > c.slotBits {
		panic("stages: counter table past the bits of a slot")
	}
	c.table = make([]uint32, n)
	c.tbits = tb
	c.dispMax = uint32(min(7, 1<<(c.slotBits-tb)-1))
	c.tagMask = ^uint32(0) << (tb + 3) & (^uint32(0) >> (32 - c.slotBits))
}

// slot is the table's slot for entry i, whose key hashes to h, d slots
// after its home.
func (c *Counter) slot(i int32, h uint64, d int) uint32 {
	return uint32(i+1) | min(uint32(d), c.dispMax)<<c.tbits | uint32(h>>32)&c.tagMask
}

// slotEntry returns the entry of the slot v (not empty).
func (c *Counter) slotEntry(v uint32) int32 { return int32(v&uint32(len(c.table)-1)) - 1 }

func hashKey(key string) uint64 { return xxhash.Sum64String(key) }

func (c *Counter) hashOf(i int32) uint64 { return hashKey(bytesString(c.keyBytes(c.entry(i)))) }

// Add counts a match of key at t and reports whether the key triggered:
// its matches inside the window reached retry. A triggered key's matches
// are forgotten. A match counts while it is at most period old.
//
// Add does not retain key: it copies it when the key is new, so callers
// may pass a string that aliases a reused buffer.
func (c *Counter) Add(key string, t time.Time) (triggered bool) {
	if c.stride == 0 {
		return true
	}
	now := t.UnixNano()
	c.expire(now, 2) // amortized: memory follows live keys even without sweeps
	i, e := c.touch(key)
	slab := c.slabOf(i)
	ts := c.timesIn(e, slab)
	cut := now - c.period
	k := 0
	for k < len(ts) && ts[k] < cut {
		k++
	}
	if k > 0 {
		ts = c.prune(e, slab, ts, k)
	}
	if len(ts)+1 >= c.retry {
		c.remove(i)
		return true
	}
	if e.flags&entryOver == 0 && len(ts) < c.slab {
		e.n++
		ts = ts[:len(ts)+1]
	} else {
		ts = c.extendOver(e, slab)
	}
	// Keep times sorted; out-of-order matches (a restored or late line) are rare.
	j := len(ts) - 1
	for j > 0 && ts[j-1] > now {
		ts[j] = ts[j-1]
		j--
	}
	ts[j] = now
	if c.track {
		c.markDirty(i, e, slab, now)
	}
	return false
}

// prune drops the k oldest of ts, the match times of entry e (whose slab
// is slab), and returns those left.
func (c *Counter) prune(e *counterEntry, slab []int64, ts []int64, k int) []int64 {
	copy(ts, ts[k:])
	ts = ts[:len(ts)-k]
	if o := c.overIn(e, slab); o != nil {
		o.ts = ts
		slab[1] += int64(k) // stale: see staleOf
	} else {
		e.n = uint8(len(ts))
	}
	return ts
}

// markDirty records a match of entry i (e, whose slab is slab) at now for
// the next takeDirty.
func (c *Counter) markDirty(i int32, e *counterEntry, slab []int64, now int64) {
	if o := c.overIn(e, slab); o != nil {
		c.backlog++ // a time appended, or one more to rewrite
		if e.flags&entryStored != 0 {
			o.fresh = append(o.fresh, now)
		}
	}
	if e.flags&entryDirty != 0 {
		return
	}
	e.flags |= entryDirty
	c.ndirty++
	c.backlog += c.keyWeight()
	c.listDirty(i)
}

// keyWeight is what a dirty key adds to the backlog: the OpClear and at
// most slab times it may give, twice, because what a commit holds for a key
// (its Change, its entry in the Store's plan) is much larger than a time.
// A flood of new keys is then committed in batches half as large as a
// flood of times, for the same backlog.
func (c *Counter) keyWeight() int { return 2 * (c.slab + 1) }

// listDirty adds entry i, just marked dirty, to the dirty list. remove
// leaves its entry listed (it only clears the flag), and the index may
// come back for another key: the list is compacted when most of it is
// stale, so that it stays within twice the dirty keys. A list longer than
// a sixteenth of the entries stops growing (a flood of new keys): the
// next takeDirty walks every entry, which costs less than what it hands
// over, and the list would have cost 4 bytes per key. The list is never
// empty then, for a shard skips a counter with an empty list.
func (c *Counter) listDirty(i int32) {
	if c.dirtyAll {
		return
	}
	if len(c.dirty) >= 2*c.ndirty+64 {
		c.compactDirty()
	}
	if len(c.dirty) >= max(1024, int(c.nent)/16) {
		c.dirtyAll = true
		return
	}
	c.dirty = append(c.dirty, i)
}

// compactDirty drops the stale and repeated indices of the dirty list.
func (c *Counter) compactDirty() {
	kept := c.dirty[:0]
	for _, i := range c.dirty {
		if e := c.entry(i); e.flags&(entryDirty|entryListed) == entryDirty {
			e.flags |= entryListed
			kept = append(kept, i)
		}
	}
	for _, i := range kept {
		c.entry(i).flags &^= entryListed
	}
	c.dirty = kept
}

// takeDirty hands each dirty key over to f, once, and clears the marks.
// f gets what the store's record of the key must become: with rewrite,
// exactly times (none: no record); without, the record plus times (a key
// without a record yet is never rewritten). Times older than the window at
// now are dropped first. f must not change the
// counter, nor keep key or times.
func (c *Counter) takeDirty(now int64, f func(key string, rewrite bool, times []int64)) {
	cut := now - c.period
	if c.dirtyAll {
		for i := range c.nent {
			c.take(i, cut, f)
		}
	} else {
		for _, i := range c.dirty {
			c.take(i, cut, f)
		}
	}
	c.ndirty, c.backlog = 0, 0
	c.dirtyAll = false
	if cap(c.dirty) > 2*c.live+1024 {
		c.dirty = nil // a flood of keys went by: do not keep its list
	} else {
		c.dirty = c.dirty[:0]
	}
}

// take hands entry i over to f if it is dirty: see takeDirty.
func (c *Counter) take(i int32, cut int64, f func(key string, rewrite bool, times []int64)) {
	e := c.entry(i)
	if e.flags&entryDirty == 0 {
		return
	}
	e.flags &^= entryDirty
	slab := c.slabOf(i)
	ts := c.timesIn(e, slab)
	if len(ts) > 0 && ts[0] < cut {
		k, _ := slices.BinarySearch(ts, cut)
		ts = c.prune(e, slab, ts, k)
	}
	key := bytesString(c.keyBytes(e))
	o := c.overIn(e, slab)
	if o == nil || e.flags&entryStored == 0 || slab[1] > int64(len(ts)) { // slab[1]: stale
		// A key the store has no record of is appended to: there is
		// nothing to replace (a flood of new keys needs no OpClear).
		f(key, e.flags&entryStored != 0, ts)
		if len(ts) > 0 {
			e.flags |= entryStored
		} else {
			e.flags &^= entryStored
		}
		if o != nil {
			o.fresh, slab[1] = o.fresh[:0], 0
		}
		return
	}
	fresh := slices.DeleteFunc(o.fresh, func(t int64) bool { return t < cut })
	if len(fresh) > 0 {
		slices.Sort(fresh)
		f(key, false, fresh)
	}
	o.fresh = fresh[:0]
}

// touch returns key's entry, index and pointer, made the most recently
// matched, creating it (and evicting the oldest key when at the cap) if
// needed. The pointer holds until the next alloc (the first chunk of
// entries grows by doubling).
func (c *Counter) touch(key string) (int32, *counterEntry) {
	h := hashKey(key)
	if i, e := c.lookupEntry(key, h); e != nil {
		if i != c.head {
			c.unlinkEntry(i, e)
			c.pushFrontEntry(i, e)
		}
		return i, e
	}
	if c.max > 0 && c.live >= c.max {
		c.evict()
	}
	i := c.alloc(key, h)
	e := c.entry(i)
	c.pushFrontEntry(i, e)
	return i, e
}

// Restore puts back persisted match times of key (any order), keeping
// those still inside the window at now, at most retry-1 of them (the most
// recent). It returns how many were kept. The key is taken to have a
// record in the store: one that holds exactly the kept times.
func (c *Counter) Restore(key string, times []time.Time, now time.Time) int {
	if c.stride == 0 {
		return 0
	}
	cut := now.UnixNano() - c.period
	kept := make([]int64, 0, len(times))
	for _, t := range times {
		if ns := t.UnixNano(); ns >= cut && ns <= now.UnixNano() {
			kept = append(kept, ns)
		}
	}
	if len(kept) == 0 {
		return 0
	}
	slices.Sort(kept)
	if len(kept) > c.stride {
		kept = kept[len(kept)-c.stride:]
	}
	i, e := c.touch(key)
	c.setTimes(i, kept)
	e.flags |= entryStored
	return len(kept)
}

// Count returns how many matches of key are inside the window at now.
func (c *Counter) Count(key string, now time.Time) int {
	if c.stride == 0 {
		return 0
	}
	i := c.lookup(key, hashKey(key))
	if i < 0 {
		return 0
	}
	return c.count(i, now.UnixNano())
}

func (c *Counter) count(i int32, now int64) int {
	n := 0
	for _, t := range c.timesOf(i) {
		if t >= now-c.period {
			n++
		}
	}
	return n
}

// Each calls f for every key with matches inside the window at now, from
// the most recently matched to the least. f must not change the counter.
func (c *Counter) Each(now time.Time, f func(key string, count int)) {
	ns := now.UnixNano()
	for i := c.head; i >= 0; i = c.entry(i).next {
		if n := c.count(i, ns); n > 0 {
			f(c.keyOf(i), n)
		}
	}
}

// Times returns the match times of key inside the window at now, oldest first.
func (c *Counter) Times(key string, now time.Time) []time.Time {
	if c.stride == 0 {
		return nil
	}
	i := c.lookup(key, hashKey(key))
	if i < 0 {
		return nil
	}
	var out []time.Time
	for _, t := range c.timesOf(i) {
		if t >= now.UnixNano()-c.period {
			out = append(out, time.Unix(0, t))
		}
	}
	return out
}

// Forget drops every match of key and reports whether it had any.
func (c *Counter) Forget(key string) bool {
	if c.stride == 0 {
		return false
	}
	i := c.lookup(key, hashKey(key))
	if i >= 0 {
		c.remove(i)
	}
	return i >= 0
}

// Expire drops the keys whose newest match is older than the window at
// now and returns how many it dropped. It walks from the least recently
// matched key and stops at the first live one, so it costs what it drops.
func (c *Counter) Expire(now time.Time) int {
	if c.stride == 0 {
		return 0
	}
	n := c.expire(now.UnixNano(), -1)
	if c.nent > 1024 && c.live*4 < int(c.nent) {
		c.compact()
	}
	return n
}

// Len returns the number of tracked keys.
func (c *Counter) Len() int { return c.live }

// Evictions returns how many keys were evicted to respect the cap.
func (c *Counter) Evictions() uint64 { return c.evictions }

func (c *Counter) keyOf(i int32) string { return string(c.keyBytes(c.entry(i))) }

func (c *Counter) keyBytes(e *counterEntry) []byte {
	if e.klen == bigKey {
		return c.big[e.off]
	}
	p := e.off & (keyChunk - 1)
	return c.keys[e.off>>16][p : p+uint32(e.klen)]
}

// storeKey copies key into the arena, or into big when it is long, and
// returns where it is, as counterEntry.off and klen.
func (c *Counter) storeKey(key string) (off uint32, klen uint16) {
	if n := len(c.keys); n > 0 && len(key) <= maxArenaKey {
		// No chunk has room past keyChunk: a key that fits goes at the end.
		if last := c.keys[n-1]; len(last)+len(key) <= cap(last) {
			c.keys[n-1] = append(last, key...)
			c.arena += len(key)
			return uint32(n-1)<<16 | uint32(len(last)), uint16(len(key))
		}
	}
	return c.storeKeyApart(key)
}

// storeKeyApart is storeKey for a key that needs room: big, a larger
// first chunk, or a new chunk.
func (c *Counter) storeKeyApart(key string) (off uint32, klen uint16) {
	if len(key) > maxArenaKey {
		b := []byte(key)
		if n := len(c.bigFree); n > 0 {
			off, c.bigFree = c.bigFree[n-1], c.bigFree[:n-1]
			c.big[off] = b
		} else {
			off = uint32(len(c.big))
			c.big = append(c.big, b)
		}
		return off, bigKey
	}
	if n := len(c.keys); n > 0 && len(c.keys[n-1])+len(key) > keyChunk {
		c.dead += keyChunk - len(c.keys[n-1]) // the tail the key does not fit in
		c.arena += keyChunk - len(c.keys[n-1])
		if n == keyChunk {
			// 4 GiB of short keys, at least a million of them per chunk
			// of the table: memory ran out long before.
			panic("stages: counter key arena past 4 GiB")
		}
	}
	c.keys = appendChunk(c.keys, len(key), keyChunk)
	last := c.keys[len(c.keys)-1]
	p := len(last) - len(key)
	copy(last[p:], key)
	c.arena += len(key)
	return uint32(len(c.keys)-1)<<16 | uint32(p), uint16(len(key))
}

// appendChunk makes cs k elements longer and returns it. The elements go
// at the end of the last chunk, or of a new one when they would take it
// past size elements, so that growing allocates one chunk and never holds
// two copies of what is there. The first chunk grows by doubling up to
// size, so that a counter of a few keys stays small.
func appendChunk[T any](cs [][]T, k, size int) [][]T {
	if n := len(cs); n > 0 && len(cs[n-1])+k <= cap(cs[n-1]) { // no chunk has room past size
		cs[n-1] = cs[n-1][:len(cs[n-1])+k]
		return cs
	}
	return growChunk(cs, k, size)
}

func growChunk[T any](cs [][]T, k, size int) [][]T {
	n := len(cs)
	if n == 0 || len(cs[n-1])+k > size {
		c := size
		if n == 0 {
			c = min(size, max(k, 16))
		}
		return append(cs, make([]T, k, c))
	}
	last := cs[n-1]
	if len(last)+k > cap(last) {
		grown := make([]T, len(last), min(size, max(2*cap(last), len(last)+k)))
		copy(grown, last)
		last = grown
	}
	cs[n-1] = last[:len(last)+k]
	return cs
}

func (c *Counter) expire(now int64, limit int) int {
	cut := now - c.period
	n := 0
	for c.tail >= 0 && n != limit {
		i := c.tail
		if ts := c.timesOf(i); len(ts) > 0 && ts[len(ts)-1] >= cut {
			break
		}
		var key string
		if c.OnForget != nil {
			key = c.keyOf(i)
		}
		c.remove(i)
		n++
		if c.OnForget != nil {
			c.OnForget(key, false)
		}
	}
	return n
}

func (c *Counter) evict() {
	if c.tail < 0 {
		return
	}
	var key string
	if c.OnForget != nil {
		key = c.keyOf(c.tail)
	}
	c.remove(c.tail)
	c.evictions++
	if c.OnForget != nil {
		c.OnForget(key, true)
	}
}

// lookup returns the entry of key, or -1.
func (c *Counter) lookup(key string, h uint64) int32 {
	i, _ := c.lookupEntry(key, h)
	return i
}

// lookupEntry returns the entry of key, index and pointer, or -1 and nil.
func (c *Counter) lookupEntry(key string, h uint64) (int32, *counterEntry) {
	mask := len(c.table) - 1
	tag := uint32(h>>32) & c.tagMask
	for s := int(h) & mask; ; s = (s + 1) & mask {
		v := c.table[s]
		if v == 0 {
			return -1, nil
		}
		if v&c.tagMask != tag {
			continue
		}
		i := int32(v&uint32(mask)) - 1
		if e := c.entry(i); bytesString(c.keyBytes(e)) == key {
			return i, e
		}
	}
}

// alloc creates the entry of a new key (not linked in the LRU list).
func (c *Counter) alloc(key string, h uint64) int32 {
	if (c.live+1)*8 > len(c.table)*5 {
		c.rehash(len(c.table) * 2)
	}
	var i int32
	if c.free >= 0 {
		i = c.free
		c.free = c.entry(i).next
	} else {
		i = c.nent
		c.nent++
		c.entries = appendChunk(c.entries, 1, chunkLen)
		c.times = appendChunk(c.times, c.slab, chunkLen*c.slab)
	}
	off, klen := c.storeKey(key)
	*c.entry(i) = counterEntry{off: off, klen: klen, prev: -1, next: -1}
	c.place(i, h)
	c.live++
	return i
}

// place puts entry i, whose key hashes to h, in the first free slot of its
// probe sequence.
func (c *Counter) place(i int32, h uint64) {
	mask := len(c.table) - 1
	home := int(h) & mask
	s := home
	for c.table[s] != 0 {
		s = (s + 1) & mask
	}
	c.table[s] = c.slot(i, h, (s-home)&mask)
}

// rehash replaces the table with one of n slots. A slot holds too few bits
// of the hash to place its entry again: the keys are hashed again.
func (c *Counter) rehash(n int) {
	c.setTable(n)
	for i := c.head; i >= 0; i = c.entry(i).next {
		c.place(i, c.hashOf(i))
	}
}

// remove unlinks entry i, frees its slot and its key bytes and puts it on
// the free list.
func (c *Counter) remove(i int32) {
	e := c.entry(i)
	c.unlinkEntry(i, e)
	// Find the slot, empty it, then shift back the entries after it that
	// may not be reachable anymore (no tombstones).
	mask := len(c.table) - 1
	s := int(hashKey(bytesString(c.keyBytes(e)))) & mask
	for c.slotEntry(c.table[s]) != i {
		s = (s + 1) & mask
	}
	c.table[s] = 0
	for j := (s + 1) & mask; c.table[j] != 0; j = (j + 1) & mask {
		v := c.table[j]
		d := int(v >> c.tbits & c.dispMax)
		if d == int(c.dispMax) { // saturated
			d = (j - int(c.hashOf(c.slotEntry(v)))) & mask
		}
		// The entry at j stays unless its home lies cyclically in (s, j],
		// that is, unless it is fewer than j-s slots from home.
		if gap := (j - s) & mask; d >= gap {
			c.table[s] = v&^(c.dispMax<<c.tbits) | min(uint32(d-gap), c.dispMax)<<c.tbits
			c.table[j] = 0
			s = j
		}
	}
	if e.klen == bigKey {
		c.big[e.off] = nil
		c.bigFree = append(c.bigFree, e.off)
	} else {
		c.dead += int(e.klen)
	}
	c.forgotStored = e.flags&entryStored != 0
	var o *overTimes
	if e.flags&entryOver != 0 {
		x := c.slabOf(i)[0]
		o = c.overAt(x)
		c.overFree = append(c.overFree, int32(x))
	}
	if e.flags&entryDirty != 0 {
		c.ndirty-- // its index stays listed, unmarked: see markDirty
		if o == nil {
			c.backlog -= c.keyWeight()
		} else {
			c.backlog = max(0, c.backlog-c.keyWeight()-len(o.ts)) // about what its matches added
		}
	}
	if o != nil {
		*o = overTimes{}
	}
	*e = counterEntry{prev: -1, next: c.free}
	c.free = i
	c.live--
	if c.dead > 64<<10 && c.dead*2 > c.arena {
		c.compactKeys()
	}
}

// compactKeys rewrites the arena with the live keys only.
func (c *Counter) compactKeys() {
	old := c.keys
	// Room for more new keys than live ones: the next compaction comes
	// once as many bytes as are live now are dead.
	live := c.arena - c.dead
	c.keys = [][]byte{make([]byte, 0, min(keyChunk, 2*live+live/4))}
	c.arena, c.dead = 0, 0
	for i := c.head; i >= 0; i = c.entry(i).next {
		if e := c.entry(i); e.klen != bigKey {
			p := e.off & (keyChunk - 1)
			e.off, _ = c.storeKey(bytesString(old[e.off>>16][p : p+uint32(e.klen)]))
		}
	}
}

// unlinkEntry takes entry i (e) out of the list.
func (c *Counter) unlinkEntry(i int32, e *counterEntry) {
	p, n := e.prev, e.next
	if p >= 0 {
		c.entry(p).next = n
	} else if c.head == i {
		c.head = n
	}
	if n >= 0 {
		c.entry(n).prev = p
	} else if c.tail == i {
		c.tail = p
	}
	e.prev, e.next = -1, -1
}

// pushFrontEntry links entry i (e), not linked, as the most recently
// matched.
func (c *Counter) pushFrontEntry(i int32, e *counterEntry) {
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.entry(c.head).prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

// compact rebuilds everything after most keys went away, so that memory
// follows the live keys rather than the peak.
func (c *Counter) compact() {
	old := *c
	size := minTable
	for size*5 < old.live*8+8 {
		size *= 2
	}
	c.setTable(size)
	c.entries, c.times, c.nent = nil, nil, 0
	c.over, c.nover, c.overFree = nil, 0, nil
	c.dirty, c.dirtyAll = nil, false
	c.keys, c.arena, c.dead = nil, 0, 0
	c.big, c.bigFree = nil, nil
	c.live = 0
	c.head, c.tail, c.free = -1, -1, -1
	for i := old.tail; i >= 0; i = old.entry(i).prev {
		e := *old.entry(i)
		key := bytesString(old.keyBytes(&e))
		j := c.alloc(key, hashKey(key))
		if o := old.overOf(i); o != nil {
			c.spill(c.entry(j), c.slabOf(j))
			*c.overOf(j) = *o
			*c.staleOf(j) = *old.staleOf(i)
		} else {
			c.setTimes(j, old.timesOf(i))
		}
		ej := c.entry(j)
		ej.flags = e.flags
		if e.flags&entryDirty != 0 {
			c.listDirty(j)
		}
		c.pushFrontEntry(j, ej)
	}
}

// timesOf returns the match times of entry i, oldest first.
func (c *Counter) timesOf(i int32) []int64 { return c.timesIn(c.entry(i), c.slabOf(i)) }

// timesIn is timesOf for an entry e whose slab is slab.
func (c *Counter) timesIn(e *counterEntry, slab []int64) []int64 {
	if e.flags&entryOver != 0 {
		return c.overAt(slab[0]).ts
	}
	return slab[:e.n]
}

// overOf returns the times of entry i kept apart, or nil when they are in
// the slab.
func (c *Counter) overOf(i int32) *overTimes {
	e := c.entry(i)
	if e.flags&entryOver == 0 {
		return nil
	}
	return c.overAt(c.slabOf(i)[0])
}

// overIn is overOf for an entry e whose slab is slab.
func (c *Counter) overIn(e *counterEntry, slab []int64) *overTimes {
	if e.flags&entryOver == 0 {
		return nil
	}
	return c.overAt(slab[0])
}

// spill moves the times of entry e, whose slab is b, from the slab to a
// slot of over. If the store has a record of the key, the next takeDirty
// rewrites it: the times not handed over yet are not in fresh.
func (c *Counter) spill(e *counterEntry, b []int64) *overTimes {
	var x int32
	if n := len(c.overFree); n > 0 {
		x, c.overFree = c.overFree[n-1], c.overFree[:n-1]
	} else {
		x = c.nover
		c.nover++
		c.over = appendChunk(c.over, 1, chunkLen)
	}
	o := c.overAt(int64(x))
	o.ts = append(make([]int64, 0, c.slab+1), b[:e.n]...)
	b[0], b[1] = int64(x), 0
	if e.flags&entryStored != 0 {
		b[1] = 1 << 30 // stale
	}
	e.flags |= entryOver
	e.n = 0
	return o
}

// extendOver returns ts, the times of entry e (whose slab is slab), one
// longer (the new last element is for the caller to set), when they are
// kept apart or are to be (the slab is full). The entry holds fewer than
// stride times.
func (c *Counter) extendOver(e *counterEntry, slab []int64) []int64 {
	o := c.overIn(e, slab)
	if o == nil {
		o = c.spill(e, slab)
	}
	o.ts = append(o.ts, 0)
	return o.ts
}

// setTimes replaces the match times of entry i with ts (ascending, at most
// stride of them).
func (c *Counter) setTimes(i int32, ts []int64) {
	e, slab := c.entry(i), c.slabOf(i)
	o := c.overIn(e, slab)
	if o == nil && len(ts) > c.slab {
		o = c.spill(e, slab)
	}
	if o != nil {
		*o = overTimes{ts: append(o.ts[:0], ts...)}
		slab[1] = 0 // stale
	} else {
		copy(slab, ts)
		e.n = uint8(len(ts))
	}
}
