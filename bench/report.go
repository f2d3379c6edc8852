package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ReportVersion is the version of the JSON report; it changes only when a
// key changes meaning or goes away (new keys may be added).
const ReportVersion = 1

// Report is what a Run measured. Its JSON form is the documented output
// of `reaction bench --format json` (see the README, "Benchmarks").
type Report struct {
	Version  int    `json:"version"`
	Workload string `json:"workload"` // sshd, nginx, mixed or "file PATH"
	Config   string `json:"config"`   // "built-in KIND" or the configuration's path

	// The whole pipeline, from Engine.Run to its return.
	Lines          uint64  `json:"lines"`     // lines read by the sources (every stream)
	CutLines       uint64  `json:"cut_lines"` // lines longer than the cap, cut
	Seconds        float64 `json:"seconds"`
	LinesPerSecond float64 `json:"lines_per_second"`

	Stages  Stages  `json:"stages"`
	Actions Actions `json:"actions"`

	AllocsPerLine float64 `json:"allocs_per_line"` // heap allocations during the run / lines
	BytesPerLine  float64 `json:"bytes_per_line"`  // bytes allocated during the run / lines
	PeakHeapBytes uint64  `json:"peak_heap_bytes"` // largest HeapInuse sampled every 10ms
	PeakRSSBytes  uint64  `json:"peak_rss_bytes"`  // VmHWM of the process during the run; 0: unknown
	SysBytes      uint64  `json:"sys_bytes"`       // memory obtained from the OS by the Go runtime
	GCCycles      uint32  `json:"gc_cycles"`
	// GCCPUSeconds is the runtime's estimate of the CPU time the garbage
	// collector used during the run (runtime/metrics
	// /cpu/classes/gc/total:cpu-seconds).
	GCCPUSeconds float64 `json:"gc_cpu_seconds"`
	// MemoryLimitBytes is the Go soft memory limit during the run
	// (Options.MemoryLimit or GOMEMLIMIT); null: none.
	MemoryLimitBytes *int64 `json:"memory_limit_bytes"`

	Latency  *Latency `json:"latency_ms"`
	Settings Settings `json:"settings"`
	Daemon   *Daemon  `json:"daemon"`  // null unless --daemon or --against fail2ban
	Against  *Against `json:"against"` // null unless --against

	GoVersion string `json:"go_version"`
	CPUs      int    `json:"cpus"`
	Procs     int    `json:"gomaxprocs"`
	// LoadAvg is the machine's 1-minute load average when the run
	// started (-1: unknown): figures taken on a busy machine are low.
	LoadAvg float64 `json:"load_average"`

	banValues []string
}

// Bans returns the values the ban actions ran for, sorted.
func (r *Report) Bans() []string { return r.banValues }

// Stages are the per-stage figures: counters from Engine.Stats (summed
// over streams and filters) and the cost of each stage's synchronous core
// timed alone on the same lines.
type Stages struct {
	Prefilter PrefilterStage `json:"prefilter"`
	Extract   ExtractStage   `json:"extract"`
	Counter   CounterStage   `json:"counter"`
}

type PrefilterStage struct {
	In             uint64  `json:"in"`
	Passed         uint64  `json:"passed"`  // lines with at least one candidate filter
	Dropped        uint64  `json:"dropped"` // lines no filter can match
	PassRate       float64 `json:"pass_rate"`
	NsPerLine      float64 `json:"ns_per_line"` // Prefilter.Candidates alone
	LinesPerSecond float64 `json:"lines_per_second"`
}

type ExtractStage struct {
	Matched uint64 `json:"matched"`
	Ignored uint64 `json:"ignored"`
	NoMatch uint64 `json:"nomatch"` // passed by the prefilter, matched by no regex
	// NsPerLine is Candidates then Extract.Match of each candidate, per
	// line: what a stream's matcher goroutine spends (cumulative, the
	// prefilter included).
	NsPerLine      float64 `json:"ns_per_line"`
	LinesPerSecond float64 `json:"lines_per_second"`
}

type CounterStage struct {
	Matches          uint64  `json:"matches"`
	Triggers         uint64  `json:"triggers"`
	Keys             uint64  `json:"keys"` // tracked at the end
	Evictions        uint64  `json:"evictions"`
	NsPerMatch       float64 `json:"ns_per_match"` // Counter.Add alone
	MatchesPerSecond float64 `json:"matches_per_second"`
}

// Actions are the executor's counters and the ban commands recorded.
type Actions struct {
	Ran          uint64 `json:"ran"`
	Failed       uint64 `json:"failed"`
	Dropped      uint64 `json:"dropped"`
	Bans         uint64 `json:"bans"`          // commands whose argv[0] is "ban" (built-in configurations)
	ExpectedBans *int   `json:"expected_bans"` // the generator's truth at retry 3; null for a log file or mixed
}

