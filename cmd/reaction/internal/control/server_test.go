package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fake is a Controller whose answers the tests set.
type fake struct {
	mu       sync.Mutex
	selector Selector
	trigger  []string
	values   map[string]string

	show    func(Selector) (Snapshot, error)
	flush   func(Selector) (Snapshot, error)
	trigErr error
	stats   map[string]map[string]uint64
}

func (f *fake) Show(s Selector) (Snapshot, error) {
	f.mu.Lock()
	f.selector = s
	show := f.show
	f.mu.Unlock()
	if show == nil {
		return Snapshot{}, nil
	}
	return show(s)
}

func (f *fake) Flush(s Selector) (Snapshot, error) {
	f.mu.Lock()
	f.selector = s
	flush := f.flush
	f.mu.Unlock()
	if flush == nil {
		return Snapshot{}, nil
	}
	return flush(s)
}

func (f *fake) Trigger(stream, filter string, values map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trigger = []string{stream, filter}
	f.values = values
	return f.trigErr
}

func (f *fake) sel() Selector {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.selector
}

func (f *fake) triggered() ([]string, map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.trigger, f.values
}

func (f *fake) Stats() map[string]map[string]uint64 { return f.stats }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sockPath returns a socket path in a fresh directory, short enough for
// the 108-byte limit of unix socket paths.
func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "run", "reaction.sock")
}

// serve runs a server on path until the test ends; stop stops it early
// and returns Serve's error.
func serve(t *testing.T, path string, c Controller, tune func(*Server)) (stop func() error) {
	t.Helper()
	s, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s.Logger = quietLogger()
	if tune != nil {
		tune(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, c) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return after cancel")
			}
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	return stop
}

func do(t *testing.T, path string, req Request) (Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Do(ctx, path, req)
}

// raw sends bytes on a fresh connection and returns the decoded answer.
func raw(t *testing.T, path string, payload []byte) Response {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go conn.Write(payload) // may block on a large payload the server stops reading
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp
}

func TestRoundTrip(t *testing.T) {
	due := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f := &fake{
		show: func(Selector) (Snapshot, error) {
			return Snapshot{Filters: []Filter{
				{Stream: "web", Filter: "scan", Patterns: []string{"ip"}},
				{Stream: "ssh", Filter: "login", Patterns: []string{"ip"},
					Matches: []Match{{Values: []string{"5.6.7.8"}, Count: 1}, {Values: []string{"1.2.3.4"}, Count: 2}},
					Pending: []Pending{{Values: []string{"9.9.9.9"}, Action: "unban", Due: due}}},
			}}, nil
		},
		flush: func(Selector) (Snapshot, error) {
			return Snapshot{Filters: []Filter{{Stream: "ssh", Filter: "login", Patterns: []string{"ip"},
				Pending: []Pending{{Values: []string{"9.9.9.9"}, Action: "unban", Due: due}}}}}, nil
		},
		stats: map[string]map[string]uint64{"counter:ssh.login": {"matches": 3}},
	}
	path := sockPath(t)
	serve(t, path, f, nil)

	resp, err := do(t, path, Request{Command: CommandShow, Stream: "ssh", Patterns: map[string]string{"ip": `1\.2\..*`}})
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	if sel := f.sel(); sel.Stream != "ssh" || sel.Filter != "" {
		t.Errorf("selector = %+v", sel)
	}
	re := f.sel().Patterns["ip"]
	if re == nil || !re.MatchString("1.2.3.4") || re.MatchString("11.2.3.4") || re.MatchString("x1.2.3.4") {
		t.Errorf("pattern regex %v does not match values as a whole", re)
	}
	snap := resp.Snapshot
	if snap == nil || len(snap.Filters) != 2 {
		t.Fatalf("snapshot = %+v", snap)
	}
	if snap.Filters[0].Stream != "ssh" || snap.Filters[1].Stream != "web" {
		t.Errorf("filters not sorted: %+v", snap.Filters)
	}
	if m := snap.Filters[0].Matches; m[0].Values[0] != "1.2.3.4" || m[1].Count != 1 {
		t.Errorf("matches not sorted: %+v", m)
	}
	if p := snap.Filters[0].Pending; len(p) != 1 || !p[0].Due.Equal(due) || p[0].Action != "unban" {
		t.Errorf("pending = %+v", p)
	}
	if snap.Filters[1].Matches == nil || snap.Filters[1].Pending == nil {
		t.Errorf("empty lists must not be nil: %+v", snap.Filters[1])
	}

	resp, err = do(t, path, Request{Command: CommandFlush, Stream: "ssh", Filter: "login"})
	if err != nil || resp.Snapshot == nil || len(resp.Snapshot.Filters[0].Pending) != 1 {
		t.Fatalf("flush: %+v, %v", resp, err)
	}
	if sel := f.sel(); sel.Filter != "login" || sel.Patterns != nil {
		t.Errorf("flush selector = %+v", sel)
	}

	if _, err := do(t, path, Request{Command: CommandTrigger, Stream: "ssh", Filter: "login", Values: map[string]string{"ip": "1.2.3.4"}}); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	if where, values := f.triggered(); strings.Join(where, ".") != "ssh.login" || values["ip"] != "1.2.3.4" {
		t.Errorf("trigger got %v %v", where, values)
	}

	resp, err = do(t, path, Request{Command: CommandStats})
	if err != nil || resp.Stats["counter:ssh.login"]["matches"] != 3 {
		t.Fatalf("stats: %+v, %v", resp, err)
	}
}

