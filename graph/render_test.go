package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite graph/testdata golden files")

var goldenFiles = map[Format]string{
	FormatText:    "render.txt",
	FormatDOT:     "render.dot",
	FormatMermaid: "render.mmd",
	FormatJSON:    "render.json",
}

func render(t *testing.T, g *Graph, f Format, live map[string]map[string]uint64) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, g, f, live); err != nil {
		t.Fatalf("Render(%s): %v", f, err)
	}
	return buf.String()
}

func TestRenderGolden(t *testing.T) {
	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			got := render(t, testGraph(t), f, nil)
			path := filepath.Join("testdata", goldenFiles[f])
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./graph/ -run TestRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("Render(%s) differs from %s (run with -update and review the diff):\n%s", f, path, got)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	fs := Formats()
	if len(fs) != len(goldenFiles) || fs[0] != FormatText {
		t.Errorf("Formats() = %v", fs)
	}
	fs[0] = "changed"
	if Formats()[0] != FormatText {
		t.Error("Formats returns shared state")
	}
}

func TestRenderErrors(t *testing.T) {
	var buf bytes.Buffer
	err := Render(&buf, testGraph(t), "svg", nil)
	if err == nil || !strings.Contains(err.Error(), `"svg"`) || !strings.Contains(err.Error(), "text, dot, mermaid, json") {
		t.Errorf("Render(svg) error = %v", err)
	}
	if buf.Len() != 0 {
		t.Error("Render(svg) wrote output")
	}
	if err := Render(&buf, nil, FormatText, nil); err == nil {
		t.Error("Render(nil graph) = nil error")
	}
	want := errors.New("disk full")
	if err := Render(failWriter{want}, testGraph(t), FormatText, nil); !errors.Is(err, want) {
		t.Errorf("Render to a failing writer = %v, want %v", err, want)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// TestRenderDeterministic renders many times from freshly built graphs and
// live maps: map iteration order must never reach the output.
func TestRenderDeterministic(t *testing.T) {
	for _, f := range Formats() {
		first := render(t, testGraph(t), f, testLive())
		for range 20 {
			if got := render(t, testGraph(t), f, testLive()); got != first {
				t.Fatalf("Render(%s) is not deterministic", f)
			}
		}
	}
}

func testLive() map[string]map[string]uint64 {
	return map[string]map[string]uint64{
		"source:ssh":              {"lines": 987654, "restarts": 2, "cut": 1, "batches": 7717},
		"prefilter:nginx":         {"passed": 31337, "dropped": 4242},
		"extract:nginx.login":     {"matches": 4711, "ignored": 12},
		"counter:ssh.failedlogin": {"keys": 640, "evicted": 0, "triggers": 99},
		"scheduler:nginx.scan":    {"pending": 5, "dropped_duplicates": 3},
		"executor":                {"running": 1, "failed": 6, "timeouts": 8},
		"no:such-node":            {"ghost": 424242},
	}
}

func TestRenderLive(t *testing.T) {
	live := testLive()
	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			static := render(t, testGraph(t), f, nil)
			out := render(t, testGraph(t), f, live)
			for id, cs := range live {
				if id == "no:such-node" {
					continue
				}
				for name, value := range cs {
					v := strconv.FormatUint(value, 10)
					if !regexp.MustCompile(regexp.QuoteMeta(name) + `"?\s*[=:]\s*` + v + `\b`).MatchString(out) {
						t.Errorf("%s: counter %s %s=%s missing", f, id, name, v)
					}
				}
			}
			if strings.Contains(out, "ghost") || strings.Contains(out, "424242") {
				t.Errorf("%s: counter of an unknown node rendered", f)
			}
			if strings.Contains(static, "987654") {
				t.Errorf("%s: static rendering shows live counters", f)
			}
			// Sorted by name: batches, cut, lines, restarts.
			idx := func(name, value string) int {
				return regexp.MustCompile(name + `"?\s*[=:]\s*` + value).FindStringIndex(out)[0]
			}
			if !(idx("batches", "7717") < idx("cut", "1") && idx("cut", "1") < idx("lines", "987654") && idx("lines", "987654") < idx("restarts", "2")) {
				t.Errorf("%s: counters of source:ssh are not sorted by name:\n%s", f, out)
			}
		})
	}
}

func TestRenderTextLive(t *testing.T) {
	out := render(t, testGraph(t), FormatText, testLive())
	want := "           live        batches=7717  cut=1  lines=987654  restarts=2\n"
	if !strings.Contains(out, "source     source:ssh\n") || !strings.Contains(out, want) {
		t.Errorf("text live line missing; want %q in:\n%s", want, out)
	}
}

