package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"reaction/graph"
)

// Runner runs one command given as argv, never through a shell. The
// command must stop when ctx is done. exitCode is the command's exit
// status; err is set only when the command could not be started or did
// not run to its end (killed, timed out): a non-zero exit alone is not an
// error.
type Runner interface {
	Run(ctx context.Context, argv []string) (exitCode int, output []byte, err error)
}

// DefaultMaxOutput bounds the output of an action kept for the logs.
const DefaultMaxOutput = 64 << 10

// ExecRunner runs commands as child processes: argv[0] is looked up in
// PATH, there is no shell, stdin is /dev/null, stdout and stderr are
// captured together (bounded by MaxOutput, 0 = DefaultMaxOutput). The
// child inherits the daemon's environment (os.Environ) unchanged: reaction
// runs under a service manager whose environment is already minimal and
// explicit, and actions such as iptables or nft need PATH. Each child is
// the leader of its own process group, and when ctx is done the whole group
// is killed, so that a timed-out `sh -c 'sleep 100'` leaves nothing behind.
type ExecRunner struct {
	MaxOutput int
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, argv []string) (int, []byte, error) {
	if len(argv) == 0 {
		return -1, nil, errors.New("empty command")
	}
	max := r.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out := &boundedBuffer{max: max}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that keeps the output pipe open must not hold us forever.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil && cmd.ProcessState != nil {
		// The command exited; something it left in the background still
		// holds its output. The command's own status is what counts.
		err = nil
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			return code, out.bytes(), nil
		}
	}
	if err == nil {
		return 0, out.bytes(), nil
	}
	if ctx.Err() != nil {
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return code, out.bytes(), fmt.Errorf("killed: %w", context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if exitErr.ExitCode() >= 0 {
			return exitErr.ExitCode(), out.bytes(), nil
		}
		return -1, out.bytes(), err // killed by a signal
	}
	return -1, out.bytes(), err
}

// boundedBuffer keeps the first max bytes written and counts the rest.
type boundedBuffer struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(p), b.max-len(b.buf))
	b.buf = append(b.buf, p[:n]...)
	b.dropped += len(p) - n
	return len(p), nil
}

func (b *boundedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return append(b.buf, fmt.Sprintf("\n[%d more bytes cut]", b.dropped)...)
	}
	return b.buf
}

// RecordingRunner is a Runner for tests and benchmarks: it runs nothing
// and records each argv. It is safe for concurrent use.
type RecordingRunner struct {
	// Ran, when set, receives each argv after it is recorded; the send
	// blocks, so give it room or read it.
	Ran chan []string
	// Result, when set, decides the outcome of each command.
	Result func(argv []string) (exitCode int, output []byte, err error)

	mu    sync.Mutex
	calls [][]string
}

// Run implements Runner.
func (r *RecordingRunner) Run(ctx context.Context, argv []string) (int, []byte, error) {
	argv = append([]string(nil), argv...)
	r.mu.Lock()
	r.calls = append(r.calls, argv)
	r.mu.Unlock()
	code, out, err := 0, []byte(nil), error(nil)
	if r.Result != nil {
		code, out, err = r.Result(argv)
	}
	if r.Ran != nil {
		select {
		case r.Ran <- argv:
		case <-ctx.Done():
		}
	}
	return code, out, err
}

// Calls returns a copy of the argv lists recorded so far, in call order.
func (r *RecordingRunner) Calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.calls...)
}

// Job is one action to run.
type Job struct {
	Stream, Filter, Action string
	Argv                   []string
	// Done, when set, is called after the command ran (whatever its exit
	// status). It is not called for a job dropped at a forced stop.
	Done func()
}

// ErrExecutorClosed is returned by Submit after Close.
var ErrExecutorClosed = errors.New("executor closed")

// Executor runs jobs from a bounded queue with a concurrency limit. Its
// queue has one owner: Submit sends, Close closes, Run consumes.
type Executor struct {
	runner  Runner
	timeout time.Duration
	sem     chan struct{} // nil: unlimited
	log     *slog.Logger

	qmu    sync.RWMutex // read-held by senders; Close takes it to close queue
	queue  chan *Job
	closed bool

	busyMu sync.Mutex
	busy   int // submitted and not finished
	idle   []chan struct{}

	ran, failed, dropped, running atomic.Uint64
	queued                        atomic.Int64
}