func TestRemoteErrors(t *testing.T) {
	f := &fake{
		show:    func(Selector) (Snapshot, error) { return Snapshot{}, errors.New(`unknown stream "sshh"`) },
		trigErr: errors.New(`pattern ip: "1.2.3" is not a valid address`),
	}
	path := sockPath(t)
	serve(t, path, f, nil)
	tests := []struct {
		req  Request
		want string
	}{
		{Request{Command: CommandShow, Stream: "sshh"}, `unknown stream "sshh"`},
		{Request{Command: CommandTrigger, Stream: "ssh", Filter: "f", Values: map[string]string{"ip": "1.2.3"}}, `pattern ip: "1.2.3" is not a valid address`},
		{Request{Command: CommandTrigger, Stream: "ssh"}, "trigger needs a stream and a filter"},
		{Request{Command: CommandShow, Filter: "f"}, `filter "f" given without its stream`},
		{Request{Command: CommandShow, Patterns: map[string]string{"ip": "("}}, "pattern ip: error parsing regexp"},
		{Request{Command: CommandShow, Values: map[string]string{"ip": "1"}}, "show selects keys with patterns, not values"},
		{Request{Command: "ban"}, `unknown command "ban"`},
	}
	for _, tt := range tests {
		_, err := do(t, path, tt.req)
		var rerr *RemoteError
		if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, tt.want) {
			t.Errorf("%+v: error %v, want a RemoteError containing %q", tt.req, err, tt.want)
		}
	}
}

// A joined error (several lines) reaches the client as one line, so that
// the CLI prints exactly one line on stderr.
func TestRemoteErrorIsOneLine(t *testing.T) {
	f := &fake{trigErr: errors.Join(errors.New("ssh.f: missing value for <ip>"), errors.New("filter ssh.f has no pattern <user>"))}
	path := sockPath(t)
	serve(t, path, f, nil)
	_, err := do(t, path, Request{Command: CommandTrigger, Stream: "ssh", Filter: "f", Values: map[string]string{"user": "x"}})
	var rerr *RemoteError
	want := "ssh.f: missing value for <ip>; filter ssh.f has no pattern <user>"
	if !errors.As(err, &rerr) || rerr.Message != want {
		t.Fatalf("error %v, want a RemoteError %q", err, want)
	}
}

