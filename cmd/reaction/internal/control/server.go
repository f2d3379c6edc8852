package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Controller is what the daemon does on behalf of the control socket. Its
// methods are called from several connections at once. There are four
// because the protocol has four commands; the server does the decoding and
// validation of requests, so the daemon's adapter stays a translation.
type Controller interface {
	// Show returns the state of the selected filters.
	Show(Selector) (Snapshot, error)
	// Flush forgets the selected keys, runs their pending actions now and
	// returns what it flushed.
	Flush(Selector) (Snapshot, error)
	// Trigger runs a filter's actions for values (pattern name → value), as
	// if the filter had triggered. It validates the values.
	Trigger(stream, filter string, values map[string]string) error
	// Stats returns per-node counters: node ID → counter name → value.
	Stats() map[string]map[string]uint64
}

// Defaults of the Server's knobs.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMaxConns = 32
)

// Server is the daemon's end of the control socket. Set its exported
// fields before calling Serve.
type Server struct {
	// Logger receives one line per state-changing request and per failure;
	// nil means slog.Default().
	Logger *slog.Logger
	// Timeout bounds reading a request and, separately, writing its
	// response, so a slow or silent client cannot hold a goroutine.
	Timeout time.Duration
	// MaxConns bounds the connections served at once; more wait in the
	// listen backlog.
	MaxConns int

	path string
	ln   *net.UnixListener
	file os.FileInfo // the socket file as created, so that only ours is removed

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool

	closeOnce sync.Once
	closeErr  error
}

// Listen creates the socket at path, with mode 0600, and its parent
// directory (0755) if missing. A socket already at path is replaced if
// nothing answers on it (a stale socket left by a crash); if a daemon
// answers, Listen fails. Anything else at path is never removed.
//
// The socket is bound in a private temporary directory beside path, made
// owner-only, and only then linked into place: no one can connect while
// its mode is still the umask's.
func Listen(path string) (*Server, error) {
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Refuse early, before binding anything, when the path is taken.
	if err := clearStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".reaction-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpSock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // the bound name is the temporary one; Close removes path itself
	if err := os.Chmod(tmpSock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := place(tmpSock, path); err != nil {
		ln.Close()
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{path: path, ln: ln, file: fi, conns: map[net.Conn]struct{}{}}, nil
}

// place links the bound socket at path, clearing a stale socket first. A
// link, unlike a rename, never replaces a socket another daemon created
// meanwhile.
func place(tmp, path string) error {
	for range 3 {
		if err := clearStale(path); err != nil {
			return err
		}
		err := os.Link(tmp, path)
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue // created meanwhile: look at it again
		}
		// A filesystem without hard links: path was free a moment ago.
		if rerr := os.Rename(tmp, path); rerr != nil {
			return fmt.Errorf("control socket %s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("control socket %s: keeps being created by someone else", path)
}

// clearStale makes path free: nothing there, or a socket nobody answers on
// (removed). A live socket or a file of another type is an error.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket but %s; not removing it", path, kind(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another reaction is listening on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: cannot tell whether a daemon is listening on %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: removing stale %s: %w", path, err)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	}
	return "a special file"
}

// Serve answers requests with c until ctx is done or Close is called, then
// stops accepting, interrupts requests still being read, waits for the
// running ones and removes the socket file.
func (s *Server) Serve(ctx context.Context, c Controller) error {
	log := s.logger()
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	stop := context.AfterFunc(ctx, s.shutdown)
	defer stop()

	var wg sync.WaitGroup
	slots := make(chan struct{}, maxConns)
	backoff := time.Duration(0)
	log.Info("control socket listening", "path", s.path)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		conn, err := s.ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Out of file descriptors and the like: wait and retry, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Error("control socket: accept failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.handle(log, c, conn)
		}()
	}
	s.shutdown()
	wg.Wait()
	return s.Close()
}

// Close stops accepting and removes the socket file, if it is still the
// one Listen created. Serve calls it on its way out.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.shutdown()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.closeErr = fmt.Errorf("control socket: %w", err)
			}
		}
	})
	return s.closeErr
}

// shutdown closes the listener and makes reads of requests fail now.
// Responses being computed are still written.
func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.closing = true
	s.ln.Close()
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// track registers conn and arms its read deadline, unless the server is
// shutting down.
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[conn] = struct{}{}
	conn.SetReadDeadline(time.Now().Add(s.timeout()))
	return true
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