// NewExecutor returns an executor for p (nil: graph defaults) with a queue
// of queue jobs.
func NewExecutor(p *graph.Executor, runner Runner, queue int, log *slog.Logger) *Executor {
	if runner == nil {
		runner = ExecRunner{}
	}
	if log == nil {
		log = slog.Default()
	}
	if queue <= 0 {
		queue = graph.DefaultJobQueue
	}
	x := &Executor{runner: runner, timeout: graph.DefaultTimeout, log: log, queue: make(chan *Job, queue)}
	if p != nil {
		if p.Timeout > 0 {
			x.timeout = p.Timeout
		}
		if p.Concurrency > 0 {
			x.sem = make(chan struct{}, p.Concurrency)
		}
	}
	return x
}

// Submit queues a job, waiting for room until ctx is done.
func (x *Executor) Submit(ctx context.Context, j *Job) error {
	x.qmu.RLock()
	defer x.qmu.RUnlock()
	if x.closed {
		x.dropped.Add(1)
		return ErrExecutorClosed
	}
	x.enter()
	x.queued.Add(1)
	select {
	case x.queue <- j:
		return nil
	case <-ctx.Done():
		x.queued.Add(-1)
		x.dropped.Add(1)
		x.leave()
		return ctx.Err()
	}
}

// Close stops the queue: Run returns once every queued job has run.
func (x *Executor) Close() {
	x.qmu.Lock()
	defer x.qmu.Unlock()
	if !x.closed {
		x.closed = true
		close(x.queue)
	}
}

// Run runs queued jobs until the queue is closed and drained and every
// job has finished. When ctx is done, running commands are killed, queued
// jobs are dropped (and counted), and Run returns ctx's error.
func (x *Executor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case j, ok := <-x.queue:
			if !ok {
				return nil
			}
			x.queued.Add(-1)
			if x.sem != nil {
				select {
				case x.sem <- struct{}{}:
				case <-ctx.Done():
					x.drop(j)
					x.drain()
					return ctx.Err()
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				x.run(ctx, j)
				if x.sem != nil {
					<-x.sem
				}
			}()
		case <-ctx.Done():
			x.drain()
			return ctx.Err()
		}
	}
}

func (x *Executor) drain() {
	for {
		select {
		case j, ok := <-x.queue:
			if !ok {
				return
			}
			x.queued.Add(-1)
			x.drop(j)
		default:
			return
		}
	}
}

func (x *Executor) drop(j *Job) {
	x.dropped.Add(1)
	x.log.Warn("action dropped at stop", "stream", j.Stream, "filter", j.Filter, "action", j.Action, "argv", j.Argv)
	x.leave()
}

func (x *Executor) run(ctx context.Context, j *Job) {
	defer x.leave()
	x.running.Add(1)
	defer x.running.Add(^uint64(0))
	cctx, cancel := context.WithTimeout(ctx, x.timeout)
	start := time.Now()
	code, out, err := x.runner.Run(cctx, j.Argv)
	cancel()
	d := time.Since(start)
	x.ran.Add(1)
	attrs := []any{"stream", j.Stream, "filter", j.Filter, "action", j.Action, "argv", j.Argv, "exit", code, "duration", d}
	if err != nil || code != 0 {
		x.failed.Add(1)
		if err != nil {
			attrs = append(attrs, "error", err)
		}
		x.log.Warn("action failed", append(attrs, "output", string(out))...)
	} else {
		x.log.Info("action ran", attrs...)
		if len(out) > 0 {
			x.log.Debug("action output", "stream", j.Stream, "filter", j.Filter, "action", j.Action, "output", string(out))
		}
	}
	if j.Done != nil {
		j.Done()
	}
}

func (x *Executor) enter() {
	x.busyMu.Lock()
	x.busy++
	x.busyMu.Unlock()
}

func (x *Executor) leave() {
	x.busyMu.Lock()
	defer x.busyMu.Unlock()
	x.busy--
	if x.busy == 0 {
		for _, c := range x.idle {
			close(c)
		}
		x.idle = nil
	}
}

// WaitIdle returns when no job is queued or running, or when ctx is done.
func (x *Executor) WaitIdle(ctx context.Context) error {
	x.busyMu.Lock()
	if x.busy == 0 {
		x.busyMu.Unlock()
		return nil
	}
	c := make(chan struct{})
	x.idle = append(x.idle, c)
	x.busyMu.Unlock()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (x *Executor) stats() map[string]uint64 {
	return map[string]uint64{
		"ran":     x.ran.Load(),
		"failed":  x.failed.Load(),
		"queued":  uint64(max(x.queued.Load(), 0)),
		"running": x.running.Load(),
		"dropped": x.dropped.Load(),
	}
}
