package main

// End-to-end tests of the control socket: show, flush and trigger run as
// the built binary against a real daemon that follows a log file with
// `tail -F`. Nothing sleeps: the daemon's readiness is read from its log,
// and the effect of an appended line or of a command is awaited by
// polling (show, or the file an action touches) at a short interval up to
// a generous deadline.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// ctlDeadline bounds every wait: long enough for a loaded 2-core machine
// running the tests under -race, short enough to fail rather than hang.
const ctlDeadline = 20 * time.Second

// ctlPoll is the pause between two looks at something awaited.
const ctlPoll = 5 * time.Millisecond

// ctlConfig follows auth.log from its first line. Two filters of one
// stream, so that -l STREAM.FILTER has something to leave out. tail stops
// by itself if the test process dies without stopping the daemon.
func ctlConfig(stateDir string) string {
	return `
state_directory: '` + stateDir + `'
patterns:
  ip:
    type: ip
streams:
  ssh:
    cmd: ['tail', '-n', '+1', '-F', '--pid=` + strconv.Itoa(os.Getpid()) + `', 'auth.log']
    filters:
      failedlogin:
        regex: ['fail from <ip>']
        retry: 3
        retryperiod: 1h
        actions:
          ban:
            cmd: ['touch', 'bans/<ip>']
          unban:
            cmd: ['touch', 'unbans/<ip>']
            after: 1h
      scanner:
        regex: ['scan from <ip>']
        retry: 5
        retryperiod: 1h
        actions:
          log:
            cmd: ['touch', 'scans/<ip>']
`
}

// ctlDir prepares a working directory for the daemon: the config, an
// empty auth.log, the directories the actions touch files in. It returns
// the directory and a socket path short enough for sun_path.
func ctlDir(t *testing.T) (dir, sock string) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "reaction.yml"), ctlConfig(filepath.Join(dir, "state")))
	writeFile(t, filepath.Join(dir, "auth.log"), "")
	for _, d := range []string{"bans", "unbans", "scans", "state", "state2"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ctlSocket(t, dir)
}

// ctlSocket returns dir/r.sock, or a path in a fresh short directory
// when that would not fit in a unix socket address.
func ctlSocket(t *testing.T, dir string) string {
	t.Helper()
	if sock := filepath.Join(dir, "r.sock"); len(sock) < 100 {
		return sock
	}
	short, err := os.MkdirTemp("", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	return filepath.Join(short, "r.sock")
}

// ctlAppend appends lines to the log file the daemon follows.
func ctlAppend(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// ctlLog collects a process's stderr line by line and wakes up whoever
// waits for a new line.
type ctlLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed, and replaced, at every new line
}

func newCtlLog() *ctlLog { return &ctlLog{changed: make(chan struct{})} }

func (l *ctlLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

func (l *ctlLog) state() ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines, l.changed
}

func (l *ctlLog) String() string {
	lines, _ := l.state()
	return strings.Join(lines, "\n")
}

// ctlDaemon is `reaction start` running in the background.
type ctlDaemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    *ctlLog
	exited chan struct{} // closed once Wait returned; err is set then
	err    error
}

// ctlStart starts the daemon in dir and returns once it logged that its
// control socket listens. The test's cleanup stops it.
func ctlStart(t *testing.T, dir, sock string) *ctlDaemon {
	t.Helper()
	d := &ctlDaemon{t: t, log: newCtlLog(), exited: make(chan struct{})}
	d.cmd = exec.Command(binary, "start", "-c", "reaction.yml", "-s", sock, "-l", "DEBUG")
	d.cmd.Dir = dir
	d.cmd.Stderr = d.log
	d.cmd.WaitDelay = ctlDeadline // should a child keep stderr open
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("daemon: %v\nits log:\n%s", err, d.log)
		}
	})
	d.await("control socket listening")
	return d
}

