package stages

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"reaction/graph"
)

// Graphs are built by hand: stages never imports compile.

// tFilter describes one filter of a test graph. Its regexes may use <ip>
// (an IP-typed pattern) and <user> (\w+).
type tFilter struct {
	name    string
	regex   []string
	retry   int
	period  time.Duration
	dup     graph.Duplicates
	actions []*graph.Action
	maxKeys int
}

// tAction builds an action whose argv may use <ip> and <user>; patterns
// are the filter's pattern names in key order.
func tAction(name string, after time.Duration, cmd ...string) *graph.Action {
	a := &graph.Action{Name: name, After: after}
	for _, c := range cmd {
		a.Cmd = append(a.Cmd, tArg(c))
	}
	return a
}

// tArg splits "x<ip>y" into parts; the pattern index is resolved later by
// tResolve (it depends on the filter's patterns).
func tArg(s string) graph.Arg {
	var arg graph.Arg
	for s != "" {
		i := strings.IndexByte(s, '<')
		j := strings.IndexByte(s, '>')
		if i < 0 || j < i {
			arg = append(arg, graph.ArgPart{Text: s, Pattern: -1})
			break
		}
		if i > 0 {
			arg = append(arg, graph.ArgPart{Text: s[:i], Pattern: -1})
		}
		arg = append(arg, graph.ArgPart{Text: s[i+1 : j], Pattern: -2}) // name, resolved later
		s = s[j+1:]
	}
	return arg
}

var tPatternDefs = map[string]*graph.Pattern{
	"ip":   {Name: "ip", Type: graph.TypeIP, Regex: graph.RegexIP},
	"user": {Name: "user", Type: graph.TypeRegex, Regex: `\w+`},
}

// tGraph builds a validated graph with one stream running cmd and the
// given filters, each with its extract, counter, scheduler nodes.
func tGraph(t testing.TB, cmd []string, filters ...tFilter) *graph.Graph {
	t.Helper()
	return tGraphStreams(t, map[string][]string{"s": cmd}, map[string][]tFilter{"s": filters})
}

