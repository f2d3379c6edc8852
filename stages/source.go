package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"reaction/graph"
)

// SourceStats are a source's counters. They are updated while it runs and
// may be read at any time, from any goroutine.
type SourceStats struct {
	Lines    atomic.Uint64 // lines read, cut ones included
	Cut      atomic.Uint64 // lines longer than MaxLine, cut to MaxLine
	Batches  atomic.Uint64 // batches sent
	Restarts atomic.Uint64 // starts of the command after a failure
	Failures atomic.Uint64 // runs that failed: non-zero exit, killed, could not start
}

// Source runs one stream's command and turns its stdout and stderr into
// batches of lines. It never interprets a line; it never closes its output
// channel (the engine owns it).
type Source struct {
	// StopTimeout is how long the command's process group has between
	// SIGTERM and SIGKILL when the source is cancelled.
	StopTimeout time.Duration

	cfg   graph.Source
	clock Clock
	log   *slog.Logger
	stats SourceStats
}

const (
	chunkSize = 256 << 10 // read buffer; longer lines are assembled in a batch of their own
)

// NewSource returns the source of a stream. Zero sizes and durations in p
// take the graph defaults. clock and log may be nil; log is used as given,
// so it should already name the stream (the engine's does).
func NewSource(p *graph.Source, clock Clock, log *slog.Logger) *Source {
	cfg := *p
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = graph.DefaultMaxLine
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = graph.DefaultBatchSize
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = graph.DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(graph.DefaultBackoffMax, cfg.BackoffMin)
	}
	if clock == nil {
		clock = WallClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{
		StopTimeout: graph.DefaultStopTimeout,
		cfg:         cfg,
		clock:       clock,
		log:         log,
	}
}

// Stats returns the source's live counters.
func (s *Source) Stats() *SourceStats { return &s.stats }

// Run runs the stream command until it has finished or ctx is done,
// sending batches on out. It does not close out. It returns nil when the
// command exited 0 (finished) or ctx was cancelled. A command that fails
// (non-zero exit, killed, cannot start) is restarted after a backoff that
// starts at BackoffMin and doubles up to BackoffMax; a run that lasted at
// least BackoffMax starts the backoff over. The wait uses the clock.
//
// The output of the command is read until every writer has closed it, as
// upstream reaction does (a `sh -c 'tail -F x &'` keeps its stream); the
// command's exit status says whether it finished or failed.
func (s *Source) Run(ctx context.Context, out chan<- *Batch) error {
	if len(s.cfg.Cmd) == 0 {
		return fmt.Errorf("stream %s: empty command", s.cfg.Stream)
	}
	backoff := s.cfg.BackoffMin
	for {
		if ctx.Err() != nil {
			return nil
		}
		started := s.clock.Now()
		err := s.runOnce(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			s.log.Info("stream command finished")
			return nil
		}
		s.stats.Failures.Add(1)
		if s.clock.Now().Sub(started) >= s.cfg.BackoffMax {
			backoff = s.cfg.BackoffMin
		}
		wait := backoff
		backoff = min(2*backoff, s.cfg.BackoffMax)

		due := make(chan struct{})
		t := s.clock.AfterFunc(wait, func() { close(due) })
		// Logged once the timer is set: tests advance the clock on it.
		s.log.Warn("stream command failed, restarting", "err", err, "backoff", wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-due:
		}
		s.stats.Restarts.Add(1)
	}
}

// runOnce starts the command and returns when it has exited and its output
// has been read to the end, or, after ctx is done, when it has been
// terminated. The error is the command's failure, if any.
func (s *Source) runOnce(ctx context.Context, out chan<- *Batch) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer pr.Close()
	growPipe(pr)
	cmd := exec.Command(s.cfg.Cmd[0], s.cfg.Cmd[1:]...)
	// One pipe for both streams: a line written in one write(2) of at
	// most PIPE_BUF bytes never interleaves with the other stream.
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	pw.Close() // the child has its copy; EOF comes when every writer is gone
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	s.log.Debug("stream command started", "pid", pid, "cmd", s.cfg.Cmd)

	readDone := make(chan error, 1)
	go func() {
		err := s.ReadLines(ctx, pr, out)
		if err != nil && ctx.Err() != nil {
			// Cancelled: keep the pipe drained so that no writer blocks
			// on it while being terminated; ends at EOF or at the kill.
			_, _ = io.Copy(io.Discard, pr)
		}
		readDone <- err
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	var (
		waitErr      error
		waited, read bool
		ctxDone      = ctx.Done()
		killDue      chan struct{}
		killTimer    Timer
	)
	for !waited || !read {
		select {
		case waitErr = <-waitDone:
			waited = true
		case err := <-readDone:
			read = true
			if err != nil && ctx.Err() == nil {
				s.log.Warn("reading stream output", "err", err)
			}
		case <-ctxDone:
			ctxDone = nil
			// The whole group: children holding the pipe go too. A group
			// ID stays reserved while any member is left, so after the
			// leader's exit this reaches the rest of the group or nobody.
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			killDue = make(chan struct{})
			due := killDue
			killTimer = s.clock.AfterFunc(s.StopTimeout, func() { close(due) })
			s.log.Debug("stream command terminating", "pid", pid, "grace", s.StopTimeout)
		case <-killDue:
			killDue = nil
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			// A process that left the group may still hold the pipe.
			_ = pr.SetReadDeadline(time.Now())
			s.log.Warn("stream command killed after grace period", "pid", pid, "grace", s.StopTimeout)
		}
	}
	if killTimer != nil {
		killTimer.Stop()
	}
	return waitErr
}

