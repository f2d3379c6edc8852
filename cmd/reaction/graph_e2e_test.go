package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 5, must hold 1: a multi-stream configuration renders in every
// format; the JSON has every stage kind; DOT renders with Graphviz.
func TestGraphFormats(t *testing.T) {
	cfg, _ := filepath.Abs("../../examples/server.jsonnet")
	dir := t.TempDir()
	for _, f := range []string{"text", "dot", "mermaid", "json"} {
		r := reaction(t, dir, "graph", "-c", cfg, "-f", f)
		if r.code != 0 || r.stdout == "" {
			t.Fatalf("graph -f %s: exit %d\n%s", f, r.code, r.stderr)
		}
		switch f {
		case "json":
			var doc struct {
				Nodes []struct{ Kind string }
				Edges []struct{ From, To string }
			}
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			kinds := map[string]bool{}
			for _, n := range doc.Nodes {
				kinds[n.Kind] = true
			}
			for _, k := range []string{"source", "prefilter", "extract", "counter", "scheduler", "executor"} {
				if !kinds[k] {
					t.Errorf("JSON lacks a %s node", k)
				}
			}
			if len(doc.Edges) < len(doc.Nodes)-1 {
				t.Errorf("%d edges for %d nodes", len(doc.Edges), len(doc.Nodes))
			}
		case "dot":
			if _, err := exec.LookPath("dot"); err != nil {
				t.Log("graphviz not installed: DOT not rendered")
				continue
			}
			cmd := exec.Command("dot", "-Tsvg")
			cmd.Stdin = strings.NewReader(r.stdout)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "<svg") {
				t.Fatalf("dot -Tsvg: %v\n%s", err, out)
			}
		case "mermaid":
			if !strings.HasPrefix(r.stdout, "flowchart LR") {
				t.Errorf("mermaid output starts with %q", strings.SplitN(r.stdout, "\n", 2)[0])
			}
		}
	}
}

// Issue 5, must hold 3: a configuration error makes graph exit 3 with the
// messages of test-config.
func TestGraphConfigErrorLikeTestConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "bad.yml"), `streams:
  s:
    cmd: ['cat']
    filters:
      f:
        regex: ['from <ip>']
        retyr: 3
        actions: {a: {cmd: ['true']}}
`)
	g := reaction(t, dir, "graph", "-c", cfg)
	tc := reaction(t, dir, "test-config", "-c", cfg)
	if g.code != 3 || tc.code != 3 {
		t.Fatalf("exit codes graph %d, test-config %d, want 3", g.code, tc.code)
	}
	if g.stderr != tc.stderr || !strings.Contains(g.stderr, "retyr") {
		t.Fatalf("graph says:\n%s\ntest-config says:\n%s", g.stderr, tc.stderr)
	}
}

// Issue 5, must hold 2: --live shows the running daemon's counters.
func TestGraphLive(t *testing.T) {
	dir, err := os.MkdirTemp("", "rg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	writeFile(t, filepath.Join(dir, "reaction.yml"), `
patterns:
  ip: {type: ip}
streams:
  s:
    cmd: ['sh', '-c', 'echo "offence from 192.0.2.1"; echo "nothing"; exec sleep 1000']
    filters:
      f:
        regex: ['offence from <ip>']
        retry: 2
        retryperiod: 1h
        actions:
          a: {cmd: ['true']}
`)
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(binary, "start", "-c", "reaction.yml", "-s", sock, "-l", "DEBUG")
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "control socket listening") {
	}
	go io.Copy(io.Discard, stderr)

	// The two lines are read shortly after start: await the counter.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := reaction(t, dir, "graph", "-c", "reaction.yml", "--live", "-s", sock, "-f", "json")
		if r.code != 0 {
			t.Fatalf("graph --live: exit %d: %s", r.code, r.stderr)
		}
		var doc struct {
			Nodes []struct {
				ID       string
				Counters map[string]uint64
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatal(err)
		}
		var lines, matches uint64
		for _, n := range doc.Nodes {
			if n.ID == "source:s" {
				lines = n.Counters["lines"]
			}
			if n.ID == "counter:s.f" {
				matches = n.Counters["matches"]
			}
		}
		if lines == 2 && matches == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live counters never reached lines=2 matches=1 (last %d, %d):\n%s", lines, matches, r.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := reaction(t, dir, "graph", "-c", "reaction.yml", "--live", "-s", sock); r.code != 0 || !strings.Contains(r.stdout, "lines=2") {
		t.Fatalf("text --live: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// test-regex --trace shows each stage's verdict and counts across lines.
func TestTestRegexTrace(t *testing.T) {
	cfg, _ := filepath.Abs("../../examples/ssh-iptables.yml")
	dir := t.TempDir()
	lines := strings.Join([]string{
		"sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2",
		"sshd[1]: Accepted publickey for alice from 192.0.2.1 port 2 ssh2",
		"sshd[1]: Invalid user bob from 203.0.113.7 port 3",
		"sshd[1]: Invalid user bob from 127.0.0.1 port 4",
		"sshd[1]: Failed password for x from 10.9.8.7 port 22 from 2001:db8::7 port 5 ssh2",
		"sshd[1]: Invalid user eve from 203.0.113.7 port 6",
	}, "\n") + "\n"
	cmd := exec.Command(binary, "test-regex", "-c", cfg, "--trace", "ssh")
	cmd.Stdin = strings.NewReader(lines)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		`failedlogin: passed, line contains "Failed password for "`,
		"failedlogin: dropped, line contains none of",
		"203.0.113.7: 2 of 3 matches",
		"ignored by patterns.ip.ignore: 127.0.0.1",
		"<ip> = 2001:db8::7",
		"203.0.113.7: 3 of 3 matches within 6h0m0s: triggered",
		"ban4 now: iptables -w -I reaction 1 -s 203.0.113.7 -j DROP",
		"unban4 after 48h0m0s",
		"ban6: not run for this address family",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(string(out))
	}
	r := reaction(t, dir, "test-regex", "-c", cfg, "--trace", "nosuch", "x")
	if r.code != 2 || !strings.Contains(r.stderr, `no stream "nosuch"`) {
		t.Fatalf("unknown stream: exit %d: %s", r.code, r.stderr)
	}
}

// test-regex over standard input prints the lines that match or are
// ignored, with their values, and a summary.
func TestTestRegexStdin(t *testing.T) {
	cfg, _ := filepath.Abs("../../examples/ssh-iptables.yml")
	cmd := exec.Command(binary, "test-regex", "-c", cfg, "Invalid user .* from <ip>")
	cmd.Stdin = strings.NewReader("Invalid user bob from 203.0.113.7 port 3\r\nnothing here\nInvalid user bob from 127.0.0.1 port 4")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"<ip> = 203.0.113.7\n", "ignored by patterns.ip.ignore: 127.0.0.1", "3 lines: 1 matched, 1 ignored, 1 did not match"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "nothing here") {
		t.Errorf("a line that did not match was printed:\n%s", out)
	}
}