// await returns the first log line containing substr, or fails the test
// when the daemon exits or the ctlDeadline passes without one.
func (d *ctlDaemon) await(substr string) string {
	d.t.Helper()
	timeout := time.After(ctlDeadline)
	seen := 0
	for {
		lines, changed := d.log.state()
		for _, l := range lines[seen:] {
			if strings.Contains(l, substr) {
				return l
			}
		}
		seen = len(lines)
		select {
		case <-changed:
		case <-d.exited:
			if lines, _ := d.log.state(); len(lines) == seen {
				d.t.Fatalf("daemon exited (%v) before logging %q; its log:\n%s", d.err, substr, d.log)
			}
		case <-timeout:
			d.t.Fatalf("daemon did not log %q within %v; its log:\n%s", substr, ctlDeadline, d.log)
		}
	}
}

// stop sends SIGTERM and waits for the daemon to exit; it kills it if it
// does not exit in time. It returns the exit error, nil for exit 0.
func (d *ctlDaemon) stop() error {
	select {
	case <-d.exited:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return d.err
	case <-time.After(ctlDeadline):
	}
	d.cmd.Process.Kill()
	<-d.exited
	return fmt.Errorf("did not exit within %v of SIGTERM (killed)", ctlDeadline)
}

// The documented JSON (and YAML) shape of show and flush.
type ctlSnapshot struct {
	Filters []ctlFilter `json:"filters" yaml:"filters"`
}

type ctlFilter struct {
	Stream   string       `json:"stream" yaml:"stream"`
	Filter   string       `json:"filter" yaml:"filter"`
	Patterns []string     `json:"patterns" yaml:"patterns"`
	Matches  []ctlMatch   `json:"matches" yaml:"matches"`
	Pending  []ctlPending `json:"pending" yaml:"pending"`
}

type ctlMatch struct {
	Values []string `json:"values" yaml:"values"`
	Count  int      `json:"count" yaml:"count"`
}

type ctlPending struct {
	Values []string  `json:"values" yaml:"values"`
	Action string    `json:"action" yaml:"action"`
	Due    time.Time `json:"due" yaml:"due"`
}

// filter returns the state of stream.filter, if s has it.
func (s ctlSnapshot) filter(name string) (ctlFilter, bool) {
	for _, f := range s.Filters {
		if f.Stream+"."+f.Filter == name {
			return f, true
		}
	}
	return ctlFilter{}, false
}

// count returns the match count of ip in filter name, 0 if none.
func (s ctlSnapshot) count(name, ip string) int {
	f, _ := s.filter(name)
	for _, m := range f.Matches {
		if len(m.Values) == 1 && m.Values[0] == ip {
			return m.Count
		}
	}
	return 0
}

// pending returns the pending actions of ip in filter name.
func (s ctlSnapshot) pending(name, ip string) []ctlPending {
	f, _ := s.filter(name)
	var out []ctlPending
	for _, p := range f.Pending {
		if len(p.Values) == 1 && p.Values[0] == ip {
			out = append(out, p)
		}
	}
	return out
}

// mentions tells whether ip appears anywhere in s.
func (s ctlSnapshot) mentions(ip string) bool {
	for _, f := range s.Filters {
		for _, m := range f.Matches {
			if strings.Join(m.Values, " ") == ip {
				return true
			}
		}
		for _, p := range f.Pending {
			if strings.Join(p.Values, " ") == ip {
				return true
			}
		}
	}
	return false
}