// Settings are the runtime sizes the run used.
type Settings struct {
	BatchSize  int  `json:"batch_size"`  // lines per batch, source → prefilter
	LineQueue  int  `json:"line_queue"`  // batches buffered, source → prefilter
	Shards     int  `json:"shards"`      // counter shards
	Workers    int  `json:"workers"`     // prefilter and extract goroutines per stream
	MatchQueue int  `json:"match_queue"` // match batches buffered towards each shard
	Streams    int  `json:"streams"`
	Filters    int  `json:"filters"`
	State      bool `json:"state"` // a nutsstore database was used
}

// Latency is the time from a line's write into the stream to the action it
// triggers being started, in milliseconds. P* are null when not measured.
type Latency struct {
	Measured     bool     `json:"measured"`
	Lines        int      `json:"lines"`
	Rate         int      `json:"rate"`          // target lines/s
	AchievedRate float64  `json:"achieved_rate"` // lines/s actually written
	Expected     int      `json:"expected"`      // actions the lines should start
	Samples      int      `json:"samples"`       // actions measured
	P50          *float64 `json:"p50"`
	P90          *float64 `json:"p90"`
	P99          *float64 `json:"p99"`
	Max          *float64 `json:"max"`
	Note         string   `json:"note,omitempty"`
}

// Against is the comparison with another tool on the same file.
type Against struct {
	Tool           string   `json:"tool"`
	Filter         string   `json:"filter"`
	Command        []string `json:"command,omitempty"`
	Ran            bool     `json:"ran"`
	Lines          uint64   `json:"lines"`
	Matched        *uint64  `json:"matched"`
	Seconds        float64  `json:"seconds"`
	LinesPerSecond float64  `json:"lines_per_second"`
	Ratio          float64  `json:"ratio"` // the in-process pipeline's lines/s ÷ the tool's; 0 when not run
	// DaemonRatio is the daemon run's lines/s ÷ the tool's; null when
	// either was not measured.
	DaemonRatio *float64 `json:"daemon_ratio"`
	Note        string   `json:"note,omitempty"`
}