func tGraphStreams(t testing.TB, cmds map[string][]string, filters map[string][]tFilter) *graph.Graph {
	t.Helper()
	g := &graph.Graph{}
	names := make([]string, 0, len(cmds))
	for s := range cmds {
		names = append(names, s)
	}
	slices.Sort(names)
	g.Add(&graph.Node{ID: graph.ExecutorID, Kind: graph.KindExecutor, Executor: &graph.Executor{Concurrency: 4, Timeout: time.Minute}})
	for _, stream := range names {
		src := &graph.Source{Stream: stream, Cmd: cmds[stream]}
		g.Add(&graph.Node{ID: graph.SourceID(stream), Kind: graph.KindSource, Source: src})
		pf := &graph.Prefilter{Stream: stream}
		g.Add(&graph.Node{ID: graph.PrefilterID(stream), Kind: graph.KindPrefilter, Prefilter: pf})
		g.Connect(graph.SourceID(stream), graph.PrefilterID(stream), 4, "batches")
		for _, f := range filters[stream] {
			pf.Filters = append(pf.Filters, graph.FilterLiterals{Filter: f.name, Always: true})
			x := &graph.Extract{Stream: stream, Filter: f.name}
			// Patterns used, sorted by name: the key order.
			used := map[string]bool{}
			for _, r := range f.regex {
				for name := range tPatternDefs {
					if strings.Contains(r, "<"+name+">") {
						used[name] = true
					}
				}
			}
			for _, name := range []string{"ip", "user"} {
				if used[name] {
					p := *tPatternDefs[name]
					if err := p.Prepare(); err != nil {
						t.Fatal(err)
					}
					x.Patterns = append(x.Patterns, &p)
				}
			}
			for _, r := range f.regex {
				expanded := r
				for _, p := range x.Patterns {
					expanded = strings.ReplaceAll(expanded, "<"+p.Name+">", "(?P<"+p.Name+">"+p.Regex+")")
				}
				re := regexp.MustCompile(expanded)
				gr := &graph.Regex{Source: r, Expanded: expanded, Re: re}
				for i, p := range x.Patterns {
					if g := re.SubexpIndex(p.Name); g > 0 {
						gr.Captures = append(gr.Captures, graph.Capture{Pattern: i, Group: g})
					}
				}
				x.Regexes = append(x.Regexes, gr)
			}
			for _, a := range f.actions {
				for _, arg := range a.Cmd {
					for k := range arg {
						if arg[k].Pattern == -2 {
							arg[k].Pattern = slices.IndexFunc(x.Patterns, func(p *graph.Pattern) bool { return p.Name == arg[k].Text })
							if arg[k].Pattern < 0 {
								t.Fatalf("action %s: no pattern <%s>", a.Name, arg[k].Text)
							}
							arg[k].Text = ""
						}
					}
				}
			}
			dup := f.dup
			if dup == "" {
				dup = graph.DuplicatesExtend
			}
			maxKeys := f.maxKeys
			if maxKeys == 0 {
				maxKeys = graph.DefaultMaxKeys
			}
			c := &graph.Counter{Stream: stream, Filter: f.name, Retry: f.retry, Period: f.period, Shards: 3, MaxKeys: maxKeys}
			s := &graph.Scheduler{Stream: stream, Filter: f.name, Duplicates: dup, Actions: f.actions, Patterns: x.Patterns}
			g.Add(&graph.Node{ID: graph.ExtractID(stream, f.name), Kind: graph.KindExtract, Extract: x})
			g.Add(&graph.Node{ID: graph.CounterID(stream, f.name), Kind: graph.KindCounter, Counter: c})
			g.Add(&graph.Node{ID: graph.SchedulerID(stream, f.name), Kind: graph.KindScheduler, Scheduler: s})
			g.Connect(graph.PrefilterID(stream), graph.ExtractID(stream, f.name), 0, "lines")
			g.Connect(graph.ExtractID(stream, f.name), graph.CounterID(stream, f.name), 8, "match batches")
			g.Connect(graph.CounterID(stream, f.name), graph.SchedulerID(stream, f.name), 16, "triggers")
			g.Connect(graph.SchedulerID(stream, f.name), graph.ExecutorID, 16, "jobs")
		}
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	return g
}

// tLog is a logger whose records tests can read.
type tLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *tLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *tLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *tLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var tStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func shLines(lines ...string) []string {
	return append([]string{"sh", "-c", `printf '%s\n' "$@"`, "sh"}, lines...)
}

func argvs(calls [][]string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = strings.Join(c, " ")
	}
	slices.Sort(out)
	return out
}

