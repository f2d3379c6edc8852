package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runningDaemon is a reaction start running in the background.
type runningDaemon struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	seen  []string // every log line await has read
}

// startDaemon starts reaction in dir and waits for its socket.
func startDaemon(t *testing.T, dir string, args ...string) *runningDaemon {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"start", "-c", "reaction.yml", "-l", "DEBUG"}, args...)...)
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &runningDaemon{t: t, cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case d.lines <- sc.Text():
			default: // nobody waits for it
			}
		}
		close(d.lines)
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	d.await("control socket listening")
	return d
}

// await reads the daemon's log until a line contains every part.
func (d *runningDaemon) await(parts ...string) string {
	d.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("daemon exited before logging %q", parts)
			}
			d.seen = append(d.seen, l)
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				return l
			}
		case <-timeout:
			d.t.Fatalf("daemon never logged %q", parts)
		}
	}
}

func (d *runningDaemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

const stateConfig = `
state_directory: state
patterns:
  ip: {type: ip}
streams:
  s:
    cmd: ['sh', '-c', 'cat PHASE.log; exec sleep 1000']
    filters:
      f:
        regex: ['offence from <ip>']
        retry: 3
        retryperiod: 1h
        actions:
          ban:
            cmd: ['touch', 'ban <ip>']
          unban:
            cmd: ['touch', 'unban <ip>']
            after: 4s
`

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Issue 3, must hold 1: after kill -9, a key with 2 of 3 matches bans on
// the next match; a ban whose unban was pending is re-applied at start and
// unbanned at its original due time.
func TestKill9KeepsMatchesAndPendingUnbans(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "r.sock")
	writeFile(t, filepath.Join(dir, "reaction.yml"), strings.Replace(stateConfig, "PHASE", "one", 1))
	// A's two matches come before B's trigger: the trigger makes the
	// pending unban durable before the ban runs, and everything journaled
	// before it with it.
	writeFile(t, filepath.Join(dir, "one.log"), "offence from 192.0.2.1\noffence from 192.0.2.1\n"+
		"offence from 2001:db8::2\noffence from 2001:db8::2\noffence from 2001:db8::2\n")
	d := startDaemon(t, dir, "-s", sock)
	d.await("action ran", "action=ban", "2001:db8::2")
	before := ctlShow(t, dir, sock)
	if len(before.Filters) != 1 || len(before.Filters[0].Pending) != 1 || len(before.Filters[0].Matches) != 1 {
		t.Fatalf("before the crash: %+v", before)
	}
	due := before.Filters[0].Pending[0].Due
	d.kill9()
	os.Remove(filepath.Join(dir, "ban 2001:db8::2"))

	writeFile(t, filepath.Join(dir, "reaction.yml"), strings.Replace(stateConfig, "PHASE", "two", 1))
	writeFile(t, filepath.Join(dir, "two.log"), "")
	d = startDaemon(t, dir, "-s", sock)
	after := ctlShow(t, dir, sock)
	if len(after.Filters) != 1 || len(after.Filters[0].Pending) != 1 || !after.Filters[0].Pending[0].Due.Equal(due) {
		t.Fatalf("pending unban after restart: %+v, want due %v", after, due)
	}
	if m := after.Filters[0].Matches; len(m) != 1 || m[0].Count != 2 || m[0].Values[0] != "192.0.2.1" {
		t.Fatalf("matches after restart: %+v", m)
	}
	d.await("action ran", "action=unban", "2001:db8::2")
	if _, err := os.Stat(filepath.Join(dir, "ban 2001:db8::2")); err != nil {
		t.Fatal("the ban was not re-applied at start")
	}
	if time.Now().Before(due) {
		t.Fatalf("unban ran before its due time %v", due)
	}
	d.kill9()

	// The third match of 192.0.2.1 bans it.
	writeFile(t, filepath.Join(dir, "reaction.yml"), strings.Replace(stateConfig, "PHASE", "three", 1))
	writeFile(t, filepath.Join(dir, "three.log"), "offence from 192.0.2.1\n")
	d = startDaemon(t, dir, "-s", sock)
	d.await("action ran", "action=ban", "192.0.2.1")
}

// Issue 3, must hold 2: garbage after the last record of the newest
// segment: the next start succeeds and keeps the earlier matches.
func TestGarbageTailIsRepaired(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "r.sock")
	writeFile(t, filepath.Join(dir, "reaction.yml"), strings.Replace(stateConfig, "PHASE", "one", 1))
	writeFile(t, filepath.Join(dir, "one.log"), "offence from 192.0.2.1\noffence from 192.0.2.1\n")
	d := startDaemon(t, dir, "-s", sock)
	deadline := time.Now().Add(20 * time.Second)
	for s := ctlShow(t, dir, sock); len(s.Filters) == 0 || len(s.Filters[0].Matches) == 0 || s.Filters[0].Matches[0].Count < 2; s = ctlShow(t, dir, sock) {
		if time.Now().After(deadline) {
			t.Fatalf("matches never counted: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM) // a clean stop commits the journal
	d.cmd.Wait()

	segs, _ := filepath.Glob(filepath.Join(dir, "state", "*.dat"))
	if len(segs) == 0 {
		t.Fatal("no segment file in the state directory")
	}
	sort.Strings(segs)
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("\x13\x37garbage written by a dying disk\xff\xfe\x00\x01 and more of it.........."))
	f.Close()

	writeFile(t, filepath.Join(dir, "reaction.yml"), strings.Replace(stateConfig, "PHASE", "two", 1))
	writeFile(t, filepath.Join(dir, "two.log"), "offence from 192.0.2.1\n")
	d = startDaemon(t, dir, "-s", sock)
	if !strings.Contains(strings.Join(d.seen, "\n"), "state database repaired") {
		t.Errorf("the damage was not reported:\n%s", strings.Join(d.seen, "\n"))
	}
	d.await("action ran", "action=ban", "192.0.2.1")
}

// Issue 3, must hold 3: a second daemon on the same state directory exits
// non-zero at once, naming the lock.
func TestSecondDaemonRefused(t *testing.T) {
	dir := shortDir(t)
	writeFile(t, filepath.Join(dir, "reaction.yml"), strings.Replace(stateConfig, "PHASE", "one", 1))
	writeFile(t, filepath.Join(dir, "one.log"), "")
	startDaemon(t, dir, "-s", filepath.Join(dir, "a.sock"))
	r := reaction(t, dir, "start", "-c", "reaction.yml", "-s", filepath.Join(dir, "b.sock"))
	if r.code != 1 || !strings.Contains(r.stderr, "lock") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Fatalf("second daemon: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
