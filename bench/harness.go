// Package bench is the harness behind `reaction bench` and the Go
// benchmarks of the whole pipeline: it compiles a configuration (a built-in
// one per workload, or the operator's), generates a workload with
// bench/workload, runs the real engine in-process on a `cat` stream of it
// with a recording runner in place of the action commands, and reports
// throughput, per-stage figures, allocations, memory, line-to-action
// latency and the settings used; optionally it also times the real daemon,
// this executable as a child `reaction start`, on the same file.
//
// It must not measure anything but the real thing: the graph comes from
// compile.Load (the path `reaction start` takes), the stream is a real
// child process, and the per-stage figures in isolation call the stages'
// synchronous cores (Prefilter.Candidates, Extract.Match, Counter.Add).
// It never runs an action command, and it never reports a figure it did
// not measure: what could not be measured says so.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"reaction/bench/workload"
	"reaction/compile"
	"reaction/graph"
	"reaction/stages"
	"reaction/stages/nutsstore"
)

// Defaults of Options.
const (
	DefaultLines        = 1_000_000
	DefaultSeed         = 1
	DefaultLatencyLines = 50_000
	DefaultLatencyRate  = 10_000
	DefaultF2BFilter    = "/etc/fail2ban/filter.d/sshd.conf"
)

// Options say what to run. Zero values take the defaults.
type Options struct {
	// Config is a configuration file or directory; "" selects the built-in
	// configuration of the workload kind (sshd for a log file). Every
	// stream of a given configuration reads the workload: its cmd is
	// replaced by `cat FILE`.
	Config string
	// Workload is sshd, nginx, mixed (generated) or the path of a log file
	// ("" = sshd).
	Workload string
	// Lines is the number of generated lines (ignored for a log file).
	Lines int
	// Seed of the generated workload (0 = DefaultSeed).
	Seed uint64
	// Attackers and AttackFraction shape the generated workload (0 = the
	// generator's defaults, 1000 and 0.25; see workload.Params).
	Attackers      int
	AttackFraction float64
	// SaveWorkload, when set, is where the generated workload is written
	// (and kept), to run other tools or `reaction start` on the same lines.
	SaveWorkload string
	// Filters pads the stream of a built-in configuration with filters
	// whose literals occur in no line, up to this many filters in all.
	Filters int

	// Knobs, applied to the compiled graph before it runs (0 = as compiled).
	BatchSize int // lines per batch, source → prefilter
	LineQueue int // batches buffered between source and prefilter
	Shards    int // counter shards
	Workers   int // prefilter and extract goroutines per stream

	// MemoryLimit, when positive, is the Go soft memory limit of the
	// process during the pipeline run (restored after it): `reaction
	// bench` passes the one `reaction start` keeps. The harness's own work
	// (generating the workload, reading it back for the per-stage timings)
	// runs under the process's limit.
	MemoryLimit int64

	// StateDir, when set, gives the engine a nutsstore database in a fresh
	// subdirectory of it (removed afterwards): the cost of persistence.
	StateDir string

	// LatencyLines is the size of the paced latency run (0 = default,
	// negative = no latency run); LatencyRate its pace in lines/s.
	LatencyLines int
	LatencyRate  int

	// Daemon also measures the real daemon: Executable started as a child
	// `reaction start` on a `cat` stream of the workload with the built-in
	// filters, a retry never reached (every match counted and persisted),
	// actions `true <ip>`, and state in a fresh directory (under StateDir
	// when set), timed from exec to exit. Against "fail2ban" implies it
	// on the workloads the comparison applies to.
	Daemon bool
	// Executable is the reaction binary of the daemon run ("" = this
	// process's executable, os.Executable).
	Executable string

	// Against names a tool to compare with: "" or "fail2ban".
	Against string
	// F2BFilter is the fail2ban filter file (default DefaultF2BFilter).
	F2BFilter string

	// CPUProfile and MemProfile, when set, receive pprof profiles of the
	// pipeline run (CPU during the run, heap after it).
	CPUProfile, MemProfile string

	// TempDir is where the workload and the built-in configuration are
	// written ("" = a new directory under os.TempDir, removed afterwards).
	TempDir string
	// Logger receives the engine's logs (nil = discarded).
	Logger *slog.Logger
	// MinIsolation is the least time each per-stage measurement runs
	// (0 = 200ms); the lines are processed again until it has passed.
	MinIsolation time.Duration
}

