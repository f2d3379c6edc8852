// Package nutsstore is the durable stages.Store: the matches still inside
// their window and the pending delayed actions, kept in a nutsdb database in
// the state directory.
//
// # Data model
//
// One nutsdb B-tree bucket, "state", in which every key starts with the
// schema version "v2\x00":
//
//	v2 | 'f' | id            a filter: name, identity, the state of its
//	                         groups (level, split) and counts
//	v2 | 'k' | id | group    a group: the entries of the filter's keys that
//	                         hash to it
//	v2 | 'w' | seq           a log record: the changes of one commit that
//	                         are not all folded into their groups yet
//
// id is a 4-byte number given to a filter (a stages.FilterRef: name and
// identity) when it first gets a key, so that the identity (hundreds of
// bytes) is in one record only; group is 4 bytes (bit-reversed, see
// groupKey), seq 8. An entry is a key's captured values (their count, then
// each, length-prefixed), its match times (8 bytes each: big-endian Unix
// nanoseconds with the sign bit flipped; the zero time has its own code)
// and its pending actions (action, due time, trigger time).
//
// The groups of a filter are a linear hash table (Litwin): a key's group is
// its xxhash modulo 2^level, or modulo 2^(level+1) below split. Whenever the
// filter's entries take more than 2 KiB per group on average, one more
// group is split, so groups stay small whatever the number of keys: nutsdb
// keeps one record per group in memory, not one per key.
//
// Commit reduces a batch to its effect on each key (the OpMatch changes of
// a batch for one key are one append) and writes it as one log record, of
// the size of the changes. The log's changes are kept in memory by group
// until the group is folded (read, changed and written back once for all of
// them), when the log outgrows its budget (4 MiB, or a third of the size of
// the groups when that is more: a group is then rewritten about once per
// third of the state's size written to the log, however many keys there are):
// see wal.go. A commit
// folds at most one group per key it changes, and a few; a batch too large
// for the log is folded at once. OpDrop deletes every record of that
// FilterRef, as the in-memory stages.MemStore does; a filter whose last key
// goes is deleted too. Load applies the log on top of the groups.
//
// Records of an unknown schema version are skipped with a warning; the
// buckets of the v1 layout (one record per key) are dropped at Open, with a
// warning.
//
// nutsdb keeps values on disk (HintKeyAndRAMIdxMode): a commit reads the
// groups it folds and Load reads each group once. nutsdb's own replay at
// Open still reads every record of every segment, so that the time to open
// grows with what was written since the last compaction; the log makes
// that about one record per commit rather than one per changed key.
//
// # Durability
//
// Commit applies one batch in one nutsdb transaction (db.Update, fsynced);
// nutsdb's CommitWith and WriteBatch are never used (they call log.Fatal on
// error) and neither is its MergeV2. Compaction is nutsdb's legacy Merge,
// run by Compact, on Options.RotationInterval by Run, never by nutsdb's own
// timer. Segments are small (8 MiB) so that compaction can drop them.
//
// A second process on the same directory is refused (ErrLocked): the store
// holds a lock file of its own, taken before anything in the directory is
// read or repaired, as well as nutsdb's.
//
// # Repair
//
// Before nutsdb opens the directory, Open walks every segment record by
// record (nutsdb's layout: crc, varint header, key, value; the last record
// of a transaction is marked committed) and checks each checksum. A record
// that does not verify (a torn write, garbage after the last record) would
// make nutsdb refuse to open; the records of a transaction that never got its
// commit mark would make nutsdb drop the first record of the next
// transaction. So the segment is cut at the start of the damaged
// transaction: the file is first copied whole into <dir>/damaged-<time>/,
// then truncated; every intact committed record before the cut is kept, as
// are later segments. The same is done for nutsdb's bucket file. Each cut is
// logged as a warning and listed by Recovered. A segment shorter than the
// segment size (cut, or written with a smaller one) is extended with zeros,
// what nutsdb writes itself: it reads a value with the longest header a
// record could have, which could run past the end of such a file.
//
// This package must not decide anything about the state it holds: it does
// not expire matches nor run actions, it never deletes a damaged file, and
// the only records it drops on its own are those of the v1 layout, which
// nothing reads any more.
package nutsstore
