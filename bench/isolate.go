package bench

import (
	"encoding/binary"
	"time"

	"reaction/graph"
	"reaction/stages"
)

// isolation is the cost of each stage's synchronous core, measured alone
// on in-memory lines, one goroutine, no channel: what one matcher or shard
// goroutine can do at most.
type isolation struct {
	lines       int
	prefilterNs float64 // Prefilter.Candidates, per line
	passed      int     // lines with at least one candidate filter
	extractNs   float64 // Candidates then Extract.Match of each candidate, per line
	matched     int     // counted matches (valid, not ignored)
	counterNs   float64 // Counter.Add, per match
	triggers    int
}

// counted is one match as the counter receives it.
type counted struct {
	filter int // index into the flattened filter list
	key    string
}

// isolate times, over every stream of g (each reads every line, as in the
// engine): the prefilter alone, the prefilter followed by the candidate
// filters' Extract.Match, and Counter.Add of every resulting key. Each
// measurement repeats the lines until minDur has passed.
func isolate(g *graph.Graph, lines [][]byte, minDur time.Duration) isolation {
	iso := isolation{lines: len(lines)}
	if len(lines) == 0 {
		return iso
	}
	var counters []*graph.Counter
	var keys []counted
	for _, v := range g.Streams() {
		pf := stages.NewPrefilter(v.Prefilter)
		cands := make([]int, 0, len(v.Filters))

		passed := 0
		d, reps := repeat(minDur, func() {
			passed = 0
			for _, l := range lines {
				cands = pf.Candidates(l, cands[:0])
				if len(cands) > 0 {
					passed++
				}
			}
		})
		iso.prefilterNs += perItem(d, reps, len(lines))
		iso.passed += passed

		matched := 0
		var sink []string
		d, reps = repeat(minDur, func() {
			matched = 0
			for _, l := range lines {
				cands = pf.Candidates(l, cands[:0])
				for _, ci := range cands {
					values, _, ok, reason := v.Filters[ci].Extract.Match(l)
					if ok && reason == graph.ReasonOK {
						matched++
						sink = values
					}
				}
			}
		})
		_ = sink
		iso.extractNs += perItem(d, reps, len(lines))
		iso.matched += matched

		// The keys, collected outside the timed loops.
		base := len(counters)
		for _, f := range v.Filters {
			counters = append(counters, f.Counter)
		}
		var buf []byte
		for _, l := range lines {
			cands = pf.Candidates(l, cands[:0])
			for _, ci := range cands {
				values, _, ok, reason := v.Filters[ci].Extract.Match(l)
				if ok && reason == graph.ReasonOK {
					buf = buf[:0]
					for _, s := range values {
						buf = binary.AppendUvarint(buf, uint64(len(s)))
						buf = append(buf, s...)
					}
					keys = append(keys, counted{base + ci, string(buf)})
				}
			}
		}
	}
	if len(keys) > 0 {
		t0 := time.Now()
		triggers := 0
		d, reps := repeat(minDur, func() {
			cs := make([]*stages.Counter, len(counters))
			for i, c := range counters {
				cs[i] = stages.NewCounter(c.Retry, c.Period, c.MaxKeys)
			}
			triggers = 0
			for i, k := range keys {
				if cs[k.filter].Add(k.key, t0.Add(time.Duration(i)*10*time.Microsecond)) {
					triggers++
				}
			}
		})
		iso.counterNs = perItem(d, reps, len(keys))
		iso.triggers = triggers
	}
	return iso
}

// repeat runs f until minDur has passed (at least once) and returns the
// time taken and the number of runs.
func repeat(minDur time.Duration, f func()) (time.Duration, int) {
	start := time.Now()
	n := 0
	for {
		f()
		n++
		if d := time.Since(start); d >= minDur {
			return d, n
		}
	}
}

func perItem(d time.Duration, reps, items int) float64 {
	if items == 0 || reps == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / float64(reps) / float64(items)
}