func TestSocketMode(t *testing.T) {
	old := syscall.Umask(0) // the mode must not depend on the umask
	defer syscall.Umask(old)
	path := sockPath(t)
	s, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() || di.Mode().Perm() != 0o755 {
		t.Errorf("parent mode = %v, want directory 0755", di.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the socket: %v", entries)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := sockPath(t)
	os.MkdirAll(filepath.Dir(path), 0o755)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // as after a crash: the file stays, nobody listens
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not there: %v", err)
	}
	serve(t, path, &fake{}, nil)
	if _, err := do(t, path, Request{Command: CommandStats}); err != nil {
		t.Fatalf("after replacing the stale socket: %v", err)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &fake{}, nil)
	_, err := Listen(path)
	if err == nil || err.Error() != "another reaction is listening on "+path {
		t.Fatalf("second Listen: %v", err)
	}
	// The probe must not disturb the running daemon.
	if _, err := do(t, path, Request{Command: CommandStats}); err != nil {
		t.Fatalf("first daemon after the probe: %v", err)
	}
}

func TestNonSocketRefused(t *testing.T) {
	for _, kind := range []string{"file", "dir", "symlink"} {
		t.Run(kind, func(t *testing.T) {
			path := sockPath(t)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if kind == "file" {
				os.WriteFile(path, []byte("precious"), 0o644)
			} else if kind == "dir" {
				os.Mkdir(path, 0o755)
			} else {
				// A symlink to a live socket is still not ours to replace.
				os.Symlink(filepath.Join(filepath.Dir(path), "elsewhere"), path)
			}
			_, err := Listen(path)
			if err == nil || !strings.Contains(err.Error(), "exists and is not a socket but a") || !strings.HasSuffix(err.Error(), "; not removing it") {
				t.Fatalf("Listen: %v", err)
			}
			if kind == "file" {
				if b, _ := os.ReadFile(path); string(b) != "precious" {
					t.Errorf("file was touched: %q", b)
				}
			} else if fi, err := os.Lstat(path); err != nil || (kind == "dir") != fi.IsDir() {
				t.Errorf("%s was touched: %v", kind, err)
			}
		})
	}
}

func TestSocketRemovedOnExit(t *testing.T) {
	path := sockPath(t)
	stop := serve(t, path, &fake{}, nil)
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after Serve: %v", err)
	}
	_, err := do(t, path, Request{Command: CommandStats})
	if !errors.Is(err, ErrNoDaemon) {
		t.Errorf("after exit: %v", err)
	}
}

func TestCloseLeavesAnotherSocket(t *testing.T) {
	path := sockPath(t)
	s, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	// Someone removed ours and put theirs in place.
	os.Remove(path)
	os.WriteFile(path, []byte("theirs"), 0o600)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "theirs" {
		t.Errorf("Close removed a file it did not create")
	}
}

func TestNoDaemon(t *testing.T) {
	path := sockPath(t)
	_, err := do(t, path, Request{Command: CommandShow})
	want := "no reaction daemon is listening on " + path + " (is it running? is -s right?)"
	if !errors.Is(err, ErrNoDaemon) || err.Error() != want {
		t.Errorf("no socket: %v\nwant %s", err, want)
	}
	// A stale socket: the file exists, nobody listens.
	os.MkdirAll(filepath.Dir(path), 0o755)
	ln, _ := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := do(t, path, Request{Command: CommandShow}); !errors.Is(err, ErrNoDaemon) || err.Error() != want {
		t.Errorf("stale socket: %v", err)
	}
}

