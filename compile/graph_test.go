package compile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"reaction/graph"
)

// loadString writes a configuration to a temporary file and loads it.
func loadString(t *testing.T, name, content string) (*Result, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return load(path, testOptions)
}

func mustLoad(t *testing.T, name, content string) *Result {
	t.Helper()
	r, err := loadString(t, name, content)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return r
}

func TestGraphShape(t *testing.T) {
	r, err := load("testdata/good/v2-readme.yml", testOptions)
	if err != nil {
		t.Fatal(err)
	}
	g := r.Graph
	var ids []string
	for _, n := range g.Walk() {
		ids = append(ids, n.ID)
	}
	wantIDs := []string{"source:ssh", "prefilter:ssh", "extract:ssh.failedlogin", "counter:ssh.failedlogin", "scheduler:ssh.failedlogin", "executor"}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("nodes %v, want %v", ids, wantIDs)
	}
	wantEdges := []graph.Edge{
		{From: "source:ssh", To: "prefilter:ssh", Capacity: graph.DefaultLineQueue, Unit: "batches of 128 lines"},
		{From: "prefilter:ssh", To: "extract:ssh.failedlogin", Capacity: 0, Unit: "lines (same goroutine)"},
		{From: "extract:ssh.failedlogin", To: "counter:ssh.failedlogin", Capacity: graph.DefaultMatchQueue, Unit: "match batches"},
		{From: "counter:ssh.failedlogin", To: "scheduler:ssh.failedlogin", Capacity: graph.DefaultEventQueue, Unit: "triggers"},
		{From: "scheduler:ssh.failedlogin", To: "executor", Capacity: graph.DefaultJobQueue, Unit: "jobs"},
	}
	if !reflect.DeepEqual(g.Edges, wantEdges) {
		t.Errorf("edges %v, want %v", g.Edges, wantEdges)
	}

	streams := g.Streams()
	if len(streams) != 1 || len(streams[0].Filters) != 1 {
		t.Fatalf("streams: %+v", streams)
	}
	src := streams[0].Source
	if want := (graph.Source{Stream: "ssh", Cmd: []string{"journalctl", "-fu", "sshd.service"}, MaxLine: graph.DefaultMaxLine, BatchSize: graph.DefaultBatchSize, BackoffMin: graph.DefaultBackoffMin, BackoffMax: graph.DefaultBackoffMax}); !reflect.DeepEqual(*src, want) {
		t.Errorf("source %+v", *src)
	}
	f := streams[0].Filters[0]
	x := f.Extract
	if len(x.Patterns) != 1 || x.Patterns[0].Name != "ip" || x.Patterns[0].Type != graph.TypeIPv4 || x.Patterns[0].Regex != graph.RegexIPv4 {
		t.Errorf("patterns %+v", x.Patterns)
	}
	if len(g.Patterns) != 1 || g.Patterns[0] != x.Patterns[0] {
		t.Errorf("graph patterns %+v", g.Patterns)
	}
	if len(x.Regexes) != 4 {
		t.Fatalf("%d regexes", len(x.Regexes))
	}
	re := x.Regexes[1]
	if re.Source != "Failed password for .* from <ip>" || re.Expanded != "Failed password for .* from (?P<ip>(?:"+graph.RegexIPv4+"))" {
		t.Errorf("regex %q expanded to %q", re.Source, re.Expanded)
	}
	if len(re.Captures) != 1 || re.Captures[0].Pattern != 0 || re.Re.SubexpNames()[re.Captures[0].Group] != "ip" {
		t.Errorf("captures %+v", re.Captures)
	}
	values, which, matched, reason := x.Match([]byte("sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2"))
	if !matched || which != 1 || reason != graph.ReasonOK || !reflect.DeepEqual(values, []string{"192.0.2.1"}) {
		t.Errorf("Match = %v %d %v %q", values, which, matched, reason)
	}

	if c := f.Counter; c.Retry != 3 || c.Period != 6*time.Hour || c.Shards != DefaultShards || c.MaxKeys != graph.DefaultMaxKeys {
		t.Errorf("counter %+v", *c)
	}
	s := f.Scheduler
	if s.Duplicates != graph.DuplicatesExtend || len(s.Actions) != 2 || s.Actions[0].Name != "ban" || s.Actions[1].Name != "unban" || !slices.Equal(s.Patterns, x.Patterns) {
		t.Errorf("scheduler %+v", *s)
	}
	if a := s.Actions[1]; a.After != 48*time.Hour || a.OnExit || a.OneShot {
		t.Errorf("unban %+v", *a)
	}
	if got := s.Actions[0].Expand([]string{"192.0.2.1"}); !slices.Equal(got, []string{"iptables", "-w", "-I", "reaction", "1", "-s", "192.0.2.1", "-j", "DROP"}) {
		t.Errorf("ban expands to %q", got)
	}
	pf := streams[0].Prefilter
	if len(pf.Filters) != 1 || pf.Filters[0].Filter != "failedlogin" {
		t.Errorf("prefilter %+v", *pf)
	}
	if fl := pf.Filters[0]; fl.Always && fl.AnyOf != nil || !fl.Always && !slices.IsSorted(fl.AnyOf) {
		t.Errorf("literals %+v", fl)
	}

	if e := g.Executor(); e.Concurrency != testOptions.numCPU || e.Timeout != graph.DefaultTimeout {
		t.Errorf("executor %+v", *e)
	}
	st := g.Settings
	if len(st.Start) != 3 || len(st.Stop) != 4 || st.RotationInterval != 24*time.Hour || st.StateDirectory != "" || !slices.Equal(st.Files, []string{"testdata/good/v2-readme.yml"}) {
		t.Errorf("settings %+v", st)
	}
}

