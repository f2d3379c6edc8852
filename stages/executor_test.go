package stages

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"reaction/graph"
)

func TestExecRunner(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		argv     []string
		timeout  time.Duration
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"ok", []string{"sh", "-c", "echo out; echo err >&2"}, time.Minute, 0, "out\nerr\n", ""},
		{"exit code", []string{"sh", "-c", "echo failing; exit 3"}, time.Minute, 3, "failing\n", ""},
		{"no shell", []string{"echo", "$(touch " + filepath.Join(dir, "pwned") + ")", "a;b"}, time.Minute, 0, "$(touch " + filepath.Join(dir, "pwned") + ") a;b\n", ""},
		{"not found", []string{"/nonexistent/cmd"}, time.Minute, -1, "", "no such file"},
		{"empty", nil, time.Minute, -1, "", "empty command"},
		// The group is killed: the backgrounded sleep does not keep us waiting.
		// A background child keeping stdout open does not make the action fail or hang.
		{"background child", []string{"sh", "-c", "sleep 5 & echo started"}, time.Minute, 0, "started\n", ""},
		{"timeout", []string{"sh", "-c", "sleep 100 & sleep 100"}, 200 * time.Millisecond, -1, "", "killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			code, out, err := ExecRunner{}.Run(ctx, tt.argv)
			if code != tt.wantCode || string(out) != tt.wantOut {
				t.Errorf("= %d %q, want %d %q", code, out, tt.wantCode, tt.wantOut)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("an argument went through a shell")
	}
}

func TestExecRunnerBoundsOutput(t *testing.T) {
	code, out, err := ExecRunner{MaxOutput: 1000}.Run(context.Background(), []string{"head", "-c", "100000", "/dev/zero"})
	if code != 0 || err != nil || len(out) > 1100 || !strings.HasSuffix(string(out), "[99000 more bytes cut]") {
		t.Fatalf("= %d, %d bytes (%q...), %v", code, len(out), out[len(out)-30:], err)
	}
}

// blockingRunner starts commands and holds them until released.
type blockingRunner struct {
	started chan string
	release chan struct{}
	running atomic.Int32
	peak    atomic.Int32
}

func (r *blockingRunner) Run(ctx context.Context, argv []string) (int, []byte, error) {
	n := r.running.Add(1)
	defer r.running.Add(-1)
	for {
		p := r.peak.Load()
		if n <= p || r.peak.CompareAndSwap(p, n) {
			break
		}
	}
	r.started <- argv[0]
	select {
	case <-r.release:
		return 0, nil, nil
	case <-ctx.Done():
		return -1, nil, ctx.Err()
	}
}

func TestExecutorConcurrencyAndLogs(t *testing.T) {
	r := &blockingRunner{started: make(chan string, 10), release: make(chan struct{})}
	var logs tLog
	x := NewExecutor(&graph.Executor{Concurrency: 2, Timeout: time.Minute}, r, 10, logs.logger())
	done := make(chan error)
	go func() { done <- x.Run(context.Background()) }()
	var ran sync.WaitGroup
	for i := range 5 {
		ran.Add(1)
		argv := []string{string(rune('a' + i))}
		if err := x.Submit(context.Background(), &Job{Stream: "s", Filter: "f", Action: "ban", Argv: argv, Done: ran.Done}); err != nil {
			t.Fatal(err)
		}
	}
	<-r.started
	<-r.started
	select {
	case a := <-r.started:
		t.Fatalf("a third action (%s) started with concurrency 2", a)
	default:
	}
	close(r.release)
	ran.Wait()
	x.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.peak.Load() != 2 {
		t.Errorf("peak concurrency %d, want 2", r.peak.Load())
	}
	if err := x.Submit(context.Background(), &Job{Argv: []string{"late"}}); !errors.Is(err, ErrExecutorClosed) {
		t.Errorf("Submit after Close = %v", err)
	}
	if got := strings.Count(logs.String(), `level=INFO msg="action ran" stream=s filter=f action=ban argv=[`); got != 5 {
		t.Errorf("%d 'action ran' records, want 5:\n%s", got, logs.String())
	}
}