// ConfigError is a configuration that could not be loaded. It wraps the
// compile error (a *compile.Errors for a wrong configuration).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "configuration: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// UsageError is an Options combination that makes no sense.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Run runs the benchmark described by o and returns its report.
func Run(ctx context.Context, o Options) (*Report, error) {
	h, err := prepare(o)
	if err != nil {
		return nil, err
	}
	defer h.cleanup()

	rep := &Report{
		Workload:  h.workloadName,
		Config:    h.configName,
		GoVersion: runtime.Version(),
		CPUs:      runtime.NumCPU(),
		Procs:     runtime.GOMAXPROCS(0),
		LoadAvg:   loadAverage(),
	}

	// 1. The whole pipeline.
	g, err := h.graph([][]string{{"cat", h.file}})
	if err != nil {
		return nil, err
	}
	rep.Settings = settingsOf(g, o.StateDir != "")
	p, err := h.runPipeline(ctx, g)
	if err != nil {
		return nil, err
	}
	p.fill(rep, h.expectedBans)
	if p.memoryLimit != math.MaxInt64 {
		rep.MemoryLimitBytes = &p.memoryLimit
	}

	// 2. Each stage's synchronous core in isolation, on the same lines.
	lines, err := workload.ReadFile(h.file)
	if err != nil {
		return nil, fmt.Errorf("reading the workload back: %w", err)
	}
	rep.Stages.fillIsolated(isolate(g, lines, h.o.MinIsolation))
	lines = nil

	// 3. Line → action latency at a steady pace.
	rep.Latency = h.measureLatency(ctx)

	// 4. The real daemon, a child process, on the same file.
	if h.wantDaemon() {
		rep.Daemon = h.runDaemon(ctx, rep.Lines)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}

	// 5. Another tool on the same file.
	if o.Against != "" {
		rep.Against = h.against(ctx, rep)
	}
	return rep, ctx.Err()
}

func isKind(w string) bool {
	switch workload.Workload(w) {
	case workload.SSHD, workload.Nginx, workload.Mixed:
		return true
	}
	return false
}

// harness is one Run's prepared inputs.
type harness struct {
	o            Options
	dir          string
	removeDir    bool
	file         string            // the workload, one line per line
	kind         workload.Workload // the generator kind, "" for a log file
	expectedBans []string          // the truth's bans at retry 3; nil when unknown (log file, mixed)
	configPath   string            // compiled by compile.Load
	builtin      bool
	workloadName string
	configName   string
	log          *slog.Logger
}

