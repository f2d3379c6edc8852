package stages

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"reaction/graph"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func testSource(t *testing.T, g graph.Source, clock Clock) (*Source, *logRecorder) {
	t.Helper()
	if g.Stream == "" {
		g.Stream = "test"
	}
	if clock == nil {
		clock = NewFakeClock(t0)
	}
	rec := newLogRecorder()
	return NewSource(&g, clock, slog.New(rec)), rec
}

// readAll runs ReadLines over r and returns the lines, each batch's size
// and ReadLines' error.
func readAll(t *testing.T, s *Source, r io.Reader) (lines []string, sizes []int, err error) {
	t.Helper()
	out := make(chan *Batch, 1<<16)
	err = s.ReadLines(context.Background(), r, out)
	close(out)
	for b := range out {
		sizes = append(sizes, len(b.Lines))
		for _, l := range b.Lines {
			lines = append(lines, string(l))
		}
		b.Release()
	}
	return lines, sizes, err
}

func TestSourceReadLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	huge := strings.Repeat("y", 600<<10) // longer than a chunk
	tests := []struct {
		name    string
		maxLine int
		in      string
		want    []string
		cut     uint64
	}{
		{"plain", 0, "a\nb\n", []string{"a", "b"}, 0},
		{"no final newline", 0, "a\nb", []string{"a", "b"}, 0},
		{"crlf", 0, "a\r\nb\r\n\r\n", []string{"a", "b", ""}, 0},
		{"lone cr kept inside", 0, "a\rb\n", []string{"a\rb"}, 0},
		{"empty lines", 0, "\n\nx\n", []string{"", "", "x"}, 0},
		{"empty input", 0, "", nil, 0},
		{"invalid utf-8", 0, "\xff\xfe bad \xc3\n", []string{"\xff\xfe bad \xc3"}, 0},
		{"over-long line cut", 0, "a\n" + long + "\nafter\n", []string{"a", long[:graph.DefaultMaxLine], "after"}, 1},
		{"over-long last line", 0, long, []string{long[:graph.DefaultMaxLine]}, 1},
		{"exactly max", 4, "abcd\nabcd\r\nabcde\nabcd\rx\n", []string{"abcd", "abcd", "abcd", "abcd"}, 2},
		{"max with cr", 4, "abc\r\n", []string{"abc"}, 0},
		{"max larger than buffer", 100 << 10, long + "\n" + long[:90<<10] + "\r\n", []string{long[:100<<10], long[:90<<10]}, 1},
		{"line longer than a chunk", 0, "a\n" + huge + "\nafter\n", []string{"a", huge[:graph.DefaultMaxLine], "after"}, 1},
		{"max larger than a chunk", 300 << 10, huge + "\r\n" + huge[:290<<10] + "\r\nz", []string{huge[:300<<10], huge[:290<<10], "z"}, 1},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			if rname == "one byte" && len(tt.in) > 1<<20 {
				continue
			}
			s, _ := testSource(t, graph.Source{MaxLine: tt.maxLine}, nil)
			got, _, err := readAll(t, s, mk(tt.in))
			if err != nil {
				t.Errorf("%s/%s: %v", tt.name, rname, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s/%s: got %.40q, want %.40q", tt.name, rname, got, tt.want)
			}
			st := s.Stats()
			if st.Cut.Load() != tt.cut || st.Lines.Load() != uint64(len(tt.want)) {
				t.Errorf("%s/%s: cut %d lines %d, want %d %d", tt.name, rname, st.Cut.Load(), st.Lines.Load(), tt.cut, len(tt.want))
			}
		}
	}
}

