package stages

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"reaction/compile"
	"reaction/graph"
)

func sshdPrefilter() *graph.Prefilter {
	return &graph.Prefilter{Stream: "ssh", Filters: []graph.FilterLiterals{
		{Filter: "failedpassword", AnyOf: []string{"Failed password for "}},
		{Filter: "invaliduser", AnyOf: []string{"Invalid user "}},
		{Filter: "everything", Always: true},
		{Filter: "reset", AnyOf: []string{"Connection closed by ", "Connection reset by "}},
	}}
}

func TestPrefilterCandidates(t *testing.T) {
	tests := []struct {
		line string
		want []int
	}{
		{"sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", []int{0, 2}},
		{"sshd[1]: Invalid user admin from 1.2.3.4", []int{1, 2}},
		{"sshd[1]: Connection reset by 1.2.3.4 port 22", []int{2, 3}},
		{"sshd[1]: Connection closed by invalid user x 1.2.3.4", []int{2, 3}},
		{"Failed password for Invalid user Connection reset by ", []int{0, 1, 2, 3}},
		{"sshd[1]: Accepted publickey for root", []int{2}},
		{"", []int{2}},
		{"Failed password for", []int{2}}, // literal cut short
	}
	for _, mode := range []string{"loop", "skip"} {
		p := NewPrefilter(sshdPrefilter())
		if mode == "skip" {
			p = withSkip(sshdPrefilter())
		}
		for _, tt := range tests {
			if got := p.Candidates([]byte(tt.line), nil); !slices.Equal(got, tt.want) {
				t.Errorf("%s: Candidates(%q) = %v, want %v", mode, tt.line, got, tt.want)
			}
		}
	}
}

// withSkip pads a prefilter with filters whose literals never occur, so
// that it uses the skip scanner; they come last, so the indices of the
// first filters do not change.
func withSkip(g *graph.Prefilter) *Prefilter {
	for i := 0; i <= maxLoopLiterals; i++ {
		g.Filters = append(g.Filters, graph.FilterLiterals{
			Filter: fmt.Sprintf("pad%d", i), AnyOf: []string{fmt.Sprintf("\x00never-%02d\x00", i)},
		})
	}
	p := NewPrefilter(g)
	if p.skip == nil {
		panic("no skip scanner")
	}
	return p
}

func TestPrefilterExplain(t *testing.T) {
	p := NewPrefilter(sshdPrefilter())
	got := p.Explain([]byte("x Connection reset by 1.2.3.4"))
	want := []PrefilterDecision{
		{Filter: "failedpassword"},
		{Filter: "invaliduser"},
		{Filter: "everything", Passed: true, Always: true},
		{Filter: "reset", Passed: true, Literal: "Connection reset by "},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Explain = %+v\nwant %+v", got, want)
	}
}

// TestPrefilterDifferential compares both implementations (loop and skip
// scanner, with windows of 4 to 8 bytes) against the definition: a filter
// passes when it is Always or the line contains one of its literals.
func TestPrefilterDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("abcab ")
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for round := 0; round < 300; round++ {
		g := &graph.Prefilter{Stream: "s"}
		nf := 1 + rng.IntN(150)
		for f := 0; f < nf; f++ {
			fl := graph.FilterLiterals{Filter: fmt.Sprint("f", f)}
			if rng.IntN(10) == 0 {
				fl.Always = true
			} else {
				for n := 1 + rng.IntN(3); n > 0; n-- {
					fl.AnyOf = append(fl.AnyOf, word(1+rng.IntN(12)))
				}
			}
			g.Filters = append(g.Filters, fl)
		}
		p := NewPrefilter(g)
		var dst []int
		for i := 0; i < 50; i++ {
			line := []byte(word(rng.IntN(80)))
			dst = p.Candidates(line, dst[:0])
			want := naiveCandidates(g, line)
			if !slices.Equal(dst, want) {
				t.Fatalf("round %d (skip %v): Candidates(%q) = %v, want %v", round, p.skip != nil, line, dst, want)
			}
			for f, d := range p.Explain(line) {
				if d.Passed != slices.Contains(want, f) {
					t.Fatalf("Explain(%q)[%d] = %+v, want passed=%v", line, f, d, !d.Passed)
				}
				if d.Literal != "" && !bytes.Contains(line, []byte(d.Literal)) {
					t.Fatalf("Explain(%q)[%d] names %q", line, f, d.Literal)
				}
			}
		}
	}
}