// jsonDoc mirrors the documented schema, for decoding in tests.
type jsonDoc struct {
	Version int              `json:"version"`
	Nodes   []map[string]any `json:"nodes"`
	Edges   []struct {
		From     string `json:"from"`
		To       string `json:"to"`
		Capacity *int   `json:"capacity"`
		Unit     string `json:"unit"`
	} `json:"edges"`
	Settings map[string]any `json:"settings"`
}

func TestRenderJSONSchema(t *testing.T) {
	g := testGraph(t)
	out := render(t, g, FormatJSON, testLive())
	var doc jsonDoc
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 {
		t.Errorf("version = %d", doc.Version)
	}
	keys := map[Kind][]string{
		KindSource:    {"id", "kind", "stream", "cmd", "max_line", "batch_size", "backoff_min", "backoff_max"},
		KindPrefilter: {"id", "kind", "stream", "filters", "workers"},
		KindExtract:   {"id", "kind", "stream", "filter", "regexes", "patterns", "tests"},
		KindCounter:   {"id", "kind", "stream", "filter", "retry", "retryperiod", "shards", "max_keys"},
		KindScheduler: {"id", "kind", "stream", "filter", "duplicates", "key", "actions"},
		KindExecutor:  {"id", "kind", "concurrency", "timeout"},
	}
	seen := map[Kind]bool{}
	var ids []string
	for _, n := range doc.Nodes {
		k := Kind(n["kind"].(string))
		seen[k] = true
		ids = append(ids, n["id"].(string))
		want := slices.Clone(keys[k])
		if _, ok := n["counters"]; ok {
			want = append(want, "counters")
		}
		var got []string
		for key := range n {
			got = append(got, key)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("node %s: keys %q, want %q", n["id"], got, want)
		}
	}
	for k := range keys {
		if !seen[k] {
			t.Errorf("no node of kind %s", k)
		}
	}
	var walk []string
	for _, n := range g.Walk() {
		walk = append(walk, n.ID)
	}
	if !slices.Equal(ids, walk) {
		t.Errorf("nodes %q, want walk order %q", ids, walk)
	}
	if len(doc.Edges) != len(g.Edges) {
		t.Errorf("%d edges, want %d", len(doc.Edges), len(g.Edges))
	}
	for _, e := range doc.Edges {
		if e.From == "" || e.To == "" || e.Capacity == nil || e.Unit == "" {
			t.Errorf("incomplete edge %+v", e)
		}
	}
	for _, key := range []string{"start", "stop", "state_directory", "state_rotation_interval", "files"} {
		if _, ok := doc.Settings[key]; !ok {
			t.Errorf("settings.%s missing", key)
		}
	}

	// Durations parse back as Go durations.
	for _, n := range doc.Nodes {
		for _, key := range []string{"backoff_min", "backoff_max", "retryperiod", "timeout"} {
			if s, ok := n[key].(string); ok {
				if _, err := time.ParseDuration(s); err != nil {
					t.Errorf("node %s: %s = %q: %v", n["id"], key, s, err)
				}
			}
		}
	}
	// Spot checks of values.
	byID := map[string]map[string]any{}
	for _, n := range doc.Nodes {
		byID[n["id"].(string)] = n
	}
	if got := byID["executor"]["concurrency"]; got != float64(-1) {
		t.Errorf("executor concurrency = %v", got)
	}
	mail := byID["scheduler:ssh.failedlogin"]["actions"].([]any)[2].(map[string]any)
	if got := mail["cmd"].([]any); len(got) != 3 || got[2] != "echo <ip> banned; date" || mail["oneshot"] != true {
		t.Errorf("mail action = %v", mail)
	}
	unban := byID["scheduler:ssh.failedlogin"]["actions"].([]any)[3].(map[string]any)
	if unban["after"] != "48h0m0s" || unban["onexit"] != true {
		t.Errorf("unban action = %v", unban)
	}
	scan := byID["prefilter:nginx"]["filters"].([]any)[1].(map[string]any)
	if scan["always"] != true || len(scan["any_of"].([]any)) != 0 {
		t.Errorf("scan literals = %v", scan)
	}
	if got := byID["source:ssh"]["counters"].(map[string]any)["lines"]; got != float64(987654) {
		t.Errorf("source:ssh counters.lines = %v", got)
	}
	if strings.Contains(out, `\u003c`) {
		t.Error("JSON escapes < as \\u003c")
	}
}

