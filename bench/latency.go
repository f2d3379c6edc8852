package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"reaction/bench/workload"
	"reaction/graph"
	"reaction/stages"
)

// measureLatency runs the engine on a stream fed at a steady pace and
// measures, for each immediate action the lines make run, the time from
// the write of the line that triggered it to the runner being called with
// its argv.
//
// The stream is `cat FIFO` (a real child process); the harness writes the
// lines into the FIFO one write(2) each, at LatencyRate lines/s, stamping
// each line just before its write. Which line triggers which action is
// worked out beforehand by replaying the lines through the same cores the
// engine uses (Prefilter.Candidates, Extract.Match) and counting per key
// up to the filter's retry (the run lasts seconds, inside any realistic
// window); the first run of each such action is measured. The write stamp
// is taken before the line enters the pipe, so the figure includes the
// `cat` hop: it is an upper bound of "line read → action started".
func (h *harness) measureLatency(ctx context.Context) *Latency {
	lat := &Latency{Lines: h.o.LatencyLines, Rate: h.o.LatencyRate}
	if h.o.LatencyLines < 0 {
		lat.Note = "not measured: disabled (--latency-lines < 0)"
		lat.Lines = 0
		return lat
	}
	if err := h.latencyRun(ctx, lat); err != nil {
		lat.Measured = false
		lat.Note = "not measured: " + err.Error()
	}
	return lat
}

func (h *harness) latencyRun(ctx context.Context, lat *Latency) error {
	var lines [][]byte
	if h.kind != "" {
		lines = workload.Sample(h.kind, h.o.LatencyLines, h.o.Seed+1)
	} else {
		all, err := workload.ReadFile(h.file)
		if err != nil {
			return err
		}
		lines = all[:min(len(all), h.o.LatencyLines)]
	}
	lat.Lines = len(lines)

	fifo := filepath.Join(h.dir, "latency.fifo")
	_ = os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return fmt.Errorf("fifo: %w", err)
	}
	defer os.Remove(fifo)
	// The first stream reads the FIFO; any other stream finishes at once.
	g, err := h.graph([][]string{{"cat", fifo}, {"true"}})
	if err != nil {
		return err
	}
	views := g.Streams()
	if len(views) == 0 {
		return fmt.Errorf("no stream")
	}
	expect := expectedActions(views[0], lines)
	if len(expect) == 0 {
		return fmt.Errorf("no immediate action is triggered by the %d paced lines", len(lines))
	}

	written := make([]atomic.Int64, len(lines))
	var mu sync.Mutex
	seen := map[string]bool{}
	var samples []time.Duration
	runner := &stages.RecordingRunner{Result: func(argv []string) (int, []byte, error) {
		now := time.Now().UnixNano()
		k := strings.Join(argv, "\x00")
		mu.Lock()
		defer mu.Unlock()
		if i, ok := expect[k]; ok && !seen[k] {
			seen[k] = true
			if w := written[i].Load(); w > 0 {
				samples = append(samples, time.Duration(now-w))
			}
		}
		return 0, nil, nil
	}}
	e, err := stages.New(g, stages.Options{Logger: h.log, Runner: runner})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}

	// The earlier measurements' garbage is not the daemon's: collect it now.
	runtime.GC()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	writeErr := make(chan error, 1)
	var wrote time.Duration
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until cat opens it
		if err != nil {
			writeErr <- err
			return
		}
		interval := time.Second / time.Duration(h.o.LatencyRate)
		buf := make([]byte, 0, 1024)
		start := time.Now()
		for i, l := range lines {
			if runCtx.Err() != nil {
				break
			}
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			buf = append(append(buf[:0], l...), '\n')
			written[i].Store(time.Now().UnixNano())
			if _, err := f.Write(buf); err != nil {
				f.Close()
				writeErr <- err
				return
			}
		}
		wrote = time.Since(start)
		writeErr <- f.Close()
	}()

	runErr := e.Run(runCtx)
	var werr error
	select {
	case werr = <-writeErr:
	case <-time.After(2 * time.Second):
		// cat never opened the FIFO: open it ourselves so the writer's open returns.
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		werr = fmt.Errorf("the stream never read the FIFO")
		cancel()
		<-writeErr
	}
	if runErr != nil {
		return fmt.Errorf("engine: %w", runErr)
	}
	if werr != nil {
		return fmt.Errorf("writing the paced lines: %w", werr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	lat.Expected = len(expect)
	lat.Samples = len(samples)
	if wrote > 0 {
		lat.AchievedRate = float64(len(lines)) / wrote.Seconds()
	}
	if len(samples) == 0 {
		return fmt.Errorf("none of the %d expected actions ran", len(expect))
	}
	slices.Sort(samples)
	// Nearest rank: the smallest sample with at least q of them at or below it.
	ms := func(q float64) *float64 {
		i := int(math.Ceil(q*float64(len(samples)))) - 1
		v := float64(samples[max(i, 0)].Nanoseconds()) / 1e6
		return &v
	}
	lat.Measured = true
	lat.P50, lat.P90, lat.P99, lat.Max = ms(0.50), ms(0.90), ms(0.99), ms(1)
	return nil
}

// expectedActions returns, for each immediate action that the lines make
// run on stream v, its argv (joined by NUL) → the index of the line that
// triggers it first.
func expectedActions(v graph.Stream, lines [][]byte) map[string]int {
	pf := stages.NewPrefilter(v.Prefilter)
	counts := make([]map[string]int, len(v.Filters))
	for i := range counts {
		counts[i] = map[string]int{}
	}
	expect := map[string]int{}
	var cands []int
	var buf []byte
	for li, l := range lines {
		cands = pf.Candidates(l, cands[:0])
		for _, ci := range cands {
			f := v.Filters[ci]
			values, _, ok, reason := f.Extract.Match(l)
			if !ok || reason != graph.ReasonOK {
				continue
			}
			buf = buf[:0]
			for _, s := range values {
				buf = binary.AppendUvarint(buf, uint64(len(s)))
				buf = append(buf, s...)
			}
			k := string(buf)
			counts[ci][k]++
			if f.Counter.Retry > 1 && counts[ci][k] < f.Counter.Retry {
				continue
			}
			counts[ci][k] = 0
			for _, a := range f.Scheduler.Actions {
				if a.After != 0 {
					continue
				}
				argv := strings.Join(a.Expand(values), "\x00")
				if _, ok := expect[argv]; !ok {
					expect[argv] = li
				}
			}
		}
	}
	return expect
}