func TestExecutorLogsFailures(t *testing.T) {
	var logs tLog
	x := NewExecutor(&graph.Executor{Concurrency: -1, Timeout: time.Minute}, ExecRunner{}, 10, logs.logger())
	done := make(chan error)
	go func() { done <- x.Run(context.Background()) }()
	x.Submit(context.Background(), &Job{Stream: "s", Filter: "f", Action: "ban", Argv: []string{"sh", "-c", "echo nope >&2; exit 4"}})
	x.Submit(context.Background(), &Job{Stream: "s", Filter: "f", Action: "unban", Argv: []string{"echo", "fine"}})
	x.Close()
	<-done
	log := logs.String()
	for _, want := range []string{
		`level=WARN msg="action failed" stream=s filter=f action=ban argv="[sh -c echo nope >&2; exit 4]" exit=4`,
		`output="nope\n"`,
		`level=INFO msg="action ran" stream=s filter=f action=unban argv="[echo fine]" exit=0`,
		`level=DEBUG msg="action output" stream=s filter=f action=unban output="fine\n"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if st := x.stats(); st["ran"] != 2 || st["failed"] != 1 {
		t.Errorf("stats %v", st)
	}
}

// A stream that ends: Run returns nil once the stream's actions ran; the
// onexit pending action runs at shutdown, the other delayed one does not.
func TestEngineStreamEndRunsOnExit(t *testing.T) {
	unban := tAction("unban", time.Hour, "unban", "<ip>")
	unban.OnExit = true
	g := tGraph(t, shLines("from 192.0.2.1"), tFilter{name: "f", regex: []string{"from <ip>"}, actions: []*graph.Action{
		tAction("ban", 0, "ban", "<ip>"), unban, tAction("report", 2*time.Hour, "report", "<ip>"),
	}})
	runner := &RecordingRunner{}
	store := NewMemStore()
	e, err := New(g, Options{Clock: NewFakeClock(tStart), Runner: runner, Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	calls := runner.Calls()
	if len(calls) != 2 || strings.Join(calls[0], " ") != "ban 192.0.2.1" || strings.Join(calls[1], " ") != "unban 192.0.2.1" {
		t.Fatalf("ran %v, want ban then unban (onexit)", calls)
	}
	st, _ := store.Load(t.Context())
	if p := st.Filters[0].Pending; len(p) != 1 || p[0].Action != "report" {
		t.Fatalf("persisted after stop: %+v, want only the report", p)
	}
}

// A stop through ctx: the children are terminated, Run returns nil.
func TestEngineCancel(t *testing.T) {
	g := tGraph(t, []string{"sh", "-c", "echo from 192.0.2.1; exec sleep 1000"}, tFilter{name: "f", regex: []string{"from <ip>"}, actions: banUnban()})
	runner := &RecordingRunner{Ran: make(chan []string, 4)}
	e, err := New(g, Options{Clock: NewFakeClock(tStart), Runner: runner, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stop := startEngine(t, e)
	awaitRan(t, runner.Ran, "ban 192.0.2.1")
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
	if err := e.Run(context.Background()); err == nil {
		t.Fatal("a second Run must fail")
	}
}

// An action that hangs past StopTimeout is killed and Run says so.
func TestEngineStopTimeout(t *testing.T) {
	g := tGraph(t, []string{"sh", "-c", "echo from 192.0.2.1; exec sleep 1000"}, tFilter{name: "f", regex: []string{"from <ip>"}, actions: banUnban()})
	r := &blockingRunner{started: make(chan string, 4), release: make(chan struct{})}
	e, err := New(g, Options{Clock: NewFakeClock(tStart), Runner: r, Logger: slog.New(slog.DiscardHandler), StopTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := startEngine(t, e)
	<-r.started
	if err := stop(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Run = %v, want an error about killed actions", err)
	}
}

// BenchmarkExecutorHandoff: the cost of handing a job to the executor and
// getting it run (with a runner that does nothing), per job.
func BenchmarkExecutorHandoff(b *testing.B) {
	x := NewExecutor(&graph.Executor{Concurrency: 4, Timeout: time.Minute}, nopRunner{}, 1024, slog.New(slog.DiscardHandler))
	done := make(chan error)
	go func() { done <- x.Run(context.Background()) }()
	job := &Job{Stream: "s", Filter: "f", Action: "ban", Argv: []string{"ban", "192.0.2.1"}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		x.Submit(context.Background(), job)
	}
	x.WaitIdle(context.Background())
	b.StopTimer()
	x.Close()
	<-done
}

type nopRunner struct{}

func (nopRunner) Run(context.Context, []string) (int, []byte, error) { return 0, nil, nil }