func runEngine(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// The pipeline end to end: a real child process, the real prefilter,
// extraction, sharded counting, scheduling and the executor (with a
// recording runner). Run returns nil once the stream has ended and every
// ban has run; the unban (48h later) has not.
func TestEngineBansExactlyTheAttackers(t *testing.T) {
	var lines []string
	want := []string{}
	for i := range 60 {
		ip := fmt.Sprintf("192.0.2.%d", i)
		if i%7 == 0 {
			ip = fmt.Sprintf("2001:db8::%x", i)
		}
		n := i % 4 // 0..3 failures; 3 bans
		for range n {
			lines = append(lines, "Failed password for root from "+ip+" port 22")
		}
		lines = append(lines, "Accepted password for root from "+ip)
		if n >= 3 {
			want = append(want, "ban "+ip)
		}
	}
	lines = append(lines, "Failed password for root from 999.1.1.1 port 22", "Failed password for root from 127.0.0.1")
	g := tGraph(t, shLines(lines...), tFilter{
		name: "failed", regex: []string{`Failed password for \S+ from <ip>`},
		retry: 3, period: time.Hour,
		actions: []*graph.Action{tAction("ban", 0, "ban", "<ip>"), tAction("unban", 48*time.Hour, "unban", "<ip>")},
	})
	runner := &RecordingRunner{}
	clock := NewFakeClock(tStart)
	e, err := New(g, Options{Clock: clock, Runner: runner, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	slices.Sort(want)
	if got := argvs(runner.Calls()); !slices.Equal(got, want) {
		t.Fatalf("ran %v\nwant %v", got, want)
	}
	st := e.Stats()
	if got := st[graph.SourceID("s")]["lines"]; got != uint64(len(lines)) {
		t.Errorf("source lines = %d, want %d", got, len(lines))
	}
	if got := st[graph.ExtractID("s", "failed")]; got["ignored"] != 1 || got["nomatch"] != 60 {
		t.Errorf("extract stats = %v, want 1 ignored (999.1.1.1), 60 nomatch", got)
	}
	if got := st[graph.CounterID("s", "failed")]["triggers"]; got != uint64(len(want)) {
		t.Errorf("counter triggers = %d, want %d", got, len(want))
	}
	if got := st[graph.ExecutorID]["ran"]; got != uint64(len(want)) {
		t.Errorf("executor ran = %d, want %d", got, len(want))
	}
	// The unbans are still pending: Show lists them, due 48h after the trigger.
	snap := e.Show(Selector{})
	if len(snap.Filters) != 1 || len(snap.Filters[0].Pending) != len(want) {
		t.Fatalf("Show after Run = %+v", snap)
	}
	for _, p := range snap.Filters[0].Pending {
		if p.Action != "unban" || !p.Due.Equal(tStart.Add(48*time.Hour)) {
			t.Errorf("pending %+v, want unban due %v", p, tStart.Add(48*time.Hour))
		}
	}
}

// BenchmarkEnginePipeline runs the whole pipeline on a `cat` stream of
// sshd-like lines (a quarter of them attacks from 1,400 addresses), with
// actions that do nothing; it reports lines per second end to end.
func BenchmarkEnginePipeline(b *testing.B) {
	path := filepath.Join(b.TempDir(), "auth.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	const n = 1_000_000
	for i := range n {
		if i%4 == 0 {
			fmt.Fprintf(w, "Nov 21 13:40:01 host sshd[1234]: Failed password for root from 10.%d.%d.%d port 22 ssh2\n", i%7, (i/7)%50, i%200)
		} else {
			fmt.Fprintf(w, "Nov 21 13:40:01 host CRON[1234]: pam_unix(cron:session): session opened for user root %d\n", i)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	for range b.N {
		g := tGraph(b, []string{"cat", path}, tFilter{name: "f", regex: []string{`Failed password for \S+ from <ip>`}, retry: 3, period: time.Hour, actions: banUnban()})
		e, err := New(g, Options{Runner: nopRunner{}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		if got := e.Stats()[graph.CounterID("s", "f")]["matches"]; got != n/4 {
			b.Fatalf("counted %d matches, want %d", got, n/4)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// Two streams end at different times: Run waits for both. A flood of
// distinct values on a filter capped at a few keys evicts (and counts)
// the oldest keys instead of growing.
func TestEngineStreamsAndEvictions(t *testing.T) {
	var flood []string
	for i := range 300 {
		flood = append(flood, fmt.Sprintf("scan from 198.51.100.%d", i%250), "scan from 203.0.113.1")
	}
	g := tGraphStreams(t, map[string][]string{
		"a": shLines("user root from 192.0.2.1", "user root from 192.0.2.1"),
		"b": append([]string{"sh", "-c", `sleep 0.2; printf '%s\n' "$@"`, "sh"}, flood...),
	}, map[string][]tFilter{
		"a": {{name: "users", regex: []string{"user <user> from <ip>"}, retry: 2, period: time.Hour,
			actions: []*graph.Action{tAction("lock", 0, "lock", "<user>", "<ip>")}}},
		"b": {{name: "scan", regex: []string{"scan from <ip>"}, retry: 50, period: time.Hour, maxKeys: 6,
			actions: []*graph.Action{tAction("ban", 0, "ban", "<ip>")}}},
	})
	runner := &RecordingRunner{}
	e, err := New(g, Options{Runner: runner, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	// 203.0.113.1 matches every other line: always recent, never evicted.
	if got, want := argvs(runner.Calls()), []string{"ban 203.0.113.1", "ban 203.0.113.1", "ban 203.0.113.1", "ban 203.0.113.1", "ban 203.0.113.1", "ban 203.0.113.1", "lock root 192.0.2.1"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	st := e.Stats()[graph.CounterID("b", "scan")]
	if st["keys"] > 6 || st["evictions"] < 250 {
		t.Fatalf("counter stats %v: want ≤ 6 keys and ≥ 250 evictions", st)
	}
}
