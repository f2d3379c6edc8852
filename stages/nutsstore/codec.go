package nutsstore

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"time"

	"github.com/cespare/xxhash/v2"
)

const (
	schema      = "v2\x00" // version prefix of every key
	bucketState = "state"  // the nutsdb bucket of every v2 record
	kindFilter  = 'f'      // schema | kindFilter | id: a filter record
	kindKeys    = 'k'      // schema | kindKeys | id | group: a group record
	kindLog     = 'w'      // schema | kindLog | seq: a log record
	idSize      = 4
	timeSize    = 8

	filterKeySize = len(schema) + 1 + idSize
	groupKeySize  = filterKeySize + 4
	logKeySize    = len(schema) + 1 + 8
)

// The v1 layout's buckets, one record per key: dropped at Open.
var oldBuckets = []string{"matches", "pending"}

var errBadKey = errors.New("malformed key")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendValues encodes a key's captured values: their count, then each,
// length-prefixed, so that the encoding is unambiguous.
func appendValues(b []byte, values []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(values)))
	for _, v := range values {
		b = appendString(b, v)
	}
	return b
}

// hashKey is the hash of an encoded key that places it in a group. It is
// persisted (groups are addressed by it): never change it without a new
// schema version.
func hashKey(key string) uint64 { return xxhash.Sum64String(key) }

// hashKeyBytes is hashKey of string(key).
func hashKeyBytes(key []byte) uint64 { return xxhash.Sum64(key) }

func filterKey(id uint32) []byte {
	b := make([]byte, 0, filterKeySize)
	b = append(b, schema...)
	b = append(b, kindFilter)
	return binary.BigEndian.AppendUint32(b, id)
}

// groupPrefix is the prefix of every group record of filter id.
func groupPrefix(id uint32) []byte {
	b := make([]byte, 0, groupKeySize)
	b = append(b, schema...)
	b = append(b, kindKeys)
	return binary.BigEndian.AppendUint32(b, id)
}

// groupKey is the key of a group record. The group's number is written
// bit-reversed: the groups that a filter gains as it grows (numbers that
// count up) fall between its groups in key order, not after them. nutsdb's
// B-tree (tidwall/btree) splits a full node in two halves that share one
// array; a half that never grows again keeps the items the other half held
// when it split, and each item, the value it was read with (see unpinKeys):
// appending keys in order, such halves are all the B-tree's nodes. Measured
// with 1,000,000 keys: 30 MB of old values held, against none.
func groupKey(id, group uint32) []byte {
	return binary.BigEndian.AppendUint32(groupPrefix(id), bits.Reverse32(group))
}

func logKey(seq uint64) []byte {
	b := make([]byte, 0, logKeySize)
	b = append(b, schema...)
	b = append(b, kindLog)
	return binary.BigEndian.AppendUint64(b, seq)
}

// recordKey is a decoded record key.
type recordKey struct {
	kind  byte
	id    uint32 // of a filter or group record
	group uint32 // of a group record
	seq   uint64 // of a log record
}

// parseKey decodes a record key of the current schema.
func parseKey(key []byte) (recordKey, error) {
	if len(key) <= len(schema) || string(key[:len(schema)]) != schema {
		return recordKey{}, errBadKey
	}
	k := recordKey{kind: key[len(schema)]}
	rest := key[len(schema)+1:]
	switch {
	case k.kind == kindFilter && len(key) == filterKeySize:
		k.id = binary.BigEndian.Uint32(rest)
	case k.kind == kindKeys && len(key) == groupKeySize:
		k.id, k.group = binary.BigEndian.Uint32(rest), bits.Reverse32(binary.BigEndian.Uint32(rest[idSize:]))
	case k.kind == kindLog && len(key) == logKeySize:
		k.seq = binary.BigEndian.Uint64(rest)
	default:
		return recordKey{}, errBadKey
	}
	return k, nil
}

// appendTime encodes t in 8 bytes that sort as the times do.
func appendTime(b []byte, t time.Time) []byte {
	n := int64(math.MinInt64) // the zero time, out of UnixNano's range
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return appendUnixNano(b, n)
}

