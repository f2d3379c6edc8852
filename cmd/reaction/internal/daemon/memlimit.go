package daemon

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultMemoryLimit is the Go soft memory limit `reaction start` keeps
// when GOMEMLIMIT is not set. Without a limit the heap grows to twice
// what is live before a collection (GOGC=100): a million tracked keys
// (about 100 MiB live) peak near 230 MB of RSS; with it, near 150 MB, at
// the cost of more frequent collections once the heap nears the limit
// (measured: 0.3-0.4 s of GC CPU instead of 0.1 s over 2,000,000 lines).
// A lower limit saves little more: live heap and span fragmentation are
// about 125 MiB. A daemon whose live heap is a few MiB never notices it.
const DefaultMemoryLimit = 120 << 20

// MemoryLimit keeps a Go soft memory limit while the live heap fits
// under it. When the live heap outgrows the limit, the limit cannot be
// met and the collector would run back to back (up to half the CPU, the
// runtime's cap): the limit follows the live heap instead, at
// headroom times it, re-evaluated every period, and comes back to the
// base once that fits under it. The base is kept as long as it leaves an
// eighth of the live heap (baseHeadroom) over it: the collector then runs
// more often than a raised limit would have it, but nowhere near back to
// back, and a heap that hovers near the base (a million keys under a
// flood, its commits coming and going) is not given a quarter more at the
// first sample that catches a commit in flight. Lifting the limit altogether would leave
// GOGC alone in charge, and the heap would grow to twice what is live.
//
// It must not be used when the operator has set GOMEMLIMIT: that limit
// is theirs.
type MemoryLimit struct {
	base   int64
	old    int64 // the limit before, restored when Run returns
	log    *slog.Logger
	period time.Duration
	set    func(int64) int64
	live   func() uint64
	limit  int64 // the limit set now
}

// headroom is the heap a raised limit allows over the live heap, in
// quarters of it: the collector runs when the heap has grown by a quarter
// of what is live, rather than doubled it (GOGC=100).
const headroom = 5 // quarters

// NewMemoryLimit sets limit as the soft memory limit now; Run then keeps
// it. A nil logger discards.
func NewMemoryLimit(limit int64, log *slog.Logger) *MemoryLimit {
	return newMemoryLimit(limit, log, time.Second, debug.SetMemoryLimit, liveHeap)
}

func newMemoryLimit(limit int64, log *slog.Logger, period time.Duration, set func(int64) int64, live func() uint64) *MemoryLimit {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &MemoryLimit{base: limit, log: log, period: period, set: set, live: live, limit: limit}
	m.old = set(limit)
	return m
}

// Run looks at the live heap every period and raises, lowers or restores
// the limit until ctx is done, then restores the limit that was in place
// before NewMemoryLimit.
func (m *MemoryLimit) Run(ctx context.Context) error {
	defer m.set(m.old)
	t := time.NewTicker(m.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.step(m.live())
		}
	}
}

// baseHeadroom is the least heap the base limit must leave over the live
// heap, in eighths of it, for the base to be kept.
const baseHeadroom = 9 // eighths

// step applies the rule to the live heap measured by the last collection.
func (m *MemoryLimit) step(live uint64) {
	want := int64(math.MaxInt64)
	if q := live / 4; q <= math.MaxInt64/headroom {
		want = max(m.base, int64(q)*headroom)
	}
	if m.limit == m.base && live <= uint64(m.base)/baseHeadroom*8 {
		want = m.base
	}
	if want == m.limit {
		return
	}
	switch {
	case m.limit == m.base:
		m.log.Warn("memory limit raised: the live heap outgrew it, the limit follows it; set GOMEMLIMIT to choose a limit",
			"live_mib", live>>20, "limit_mib", want>>20, "base_mib", m.base>>20)
	case want == m.base:
		m.log.Info("memory limit restored", "live_mib", live>>20, "limit_mib", m.base>>20)
	}
	m.limit = want
	m.set(want)
}

// liveHeap is the heap marked live by the last collection.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