func TestRenderJSONEmptyGraph(t *testing.T) {
	out := render(t, &Graph{}, FormatJSON, nil)
	want := `{
  "version": 1,
  "nodes": [],
  "edges": [],
  "settings": {
    "start": [],
    "stop": [],
    "state_directory": "",
    "state_rotation_interval": "0s",
    "files": []
  }
}
`
	if out != want {
		t.Errorf("empty graph:\n%s\nwant\n%s", out, want)
	}
}

// hostileGraph is a valid graph whose names, commands, regexes and
// literals contain everything the output formats must escape.
func hostileGraph(t *testing.T) *Graph {
	g := testGraph(t)
	src := g.Node(SourceID("ssh")).Source
	src.Cmd = []string{"sh", "-c", "tail -F \"/var/log/a b.log\" | grep -v '\\\\' # }\n\t]; end"}
	x := g.Node(ExtractID("ssh", "failedlogin")).Extract
	x.Regexes = append(x.Regexes, testRegex(t, `^<script>"quoted" \\ \d+ \"esc\" & #quot; %% `+"`tick` from <ip>$\\\\", x.Patterns))
	pf := g.Node(PrefilterID("ssh")).Prefilter
	pf.Filters[0].AnyOf = append(pf.Filters[0].AnyOf, `a "b" \ c`, "new\nline", "<b>&amp;</b>")
	g.Settings.Files = []string{"/etc/reaction \"x\".yml"}
	return g
}

func TestRenderEscaping(t *testing.T) {
	g := hostileGraph(t)
	dot := render(t, g, FormatDOT, nil)
	// Outside quoted strings nothing from the config may appear; inside,
	// every '"' must be escaped and every '\' doubled.
	for i, line := range strings.Split(dot, "\n") {
		if strings.Contains(line, "\t") {
			t.Errorf("dot line %d holds a raw tab: %q", i+1, line)
		}
		if unbalancedDOTQuotes(line) {
			t.Errorf("dot line %d has unbalanced quotes: %s", i+1, line)
		}
	}
	if !strings.Contains(dot, `\"quoted\" \\\\ \\d+ \\\"esc\\\"`) {
		t.Errorf("dot regex label not escaped as expected:\n%s", dot)
	}

	mmd := render(t, g, FormatMermaid, nil)
	noBR := strings.NewReplacer("<br/>", "", " -->|", "").Replace(mmd)
	if strings.ContainsAny(noBR, "<>`&") {
		t.Errorf("mermaid output holds raw < > ` or &:\n%s", mmd)
	}
	for i, line := range strings.Split(mmd, "\n") {
		if strings.Count(line, `"`)%2 != 0 {
			t.Errorf("mermaid line %d has unbalanced quotes: %s", i+1, line)
		}
	}
	if !strings.Contains(mmd, `#lt;script#gt;#quot;quoted#quot; \\ \d+ \#quot;esc\#quot; #amp; #35;quot; %% #96;tick#96;`) {
		t.Errorf("mermaid regex label not escaped as expected:\n%s", mmd)
	}
	if ids := regexp.MustCompile(`(?m)^\s*(\S+?)[\[\(]`).FindAllStringSubmatch(mmd, -1); len(ids) == 0 {
		t.Error("no mermaid node found")
	} else {
		for _, m := range ids {
			if !regexp.MustCompile(`^(n|s)[0-9]+$`).MatchString(m[1]) && m[1] != "subgraph" {
				t.Errorf("mermaid ID %q is not n<i>/s<i>", m[1])
			}
		}
	}

	text := render(t, g, FormatText, nil)
	if strings.Contains(text, "\t") || strings.Contains(text, "\n\t]; end") {
		t.Errorf("text output holds a raw control character from the config:\n%s", text)
	}
	if !strings.Contains(text, `sh -c "tail -F \"/var/log/a b.log\" | grep -v '\\\\' # }\n\t]; end"`) {
		t.Errorf("text source cmd not quoted as expected:\n%s", text)
	}

	var doc jsonDoc
	if err := json.Unmarshal([]byte(render(t, g, FormatJSON, nil)), &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Nodes[0]["cmd"].([]any)[2]; got != src(g) {
		t.Errorf("json cmd round trip = %q", got)
	}
}

func src(g *Graph) string { return g.Node(SourceID("ssh")).Source.Cmd[2] }

// unbalancedDOTQuotes tells whether a DOT line leaves a string open.
func unbalancedDOTQuotes(line string) bool {
	in := false
	for i := 0; i < len(line); i++ {
		switch {
		case in && line[i] == '\\':
			i++
		case line[i] == '"':
			in = !in
		}
	}
	return in
}

// TestRenderDOTWithGraphviz checks that dot accepts the output, when dot
// is installed (apt-get install graphviz).
func TestRenderDOTWithGraphviz(t *testing.T) {
	dotPath, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("dot not in PATH")
	}
	for name, g := range map[string]*Graph{"test": testGraph(t), "hostile": hostileGraph(t)} {
		for _, live := range []map[string]map[string]uint64{nil, testLive()} {
			in := render(t, g, FormatDOT, live)
			cmd := exec.Command(dotPath, "-Tsvg")
			cmd.Stdin = strings.NewReader(in)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s graph: dot -Tsvg: %v\n%s", name, err, stderr.String())
			}
			if msg := stderr.String(); strings.Contains(msg, "rror") || strings.Contains(msg, "syntax") {
				t.Errorf("%s graph: dot -Tsvg complained:\n%s", name, msg)
			} else if msg != "" {
				t.Logf("%s graph: dot -Tsvg: %s", name, msg) // e.g. a missing font
			}
			svg := stdout.String()
			if !strings.Contains(svg, "<svg") {
				t.Fatalf("%s graph: no SVG produced", name)
			}
			// Every node ID shows in the SVG, so labels survived escaping.
			for _, n := range g.Nodes {
				if !strings.Contains(svg, ">"+n.ID+"<") {
					t.Errorf("%s graph: node %s missing from the SVG", name, n.ID)
				}
			}
			if name == "hostile" {
				for _, want := range []string{
					`&lt;script&gt;&quot;quoted&quot; \\ \d+ \&quot;esc\&quot; &amp; #quot; %% `,
					`&quot;&lt;b&gt;&amp;amp;&lt;/b&gt;&quot;`,
				} {
					if !strings.Contains(svg, want) {
						t.Errorf("hostile graph: label mangled by dot, want %s in:\n%s", want, svg)
					}
				}
			}
		}
	}
}

