package stages

import (
	"sync"
	"time"

	"reaction/graph"
)

// Batch is a group of lines read together. Lines travel in batches so that
// a channel hop costs a few nanoseconds per line instead of one send each.
//
// Ownership: whoever receives a batch owns it, and calls Release once no
// line of it is used any more (values kept beyond that must be copied, as
// graph.Extract.Match does with string conversions). After Release the
// lines' bytes are reused by another batch.
type Batch struct {
	Lines [][]byte  // each points into buf; capacity-limited, so appending to one never overwrites another
	Time  time.Time // when the batch's first line was read

	// buf holds the lines in order, line k at offs[k] (possibly with
	// bytes between lines). A line's slice may point into an older array
	// buf outgrew; the bytes at its offset in buf are the same.
	buf  []byte
	offs []int32
}

// Sizes of pooled batches. A batch that grew past maxPooledBuf (a burst of
// very long lines) is not kept at that size.
const (
	initialBatchBuf = 16 << 10
	maxPooledBuf    = 1 << 20
)

// batchPool recycles batches across stages. It holds no state of its own
// beyond free buffers, so sharing it between engines is harmless.
var batchPool = sync.Pool{New: func() any {
	return &Batch{
		Lines: make([][]byte, 0, graph.DefaultBatchSize),
		offs:  make([]int32, 0, graph.DefaultBatchSize),
		buf:   make([]byte, 0, initialBatchBuf),
	}
}}

// GetBatch returns an empty batch.
func GetBatch() *Batch {
	return batchPool.Get().(*Batch)
}

// Release resets the batch and returns it to the pool. The batch and its
// lines must not be used afterwards.
func (b *Batch) Release() {
	if cap(b.buf) > maxPooledBuf {
		clear(b.Lines) // drop references to the big buffer
		b.buf = make([]byte, 0, initialBatchBuf)
	}
	b.Lines = b.Lines[:0]
	b.offs = b.offs[:0]
	b.buf = b.buf[:0]
	b.Time = time.Time{}
	batchPool.Put(b)
}

// Append copies line into the batch. Tests and benchmarks use it to build
// batches; the source fills its batches in place.
func (b *Batch) Append(line []byte) {
	start := len(b.buf)
	b.buf = append(b.buf, line...)
	b.Lines = append(b.Lines, b.buf[start:len(b.buf):len(b.buf)])
	b.offs = append(b.offs, int32(start))
}

// Bytes is the number of line bytes the batch holds.
func (b *Batch) Bytes() int { return len(b.buf) }