func prepare(o Options) (*harness, error) {
	if o.Workload == "" {
		o.Workload = string(workload.SSHD)
	}
	if o.Lines == 0 {
		o.Lines = DefaultLines
	}
	if o.Lines < 0 {
		return nil, &UsageError{"--lines must be positive"}
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.LatencyLines == 0 {
		o.LatencyLines = DefaultLatencyLines
	}
	if o.LatencyRate <= 0 {
		o.LatencyRate = DefaultLatencyRate
	}
	if o.F2BFilter == "" {
		o.F2BFilter = DefaultF2BFilter
	}
	if o.MinIsolation <= 0 {
		o.MinIsolation = 200 * time.Millisecond
	}
	if o.BatchSize < 0 || o.LineQueue < 0 || o.Shards < 0 || o.Workers < 0 || o.Filters < 0 {
		return nil, &UsageError{"--batch-size, --line-queue, --shards, --workers and --filters must not be negative"}
	}
	if o.MemoryLimit < 0 {
		return nil, &UsageError{"the memory limit must not be negative"}
	}
	if o.Attackers < 0 || o.AttackFraction > 1 || o.AttackFraction != o.AttackFraction {
		return nil, &UsageError{"--attackers must not be negative and --attack-fraction must be at most 1"}
	}
	if o.SaveWorkload != "" && !isKind(o.Workload) {
		return nil, &UsageError{"--save-workload saves a generated workload: --workload must be sshd, nginx or mixed"}
	}
	if o.Filters > 0 && o.Config != "" {
		return nil, &UsageError{"--filters pads a built-in configuration: it cannot be used with -c"}
	}
	if o.Daemon && o.Config != "" {
		return nil, &UsageError{"--daemon runs the built-in configuration's filters: it cannot be used with -c"}
	}
	if o.Against != "" && o.Against != "fail2ban" {
		return nil, &UsageError{fmt.Sprintf("--against: unknown tool %q (known: fail2ban)", o.Against)}
	}
	h := &harness{o: o, log: o.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	switch k := workload.Workload(o.Workload); k {
	case workload.SSHD, workload.Nginx, workload.Mixed:
		h.kind = k
		h.workloadName = string(k)
	default:
		st, err := os.Stat(o.Workload)
		if err != nil {
			return nil, &UsageError{fmt.Sprintf("--workload: %q is neither sshd, nginx, mixed nor a readable file: %v", o.Workload, err)}
		}
		if st.IsDir() {
			return nil, &UsageError{fmt.Sprintf("--workload: %s is a directory", o.Workload)}
		}
		abs, err := filepath.Abs(o.Workload)
		if err != nil {
			return nil, err
		}
		h.file = abs
		h.workloadName = "file " + o.Workload
	}

	h.dir = o.TempDir
	if h.dir == "" {
		d, err := os.MkdirTemp("", "reaction-bench-")
		if err != nil {
			return nil, err
		}
		h.dir, h.removeDir = d, true
	}
	ok := false
	defer func() {
		if !ok {
			h.cleanup()
		}
	}()
	if h.kind != "" {
		h.file = filepath.Join(h.dir, string(h.kind)+".log")
		if o.SaveWorkload != "" {
			abs, err := filepath.Abs(o.SaveWorkload)
			if err != nil {
				return nil, err
			}
			h.file = abs
		}
		f, err := os.Create(h.file)
		if err != nil {
			return nil, err
		}
		truth, err := workload.Generate(f, h.kind, workload.Params{Lines: o.Lines, Seed: o.Seed, Attackers: o.Attackers, AttackFraction: o.AttackFraction})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("generating the workload: %w", err)
		}
		// Only the bans are kept: the truth's map (one entry per address)
		// must not weigh on the run's memory figures.
		if h.kind != workload.Mixed {
			h.expectedBans = truth.Banned(3)
			if h.expectedBans == nil {
				h.expectedBans = []string{}
			}
		}
	}

	if o.Config == "" {
		kind := h.kind
		if kind == "" {
			kind = workload.SSHD
		}
		h.builtin = true
		h.configPath = filepath.Join(h.dir, "reaction-bench-"+string(kind)+".yml")
		if err := os.WriteFile(h.configPath, []byte(builtinYAML(kind, []string{"cat", h.file}, o.Filters)), 0o600); err != nil {
			return nil, err
		}
		h.configName = "built-in " + string(kind)
	} else {
		h.configPath = o.Config
		h.configName = o.Config
	}
	// Compile once now: a wrong configuration fails before anything runs.
	if _, err := h.graph(nil); err != nil {
		return nil, err
	}
	ok = true
	return h, nil
}

func (h *harness) cleanup() {
	if h.removeDir {
		_ = os.RemoveAll(h.dir)
	}
}

// graph compiles the configuration (the one compile path), points its
// streams at cmds (stream i gets cmds[min(i, len-1)]; nil: unchanged) and
// applies the knobs.
func (h *harness) graph(cmds [][]string) (*graph.Graph, error) {
	res, err := compile.Load(h.configPath)
	if err != nil {
		return nil, &ConfigError{err}
	}
	g := res.Graph
	if len(cmds) > 0 {
		for i, n := range g.Of(graph.KindSource) {
			n.Source.Cmd = slices.Clone(cmds[min(i, len(cmds)-1)])
		}
	}
	applyKnobs(g, h.o)
	return g, nil
}

// applyKnobs overrides the graph's runtime sizes: they are plain node and
// edge fields, the ones `reaction graph` shows.
func applyKnobs(g *graph.Graph, o Options) {
	for _, n := range g.Nodes {
		switch n.Kind {
		case graph.KindSource:
			if o.BatchSize > 0 {
				n.Source.BatchSize = o.BatchSize
			}
		case graph.KindCounter:
			if o.Shards > 0 {
				n.Counter.Shards = o.Shards
			}
		case graph.KindPrefilter:
			if o.Workers > 0 {
				n.Prefilter.Workers = o.Workers
			}
		}
	}
	if o.LineQueue > 0 {
		for i := range g.Edges {
			e := &g.Edges[i]
			if strings.HasPrefix(e.From, graph.SourceID("")) && strings.HasPrefix(e.To, graph.PrefilterID("")) {
				e.Capacity = o.LineQueue
			}
		}
	}
}

// settingsOf reads back the sizes the engine will use.
func settingsOf(g *graph.Graph, state bool) Settings {
	s := Settings{BatchSize: graph.DefaultBatchSize, LineQueue: graph.DefaultLineQueue, Shards: 1, Workers: 1, MatchQueue: graph.DefaultMatchQueue, State: state}
	for _, v := range g.Streams() {
		s.Streams++
		if n := g.Node(graph.PrefilterID(v.Source.Stream)); n != nil && n.Prefilter != nil {
			s.Workers = max(s.Workers, n.Prefilter.Workers)
		}
		s.Filters += len(v.Filters)
		if v.Source.BatchSize > 0 {
			s.BatchSize = v.Source.BatchSize
		}
		for _, e := range g.Out(graph.SourceID(v.Source.Stream)) {
			if e.To == graph.PrefilterID(v.Source.Stream) && e.Capacity > 0 {
				s.LineQueue = e.Capacity
			}
		}
		for _, f := range v.Filters {
			s.Shards = max(s.Shards, f.Counter.Shards)
			for _, e := range g.Out(graph.ExtractID(f.Extract.Stream, f.Extract.Filter)) {
				if e.Capacity > 0 {
					s.MatchQueue = e.Capacity
				}
			}
		}
	}
	return s
}

// pipelineRun is what one engine run measured.
type pipelineRun struct {
	elapsed     time.Duration
	stats       map[string]map[string]uint64
	calls       [][]string
	before      runtime.MemStats
	after       runtime.MemStats
	peakHeap    uint64
	peakRSS     uint64
	rssMeasure  bool
	gcCPU       float64 // seconds
	memoryLimit int64   // during the run; math.MaxInt64: none
}

// runPipeline runs the engine on g until its streams have finished.
func (h *harness) runPipeline(ctx context.Context, g *graph.Graph) (*pipelineRun, error) {
	runner := &stages.RecordingRunner{}
	opts := stages.Options{Logger: h.log, Runner: runner}
	if h.o.StateDir != "" {
		if err := os.MkdirAll(h.o.StateDir, 0o700); err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(h.o.StateDir, "reaction-bench-state-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		st, err := nutsstore.Open(dir, nutsstore.Options{Logger: h.log})
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		defer st.Close()
		opts.Store = st
	}
	e, err := stages.New(g, opts)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}

	if h.o.MemoryLimit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(h.o.MemoryLimit))
	}
	p := &pipelineRun{memoryLimit: debug.SetMemoryLimit(-1)}
	runtime.GC()
	p.rssMeasure = resetPeakRSS()
	runtime.ReadMemStats(&p.before)
	gcBefore := gcCPUSeconds()
	stopSampler := sampleHeap(10 * time.Millisecond)
	if h.o.CPUProfile != "" {
		f, err := os.Create(h.o.CPUProfile)
		if err != nil {
			stopSampler()
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			stopSampler()
			return nil, err
		}
	}
	start := time.Now()
	runErr := e.Run(ctx)
	p.elapsed = time.Since(start)
	if h.o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	p.peakHeap = stopSampler()
	p.gcCPU = gcCPUSeconds() - gcBefore
	runtime.ReadMemStats(&p.after)
	p.peakHeap = max(p.peakHeap, p.after.HeapInuse)
	if p.rssMeasure {
		p.peakRSS = peakRSS()
	}
	if h.o.MemProfile != "" {
		if err := writeHeapProfile(h.o.MemProfile); err != nil {
			return nil, err
		}
	}
	if runErr != nil {
		return nil, fmt.Errorf("engine: %w", runErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.stats = e.Stats()
	p.calls = runner.Calls()
	return p, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fill copies the run's figures into the report.
func (p *pipelineRun) fill(r *Report, expectedBans []string) {
	var lines, in, passed, dropped, cut uint64
	for id, m := range p.stats {
		kind, _, _ := strings.Cut(id, ":")
		switch graph.Kind(kind) {
		case graph.KindSource:
			lines += m["lines"]
			cut += m["cut"]
		case graph.KindPrefilter:
			in += m["in"]
			passed += m["passed"]
			dropped += m["dropped"]
		case graph.KindExtract:
			r.Stages.Extract.Matched += m["matched"]
			r.Stages.Extract.Ignored += m["ignored"]
			r.Stages.Extract.NoMatch += m["nomatch"]
		case graph.KindCounter:
			r.Stages.Counter.Matches += m["matches"]
			r.Stages.Counter.Triggers += m["triggers"]
			r.Stages.Counter.Keys += m["keys"]
			r.Stages.Counter.Evictions += m["evictions"]
		case graph.KindExecutor:
			r.Actions.Ran = m["ran"]
			r.Actions.Failed = m["failed"]
			r.Actions.Dropped = m["dropped"]
		}
	}
	r.Lines = lines
	r.CutLines = cut
	r.Seconds = p.elapsed.Seconds()
	if r.Seconds > 0 {
		r.LinesPerSecond = float64(lines) / r.Seconds
	}
	r.Stages.Prefilter.In, r.Stages.Prefilter.Passed, r.Stages.Prefilter.Dropped = in, passed, dropped
	if in > 0 {
		r.Stages.Prefilter.PassRate = float64(passed) / float64(in)
	}
	r.banValues = BanArgs(p.calls)
	r.Actions.Bans = uint64(len(r.banValues))
	if expectedBans != nil {
		n := len(expectedBans)
		r.Actions.ExpectedBans = &n
	}
	if lines > 0 {
		r.AllocsPerLine = float64(p.after.Mallocs-p.before.Mallocs) / float64(lines)
		r.BytesPerLine = float64(p.after.TotalAlloc-p.before.TotalAlloc) / float64(lines)
	}
	r.PeakHeapBytes = p.peakHeap
	r.SysBytes = p.after.Sys
	r.GCCycles = p.after.NumGC - p.before.NumGC
	r.GCCPUSeconds = p.gcCPU
	if p.rssMeasure {
		r.PeakRSSBytes = p.peakRSS
	}
}

// BanArgs returns the values of the ban commands recorded, sorted (for
// tests: compare with workload.Truth.Banned).
func BanArgs(calls [][]string) []string {
	var out []string
	for _, c := range calls {
		if len(c) == 2 && c[0] == BanCommand {
			out = append(out, c[1])
		}
	}
	slices.Sort(out)
	return out
}