// ctlDecode decodes show's or flush's JSON output and checks its
// documented shape: every field present, lists never null.
func ctlDecode(t *testing.T, out string) ctlSnapshot {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	filters, ok := raw["filters"].([]any)
	if !ok {
		t.Fatalf(`output has no "filters" list:\n%s`, out)
	}
	for _, f := range filters {
		fm, _ := f.(map[string]any)
		for _, k := range []string{"stream", "filter"} {
			if _, ok := fm[k].(string); !ok {
				t.Fatalf("a filter has no string %q:\n%s", k, out)
			}
		}
		for _, k := range []string{"patterns", "matches", "pending"} {
			if _, ok := fm[k].([]any); !ok {
				t.Fatalf("a filter has no %q list (null or missing):\n%s", k, out)
			}
		}
		for _, m := range fm["matches"].([]any) {
			mm, _ := m.(map[string]any)
			if _, ok := mm["values"].([]any); !ok {
				t.Fatalf("a match has no values list:\n%s", out)
			}
			if _, ok := mm["count"].(float64); !ok {
				t.Fatalf("a match has no count:\n%s", out)
			}
		}
		for _, p := range fm["pending"].([]any) {
			pm, _ := p.(map[string]any)
			if _, ok := pm["values"].([]any); !ok {
				t.Fatalf("a pending action has no values list:\n%s", out)
			}
			if _, ok := pm["action"].(string); !ok {
				t.Fatalf("a pending action has no action:\n%s", out)
			}
			due, _ := pm["due"].(string)
			if _, err := time.Parse(time.RFC3339, due); err != nil {
				t.Fatalf("a pending action's due %q is not RFC 3339:\n%s", due, out)
			}
		}
	}
	var s ctlSnapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// ctlShow runs show --format json with args and decodes its output.
func ctlShow(t *testing.T, dir, sock string, args ...string) ctlSnapshot {
	t.Helper()
	r := reaction(t, dir, append([]string{"show", "-s", sock, "--format", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("show %v: exit %d: %s", args, r.code, r.stderr)
	}
	return ctlDecode(t, r.stdout)
}

// ctlAwaitShow runs show --format json until ok accepts its answer.
func ctlAwaitShow(t *testing.T, dir, sock, what string, ok func(ctlSnapshot) bool) ctlSnapshot {
	t.Helper()
	end := time.Now().Add(ctlDeadline)
	for {
		s := ctlShow(t, dir, sock)
		if ok(s) {
			return s
		}
		if time.Now().After(end) {
			t.Fatalf("show did not show %s within %v; last answer: %+v", what, ctlDeadline, s)
		}
		time.Sleep(ctlPoll)
	}
}

// ctlAwaitFile waits until path exists: an action ran.
func ctlAwaitFile(t *testing.T, path string) {
	t.Helper()
	end := time.Now().Add(ctlDeadline)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s did not appear within %v", path, ctlDeadline)
		}
		time.Sleep(ctlPoll)
	}
}

// ctlAbsent fails unless path does not exist.
func ctlAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (or cannot be looked at: %v)", path, err)
	}
}

// ctlOneLineError checks a failed command: the wanted exit code, nothing on
// stdout, exactly one non-empty line on stderr containing every want,
// and no trace of a Go panic.
func ctlOneLineError(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout is not empty:\n%s", r.stdout)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("stderr is not exactly one line:\n%s", r.stderr)
	}
	for _, bad := range []string{"goroutine", "panic"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, r.stderr)
		}
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

// ctlStaleSocket leaves at path a socket nothing listens on, as a crashed
// daemon would.
func ctlStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("no stale socket at %s: %v", path, err)
	}
}

