package nutsstore

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"reaction/stages"
)

const (
	schema        = "v1\x00" // version prefix of every key
	bucketMatches = "matches"
	bucketPending = "pending"
	timeSize      = 8
)

var errBadKey = errors.New("malformed key")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendFilter appends the prefix shared by every key of f, and only by them
// (length prefixes make it prefix-free).
func appendFilter(b []byte, f stages.FilterRef) []byte {
	b = append(b, schema...)
	b = appendString(b, f.Name)
	return appendString(b, f.Identity)
}

func appendValues(b []byte, values []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(values)))
	for _, v := range values {
		b = appendString(b, v)
	}
	return b
}

func appendMatchKey(b []byte, c *stages.Change) []byte {
	return appendValues(appendFilter(b, c.Filter), c.Key)
}

func appendPendingKey(b []byte, c *stages.Change) []byte {
	b = appendValues(appendFilter(b, c.Filter), c.Key)
	b = appendString(b, c.Action)
	return appendTime(b, c.Due)
}

// appendTime encodes t in 8 bytes that sort as the times do.
func appendTime(b []byte, t time.Time) []byte {
	n := int64(math.MinInt64) // the zero time, out of UnixNano's range
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(n)^(1<<63))
}

func decodeTime(b []byte) time.Time {
	n := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// keyReader decodes a key; a malformed key sets err and yields zero values.
type keyReader struct {
	b   []byte
	err error
}

func (r *keyReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadKey
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *keyReader) bytes() []byte {
	l := r.uvarint()
	if r.err != nil {
		return nil
	}
	if l > uint64(len(r.b)) {
		r.err = errBadKey
		return nil
	}
	s := r.b[:l]
	r.b = r.b[l:]
	return s
}

func (r *keyReader) time() time.Time {
	if r.err != nil {
		return time.Time{}
	}
	if len(r.b) < timeSize {
		r.err = errBadKey
		return time.Time{}
	}
	t := decodeTime(r.b)
	r.b = r.b[timeSize:]
	return t
}

// splitKey checks the schema prefix and returns the filter part of the key
// (name and identity, still encoded) and the rest.
func splitKey(key []byte) (filter, rest []byte, err error) {
	if len(key) < len(schema) || string(key[:len(schema)]) != schema {
		return nil, nil, errBadKey
	}
	r := keyReader{b: key[len(schema):]}
	r.bytes()
	r.bytes()
	if r.err != nil {
		return nil, nil, r.err
	}
	return key[:len(key)-len(r.b)], r.b, nil
}

func decodeFilter(filter []byte) stages.FilterRef {
	r := keyReader{b: filter[len(schema):]}
	name := r.bytes()
	identity := r.bytes()
	return stages.FilterRef{Name: string(name), Identity: string(identity)}
}
