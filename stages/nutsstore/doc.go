// Package nutsstore is the durable stages.Store: the matches still inside
// their window and the pending delayed actions, kept in a nutsdb database in
// the state directory.
//
// # Data model
//
// Two nutsdb B-tree buckets, one record per key:
//
//	bucket "matches"  key = v1 | name | identity | values           value = times
//	bucket "pending"  key = v1 | name | identity | values | action | due
//	                  value = trigger time
//
// v1 is the schema version "v1\x00"; name and identity are the filter's
// stages.FilterRef; values is the count of captured values then each value;
// every string is length-prefixed (uvarint), so a key decodes unambiguously
// and the keys of one filter share a prefix that no other filter's keys
// have. Times are 8 bytes each (big-endian Unix nanoseconds with the sign
// bit flipped; the zero time has its own code). A key's match times are one
// record: the OpMatch changes of a batch for one key become one Put.
// OpClear deletes the key's record, OpPending puts and OpDone deletes one
// pending record, OpDrop deletes every record of that FilterRef (its name
// and its identity, as the in-memory stages.MemStore does). Records of an
// unknown schema version are skipped with a warning.
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
// logged as a warning and listed by Recovered.
//
// This package must not decide anything about the state it holds: it does
// not expire matches nor run actions, and it never deletes a damaged file.
package nutsstore