func TestRenderTextActionsMatchString(t *testing.T) {
	g := testGraph(t)
	text := render(t, g, FormatText, nil)
	for _, s := range g.Of(KindScheduler) {
		for _, a := range s.Scheduler.Actions {
			want := a.String(s.Scheduler.Patterns)
			if strings.Contains(want, " banned; ") || strings.Contains(want, " failed login") || strings.Contains(want, "{ <ip> }") {
				continue // an argument with spaces: quoted in the text format
			}
			if !strings.Contains(text, want+"\n") {
				t.Errorf("text does not show %s as Action.String: %q", a.Name, want)
			}
		}
	}
}

// TestRenderInvalidGraph: rendering is also used to look at a graph that
// Validate rejects, so it must not panic on one.
func TestRenderInvalidGraph(t *testing.T) {
	g := testGraph(t)
	g.Add(&Node{ID: "counter:bare", Kind: KindCounter})                     // no parameters
	g.Add(&Node{ID: "weird", Kind: "sink"})                                 // unknown kind
	g.Add(&Node{ID: ExecutorID, Kind: KindExecutor, Executor: &Executor{}}) // duplicate
	g.Connect("ghost", "counter:bare", 1, "x")                              // dangling
	g.Connect(ExecutorID, SourceID("ssh"), 1, "x")                          // backwards
	s := g.Node(SchedulerID("ssh", "failedlogin")).Scheduler
	s.Actions[0].Cmd = append(s.Actions[0].Cmd, Arg{{Pattern: 7}}) // no such pattern
	x := g.Node(ExtractID("ssh", "failedlogin")).Extract
	x.Regexes[0].Captures = append(x.Regexes[0].Captures, Capture{Pattern: 9, Group: 9})
	if g.Validate() == nil {
		t.Fatal("the graph is valid")
	}
	for _, f := range Formats() {
		out := render(t, g, f, testLive())
		if !strings.Contains(out, "counter:bare") || !strings.Contains(out, "ghost") {
			t.Errorf("%s: invalid parts not shown:\n%s", f, out)
		}
	}
	if out := render(t, g, FormatText, nil); !strings.Contains(out, "-j DROP <?>") {
		t.Errorf("unknown pattern in an action not shown as <?>:\n%s", out)
	}
}