func TestSeveralPatterns(t *testing.T) {
	r := mustLoad(t, "c.yml", `
patterns:
  ip: { type: ip, ipv6mask: 64 }
  user: '[a-z]+'
  port: '[0-9]+'
streams:
  s:
    cmd: [c]
    filters:
      f:
        regex:
          - 'user <user> from <ip> port <port>'
          - '(?P<user>x)? port <port> from <ip> for (a)(b) <user>'
        actions:
          a: { cmd: [ 'ban', '<ip>', 'u=<user>:<port>', '<html>', '<user><user>' ] }
`)
	x := r.Graph.Streams()[0].Filters[0].Extract
	var names []string
	for _, p := range x.Patterns {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"ip", "port", "user"}) {
		t.Fatalf("patterns %v, want sorted by name", names)
	}
	for _, tc := range []struct {
		line  string
		which int
		want  []string
	}{
		{"user bob from 192.0.2.1 port 22", 0, []string{"192.0.2.1", "22", "bob"}},
		{"x port 22 from 2001:db8:1:2:3:4:5:6 for ab alice", 1, []string{"2001:db8:1:2::/64", "22", "alice"}},
	} {
		values, which, matched, reason := x.Match([]byte(tc.line))
		if !matched || reason != graph.ReasonOK || which != tc.which || !slices.Equal(values, tc.want) {
			t.Errorf("%q: %v %d %v %q, want %v", tc.line, values, which, matched, reason, tc.want)
		}
	}
	a := r.Graph.Streams()[0].Filters[0].Scheduler.Actions[0]
	wantCmd := []graph.Arg{
		{{Text: "ban", Pattern: -1}},
		{{Pattern: 0}},
		{{Text: "u=", Pattern: -1}, {Pattern: 2}, {Text: ":", Pattern: -1}, {Pattern: 1}},
		{{Text: "<html>", Pattern: -1}},
		{{Pattern: 2}, {Pattern: 2}},
	}
	if !reflect.DeepEqual(a.Cmd, wantCmd) {
		t.Errorf("cmd %+v, want %+v", a.Cmd, wantCmd)
	}
	if got := a.Expand([]string{"192.0.2.1", "22", "bob"}); !slices.Equal(got, []string{"ban", "192.0.2.1", "u=bob:22", "<html>", "bobbob"}) {
		t.Errorf("Expand = %q", got)
	}
}

