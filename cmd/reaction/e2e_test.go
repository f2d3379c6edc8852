package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"reaction/bench/workload"
)

// binary is the reaction binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reaction-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "reaction")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building reaction:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// reaction runs the binary to completion in dir.
func reaction(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running reaction %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// listDir returns the sorted names of the files in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

const sshdRegexes = `
        regex:
          - 'authentication failure;.*rhost=<ip>'
          - 'Failed password for .* from <ip>'
          - 'Invalid user .* from <ip>'
          - 'banner exchange: Connection from <ip> port [0-9]*: invalid format'
`

// Must hold 1: a cat stream of a 100,000-line sshd log bans exactly the
// addresses with three or more matching lines, and the daemon exits 0
// when cat ends.
func TestStartBansExactlyTheAttackers(t *testing.T) {
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "auth.log"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(logf)
	truth, err := workload.Generate(w, workload.SSHD, workload.Params{Lines: 100_000, Seed: 42, Attackers: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	want := truth.Banned(3)
	var v6 int
	for _, ip := range want {
		if strings.Contains(ip, ":") {
			v6++
		}
	}
	if len(want) < 50 || v6 == 0 {
		t.Fatalf("workload too small to prove anything: %d bans, %d IPv6", len(want), v6)
	}

	bans := filepath.Join(dir, "bans")
	os.Mkdir(bans, 0o755)
	writeFile(t, filepath.Join(dir, "reaction.yml"), `
patterns:
  ip:
    type: ip
streams:
  ssh:
    cmd: ['cat', 'auth.log']
    filters:
      failedlogin:`+sshdRegexes+`
        retry: 3
        retryperiod: 6h
        actions:
          ban:
            cmd: ['touch', 'bans/<ip>']
          unban:
            cmd: ['rm', 'bans/<ip>']
            after: 48h
`)
	r := reaction(t, dir, "start", "-c", "reaction.yml", "-l", "WARN")
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	got := listDir(t, bans)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		missing, extra := diff(want, got)
		t.Fatalf("banned %d addresses, want %d\nmissing: %v\nextra: %v", len(got), len(want), missing, extra)
	}
}

func diff(want, got []string) (missing, extra []string) {
	in := func(s []string, x string) bool {
		i := sort.SearchStrings(s, x)
		return i < len(s) && s[i] == x
	}
	for _, x := range want {
		if !in(got, x) {
			missing = append(missing, x)
		}
	}
	for _, x := range got {
		if !in(want, x) {
			extra = append(extra, x)
		}
	}
	return
}

// Must hold 3: values reach commands as single argv elements, never through
// a shell, and a value that is not valid for its pattern type never reaches
// a command.
func TestActionsGetValidatedArgvValues(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "lines"), strings.Join([]string{
		"login failed for user=$(touch${IFS}pwned);x from 203.0.113.9",
		"bad address 999.10.10.10",
		"bad address 1.2.3.4.5.6",
		"bad address 2001:db8::1:2:3:4:5:6:7",
		"bad address ::ffff:198.51.100.7",
	}, "\n")+"\n")
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	writeFile(t, filepath.Join(dir, "reaction.yml"), `
patterns:
  user:
    regex: '\S+'
  ip:
    type: ip
streams:
  s:
    cmd: ['cat', 'lines']
    filters:
      users:
        regex: ['login failed for user=<user> from']
        actions:
          record:
            cmd: ['touch', 'out/user <user>']
      addresses:
        regex: ['bad address <ip>$']
        actions:
          record:
            cmd: ['touch', 'out/ip <ip>']
`)
	r := reaction(t, dir, "start", "-c", "reaction.yml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("a captured value was interpreted by a shell")
	}
	got := strings.Join(listDir(t, out), "|")
	want := "ip 198.51.100.7|user $(touch${IFS}pwned);x"
	if got != want {
		t.Fatalf("actions ran with %q, want %q", got, want)
	}
}