// appendUnixNano is appendTime of time.Unix(0, n), a time that is not zero.
func appendUnixNano(b []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(n)^(1<<63))
}

func encodeTime(t time.Time) (e [timeSize]byte) {
	appendTime(e[:0], t)
	return e
}

func decodeTime(b []byte) time.Time {
	n := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// reader decodes a record; a malformed record sets err and yields zero
// values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err, r.b = errBadKey, nil }

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items that take at least size bytes each.
func (r *reader) count(size int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/size) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte { return r.next(r.count(1)) }

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail()
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// The filter record's value: the filter's name and identity, the state of
// its groups (see group.go): level, split, keys and their size; then how
// many keys have matches and how many pending actions there are (for Load
// to size its slices).
func appendFilterValue(b []byte, f *filterMeta) []byte {
	b = appendString(b, f.ref.Name)
	b = appendString(b, f.ref.Identity)
	b = binary.AppendUvarint(b, uint64(f.level))
	b = binary.AppendUvarint(b, uint64(f.split))
	b = binary.AppendUvarint(b, f.keys)
	b = binary.AppendUvarint(b, f.bytes)
	b = binary.AppendUvarint(b, f.matched)
	return binary.AppendUvarint(b, f.pending)
}

func decodeFilterValue(id uint32, v []byte) (*filterMeta, error) {
	r := reader{b: v}
	f := &filterMeta{id: id}
	f.ref.Name = string(r.bytes())
	f.ref.Identity = string(r.bytes())
	level, split := r.uvarint(), r.uvarint()
	f.keys, f.bytes = r.uvarint(), r.uvarint()
	f.matched, f.pending = r.uvarint(), r.uvarint()
	if r.err == nil && (len(r.b) != 0 || level > maxLevel || split >= 1<<level) {
		r.fail()
	}
	if r.err != nil {
		return nil, errors.New("malformed filter record")
	}
	f.level, f.split = uint8(level), uint32(split)
	return f, nil
}

// A group record's value is its entries, one per key, in the order of
// their encoded keys:
//
//	entry   = len(key) key | n times | n pending
//	key     = the encoded values (appendValues)
//	times   = 8 bytes each (appendTime), as committed
//	pending = len(action) action | due | trigger (8 bytes each)
//
// lengths and counts are uvarints.

// pendingSize is the least size of an encoded pending action.
const pendingSize = 1 + 2*timeSize

// A log record's value: the changes of one commit, by filter, then the
// groups that the commit folded (see wal.go):
//
//	log     = n sections | section* | n folded | (id group)*
//	section = id | n ops | op*
//	op      = len(key) key | flags | n times | times |
//	          n pending | (len(action) action | due | trigger | put)*
//
// ids, groups, lengths and counts are uvarints; flags is 1 for a clear,
// put is 1 for an OpPending, 0 for an OpDone.

func appendOp(b []byte, k *keyPlan) []byte {
	b = appendString(b, k.key)
	flags := byte(0)
	if k.clear {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(k.times)/timeSize))
	b = append(b, k.times...)
	b = binary.AppendUvarint(b, uint64(len(k.pending)))
	for _, p := range k.pending {
		b = appendPendingRec(b, p.pendingRec)
		put := byte(0)
		if p.put {
			put = 1
		}
		b = append(b, put)
	}
	return b
}

// decodeOp decodes the op at the start of r into k. k.times refers to r's
// bytes.
func decodeOp(r *reader, k *keyPlan) {
	k.key = string(r.bytes())
	flags := r.next(1)
	k.times = r.next(r.count(timeSize) * timeSize)
	n := r.count(pendingSize + 1)
	k.pending = k.pending[:0]
	for range n {
		action, due, trigger := nextPending(r)
		put := r.next(1)
		if r.err != nil {
			break
		}
		p := pendingOp{pendingRec: pendingRec{action: string(action)}, put: put[0] == 1}
		copy(p.due[:], due)
		copy(p.trigger[:], trigger)
		k.pending = append(k.pending, p)
	}
	if r.err == nil && flags[0] > 1 {
		r.fail()
	}
	if r.err == nil {
		k.clear = flags[0] == 1
	}
}
