package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"reaction/cmd/reaction/internal/daemon"
)

func TestBenchCommand(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("streams: {s: {cmd: [cat], filters: {f: {regex: ['<nope>'], actions: {a: {cmd: [x]}}}}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // substrings
	}{
		{[]string{"bench", "-n", "3000", "--latency-lines", "-1"}, 0, "lines/s", ""},
		{[]string{"bench", "-w", "nginx", "-n", "3000", "--latency-lines", "-1", "--shards", "2", "--batch-size", "32", "--line-queue", "8", "--workers", "3"},
			0, "batch size 32 lines, line queue 8 batches, workers 3, shards 2", ""},
		{[]string{"bench", "-n", "0"}, 2, "", "--lines must be positive"},
		{[]string{"bench", "-w", "/nonexistent/auth.log"}, 2, "", "neither sshd, nginx, mixed nor a readable file"},
		{[]string{"bench", "-c", bad, "--filters", "10"}, 2, "", "--filters pads a built-in configuration"},
		{[]string{"bench", "-c", bad, "--daemon"}, 2, "", "--daemon runs the built-in configuration's filters"},
		{[]string{"bench", "--against", "sshguard"}, 2, "", "Invalid value `sshguard'"},
		{[]string{"bench", "-c", bad, "-n", "100"}, 3, "", "<nope>"},
		{[]string{"bench", "-c", filepath.Join(t.TempDir(), "none.yml"), "-n", "100"}, 3, "", "none.yml"},
		{[]string{"help", "bench"}, 0, "--batch-size", ""},
		{[]string{"help", "bench"}, 0, "--daemon", ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("reaction %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, stdout.String(), stderr.String())
		}
	}
}

func TestMemoryLimitText(t *testing.T) {
	if want := fmt.Sprintf("%d MiB", daemon.DefaultMemoryLimit>>20); defaultMemoryLimitText != want {
		t.Errorf("help says %q, the limit is %s", defaultMemoryLimitText, want)
	}
}

func TestBenchJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "-w", "sshd", "-n", "5000", "--latency-lines", "2000", "--latency-rate", "40000", "--filters", "20", "-f", "json"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Lines          uint64  `json:"lines"`
		LinesPerSecond float64 `json:"lines_per_second"`
		Stages         struct {
			Prefilter struct {
				PassRate  float64 `json:"pass_rate"`
				NsPerLine float64 `json:"ns_per_line"`
			} `json:"prefilter"`
		} `json:"stages"`
		Actions struct {
			Bans         uint64 `json:"bans"`
			ExpectedBans *int   `json:"expected_bans"`
		} `json:"actions"`
		Latency struct {
			Measured bool     `json:"measured"`
			P99      *float64 `json:"p99"`
		} `json:"latency_ms"`
		Settings struct {
			Filters int `json:"filters"`
		} `json:"settings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if rep.Lines != 5000 || rep.LinesPerSecond <= 0 || rep.Stages.Prefilter.PassRate <= 0 || rep.Stages.Prefilter.NsPerLine <= 0 ||
		rep.Actions.ExpectedBans == nil || rep.Actions.Bans != uint64(*rep.Actions.ExpectedBans) ||
		!rep.Latency.Measured || rep.Latency.P99 == nil || rep.Settings.Filters != 20 {
		t.Errorf("report: %+v\n%s", rep, stdout.String())
	}
}

// --daemon runs the built binary as a child `reaction start` on the
// workload with state on, and --against fail2ban compares its rate with
// fail2ban-regex's. A stand-in fail2ban-regex prints the summary line the
// harness parses (the real one is not installed in CI).
func TestBenchDaemon(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "bin")
	writeFile(t, filepath.Join(fake, "fail2ban-regex"), "#!/bin/sh\necho 'Lines: 20000 lines, 0 ignored, 5000 matched, 15000 missed'\n")
	if err := os.Chmod(filepath.Join(fake, "fail2ban-regex"), 0o755); err != nil {
		t.Fatal(err)
	}
	filter := writeFile(t, filepath.Join(dir, "sshd.conf"), "[Definition]\n")
	states := filepath.Join(dir, "states")

	run := func(format string) string {
		t.Helper()
		cmd := exec.Command(binary, "bench", "-n", "20000", "--latency-lines", "-1", "--state", states,
			"--against", "fail2ban", "--fail2ban-filter", filter, "-f", format)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("reaction bench: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	out := run("json")
	var rep struct {
		Daemon *struct {
			Ran            bool     `json:"ran"`
			Command        []string `json:"command"`
			Retry          int      `json:"retry"`
			ExitCode       *int     `json:"exit_code"`
			Lines          uint64   `json:"lines"`
			Seconds        float64  `json:"seconds"`
			LinesPerSecond float64  `json:"lines_per_second"`
			CPUSeconds     float64  `json:"cpu_seconds"`
			PeakRSSBytes   uint64   `json:"peak_rss_bytes"`
			HarnessRSS     uint64   `json:"harness_rss_bytes"`
			StateBytes     uint64   `json:"state_bytes"`
			Note           string   `json:"note"`
		} `json:"daemon"`
		Against *struct {
			Ran         bool     `json:"ran"`
			Lines       uint64   `json:"lines"`
			Ratio       float64  `json:"ratio"`
			DaemonRatio *float64 `json:"daemon_ratio"`
		} `json:"against"`
		MemoryLimit *int64 `json:"memory_limit_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d := rep.Daemon
	if d == nil || !d.Ran || d.Note != "" || d.ExitCode == nil || *d.ExitCode != 0 {
		t.Fatalf("daemon run: %s", out)
	}
	if len(d.Command) < 6 || d.Command[0] != binary || d.Command[1] != "start" || d.Command[2] != "-c" || d.Command[4] != "-s" {
		t.Errorf("daemon command %q", d.Command)
	}
	if d.Retry != 1_000_000_000 || d.Lines != 20000 || d.Seconds <= 0 || d.LinesPerSecond <= 0 || d.CPUSeconds <= 0 ||
		d.PeakRSSBytes == 0 || d.HarnessRSS == 0 {
		t.Errorf("daemon figures: %+v", *d)
	}
	// The daemon created its state directory and persisted the matches.
	if d.StateBytes == 0 {
		t.Errorf("daemon state directory: %d bytes", d.StateBytes)
	}
	// ... in a fresh directory under --state, removed afterwards.
	if got := listDir(t, states); len(got) != 0 {
		t.Errorf("left under --state: %v", got)
	}
	if a := rep.Against; a == nil || !a.Ran || a.Lines != 20000 || a.Ratio <= 0 || a.DaemonRatio == nil || *a.DaemonRatio <= 0 {
		t.Errorf("against: %s", out)
	}
	if os.Getenv("GOMEMLIMIT") == "" && (rep.MemoryLimit == nil || *rep.MemoryLimit != daemon.DefaultMemoryLimit) {
		t.Errorf("memory limit %v, want the default %d", rep.MemoryLimit, daemon.DefaultMemoryLimit)
	}

	text := run("text")
	for _, want := range []string{"daemon (`reaction start` child", "exec to exit 0", "state directory", "reaction start (daemon, state on):", "in-process pipeline (actions recorded):"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
}