func TestSettings(t *testing.T) {
	const streams = "\nstreams: { s: { cmd: [c], filters: { f: { regex: [x], actions: { a: { cmd: [a] } } } } } }\n"
	for _, tc := range []struct {
		conf        string
		concurrency int
		rotation    time.Duration
		stateDir    string
		err         string
	}{
		{"", 8, 24 * time.Hour, "", ""},
		{"concurrency: 0", 8, 24 * time.Hour, "", ""},
		{"concurrency: 3", 3, 24 * time.Hour, "", ""},
		{"concurrency: -1", -1, 24 * time.Hour, "", ""},
		{"concurrency: -20", -1, 24 * time.Hour, "", ""},
		{"state_rotation_interval: null", 8, 0, "", ""},
		{"state_rotation_interval: ~", 8, 0, "", ""},
		{"state_rotation_interval: 30m", 8, 30 * time.Minute, "", ""},
		{"state_rotation_interval: 2 days", 8, 48 * time.Hour, "", ""},
		{"state_rotation_interval: 29m", 0, 0, "", "state_rotation_interval: must be at least 30m0s"},
		{"state_rotation_interval: 0s", 0, 0, "", "state_rotation_interval: must be at least 30m0s"},
		{"state_rotation_interval: 3600", 0, 0, "", `state_rotation_interval: "3600" has no unit`},
		{"state_directory: /var/lib/reaction", 8, 24 * time.Hour, "/var/lib/reaction", ""},
		{"state_directory: null", 8, 24 * time.Hour, "", ""},
	} {
		r, err := loadString(t, "c.yml", tc.conf+streams)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error containing %q", tc.conf, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.conf, err)
			continue
		}
		st := r.Graph.Settings
		if c := r.Graph.Executor().Concurrency; c != tc.concurrency || r.Config.Concurrency != tc.concurrency {
			t.Errorf("%q: concurrency %d (config %d), want %d", tc.conf, c, r.Config.Concurrency, tc.concurrency)
		}
		if st.RotationInterval != tc.rotation || st.StateDirectory != tc.stateDir {
			t.Errorf("%q: settings %+v", tc.conf, st)
		}
		if (r.Config.StateRotationInterval == nil) != (tc.rotation == 0) {
			t.Errorf("%q: normalized rotation %v", tc.conf, r.Config.StateRotationInterval)
		}
	}
}

func TestMasksAndIgnores(t *testing.T) {
	r := mustLoad(t, "c.yml", `
patterns:
  ip:
    type: ip
    ipv4mask: 24
    ipv6mask: 48
    ignore: ['::ffff:192.0.2.1', '2001:DB8::1']
    ignorecidr: ['198.51.100.0/24']
streams:
  s:
    cmd: [c]
    filters:
      f:
        regex: ['from <ip>']
        actions: { a: { cmd: [a, <ip>] } }
`)
	x := r.Graph.Streams()[0].Filters[0].Extract
	if p := x.Patterns[0]; !slices.Equal(p.Ignore, []string{"192.0.2.1", "2001:db8::1"}) || p.IPv4Mask != 24 || p.IPv6Mask != 48 {
		t.Errorf("pattern %+v", p)
	}
	for _, tc := range []struct {
		line, want string
		ignored    bool
	}{
		{"from 203.0.113.77", "203.0.113.0/24", false},
		{"from ::ffff:203.0.113.77", "203.0.113.0/24", false},
		{"from 2001:db8:aaaa:bbbb::1", "2001:db8:aaaa::/48", false},
		{"from 192.0.2.1", "", true},              // ignore, written IPv4-mapped
		{"from 192.0.2.2", "192.0.2.0/24", false}, // ignore names an address, not its network
		{"from 2001:db8::1", "", true},
		{"from 198.51.100.9", "", true},
	} {
		values, _, matched, reason := x.Match([]byte(tc.line))
		if !matched || (reason != graph.ReasonOK) != tc.ignored || (!tc.ignored && values[0] != tc.want) {
			t.Errorf("%q: %v %q, want %q ignored=%v", tc.line, values, reason, tc.want, tc.ignored)
		}
	}
}

func TestInlineTests(t *testing.T) {
	const conf = `
patterns:
  ip: { type: ip, ignore: [127.0.0.1] }
streams:
  s:
    cmd: [c]
    filters:
      f:
        regex: ['from <ip>']
        actions: { a: { cmd: [a, <ip>] } }
        tests:
          - { line: 'from 192.0.2.1', match: { ip: 192.0.2.1 } }
          - { line: 'from 127.0.0.1', ignored: true }
          - { line: 'to 192.0.2.1', nomatch: true }
`
	r := mustLoad(t, "c.yml", conf)
	if err := RunTests(r.Graph); err != nil {
		t.Fatal(err)
	}
	// Break the expectations on the compiled graph: RunTests reports each
	// one at its path.
	x := r.Graph.Streams()[0].Filters[0].Extract
	x.Tests[0].Values = map[string]string{"ip": "192.0.2.2"}
	x.Tests[1].Line = "from 192.0.2.3"
	x.Tests[2].NoMatch = false
	x.Tests[2].Values = map[string]string{"ip": "192.0.2.1"}
	err := RunTests(r.Graph)
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 3 {
		t.Fatalf("got %v", err)
	}
	want := []string{
		`streams.s.filters.f.tests[0]: expected <ip> = "192.0.2.2", but regex[0] matched and captured <ip> = "192.0.2.1"`,
		`streams.s.filters.f.tests[1]: expected a match with an ignored value, but regex[0] matched and captured <ip> = "192.0.2.3"`,
		`streams.s.filters.f.tests[2]: expected <ip> = "192.0.2.1", but no regex matched`,
	}
	for i, e := range errs.List {
		if e.Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, e, want[i])
		}
	}

	// Load itself refuses a configuration whose tests fail.
	_, err = loadString(t, "c.yml", strings.Replace(conf, "match: { ip: 192.0.2.1 }", "match: { ip: 192.0.2.9 }", 1))
	if err == nil || !strings.Contains(err.Error(), "c.yml:12: streams.s.filters.f.tests[0]: expected <ip> = \"192.0.2.9\"") {
		t.Errorf("got %v", err)
	}
}