// The scenario against a live daemon fed by `tail -F`: show lists
// keys with their match counts and filters by pattern and by -l; trigger
// runs the ban and leaves a pending unban with its due time; flush runs the
// pending unban at once and the key disappears; the text and YAML formats
// agree; the socket is owner-only, a second daemon refuses it, and SIGTERM
// removes it.
func TestControlLiveDaemon(t *testing.T) {
	dir, sock := ctlDir(t)
	logf := filepath.Join(dir, "auth.log")
	// A stale socket left by a crash is replaced.
	ctlStaleSocket(t, sock)
	d := ctlStart(t, dir, sock)

	t.Run("socket is owner-only", func(t *testing.T) {
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode %v, want a socket with mode 0600", fi.Mode())
		}
	})

	const (
		failed  = "ssh.failedlogin"
		scanner = "ssh.scanner"
		twice   = "203.0.113.5"  // two failed logins: count 2, not banned (retry 3)
		once    = "198.51.100.7" // one failed login, one scan
		manual  = "192.0.2.77"   // banned by trigger
		thrice  = "198.51.100.9" // three failed logins: banned by the stream
	)
	ctlAppend(t, logf,
		"sshd: fail from "+twice,
		"sshd: fail from "+once,
		"sshd: scan from "+once,
		"sshd: fail from "+twice,
	)
	s := ctlAwaitShow(t, dir, sock, "the appended lines", func(s ctlSnapshot) bool {
		return s.count(failed, twice) == 2 && s.count(failed, once) == 1 && s.count(scanner, once) == 1
	})

	t.Run("show json lists keys with their match counts", func(t *testing.T) {
		if len(s.Filters) != 2 {
			t.Fatalf("show lists %d filters, want 2: %+v", len(s.Filters), s)
		}
		f := s.Filters[0] // sorted by stream, then filter
		if f.Stream != "ssh" || f.Filter != "failedlogin" || strings.Join(f.Patterns, ",") != "ip" || len(f.Pending) != 0 {
			t.Fatalf("first filter: %+v", f)
		}
		want := []ctlMatch{{[]string{once}, 1}, {[]string{twice}, 2}} // sorted by values
		if fmt.Sprint(f.Matches) != fmt.Sprint(want) {
			t.Fatalf("matches %+v, want %+v", f.Matches, want)
		}
		if s.Filters[1].Filter != "scanner" {
			t.Fatalf("second filter: %+v", s.Filters[1])
		}
		if got := listDir(t, filepath.Join(dir, "bans")); len(got) != 0 {
			t.Fatalf("banned %v with fewer than 3 matches", got)
		}
	})

	t.Run("show NAME=REGEX selects keys", func(t *testing.T) {
		s := ctlShow(t, dir, sock, `ip=203\..*`)
		if len(s.Filters) != 1 || len(s.Filters[0].Matches) != 1 || s.count(failed, twice) != 2 {
			t.Fatalf("show ip=203\\..* answered %+v, want only %s", s, twice)
		}
		// The regex must match the whole value.
		if s := ctlShow(t, dir, sock, `ip=203\.0`); len(s.Filters) != 0 {
			t.Fatalf("a regex matching a prefix selected %+v", s)
		}
	})

	t.Run("show -l", func(t *testing.T) {
		s := ctlShow(t, dir, sock, "-l", "ssh.scanner")
		if len(s.Filters) != 1 || s.count(scanner, once) != 1 {
			t.Fatalf("show -l ssh.scanner answered %+v", s)
		}
		if s := ctlShow(t, dir, sock, "-l", "ssh"); len(s.Filters) != 2 {
			t.Fatalf("show -l ssh answered %+v", s)
		}
		ctlOneLineError(t, reaction(t, dir, "show", "-s", sock, "-l", "nosuch"), 1, `unknown stream "nosuch"`)
		ctlOneLineError(t, reaction(t, dir, "show", "-s", sock, "-l", "ssh.nosuch"), 1, `"nosuch"`)
		ctlOneLineError(t, reaction(t, dir, "flush", "-s", sock, "-l", "nosuch"), 1, `unknown stream "nosuch"`)
	})

	var before, after time.Time
	t.Run("trigger runs the ban and schedules the unban", func(t *testing.T) {
		before = time.Now()
		r := reaction(t, dir, "trigger", "-s", sock, "-l", "ssh.failedlogin", "ip="+manual)
		after = time.Now()
		if r.code != 0 || r.stdout != "triggered ssh.failedlogin ip="+manual+"\n" {
			t.Fatalf("trigger: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		ctlAwaitFile(t, filepath.Join(dir, "bans", manual))
		ctlAbsent(t, filepath.Join(dir, "unbans", manual))
		s := ctlShow(t, dir, sock)
		p := s.pending(failed, manual)
		if len(p) != 1 || p[0].Action != "unban" {
			t.Fatalf("pending actions of %s: %+v, want one unban", manual, p)
		}
		// Due one hour after the trigger; RFC 3339 in JSON keeps at least seconds.
		if p[0].Due.Before(before.Add(time.Hour-time.Second)) || p[0].Due.After(after.Add(time.Hour+time.Second)) {
			t.Fatalf("unban due %v, want an hour after the trigger (between %v and %v)", p[0].Due, before, after)
		}
	})

	t.Run("trigger --format json", func(t *testing.T) {
		// Another filter, whose action is immediate: this checks the output and that it ran.
		r := reaction(t, dir, "trigger", "-s", sock, "-l", "ssh.scanner", "--format", "json", "ip="+once)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got struct {
			Stream, Filter string
			Values         map[string]string
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Stream != "ssh" || got.Filter != "scanner" || got.Values["ip"] != once {
			t.Fatalf("output %q (%v)", r.stdout, err)
		}
		ctlAwaitFile(t, filepath.Join(dir, "scans", once))
	})

	t.Run("text format", func(t *testing.T) {
		r := reaction(t, dir, "show", "-s", sock)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^MATCHES$`),
			regexp.MustCompile(`(?m)^ssh\.failedlogin +ip=203\.0\.113\.5 +2$`),
			regexp.MustCompile(`(?m)^ssh\.scanner +ip=198\.51\.100\.7 +1$`),
			regexp.MustCompile(`(?m)^PENDING ACTIONS$`),
			regexp.MustCompile(`(?m)^ssh\.failedlogin +ip=192\.0\.2\.77 +unban +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(in (59m|1h)\)$`),
		} {
			if !want.MatchString(r.stdout) {
				t.Errorf("text output lacks %s:\n%s", want, r.stdout)
			}
		}
	})

	t.Run("yaml format", func(t *testing.T) {
		r := reaction(t, dir, "show", "-s", sock, "-f", "yaml", "-l", "ssh.failedlogin")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var s ctlSnapshot
		if err := yaml.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, r.stdout)
		}
		if len(s.Filters) != 1 || s.count(failed, twice) != 2 || len(s.pending(failed, manual)) != 1 {
			t.Fatalf("yaml answered %+v:\n%s", s, r.stdout)
		}
	})

	t.Run("flush runs the pending unban at once", func(t *testing.T) {
		r := reaction(t, dir, "flush", "-s", sock, "-f", "json", "ip="+manual)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		flushed := ctlDecode(t, r.stdout)
		if p := flushed.pending(failed, manual); len(flushed.Filters) != 1 || len(p) != 1 || p[0].Action != "unban" {
			t.Fatalf("flush answered %+v, want the unban of %s", flushed, manual)
		}
		ctlAwaitFile(t, filepath.Join(dir, "unbans", manual))
		if s := ctlShow(t, dir, sock); s.mentions(manual) {
			t.Fatalf("%s still shown after flush: %+v", manual, s)
		}
		r = reaction(t, dir, "show", "-s", sock, "ip="+manual)
		if r.code != 0 || r.stdout != "no matches and no pending actions\n" {
			t.Fatalf("show ip=%s: exit %d: %q %s", manual, r.code, r.stdout, r.stderr)
		}
		r = reaction(t, dir, "flush", "-s", sock, "ip="+manual)
		if r.code != 0 || r.stdout != "nothing to flush\n" {
			t.Fatalf("second flush: exit %d: %q %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("flush forgets matches", func(t *testing.T) {
		r := reaction(t, dir, "flush", "-s", sock, "-l", "ssh.failedlogin", `ip=203\.0\.113\.5`)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "flushed 1 key, ran 0 pending actions now\n") {
			t.Fatalf("flush: exit %d: %q %s", r.code, r.stdout, r.stderr)
		}
		s := ctlShow(t, dir, sock)
		if s.mentions(twice) || s.count(failed, once) != 1 || s.count(scanner, once) != 1 {
			t.Fatalf("after flushing %s show answered %+v", twice, s)
		}
		// Counting starts over: one more line is 1 match, not 3 (a ban).
		ctlAppend(t, logf, "sshd: fail from "+twice)
		ctlAwaitShow(t, dir, sock, "the new match", func(s ctlSnapshot) bool { return s.count(failed, twice) == 1 })
		ctlAbsent(t, filepath.Join(dir, "bans", twice))
	})

	t.Run("the stream's own ban is flushed too", func(t *testing.T) {
		ctlAppend(t, logf, "sshd: fail from "+thrice, "sshd: fail from "+thrice, "sshd: fail from "+thrice)
		ctlAwaitFile(t, filepath.Join(dir, "bans", thrice))
		ctlAwaitShow(t, dir, sock, "the unban of "+thrice, func(s ctlSnapshot) bool { return len(s.pending(failed, thrice)) == 1 })
		r := reaction(t, dir, "flush", "-s", sock, "-l", "ssh", "ip="+thrice)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		ctlAwaitFile(t, filepath.Join(dir, "unbans", thrice))
		if s := ctlShow(t, dir, sock); s.mentions(thrice) {
			t.Fatalf("%s still shown after flush: %+v", thrice, s)
		}
	})

	t.Run("errors from the daemon", func(t *testing.T) {
		ctlOneLineError(t, reaction(t, dir, "show", "-s", sock, "user=.*"), 1, `unknown pattern "user"`)
		ctlOneLineError(t, reaction(t, dir, "flush", "-s", sock, "-l", "ssh.scanner", "user=x"), 1, `unknown pattern "user"`)
		ctlOneLineError(t, reaction(t, dir, "trigger", "-s", sock, "-l", "ssh.failedlogin", "user=x"), 1, "<user>")
		ctlOneLineError(t, reaction(t, dir, "trigger", "-s", sock, "-l", "ssh.failedlogin", "ip=999.1.1.1"), 1, "999.1.1.1")
		ctlOneLineError(t, reaction(t, dir, "trigger", "-s", sock, "-l", "ssh.failedlogin"), 1, "<ip>")
		ctlOneLineError(t, reaction(t, dir, "trigger", "-s", sock, "-l", "ssh.nosuch", "ip=192.0.2.1"), 1, "nosuch")
		ctlOneLineError(t, reaction(t, dir, "trigger", "-s", sock, "-l", "nosuch.f", "ip=192.0.2.1"), 1, "nosuch")
		ctlAbsent(t, filepath.Join(dir, "bans", "999.1.1.1"))
		ctlAbsent(t, filepath.Join(dir, "bans", "192.0.2.1"))
	})

	t.Run("a second daemon refuses the live socket", func(t *testing.T) {
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		// Its own state directory, so that only the socket stands in its way.
		writeFile(t, filepath.Join(dir, "second.yml"), ctlConfig(filepath.Join(dir, "state2")))
		r := reaction(t, dir, "start", "-c", "second.yml", "-s", sock)
		if r.code != 1 || !strings.Contains(r.stderr, sock) {
			t.Fatalf("second start: exit %d, want 1 naming %s:\n%s", r.code, sock, r.stderr)
		}
		if now, err := os.Lstat(sock); err != nil || !os.SameFile(fi, now) {
			t.Fatalf("the second start touched the first daemon's socket (%v)", err)
		}
		if s := ctlShow(t, dir, sock); s.count(scanner, once) != 1 {
			t.Fatalf("the first daemon no longer answers as before: %+v", s)
		}
	})

	if err := d.stop(); err != nil {
		t.Fatalf("after SIGTERM: %v\nits log:\n%s", err, d.log)
	}
	ctlAbsent(t, sock)
	ctlOneLineError(t, reaction(t, dir, "show", "-s", sock), 1, "no reaction daemon is listening", sock)
}

// With no daemon on the socket (nothing there, or a stale socket), every
// command fails with exit 1 and one line naming the socket.
func TestControlNoDaemon(t *testing.T) {
	dir := t.TempDir()
	missing := ctlSocket(t, dir)
	stale := filepath.Join(filepath.Dir(missing), "s.sock")
	ctlStaleSocket(t, stale)
	for _, sock := range []string{missing, stale} {
		for _, args := range [][]string{
			{"show"},
			{"show", "-f", "json", "-l", "ssh.failedlogin", "ip=.*"},
			{"flush", "ip=192.0.2.1"},
			{"trigger", "-l", "ssh.failedlogin", "ip=192.0.2.1"},
		} {
			t.Run(filepath.Base(sock)+" "+strings.Join(args, " "), func(t *testing.T) {
				r := reaction(t, dir, append(args, "-s", sock)...)
				ctlOneLineError(t, r, 1, "no reaction daemon is listening", sock)
			})
		}
	}
}

// Malformed arguments are usage errors (exit 2) found before the daemon is
// asked: the socket given does not exist, and they still exit 2.
func TestControlUsageErrors(t *testing.T) {
	dir := t.TempDir()
	sock := ctlSocket(t, dir)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show", "-l", "a.b.c"}, `"a.b.c"`},
		{[]string{"show", "-l", ".x"}, "empty stream name"},
		{[]string{"flush", "-l", "ssh."}, "empty filter name"},
		{[]string{"show", "ip"}, `"ip": expected NAME=REGEX`},
		{[]string{"show", "=1.2.3.4"}, "empty pattern name"},
		{[]string{"flush", "ip"}, `"ip": expected NAME=REGEX`},
		{[]string{"show", "ip=1", "ip=2"}, `"ip" given twice`},
		{[]string{"show", "ip=("}, "missing closing )"},
		{[]string{"flush", "ip=[0-9"}, "missing closing ]"},
		{[]string{"trigger", "-l", "ssh.failedlogin", "ip"}, `"ip": expected NAME=VALUE`},
		{[]string{"trigger", "-l", "ssh.failedlogin", "=1.2.3.4"}, "empty pattern name"},
		{[]string{"trigger", "ip=192.0.2.1"}, "trigger needs -l STREAM.FILTER"},
		{[]string{"trigger", "-l", "ssh", "ip=192.0.2.1"}, "STREAM.FILTER"},
		{[]string{"trigger", "-l", "a.b.c", "ip=192.0.2.1"}, `"a.b.c"`},
		{[]string{"trigger", "-l", ".x", "ip=192.0.2.1"}, "empty stream name"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := reaction(t, dir, append(tt.args, "-s", sock)...)
			ctlOneLineError(t, r, 2, tt.args[0]+": ", tt.want)
		})
	}
	t.Run("unknown format", func(t *testing.T) {
		r := reaction(t, dir, "show", "-s", sock, "-f", "xml")
		if r.code != 2 || !strings.Contains(r.stderr, "xml") || strings.Contains(r.stderr, "goroutine") {
			t.Fatalf("exit %d, want 2 naming the format:\n%s", r.code, r.stderr)
		}
	})
}

// A flush is durable: after a restart, the flushed key's matches and
// pending unban do not come back, while what was not flushed does.
func TestFlushSurvivesRestart(t *testing.T) {
	dir, sock := ctlDir(t)
	logf := filepath.Join(dir, "auth.log")
	const (
		failed = "ssh.failedlogin"
		kept   = "203.0.113.5" // one match, a pending unban: kept
		gone   = "192.0.2.77"  // one match, a pending unban: flushed
	)
	d := ctlStart(t, dir, sock)
	ctlAppend(t, logf, "sshd: fail from "+kept, "sshd: fail from "+gone)
	ctlAwaitShow(t, dir, sock, "the appended lines", func(s ctlSnapshot) bool {
		return s.count(failed, kept) == 1 && s.count(failed, gone) == 1
	})
	for _, ip := range []string{kept, gone} {
		if r := reaction(t, dir, "trigger", "-s", sock, "-l", failed, "ip="+ip); r.code != 0 {
			t.Fatalf("trigger %s: exit %d: %s", ip, r.code, r.stderr)
		}
		ctlAwaitFile(t, filepath.Join(dir, "bans", ip))
	}
	if r := reaction(t, dir, "flush", "-s", sock, "ip="+gone); r.code != 0 {
		t.Fatalf("flush: exit %d: %s", r.code, r.stderr)
	}
	ctlAwaitFile(t, filepath.Join(dir, "unbans", gone))
	before := ctlShow(t, dir, sock)
	if before.mentions(gone) || len(before.pending(failed, kept)) != 1 {
		t.Fatalf("before the restart show answered %+v", before)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("after SIGTERM: %v\nits log:\n%s", err, d.log)
	}

	// The log is emptied, so that the restarted tail does not read the old
	// lines again: whatever show lists now comes from the state database.
	writeFile(t, logf, "")
	ctlStart(t, dir, sock)
	after := ctlAwaitShow(t, dir, sock, "the restored state", func(s ctlSnapshot) bool {
		return len(s.pending(failed, kept)) == 1
	})
	if after.mentions(gone) {
		t.Fatalf("the flushed %s came back after a restart: %+v", gone, after)
	}
	if p := after.pending(failed, kept); !p[0].Due.Equal(before.pending(failed, kept)[0].Due) {
		t.Fatalf("the unban of %s is due %v after the restart, %v before", kept, p[0].Due, before.pending(failed, kept)[0].Due)
	}
	if got := listDir(t, filepath.Join(dir, "unbans")); strings.Join(got, " ") != gone {
		t.Fatalf("unbans ran for %v, want only %s", got, gone)
	}
}
