package stages

import (
	"sync"
	"sync/atomic"
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

	// The lines are in order in data(), line k at offs[k] (possibly with
	// bytes between lines): in view, a window of the chunk the source read
	// them into, or else in buf, the batch's own storage. A line's slice
	// may point into an older array buf outgrew; the bytes at its offset
	// in buf are the same.
	buf   []byte
	offs  []int32
	chunk *chunk // holds a reference on it while set
	view  []byte
}

// data is the bytes the lines are in (see offs).
func (b *Batch) data() []byte {
	if b.chunk != nil {
		return b.view
	}
	return b.buf
}

// chunk is a buffer the source reads into and whose lines batches share
// without copying. refs counts the reader and the batches holding it; the
// last release recycles it.
type chunk struct {
	data []byte
	refs atomic.Int32
}

var chunkPool = sync.Pool{New: func() any { return &chunk{data: make([]byte, chunkSize)} }}

// getChunk returns a chunk with one reference, the caller's.
func getChunk() *chunk {
	c := chunkPool.Get().(*chunk)
	c.refs.Store(1)
	return c
}

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		chunkPool.Put(c)
	}
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
	if b.chunk != nil {
		clear(b.Lines) // the chunk's bytes are not the batch's to keep alive
		b.chunk.release()
		b.chunk, b.view = nil, nil
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
func (b *Batch) Bytes() int { return len(b.data()) }