// ReadLines is the source's synchronous core: it reads r until EOF and
// sends the lines on out in batches of up to BatchSize lines. A partial
// batch is sent as soon as no complete line is left in the read buffer, so
// a quiet log never holds a line back. Lines lose their trailing "\n" and
// "\r"; a line longer than MaxLine is cut to its first MaxLine bytes and
// counted. It returns nil at EOF, ctx.Err() when ctx is done, or r's error;
// pending lines are sent in every case but cancellation.
//
// Lines are not copied: r reads into a chunk, and the batches point into
// it (each holds a reference; the chunk is recycled when the last one is
// released). Only the unfinished line at the end of a full chunk is moved
// to the next one, and a line longer than a whole chunk is assembled in a
// batch of its own. Each byte is scanned once: the search for a line's end
// is also what tells whether another complete line is buffered.
func (s *Source) ReadLines(ctx context.Context, r io.Reader, out chan<- *Batch) error {
	maxLine, batchSize := s.cfg.MaxLine, s.cfg.BatchSize
	c := getChunk()
	defer func() { c.release() }()
	lo, hi := 0, 0 // read, not yet taken: c.data[lo:hi]
	var (
		b    *Batch // lines in c, from c.data[base:]
		base int

		long    *Batch // a line longer than a chunk, assembled in long.buf
		dropped bool   // bytes of that line were discarded
	)
	sendBatch := func(batch *Batch) error {
		n := uint64(len(batch.Lines))
		if ctx.Err() != nil {
			batch.Release()
			return ctx.Err()
		}
		select {
		case out <- batch:
			s.stats.Lines.Add(n)
			s.stats.Batches.Add(1)
			return nil
		case <-ctx.Done():
			batch.Release()
			return ctx.Err()
		}
	}
	// flush sends the batch of lines in c, if any.
	flush := func() error {
		if b == nil {
			return nil
		}
		batch := b
		b = nil
		batch.view = c.data[base:lo]
		return sendBatch(batch)
	}
	// take adds c.data[lo:lo+n] as a line, and the bytes up to next as
	// taken (its "\n", unless it is the last line).
	take := func(n, next int) error {
		line := c.data[lo : lo+n]
		if n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > maxLine {
			line = line[:maxLine]
			s.stats.Cut.Add(1)
		}
		if b == nil {
			b, base = GetBatch(), lo
			b.Time = s.clock.Now()
			b.chunk = c
			c.refs.Add(1)
		}
		b.Lines = append(b.Lines, line[:len(line):len(line)])
		b.offs = append(b.offs, int32(lo-base))
		lo = next
		if len(b.Lines) >= batchSize {
			return flush()
		}
		return nil
	}
	// addLong appends frag to the long line, keeping up to MaxLine+1
	// bytes: one more than allowed tells a line of exactly MaxLine bytes
	// plus "\r" from a longer one.
	addLong := func(frag []byte) {
		if long == nil {
			long = GetBatch()
			long.Time = s.clock.Now()
			dropped = false
		}
		if room := maxLine + 1 - len(long.buf); len(frag) > room {
			frag = frag[:max(room, 0)]
			dropped = true
		}
		long.buf = append(long.buf, frag...)
	}
	// endLong completes the long line and sends it.
	endLong := func() error {
		line := long.buf
		if !dropped && len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if dropped || len(line) > maxLine {
			line = line[:maxLine]
			s.stats.Cut.Add(1)
		}
		long.buf = line
		long.Lines = append(long.Lines, line[:len(line):len(line)])
		long.offs = append(long.offs, 0)
		batch := long
		long = nil
		return sendBatch(batch)
	}
	var rerr error
	for {
		if long != nil && lo < hi {
			i := bytes.IndexByte(c.data[lo:hi], '\n')
			if i < 0 {
				addLong(c.data[lo:hi])
				lo = hi
			} else {
				addLong(c.data[lo : lo+i])
				lo += i + 1
				if err := endLong(); err != nil {
					return err
				}
			}
		}
		if long == nil {
			for {
				i := bytes.IndexByte(c.data[lo:hi], '\n')
				if i < 0 {
					break
				}
				if err := take(i, lo+i+1); err != nil {
					return err
				}
			}
		}
		if rerr != nil {
			if long != nil {
				if err := endLong(); err != nil { // the last line, without "\n"
					return err
				}
			} else if lo < hi {
				if err := take(hi-lo, hi); err != nil { // the last line, without "\n"
					return err
				}
			}
			if err := flush(); err != nil {
				return err
			}
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
		// Nothing complete is buffered: send before a read that may block.
		if err := flush(); err != nil {
			return err
		}
		if hi == len(c.data) {
			if lo == 0 {
				// No line ends in the whole chunk: assemble it apart.
				addLong(c.data[:hi])
				lo = hi
			}
			// A fresh chunk, with the unfinished line moved to its start.
			next := getChunk()
			hi = copy(next.data, c.data[lo:hi])
			lo = 0
			c.release()
			c = next
		}
		n, err := r.Read(c.data[hi:])
		hi += n
		if err != nil {
			rerr = err
		} else if n == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