func (s *Stages) fillIsolated(iso isolation) {
	rate := func(ns float64) float64 {
		if ns <= 0 {
			return 0
		}
		return 1e9 / ns
	}
	s.Prefilter.NsPerLine = iso.prefilterNs
	s.Prefilter.LinesPerSecond = rate(iso.prefilterNs)
	s.Extract.NsPerLine = iso.extractNs
	s.Extract.LinesPerSecond = rate(iso.extractNs)
	s.Counter.NsPerMatch = iso.counterNs
	s.Counter.MatchesPerSecond = rate(iso.counterNs)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	r.Version = ReportVersion
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "reaction bench: %s workload, %s configuration (%s, %d CPUs, GOMAXPROCS %d, load average %.2f)\n\n",
		r.Workload, r.Config, r.GoVersion, r.CPUs, r.Procs, r.LoadAvg)

	fmt.Fprintf(&b, "pipeline (real engine, `cat` stream, actions recorded not run)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  throughput\t%s lines in %.3f s = %s lines/s\n", count(r.Lines), r.Seconds, count(uint64(r.LinesPerSecond)))
	fmt.Fprintf(tw, "  allocations\t%.2f allocs/line, %.1f bytes/line, %d GC cycles (%.2f s of GC CPU)\n", r.AllocsPerLine, r.BytesPerLine, r.GCCycles, r.GCCPUSeconds)
	rss := "unknown"
	if r.PeakRSSBytes > 0 {
		rss = mb(r.PeakRSSBytes)
	}
	limit := "none"
	if r.MemoryLimitBytes != nil {
		limit = mib(uint64(*r.MemoryLimitBytes))
	}
	fmt.Fprintf(tw, "  memory\tpeak heap %s, peak RSS %s, Go runtime sys %s, Go memory limit %s\n", mb(r.PeakHeapBytes), rss, mb(r.SysBytes), limit)
	bans := fmt.Sprintf("%s bans", count(r.Actions.Bans))
	if r.Actions.ExpectedBans != nil {
		bans += fmt.Sprintf(" (generator's truth: %s)", count(uint64(*r.Actions.ExpectedBans)))
	}
	fmt.Fprintf(tw, "  actions\t%s; executor ran %s, failed %s, dropped %s\n", bans, count(r.Actions.Ran), count(r.Actions.Failed), count(r.Actions.Dropped))
	if r.CutLines > 0 {
		fmt.Fprintf(tw, "  cut lines\t%s\n", count(r.CutLines))
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nstages (counts from the run; cost of each core timed alone on the same lines)\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	p, x, c := r.Stages.Prefilter, r.Stages.Extract, r.Stages.Counter
	fmt.Fprintf(tw, "  stage\tcounts\tns/item\titems/s\t\n")
	fmt.Fprintf(tw, "  prefilter\tin %s, passed %s (%.1f%%)\t%.1f /line\t%s\t\n", count(p.In), count(p.Passed), 100*p.PassRate, p.NsPerLine, count(uint64(p.LinesPerSecond)))
	fmt.Fprintf(tw, "  + extract\tmatched %s, ignored %s, no match %s\t%.1f /line\t%s\t\n", count(x.Matched), count(x.Ignored), count(x.NoMatch), x.NsPerLine, count(uint64(x.LinesPerSecond)))
	fmt.Fprintf(tw, "  counter\tmatches %s, triggers %s, keys %s, evicted %s\t%.1f /match\t%s\t\n", count(c.Matches), count(c.Triggers), count(c.Keys), count(c.Evictions), c.NsPerMatch, count(uint64(c.MatchesPerSecond)))
	tw.Flush()

	if l := r.Latency; l != nil {
		fmt.Fprintf(&b, "\nlatency (line written into the stream → action started)\n")
		if l.Measured {
			fmt.Fprintf(&b, "  %s lines at %s lines/s (achieved %s): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (%d of %d actions)\n",
				count(uint64(l.Lines)), count(uint64(l.Rate)), count(uint64(l.AchievedRate)), *l.P50, *l.P90, *l.P99, *l.Max, l.Samples, l.Expected)
		} else {
			fmt.Fprintf(&b, "  %s\n", l.Note)
		}
	}

	s := r.Settings
	state := "off"
	if s.State {
		state = "on (nutsstore)"
	}
	fmt.Fprintf(&b, "\nsettings\n  batch size %d lines, line queue %d batches, workers %d, shards %d, match queue %d batches, %d stream(s), %d filter(s), state %s\n",
		s.BatchSize, s.LineQueue, s.Workers, s.Shards, s.MatchQueue, s.Streams, s.Filters, state)

	if d := r.Daemon; d != nil {
		fmt.Fprintf(&b, "\ndaemon (`reaction start` child, `cat` stream, state on, retry %s never reached, actions `true <ip>`)\n", count(uint64(d.Retry)))
		if d.Ran {
			tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "  throughput\t%s lines in %.3f s (exec to exit 0) = %s lines/s\n", count(d.Lines), d.Seconds, count(uint64(d.LinesPerSecond)))
			cores := 0.0
			if d.Seconds > 0 {
				cores = d.CPUSeconds / d.Seconds
			}
			fmt.Fprintf(tw, "  cpu\tuser %.2f s + sys %.2f s = %.2f s (%.2f cores; with cat)\n", d.UserSeconds, d.SystemSeconds, d.CPUSeconds, cores)
			fmt.Fprintf(tw, "  memory\tpeak RSS %s (maxrss; the harness had %s at the fork); state directory %s on disk\n", mb(d.PeakRSSBytes), mb(d.HarnessRSSBytes), mb(d.StateBytes))
			tw.Flush()
		}
		if d.Note != "" {
			fmt.Fprintf(&b, "  %s\n", d.Note)
		}
	}

	if a := r.Against; a != nil {
		fmt.Fprintf(&b, "\nagainst %s\n", a.Tool)
		if a.Ran {
			fmt.Fprintf(&b, "  %s: %s lines in %.2f s = %s lines/s", strings.Join(a.Command, " "), count(a.Lines), a.Seconds, count(uint64(a.LinesPerSecond)))
			if a.Matched != nil {
				fmt.Fprintf(&b, " (%s matched)", count(*a.Matched))
			}
			fmt.Fprintf(&b, "\n")
			if a.DaemonRatio != nil {
				fmt.Fprintf(&b, "  reaction start (daemon, state on): %s lines/s = %.1f× fail2ban-regex\n", count(uint64(r.Daemon.LinesPerSecond)), *a.DaemonRatio)
			} else {
				fmt.Fprintf(&b, "  reaction start (daemon): not measured\n")
			}
			fmt.Fprintf(&b, "  in-process pipeline (actions recorded): %s lines/s = %.1f× fail2ban-regex\n", count(uint64(r.LinesPerSecond)), a.Ratio)
		}
		if a.Note != "" {
			fmt.Fprintf(&b, "  %s\n", a.Note)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count formats n with thousands separators.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func mb(n uint64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func mib(n uint64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