// Jsonnet imports are cached by a VM: each Load must see edited files.
func TestJsonnetFreshVM(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.jsonnet", `{ streams: { s: { cmd: ['c'], filters: { f: { regex: [(import 'lib.libsonnet').regex], actions: { a: { cmd: ['a'] } } } } } } }`)
	write("lib.libsonnet", `{ regex: 'first' }`)
	for _, want := range []string{"first", "second"} {
		write("lib.libsonnet", `{ regex: '`+want+`' }`)
		r, err := load(filepath.Join(dir, "main.jsonnet"), testOptions)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Config.Streams["s"].Filters["f"].Regex[0]; got != want {
			t.Errorf("regex %q, want %q", got, want)
		}
	}
}

func TestDirectory(t *testing.T) {
	r, err := load("testdata/good/dir", testOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"testdata/good/dir/00-patterns.yml", "testdata/good/dir/10-ssh.jsonnet", "testdata/good/dir/20-ssh-more.json", "testdata/good/dir/30-nginx.yaml"}
	if !slices.Equal(r.Files, want) {
		t.Errorf("files %q, want %q", r.Files, want)
	}
	// start lists concatenate in file order; the ssh stream is spread
	// over two files in two formats.
	if got := r.Config.Start; len(got) != 2 || got[0][0] != "nft" || got[1][0] != "echo" {
		t.Errorf("start %q", got)
	}
	if got := r.Config.Streams["ssh"].Filters; len(got) != 2 || got["failedlogin"] == nil || got["invaliduser"] == nil {
		t.Errorf("ssh filters %v", got)
	}
}

// Lines are only reported where they mean something to the author.
func TestLines(t *testing.T) {
	const body = `{"streams": {"s": {"cmd": ["c"], "filters": {"f": {"regex": ["x"], "actions": {"a": {"cmd": ["a"], "aftr": "1h"}}}}}}}`
	for _, tc := range []struct{ name, want string }{
		{"c.json", "c.json:1: streams.s.filters.f.actions.a: unknown key \"aftr\""},
		{"c.yml", "c.yml:1: streams.s.filters.f.actions.a: unknown key \"aftr\""},
		{"c.jsonnet", "c.jsonnet: streams.s.filters.f.actions.a: unknown key \"aftr\""},
		{"c.conf", "c.conf: streams.s.filters.f.actions.a: unknown key \"aftr\""}, // anything else is Jsonnet
	} {
		_, err := loadString(t, tc.name, body)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestExpression(t *testing.T) {
	r, err := load("testdata/good/full.yml", testOptions)
	if err != nil {
		t.Fatal(err)
	}
	x, err := Expression(r, "<ip> said <user>")
	if err != nil {
		t.Fatal(err)
	}
	if x.Regexes[0].Expanded != x.Regexes[0].Re.String() || len(x.Patterns) != 2 {
		t.Errorf("extract %+v", x)
	}
	values, which, matched, reason := x.Match([]byte("2001:db8:1:2:3:4:5:6 said carol"))
	if !matched || which != 0 || reason != graph.ReasonOK || !slices.Equal(values, []string{"2001:db8:1:2::/64", "carol"}) {
		t.Errorf("Match = %v %d %v %q", values, which, matched, reason)
	}
	if _, _, matched, reason := x.Match([]byte("192.0.2.1 said root")); !matched || reason == graph.ReasonOK {
		t.Errorf("root is ignored: %v %q", matched, reason)
	}
	for src, want := range map[string]string{
		"from <iip>":      `unknown pattern <iip>, did you mean <ip>? (write \<iip> to match the text itself)`,
		"<ip> <ip>":       "<ip> appears twice: a regex captures a pattern at most once",
		"(<ip>":           "invalid regex: missing closing ): `(<ip>`",
		"<ip> (<x> <yy>)": "unknown pattern <x> (write \\<x> to match the text itself)\nunknown pattern <yy> (write \\<yy> to match the text itself)",
	} {
		_, err := Expression(r, src)
		var errs *Errors
		if err == nil || err.Error() != want || errors.As(err, &errs) {
			t.Errorf("%q: got %v, want a plain error %q", src, err, want)
		}
	}
}