func naiveCandidates(g *graph.Prefilter, line []byte) []int {
	var out []int
	for f, fl := range g.Filters {
		ok := fl.Always || len(fl.AnyOf) == 0
		for _, l := range fl.AnyOf {
			ok = ok || bytes.Contains(line, []byte(l))
		}
		if ok {
			out = append(out, f)
		}
	}
	return out
}

func TestPrefilterNoAlloc(t *testing.T) {
	miss := []byte("sshd[1]: Accepted publickey for root from 1.2.3.4 port 22 ssh2")
	hit := []byte("sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2")
	dst := make([]int, 0, 256)
	loop := NewPrefilter(sshdPrefilter())
	skip := NewPrefilter(manyFilters(100))
	for _, c := range []struct {
		name string
		p    *Prefilter
		line []byte
	}{
		{"loop miss", loop, miss},
		{"loop hit", loop, hit},
		{"skip miss", skip, miss},
		{"skip hit", skip, hit},
	} {
		if got := testing.AllocsPerRun(100, func() { dst = c.p.Candidates(c.line, dst[:0]) }); got != 0 {
			t.Errorf("%s: %v allocs per line", c.name, got)
		}
	}
}

// manyFilters returns the sshd filters followed by n-4 filters whose
// literals do not occur in sshd lines (made-up services' messages).
func manyFilters(n int) *graph.Prefilter {
	g := sshdPrefilter()
	for i := len(g.Filters); i < n; i++ {
		g.Filters = append(g.Filters, graph.FilterLiterals{
			Filter: fmt.Sprint("svc", i),
			AnyOf: []string{
				fmt.Sprintf("svc%03d: login refused for ", i),
				fmt.Sprintf("app-%03d rejected token ", i),
			},
		})
	}
	return g
}

// A filter's regexes are tried only when the prefilter saw one of their
// own literals in the line; that must never change what Match finds.
func TestCandidateRegexesAgreeWithMatch(t *testing.T) {
	g := compileYAML(t, `
patterns:
  ip:
    type: ip
streams:
  s:
    cmd: ['true']
    filters:
      ssh:
        regex:
          - 'Failed password for .* from <ip> port 22\b'
          - 'Failed password for invalid user .* from <ip>'
          - '(?:Invalid|Illegal) user .* from <ip>'
          - 'rhost=<ip>'
          - 'from <ip> port \d+ ssh2$'
        actions: {ban: {cmd: ['true']}}
      loose:
        regex:
          - '.<ip> x'
          - 'ssh2 <ip>'
        actions: {ban: {cmd: ['true']}}
`)
	var pg *graph.Prefilter
	extracts := map[string]*graph.Extract{}
	for _, n := range g.Nodes {
		switch {
		case n.Prefilter != nil:
			pg = n.Prefilter
		case n.Extract != nil:
			extracts[n.Extract.Filter] = n.Extract
		}
	}
	lines := sshdCorpus(5000)
	for _, l := range []string{
		"Failed password for invalid user x from 10.0.0.1 port 2222 ssh2",
		"Failed password for root from 10.0.0.2 port 22 ssh2",
		"Illegal user x from 10.0.0.3 rhost=10.0.0.4",
		"Failed password for x from 300.1.1.1 port 22 Invalid user y from 10.0.0.5",
		"ssh2 10.0.0.6 x",
		"a10.0.0.7 x",
	} {
		lines = append(lines, []byte(l))
	}
	for _, p := range []*Prefilter{NewPrefilter(pg), withSkip(pg)} {
		var cands []int
		var masks []uint64
		matched := 0
		for _, line := range lines {
			cands, masks = p.CandidateRegexes(line, cands[:0], masks[:0])
			for k, f := range cands {
				x := extracts[pg.Filters[f].Filter]
				v1, w1, m1, r1 := x.MatchSome(line, masks[k])
				v2, w2, m2, r2 := x.Match(line)
				if !slices.Equal(v1, v2) || w1 != w2 || m1 != m2 || r1 != r2 {
					t.Fatalf("%q, filter %s, mask %b: MatchSome %v %d %v %q, Match %v %d %v %q",
						line, pg.Filters[f].Filter, masks[k], v1, w1, m1, r1, v2, w2, m2, r2)
				}
				if m1 {
					matched++
				}
			}
		}
		if matched < 500 {
			t.Fatalf("only %d matches: the corpus does not exercise the filters", matched)
		}
	}
}