// Must hold 2: upstream-style configurations load; mistakes exit 3 with
// the path, the line and the intended name.
func TestTestConfig(t *testing.T) {
	dir := t.TempDir()
	t.Run("examples", func(t *testing.T) {
		examples, _ := filepath.Abs("../../examples")
		for _, name := range []string{"ssh-iptables.yml", "ssh-nftables.yml", "nginx.yml", "server.jsonnet", "demo/reaction.yml"} {
			for _, format := range []string{"yaml", "json"} {
				r := reaction(t, dir, "test-config", "-c", filepath.Join(examples, name), "--format", format)
				if r.code != 0 || !strings.Contains(r.stdout, "failedlogin") && !strings.Contains(r.stdout, "scanners") {
					t.Errorf("%s (%s): exit %d\n%s%s", name, format, r.code, r.stdout, r.stderr)
				}
			}
		}
	})
	t.Run("misspelled key", func(t *testing.T) {
		cfg := writeFile(t, filepath.Join(dir, "typo.yml"), `patterns:
  ip:
    type: ip
streams:
  ssh:
    cmd: ['cat']
    filters:
      failedlogin:
        regex: ['from <ip>']
        retry: 3
        retryperoid: 6h
        actions:
          ban:
            cmd: ['true']
`)
		r := reaction(t, dir, "test-config", "-c", cfg)
		if r.code != 3 {
			t.Fatalf("exit %d, want 3: %s", r.code, r.stderr)
		}
		for _, want := range []string{"typo.yml:11", "streams.ssh.filters.failedlogin", "retryperoid", `"retryperiod"`} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
	})
	t.Run("unknown pattern", func(t *testing.T) {
		cfg := writeFile(t, filepath.Join(dir, "pattern.yml"), `patterns:
  ip:
    type: ip
streams:
  ssh:
    cmd: ['cat']
    filters:
      failedlogin:
        regex:
          - 'Failed password for .* from <ip>'
          - 'Invalid user .* from <iip>'
        actions:
          ban:
            cmd: ['true', '<ip>']
`)
		r := reaction(t, dir, "test-config", "-c", cfg)
		if r.code != 3 {
			t.Fatalf("exit %d, want 3: %s", r.code, r.stderr)
		}
		for _, want := range []string{"streams.ssh.filters.failedlogin.regex[1]", "<iip>", "<ip>"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
	})
	t.Run("usage error", func(t *testing.T) {
		if r := reaction(t, dir, "test-config"); r.code != 2 {
			t.Fatalf("missing -c: exit %d, want 2: %s", r.code, r.stderr)
		}
		if r := reaction(t, dir, "no-such-command"); r.code != 2 {
			t.Fatalf("unknown command: exit %d, want 2", r.code)
		}
	})
}

// A failing start command aborts startup (exit 1) after running the stop
// commands; stop commands also run after a normal end.
func TestStartAndStopCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := func(start string) string {
		return writeFile(t, filepath.Join(dir, "reaction.yml"), `
state_directory: `+t.TempDir()+`
start:
  - ['touch', 'started']
  - `+start+`
stop:
  - ['touch', 'stopped']
streams:
  s:
    cmd: ['echo', 'hello']
    filters:
      f:
        regex: ['hello']
        actions:
          a:
            cmd: ['touch', 'acted']
`)
	}
	cfg("['false']")
	r := reaction(t, dir, "start", "-c", "reaction.yml")
	if r.code != 1 || !strings.Contains(r.stderr, "start[1]") {
		t.Fatalf("failing start command: exit %d, want 1 naming start[1]:\n%s", r.code, r.stderr)
	}
	if got := strings.Join(listDir(t, dir), " "); got != "reaction.yml started stopped" {
		t.Fatalf("after an aborted start the directory holds %q", got)
	}
	os.Remove(filepath.Join(dir, "started"))
	os.Remove(filepath.Join(dir, "stopped"))
	cfg("['true']")
	r = reaction(t, dir, "start", "-c", "reaction.yml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := strings.Join(listDir(t, dir), " "); got != "acted reaction.yml started stopped" {
		t.Fatalf("after a normal run the directory holds %q", got)
	}
}

// SIGTERM stops the streams, runs pending onexit actions, then the stop
// commands, and exits 0.
func TestSignalRunsOnexitActions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "reaction.yml"), `
state_directory: `+t.TempDir()+`
patterns:
  ip: {type: ip}
stop:
  - ['touch', 'stopped']
streams:
  s:
    cmd: ['sh', '-c', 'echo "offence from 192.0.2.1"; echo "offence from 192.0.2.2"; exec sleep 1000']
    filters:
      f:
        regex: ['offence from <ip>']
        actions:
          ban:
            cmd: ['touch', 'ban <ip>']
          unban:
            cmd: ['touch', 'unban <ip>']
            after: 1h
            onexit: true
          notify:
            cmd: ['touch', 'late <ip>']
            after: 1h
`)
	cmd := exec.Command(binary, "start", "-c", "reaction.yml")
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until both bans ran, read from the daemon's own log.
	sc := bufio.NewScanner(stderr)
	bans := 0
	var log strings.Builder
	for bans < 2 && sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "action ran") && strings.Contains(sc.Text(), "action=ban") {
			bans++
		}
	}
	if bans < 2 {
		t.Fatalf("daemon did not ban both addresses:\n%s", log.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	go io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	want := "ban 192.0.2.1 ban 192.0.2.2 reaction.yml stopped unban 192.0.2.1 unban 192.0.2.2"
	if got := strings.Join(listDir(t, dir), " "); got != want {
		t.Fatalf("directory holds %q, want %q", got, want)
	}
}

// --cpuprofile writes a profile that go tool pprof reads (gzipped protobuf).
func TestStartCPUProfile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "reaction.yml"), `
state_directory: `+t.TempDir()+`
streams:
  s:
    cmd: ['echo', 'hello']
    filters:
      f:
        regex: ['hello']
        actions:
          a:
            cmd: ['true']
`)
	r := reaction(t, dir, "start", "-c", "reaction.yml", "-s", filepath.Join(dir, "r.sock"), "--cpuprofile", "cpu.out")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cpu.out"))
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile: %v, %d bytes", err, len(b))
	}
	r = reaction(t, dir, "start", "-c", "reaction.yml", "--cpuprofile", filepath.Join(dir, "missing", "cpu.out"))
	if r.code != 2 || !strings.Contains(r.stderr, "--cpuprofile") {
		t.Fatalf("unwritable profile: exit %d: %s", r.code, r.stderr)
	}
}