func (s *Server) handle(log *slog.Logger, c Controller, conn net.Conn) {
	defer conn.Close()
	if !s.track(conn) {
		return
	}
	defer s.untrack(conn)

	lr := &io.LimitedReader{R: conn, N: MaxRequestSize + 1}
	var req Request
	var resp Response
	if err := json.NewDecoder(lr).Decode(&req); err != nil {
		var nerr net.Error
		switch {
		case errors.Is(err, io.EOF):
			return // connected and left: Listen probing for a live daemon
		case lr.N <= 0:
			resp = failure(fmt.Errorf("request larger than %d bytes", MaxRequestSize))
		case errors.As(err, &nerr) && nerr.Timeout():
			if s.isClosing() {
				return
			}
			log.Warn("control socket: no complete request in time", "timeout", s.timeout())
			return
		default:
			resp = failure(fmt.Errorf("malformed request: %v", err))
		}
		log.Warn("control socket: bad request", "error", resp.Error)
	} else {
		resp = s.answer(log, c, req)
	}
	conn.SetWriteDeadline(time.Now().Add(s.timeout()))
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(failure(fmt.Errorf("encoding the response: %v", err)))
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		log.Warn("control socket: writing the response", "command", req.Command, "error", err)
	}
}

// failure is the response to a refused request. Its message is printed by
// the CLI as one line: the lines of a joined error (errors.Join) are
// joined with "; ".
func failure(err error) Response {
	return Response{Version: Version, OK: false, Error: oneLine(err.Error())}
}

func oneLine(msg string) string {
	lines := strings.Split(strings.ReplaceAll(msg, "\r\n", "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "" })
	return strings.Join(lines, "; ")
}

// answer runs one request. A panic in the controller fails the request,
// not the daemon.
func (s *Server) answer(log *slog.Logger, c Controller, req Request) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("control socket: request panicked", "command", req.Command, "panic", p, "stack", string(debug.Stack()))
			resp = failure(fmt.Errorf("internal error while running %s (see the daemon's log)", req.Command))
		}
	}()
	switch {
	case req.Version == 0:
		return failure(fmt.Errorf("request has no protocol version; this daemon speaks control protocol version %d", Version))
	case req.Version != Version:
		return failure(fmt.Errorf("control protocol version %d is not supported: this daemon speaks version %d (use the reaction binary that matches the running daemon)", req.Version, Version))
	}
	attrs := []any{"command", req.Command, "stream", req.Stream, "filter", req.Filter}
	resp = Response{Version: Version, OK: true}
	switch req.Command {
	case CommandShow, CommandFlush:
		if len(req.Values) > 0 {
			return failure(fmt.Errorf("%s selects keys with patterns, not values", req.Command))
		}
		sel, err := req.Selector()
		if err != nil {
			return failure(err)
		}
		var snap Snapshot
		if req.Command == CommandShow {
			snap, err = c.Show(sel)
		} else {
			snap, err = c.Flush(sel)
		}
		if err != nil {
			log.Debug("control socket: request failed", append(attrs, "error", err)...)
			return failure(err)
		}
		snap.Normalize()
		resp.Snapshot = &snap
		if req.Command == CommandFlush {
			keys, actions := snap.Counts()
			log.Info("control socket: flush", append(attrs, "patterns", req.Patterns, "keys", keys, "actions", actions)...)
		} else {
			log.Debug("control socket: show", attrs...)
		}
	case CommandTrigger:
		if req.Stream == "" || req.Filter == "" {
			return failure(errors.New("trigger needs a stream and a filter"))
		}
		if len(req.Patterns) > 0 {
			return failure(errors.New("trigger takes values, not patterns"))
		}
		if err := c.Trigger(req.Stream, req.Filter, req.Values); err != nil {
			log.Debug("control socket: request failed", append(attrs, "error", err)...)
			return failure(err)
		}
		log.Info("control socket: trigger", append(attrs, "values", req.Values)...)
	case CommandStats:
		resp.Stats = c.Stats()
		if resp.Stats == nil {
			resp.Stats = map[string]map[string]uint64{}
		}
	default:
		return failure(fmt.Errorf("unknown command %q (commands: show, flush, trigger, stats)", req.Command))
	}
	return resp
}

// Counts returns the number of distinct keys and of pending actions in s.
func (s Snapshot) Counts() (keys, actions int) {
	for _, f := range s.Filters {
		seen := make(map[string]bool, len(f.Matches))
		for _, m := range f.Matches {
			seen[keyString(m.Values)] = true
		}
		for _, p := range f.Pending {
			seen[keyString(p.Values)] = true
		}
		keys += len(seen)
		actions += len(f.Pending)
	}
	return keys, actions
}

func keyString(values []string) string {
	b, _ := json.Marshal(values)
	return string(b)
}
