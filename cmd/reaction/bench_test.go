package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{[]string{"bench", "-w", "nginx", "-n", "3000", "--latency-lines", "-1", "--shards", "2", "--batch-size", "32", "--line-queue", "8"},
			0, "batch size 32 lines, line queue 8 batches, shards 2", ""},
		{[]string{"bench", "-n", "0"}, 2, "", "--lines must be positive"},
		{[]string{"bench", "-w", "/nonexistent/auth.log"}, 2, "", "neither sshd, nginx, mixed nor a readable file"},
		{[]string{"bench", "-c", bad, "--filters", "10"}, 2, "", "--filters pads a built-in configuration"},
		{[]string{"bench", "--against", "sshguard"}, 2, "", "Invalid value `sshguard'"},
		{[]string{"bench", "-c", bad, "-n", "100"}, 3, "", "<nope>"},
		{[]string{"bench", "-c", filepath.Join(t.TempDir(), "none.yml"), "-n", "100"}, 3, "", "none.yml"},
		{[]string{"help", "bench"}, 0, "--batch-size", ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("reaction %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, stdout.String(), stderr.String())
		}
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