func TestVersionMismatch(t *testing.T) {
	t.Run("old daemon", func(t *testing.T) {
		path := sockPath(t)
		serve(t, path, &fake{}, nil)
		resp := raw(t, path, []byte(`{"version":2,"command":"show"}`+"\n"))
		if resp.OK || resp.Version != Version || !strings.Contains(resp.Error, "version 2 is not supported: this daemon speaks version 1") {
			t.Errorf("response = %+v", resp)
		}
		resp = raw(t, path, []byte(`{"command":"show"}`+"\n"))
		if resp.OK || !strings.Contains(resp.Error, "no protocol version") {
			t.Errorf("response = %+v", resp)
		}
	})
	t.Run("new daemon", func(t *testing.T) {
		path := sockPath(t)
		os.MkdirAll(filepath.Dir(path), 0o755)
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			bufio.NewReader(c).ReadBytes('\n')
			c.Write([]byte(`{"version":2,"ok":true,"whatever":{}}` + "\n"))
		}()
		_, err = do(t, path, Request{Command: CommandShow})
		if err == nil || !strings.Contains(err.Error(), "speaks control protocol version 2, this reaction speaks version 1") {
			t.Errorf("Do: %v", err)
		}
	})
}

func TestBadRequests(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &fake{}, nil)
	big := `{"version":1,"command":"show","stream":"` + strings.Repeat("a", 2*MaxRequestSize) + `"}` + "\n"
	if resp := raw(t, path, []byte(big)); resp.OK || resp.Error != "request larger than 65536 bytes" {
		t.Errorf("large request: %+v", resp)
	}
	if resp := raw(t, path, []byte("show me\n")); resp.OK || !strings.Contains(resp.Error, "malformed request") {
		t.Errorf("garbage: %+v", resp)
	}
	// The server survives both.
	if _, err := do(t, path, Request{Command: CommandStats}); err != nil {
		t.Error(err)
	}
}

func TestSlowShowDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	f := &fake{show: func(Selector) (Snapshot, error) {
		close(entered)
		<-release
		return Snapshot{Filters: []Filter{{Stream: "s", Filter: "f"}}}, nil
	}}
	path := sockPath(t)
	serve(t, path, f, nil)

	slow := make(chan error, 1)
	go func() {
		_, err := do(t, path, Request{Command: CommandShow})
		slow <- err
	}()
	<-entered
	for i := range 5 { // more clients than one while Show is stuck
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := Do(ctx, path, Request{Command: CommandStats})
		cancel()
		if err != nil {
			t.Fatalf("stats %d while show is running: %v", i, err)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("show returned before being released: %v", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("slow show: %v", err)
	}
}

func TestSilentClientTimedOut(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &fake{}, func(s *Server) { s.Timeout = 50 * time.Millisecond; s.MaxConns = 1 })
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent client: read %v, want EOF (server hung up)", err)
	}
	// The only slot is free again.
	if _, err := do(t, path, Request{Command: CommandStats}); err != nil {
		t.Error(err)
	}
}

func TestShutdownInterruptsSilentClients(t *testing.T) {
	path := sockPath(t)
	stop := serve(t, path, &fake{}, func(s *Server) { s.Timeout = time.Hour })
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Make sure the server is handling it before stopping.
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve took %v to stop with a silent client", d)
	}
}

func TestPanicFailsOnlyTheRequest(t *testing.T) {
	f := &fake{show: func(Selector) (Snapshot, error) { panic("boom") }}
	path := sockPath(t)
	serve(t, path, f, nil)
	_, err := do(t, path, Request{Command: CommandShow})
	var rerr *RemoteError
	if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "internal error") {
		t.Errorf("Do: %v", err)
	}
	if _, err := do(t, path, Request{Command: CommandStats}); err != nil {
		t.Errorf("after a panic: %v", err)
	}
}

func TestDoHonoursContext(t *testing.T) {
	release := make(chan struct{})
	f := &fake{show: func(Selector) (Snapshot, error) { <-release; return Snapshot{}, nil }}
	path := sockPath(t)
	serve(t, path, f, nil)
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Do(ctx, path, Request{Command: CommandShow})
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("Do: %v", err)
	}
}
