package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"reaction/bench/workload"
	"reaction/compile"
	"reaction/graph"
)

// small returns options for a quick run in a test's temp directory.
func small(t *testing.T, o Options) Options {
	t.Helper()
	if o.Lines == 0 {
		o.Lines = 20_000
	}
	if o.LatencyLines == 0 {
		o.LatencyLines = -1
	}
	o.TempDir = t.TempDir()
	o.MinIsolation = time.Millisecond
	return o
}

func truthOf(t *testing.T, kind workload.Workload, lines int, seed uint64) *workload.Truth {
	t.Helper()
	tr, err := workload.Generate(io.Discard, kind, workload.Params{Lines: lines, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// The harness counts every line, bans exactly the addresses the generator
// says reach 3 hits, and its JSON report has every documented key.
func TestRunSSHD(t *testing.T) {
	o := small(t, Options{Workload: "sshd", LatencyLines: 4000, LatencyRate: 20_000})
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	truth := truthOf(t, workload.SSHD, o.Lines, DefaultSeed)

	if rep.Lines != uint64(o.Lines) || rep.Stages.Prefilter.In != uint64(o.Lines) {
		t.Errorf("lines: read %d, prefilter in %d, want %d", rep.Lines, rep.Stages.Prefilter.In, o.Lines)
	}
	if p := rep.Stages.Prefilter; p.Passed+p.Dropped != p.In {
		t.Errorf("prefilter: passed %d + dropped %d != in %d", p.Passed, p.Dropped, p.In)
	}
	if got := rep.Stages.Extract.Matched; got != uint64(truth.AttackLines) {
		t.Errorf("extract matched %d lines, truth %d", got, truth.AttackLines)
	}
	if got := rep.Stages.Counter.Matches; got != uint64(truth.AttackLines) {
		t.Errorf("counter counted %d matches, truth %d", got, truth.AttackLines)
	}
	want := truth.Banned(3)
	if got := rep.Bans(); !slices.Equal(got, want) {
		t.Errorf("banned %d addresses, truth %d (first differences: %v)", len(got), len(want), firstDiff(got, want))
	}
	if rep.Actions.ExpectedBans == nil || *rep.Actions.ExpectedBans != len(want) || rep.Actions.Bans != uint64(len(want)) {
		t.Errorf("actions: %+v, want %d bans", rep.Actions, len(want))
	}
	if rep.LinesPerSecond <= 0 || rep.Seconds <= 0 {
		t.Errorf("rate %v lines/s in %v s", rep.LinesPerSecond, rep.Seconds)
	}
	s := rep.Stages
	if s.Prefilter.NsPerLine <= 0 || s.Extract.NsPerLine < s.Prefilter.NsPerLine || s.Counter.NsPerMatch <= 0 {
		t.Errorf("isolated costs: prefilter %v, extract %v ns/line, counter %v ns/match", s.Prefilter.NsPerLine, s.Extract.NsPerLine, s.Counter.NsPerMatch)
	}
	if rep.Settings.BatchSize != 128 || rep.Settings.LineQueue != 64 || rep.Settings.Shards != 4 || rep.Settings.Workers != 2 || rep.Settings.Filters != 1 {
		t.Errorf("settings %+v, want the compiled defaults", rep.Settings)
	}
	if l := rep.Latency; !l.Measured || l.Samples == 0 || *l.P50 > *l.P99 || *l.P99 > *l.Max {
		t.Errorf("latency %+v (note %q)", l, l.Note)
	}

	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, buf.Bytes())
	}
	for _, path := range []string{
		"version", "workload", "config", "lines", "seconds", "lines_per_second",
		"stages.prefilter.pass_rate", "stages.prefilter.ns_per_line", "stages.prefilter.lines_per_second",
		"stages.extract.matched", "stages.extract.ns_per_line", "stages.extract.lines_per_second",
		"stages.counter.matches", "stages.counter.triggers", "stages.counter.keys", "stages.counter.ns_per_match",
		"actions.bans", "actions.expected_bans",
		"allocs_per_line", "bytes_per_line", "peak_heap_bytes", "peak_rss_bytes",
		"latency_ms.measured", "latency_ms.p50", "latency_ms.p90", "latency_ms.p99",
		"settings.batch_size", "settings.line_queue", "settings.shards", "settings.filters",
		"against", "daemon", "load_average", "gc_cpu_seconds", "memory_limit_bytes",
	} {
		if _, ok := lookup(doc, path); !ok {
			t.Errorf("JSON report has no %s", path)
		}
	}
	if v, _ := lookup(doc, "lines"); v != float64(o.Lines) {
		t.Errorf("JSON lines = %v", v)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lines/s", "prefilter", "+ extract", "counter", "p99", "batch size 128"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// Knobs reach the engine; padding filters change nothing to the bans.
func TestRunKnobsAndPadding(t *testing.T) {
	o := small(t, Options{Workload: "sshd", Lines: 10_000, Filters: 30, BatchSize: 16, LineQueue: 4, Shards: 3, Workers: 3})
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{BatchSize: 16, LineQueue: 4, Shards: 3, Workers: 3, MatchQueue: 64, Streams: 1, Filters: 30}
	if rep.Settings != want {
		t.Errorf("settings %+v, want %+v", rep.Settings, want)
	}
	truth := truthOf(t, workload.SSHD, o.Lines, DefaultSeed)
	if got := rep.Bans(); !slices.Equal(got, truth.Banned(3)) {
		t.Errorf("with padding filters: %d bans, truth %d", len(got), len(truth.Banned(3)))
	}
	if rep.Stages.Prefilter.Passed != uint64(rep.Stages.Extract.Matched+rep.Stages.Extract.NoMatch) {
		// Padding literals occur in no line: every passed line is an sshd candidate.
		t.Errorf("prefilter passed %d, sshd filter saw %d", rep.Stages.Prefilter.Passed, rep.Stages.Extract.Matched+rep.Stages.Extract.NoMatch)
	}
	if rep.Latency.Measured || rep.Latency.Note == "" {
		t.Errorf("latency run was disabled, report says %+v", rep.Latency)
	}
}

// nginx and mixed built-ins; mixed has both filters on one stream.
func TestRunNginxMixed(t *testing.T) {
	for _, kind := range []workload.Workload{workload.Nginx, workload.Mixed} {
		t.Run(string(kind), func(t *testing.T) {
			o := small(t, Options{Workload: string(kind), Lines: 8000})
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			truth := truthOf(t, kind, o.Lines, DefaultSeed)
			if rep.Lines != uint64(o.Lines) || rep.Stages.Extract.Matched != uint64(truth.AttackLines) {
				t.Errorf("lines %d matched %d, want %d and %d", rep.Lines, rep.Stages.Extract.Matched, o.Lines, truth.AttackLines)
			}
			if kind == workload.Nginx && !slices.Equal(rep.Bans(), truth.Banned(3)) {
				t.Errorf("%d bans, truth %d", len(rep.Bans()), len(truth.Banned(3)))
			}
			if kind == workload.Mixed && rep.Settings.Filters != 2 {
				t.Errorf("mixed: %d filters", rep.Settings.Filters)
			}
		})
	}
}

// A given configuration and a log file: the stream's command is replaced
// by `cat FILE`.
func TestRunConfigAndFile(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := workload.Generate(f, workload.SSHD, workload.Params{Lines: 5000, Seed: 9})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	o := small(t, Options{Config: "../examples/ssh-iptables.yml", Workload: log, LatencyLines: 2000, LatencyRate: 50_000})
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 5000 || rep.Stages.Extract.Matched+rep.Stages.Extract.Ignored != uint64(truth.AttackLines) {
		t.Errorf("lines %d, matched %d + ignored %d, want 5000 and %d", rep.Lines, rep.Stages.Extract.Matched, rep.Stages.Extract.Ignored, truth.AttackLines)
	}
	if rep.Actions.ExpectedBans != nil {
		t.Errorf("a log file has no truth, report says %d", *rep.Actions.ExpectedBans)
	}
	if rep.Actions.Ran == 0 {
		t.Error("no action ran")
	}
	if !rep.Latency.Measured {
		t.Errorf("latency on a log file with a given configuration: %s", rep.Latency.Note)
	}
}

func TestRunErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("streams: {s: {cmd: [cat], filters: {f: {regex: ['<nope>'], actions: {a: {cmd: [x]}}}}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var uerr *UsageError
	var cerr *ConfigError
	for _, c := range []struct {
		name   string
		o      Options
		target any
	}{
		{"unknown workload", Options{Workload: "/nonexistent/log"}, &uerr},
		{"filters with config", Options{Config: bad, Filters: 10}, &uerr},
		{"negative knob", Options{Shards: -1}, &uerr},
		{"unknown tool", Options{Against: "sshguard"}, &uerr},
		{"daemon with config", Options{Config: bad, Daemon: true}, &uerr},
		{"bad config", Options{Config: bad}, &cerr},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(context.Background(), small(t, c.o))
			if err == nil || !errors.As(err, c.target) {
				t.Errorf("error %v, want a %T", err, c.target)
			}
		})
	}
}

// --against on a workload fail2ban's sshd filter does not apply to is a
// note, not a failure; without the tool, a note too.
func TestAgainstNotes(t *testing.T) {
	rep, err := Run(context.Background(), small(t, Options{Workload: "nginx", Lines: 2000, Against: "fail2ban"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := rep.Against; a == nil || a.Ran || !strings.Contains(a.Note, "sshd") {
		t.Errorf("against on nginx: %+v", a)
	}
	t.Setenv("PATH", t.TempDir()) // cat is looked up before: the engine has already run
	h := &harness{o: Options{F2BFilter: DefaultF2BFilter}, kind: workload.SSHD}
	if a := h.against(context.Background(), &Report{}); a.Ran || !strings.Contains(a.Note, "apt-get install fail2ban") {
		t.Errorf("against without fail2ban-regex: %+v", a)
	}
}

// The daemon run's configuration compiles to the built-in filters with a
// retry never reached and the state directory given; a daemon that fails
// is a note, not a failed Run, and its figures stay zero.
func TestDaemonConfigAndFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "reaction.yml")
	if err := os.WriteFile(path, []byte(daemonYAML(workload.SSHD, []string{"cat", "auth.log"}, 5, filepath.Join(dir, "state"))), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := compile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Graph
	if g.Settings.StateDirectory != filepath.Join(dir, "state") {
		t.Errorf("state_directory %q", g.Settings.StateDirectory)
	}
	counters := g.Of(graph.KindCounter)
	if len(counters) != 5 {
		t.Fatalf("%d filters, want 5 (sshd + 4 padding)", len(counters))
	}
	for _, n := range counters {
		if n.Counter.Retry != DaemonRetry {
			t.Errorf("%s: retry %d, want %d", n.ID, n.Counter.Retry, DaemonRetry)
		}
	}
	for _, n := range g.Of(graph.KindSource) {
		if !slices.Equal(n.Source.Cmd, []string{"cat", "auth.log"}) {
			t.Errorf("stream cmd %q", n.Source.Cmd)
		}
	}

	// `false start ...` exits 1 at once.
	rep, err := Run(context.Background(), small(t, Options{Lines: 2000, Daemon: true, Executable: "/bin/false"}))
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Daemon
	if d == nil || d.Ran || d.ExitCode == nil || *d.ExitCode != 1 || d.LinesPerSecond != 0 || !strings.Contains(d.Note, "exit status 1") {
		t.Errorf("daemon run of /bin/false: %+v", d)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "not measured: reaction start: exit status 1") {
		t.Errorf("text report:\n%s", text.String())
	}
}

// Options.MemoryLimit holds during the pipeline run, is reported, and the
// process's limit is back afterwards.
func TestRunMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	rep, err := Run(context.Background(), small(t, Options{Lines: 2000, MemoryLimit: 200 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	if rep.MemoryLimitBytes == nil || *rep.MemoryLimitBytes != 200<<20 {
		t.Errorf("memory limit reported %v, want %d", rep.MemoryLimitBytes, 200<<20)
	}
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("limit after the run %d, before %d", after, before)
	}
}

func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func firstDiff(got, want []string) []string {
	var out []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, "+"+g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, "-"+w)
		}
	}
	return out[:min(len(out), 5)]
}