// TestScanBatchAgreesWithLines: searching a batch's whole buffer finds, for
// every line, exactly the literals a search of the line alone finds: none
// across two lines, none in the bytes a cut line or a "\r" left between
// lines, and the same after the buffer grew. Batches come from ReadLines,
// as in the daemon, and from Append.
func TestScanBatchAgreesWithLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"ab", "c", ";", "\r", "b", "a;c", "xyz"}
	word := func(n int) string {
		var b []byte
		for range n {
			b = append(b, alphabet[rng.IntN(len(alphabet))]...)
		}
		return string(b)
	}
	checked := 0
	for round := 0; round < 200; round++ {
		g := &graph.Prefilter{Stream: "s"}
		for f := range 1 + rng.IntN(12) {
			fl := graph.FilterLiterals{Filter: fmt.Sprint("f", f)}
			for n := 1 + rng.IntN(3); n > 0; n-- {
				fl.AnyOf = append(fl.AnyOf, word(1+rng.IntN(4)))
			}
			g.Filters = append(g.Filters, fl)
		}
		p := NewPrefilter(g)
		var in strings.Builder
		for range 1 + rng.IntN(300) {
			in.WriteString(word(rng.IntN(40)))
			in.WriteString([]string{"\n", "\r\n", "\n\n"}[rng.IntN(3)])
		}
		s, _ := testSource(t, graph.Source{MaxLine: 20 + rng.IntN(60), BatchSize: 1 + rng.IntN(200)}, nil)
		out := make(chan *Batch, 1<<12)
		if err := s.ReadLines(context.Background(), strings.NewReader(in.String()), out); err != nil {
			t.Fatal(err)
		}
		close(out)
		var batches []*Batch
		for b := range out {
			batches = append(batches, b)
		}
		appended := GetBatch()
		for _, b := range batches {
			for _, l := range b.Lines {
				appended.Append(l)
			}
		}
		batches = append(batches, appended)
		var found []uint64
		for _, b := range batches {
			if len(b.offs) != len(b.Lines) {
				t.Fatalf("batch of %d lines has %d offsets", len(b.Lines), len(b.offs))
			}
			found = p.scanBatch(b, found)
			for k, l := range b.Lines {
				if want := p.findWide(l); found[k] != want {
					t.Fatalf("line %q of a batch: scanBatch found %b, the line alone %b (wide literals %q)", l, found[k], want, p.wide)
				}
				if found[k] != 0 {
					checked++
				}
			}
			b.Release()
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d lines held a literal: the test proves little", checked)
	}
}

// compileYAML compiles a configuration given as YAML, as `reaction start`
// would.
func compileYAML(tb testing.TB, yaml string) *graph.Graph {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "reaction.yml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	res, err := compile.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	return res.Graph
}