func TestSourceReadLinesError(t *testing.T) {
	s, _ := testSource(t, graph.Source{}, nil)
	boom := errors.New("boom")
	got, _, err := readAll(t, s, io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestSourceReadLinesBatching(t *testing.T) {
	clock := NewFakeClock(t0)
	s, _ := testSource(t, graph.Source{BatchSize: 100}, clock)
	var in strings.Builder
	for i := range 1000 {
		in.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	out := make(chan *Batch, 100)
	if err := s.ReadLines(context.Background(), strings.NewReader(in.String()), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	n := 0
	for b := range out {
		if len(b.Lines) > 100 || !b.Time.Equal(t0) {
			t.Errorf("batch of %d lines at %v", len(b.Lines), b.Time)
		}
		for _, l := range b.Lines {
			if string(l) != "line "+strconv.Itoa(n) {
				t.Fatalf("line %d is %q", n, l)
			}
			n++
		}
		b.Release()
	}
	// The reader hands bufio 64 KiB at a time: only the line that ends
	// the buffered data flushes a partial batch.
	if n != 1000 || s.Stats().Batches.Load() > 11 {
		t.Errorf("%d lines in %d batches", n, s.Stats().Batches.Load())
	}
}

// A line is sent as soon as it is complete, even when the batch is not
// full and more input is yet to come, in whatever pieces it arrives.
func TestSourceReadLinesPartialFlush(t *testing.T) {
	clock := NewFakeClock(t0)
	s, _ := testSource(t, graph.Source{}, clock)
	pr, pw := io.Pipe()
	out := make(chan *Batch)
	done := make(chan error, 1)
	go func() { done <- s.ReadLines(context.Background(), pr, out) }()
	expect := func(want ...string) {
		t.Helper()
		b := <-out
		var got []string
		for _, l := range b.Lines {
			got = append(got, string(l))
		}
		if !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if !b.Time.Equal(clock.Now()) {
			t.Errorf("batch time %v, want %v", b.Time, clock.Now())
		}
		b.Release()
	}
	io.WriteString(pw, "first\n")
	expect("first")
	clock.Advance(time.Second)
	io.WriteString(pw, "second\nthi") // a complete line, then a partial one
	expect("second")
	io.WriteString(pw, "rd\nfourth\n")
	expect("third", "fourth")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSourceReadLinesCancel(t *testing.T) {
	s, _ := testSource(t, graph.Source{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *Batch) // nobody receives
	done := make(chan error, 1)
	go func() { done <- s.ReadLines(ctx, strings.NewReader("a\nb\n"), out) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// collect receives batches until stop is closed and returns every line.
func collect(out <-chan *Batch, lines chan<- string) {
	for b := range out {
		for _, l := range b.Lines {
			lines <- string(l)
		}
		b.Release()
	}
	close(lines)
}

func runSource(t *testing.T, s *Source, ctx context.Context) (lines <-chan string, done <-chan error) {
	t.Helper()
	out := make(chan *Batch, 4)
	ls := make(chan string, 1024)
	d := make(chan error, 1)
	go collect(out, ls)
	go func() {
		err := s.Run(ctx, out)
		close(out)
		d <- err
	}()
	return ls, d
}

func TestSourceRunFinished(t *testing.T) {
	s, _ := testSource(t, graph.Source{Cmd: []string{"sh", "-c", `printf 'one\ntwo\r\n'; echo 'to stderr' >&2; printf three; exit 0`}}, nil)
	lines, done := runSource(t, s, context.Background())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if want := []string{"one", "two", "to stderr", "three"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if st := s.Stats(); st.Failures.Load() != 0 || st.Restarts.Load() != 0 || st.Lines.Load() != 4 {
		t.Errorf("failures %d restarts %d lines %d", st.Failures.Load(), st.Restarts.Load(), st.Lines.Load())
	}
}

func TestSourceRunLongLine(t *testing.T) {
	s, _ := testSource(t, graph.Source{Cmd: []string{"sh", "-c", `echo before; head -c 204800 /dev/zero | tr '\0' x; echo; echo after`}}, nil)
	lines, done := runSource(t, s, context.Background())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if want := []string{"before", strings.Repeat("x", graph.DefaultMaxLine), "after"}; !slices.Equal(got, want) {
		t.Errorf("got %.30q, want %.30q", got, want)
	}
	if s.Stats().Cut.Load() != 1 {
		t.Errorf("cut %d", s.Stats().Cut.Load())
	}
}

func TestSourceRunRestartBackoff(t *testing.T) {
	clock := NewFakeClock(t0)
	s, rec := testSource(t, graph.Source{
		Cmd:        []string{"sh", "-c", "echo run; exit 3"},
		BackoffMin: time.Second, BackoffMax: 5 * time.Second,
	}, clock)
	ctx, cancel := context.WithCancel(context.Background())
	lines, done := runSource(t, s, ctx)
	for i, want := range []time.Duration{1, 2, 4, 5, 5} {
		r := rec.await(t, "stream command failed, restarting")
		if got := r.attrs["backoff"]; got != (want * time.Second).String() {
			t.Errorf("failure %d: backoff %s, want %s", i, got, want*time.Second)
		}
		if !strings.Contains(r.attrs["err"], "exit status 3") {
			t.Errorf("failure %d: err %q", i, r.attrs["err"])
		}
		if l := <-lines; l != "run" {
			t.Errorf("line %q", l)
		}
		if got := s.Stats().Restarts.Load(); got != uint64(i) {
			t.Errorf("restarts %d, want %d", got, i)
		}
		clock.Advance(want * time.Second)
	}
	rec.await(t, "stream command failed, restarting")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Failures.Load() != 6 || st.Restarts.Load() != 5 {
		t.Errorf("failures %d restarts %d", st.Failures.Load(), st.Restarts.Load())
	}
	if clock.Pending() != 0 {
		t.Errorf("%d timers left", clock.Pending())
	}
}

func TestSourceRunCannotStart(t *testing.T) {
	clock := NewFakeClock(t0)
	s, rec := testSource(t, graph.Source{Cmd: []string{"/nonexistent/reaction-test-cmd"}}, clock)
	ctx, cancel := context.WithCancel(context.Background())
	_, done := runSource(t, s, ctx)
	r := rec.await(t, "stream command failed, restarting")
	if !strings.Contains(r.attrs["err"], "start") {
		t.Errorf("err %q", r.attrs["err"])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.Stats().Failures.Load() != 1 {
		t.Errorf("failures %d", s.Stats().Failures.Load())
	}
}

// A run that lasted BackoffMax starts the backoff over.
func TestSourceRunBackoffReset(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	clock := NewFakeClock(t0)
	s, rec := testSource(t, graph.Source{
		// Fails at once twice, then a long run that fails when told to.
		Cmd:        []string{"sh", "-c", `echo run; read x < "$0"; exit 3`, fifo},
		BackoffMin: time.Second, BackoffMax: 8 * time.Second,
	}, clock)
	ctx, cancel := context.WithCancel(context.Background())
	lines, done := runSource(t, s, ctx)
	release := func() {
		<-lines // the command has started
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n")
		f.Close()
	}
	for _, want := range []time.Duration{1, 2, 4} {
		release()
		r := rec.await(t, "stream command failed, restarting")
		if r.attrs["backoff"] != (want * time.Second).String() {
			t.Fatalf("backoff %s, want %s", r.attrs["backoff"], want*time.Second)
		}
		clock.Advance(want * time.Second)
	}
	<-lines
	clock.Advance(8 * time.Second) // a healthy run
	f, _ := os.OpenFile(fifo, os.O_WRONLY, 0)
	f.WriteString("\n")
	f.Close()
	if r := rec.await(t, "stream command failed, restarting"); r.attrs["backoff"] != "1s" {
		t.Errorf("backoff after a healthy run %s, want 1s", r.attrs["backoff"])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// pidLine reads the first line, which the test commands make their PID.
func pidLine(t *testing.T, lines <-chan string) int {
	t.Helper()
	pid, err := strconv.Atoi(<-lines)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func gone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

func TestSourceRunCancel(t *testing.T) {
	s, _ := testSource(t, graph.Source{Cmd: []string{"sh", "-c", `echo $$; exec sleep 1000`}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	lines, done := runSource(t, s, ctx)
	pid := pidLine(t, lines)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("process %d still there (or a zombie)", pid)
	}
	if s.Stats().Failures.Load() != 0 {
		t.Errorf("a cancelled command counted as failed")
	}
}

// A command that ignores SIGTERM is killed after StopTimeout, measured on
// the source's clock. Its background child, which also holds the output
// pipe, goes with it (the whole process group is signalled).
func TestSourceRunCancelIgnoresTerm(t *testing.T) {
	clock := NewFakeClock(t0)
	s, rec := testSource(t, graph.Source{Cmd: []string{"sh", "-c", `trap '' TERM; sleep 1000 & echo $!; echo $$; wait`}}, clock)
	s.StopTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	lines, done := runSource(t, s, ctx)
	child, pid := pidLine(t, lines), pidLine(t, lines)
	cancel()
	rec.await(t, "stream command terminating")
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the grace period ended", err)
	default:
	}
	if gone(pid) || gone(child) {
		t.Fatalf("SIGTERM was not ignored")
	}
	clock.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.await(t, "stream command killed after grace period")
	if !gone(pid) {
		t.Errorf("process %d still there", pid)
	}
	// The background child is not ours to reap: init does it, eventually.
	for i := 0; !gone(child) && !zombie(child); i++ {
		if i == 1000 {
			t.Fatalf("background child %d survived", child)
		}
		time.Sleep(time.Millisecond)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// logRecorder is a slog.Handler that hands each record to the test.
type logRecorder struct {
	records chan logRecord
	attrs   []slog.Attr
}

type logRecord struct {
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder { return &logRecorder{records: make(chan logRecord, 1024)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.records <- rec
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{records: h.records, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// await returns the next record with the message, skipping others.
func (h *logRecorder) await(t *testing.T, msg string) logRecord {
	t.Helper()
	timeout := time.After(10 * time.Second) // a failure bound, not a wait
	for {
		select {
		case r := <-h.records:
			if r.msg == msg {
				return r
			}
		case <-timeout:
			t.Fatalf("no log %q", msg)
		}
	}
}

func TestBatchRecycle(t *testing.T) {
	b := GetBatch()
	b.Time = t0
	b.Append([]byte("one"))
	b.Append([]byte("two"))
	if len(b.Lines) != 2 || string(b.Lines[0]) != "one" || cap(b.Lines[0]) != 3 || b.Bytes() != 6 {
		t.Fatalf("lines %q, cap %d, bytes %d", b.Lines, cap(b.Lines[0]), b.Bytes())
	}
	// Appending to a line must not overwrite the next one.
	_ = append(b.Lines[0], 'X')
	if string(b.Lines[1]) != "two" {
		t.Fatalf("line overwritten: %q", b.Lines[1])
	}
	b.Append(bytes.Repeat([]byte("x"), maxPooledBuf+1))
	b.Release()
	if cap(b.buf) > maxPooledBuf || len(b.Lines) != 0 || !b.Time.IsZero() {
		t.Errorf("released batch keeps %d bytes, %d lines, time %v", cap(b.buf), len(b.Lines), b.Time)
	}
}

// ReadLines allocates per call (its bufio.Reader), never per line: batches
// are recycled. (Under -race, sync.Pool drops a share of released
// batches on purpose, hence a bound of one allocation per batch.)
func TestSourceReadLinesAllocs(t *testing.T) {
	var in bytes.Buffer
	for i := range 100_000 {
		in.WriteString("May  1 12:00:00 web-1 sshd[1234]: Failed password for root from 1.2.3.4 port " + strconv.Itoa(i) + " ssh2\n")
	}
	s, _ := testSource(t, graph.Source{}, WallClock{})
	out := make(chan *Batch, 1024)
	allocs := testing.AllocsPerRun(5, func() {
		if err := s.ReadLines(context.Background(), bytes.NewReader(in.Bytes()), out); err != nil {
			t.Fatal(err)
		}
		for len(out) > 0 {
			(<-out).Release()
		}
	})
	t.Logf("%v allocations for 100000 lines", allocs)
	if batches := 100_000 / graph.DefaultBatchSize; allocs > float64(batches+100) {
		t.Errorf("%v allocations for 100000 lines", allocs)
	}
}

// Through a real child: each line reaches the consumer before the next
// one is written.
func TestSourceRunSlowWriter(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := testSource(t, graph.Source{Cmd: []string{"cat", fifo}}, nil)
	lines, done := runSource(t, s, context.Background())
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"one", "two", "three"} {
		w.WriteString(l + "\n")
		if got := <-lines; got != l {
			t.Fatalf("got %q, want %q", got, l)
		}
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Lines of every length around the chunk size, "\r\n" or "\n", read in
// pieces of every size: the lines come out as splitting the input says,
// intact after the whole input is read (no chunk reused while a batch
// holds it), whatever order the batches are released in.
func TestSourceReadLinesChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for round := range 12 {
		maxLine := []int{graph.DefaultMaxLine, chunkSize - 1, chunkSize + 7, 100}[round%4]
		var in strings.Builder
		var want []string
		for i := 0; in.Len() < 3*chunkSize; i++ {
			n := rng.IntN(200)
			if rng.IntN(8) == 0 {
				n = chunkSize - 3 + rng.IntN(6)
			}
			line := strings.Repeat(string(rune('a'+i%26)), n)
			in.WriteString(line)
			if rng.IntN(2) == 0 {
				in.WriteString("\r")
			}
			in.WriteString("\n")
			want = append(want, line[:min(n, maxLine)])
		}
		s, _ := testSource(t, graph.Source{MaxLine: maxLine, BatchSize: 1 + rng.IntN(200)}, nil)
		out := make(chan *Batch, 1<<16)
		var r io.Reader = strings.NewReader(in.String())
		if round%3 == 1 {
			r = iotest.HalfReader(r)
		}
		if err := s.ReadLines(context.Background(), r, out); err != nil {
			t.Fatal(err)
		}
		close(out)
		var batches []*Batch
		var got []string
		for b := range out {
			batches = append(batches, b)
			for _, l := range b.Lines {
				got = append(got, string(l))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (max %d): %d lines, want %d", round, maxLine, len(got), len(want))
		}
		rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
		for _, b := range batches {
			b.Release()
		}
	}
}
