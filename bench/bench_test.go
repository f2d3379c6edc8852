package bench

import (
	"context"
	"testing"
	"time"

	"reaction/bench/workload"
	"reaction/stages"
)

// benchLines is the size of the Go benchmarks' workloads: large enough
// that starting the engine and `cat` is a small part of an op.
const benchLines = 200_000

// benchPipeline runs the whole pipeline (the engine on a `cat` stream of a
// generated workload, actions recorded) once per op, and reports lines/s
// and allocations per line. The workload is generated once.
func benchPipeline(b *testing.B, o Options) {
	o.Lines = benchLines
	o.TempDir = b.TempDir()
	h, err := prepare(o)
	if err != nil {
		b.Fatal(err)
	}
	var lines uint64
	var elapsed time.Duration
	var allocs, bytes float64
	for b.Loop() {
		g, err := h.graph([][]string{{"cat", h.file}})
		if err != nil {
			b.Fatal(err)
		}
		p, err := h.runPipeline(context.Background(), g)
		if err != nil {
			b.Fatal(err)
		}
		var r Report
		p.fill(&r, h.expectedBans)
		if r.Lines != benchLines {
			b.Fatalf("%d lines read, want %d", r.Lines, benchLines)
		}
		if r.Actions.ExpectedBans != nil && r.Actions.Bans != uint64(*r.Actions.ExpectedBans) {
			b.Fatalf("%d bans, want %d", r.Actions.Bans, *r.Actions.ExpectedBans)
		}
		lines += r.Lines
		elapsed += p.elapsed
		allocs += r.AllocsPerLine
		bytes += r.BytesPerLine
	}
	b.ReportMetric(float64(lines)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(allocs/float64(b.N), "allocs/line")
	b.ReportMetric(bytes/float64(b.N), "B/line")
}

func BenchmarkPipelineSSHD(b *testing.B)  { benchPipeline(b, Options{Workload: "sshd"}) }
func BenchmarkPipelineNginx(b *testing.B) { benchPipeline(b, Options{Workload: "nginx"}) }
func BenchmarkPipelineMixed(b *testing.B) { benchPipeline(b, Options{Workload: "mixed"}) }

// SPEC §6: 100 filters whose literals occur in no line run at least half
// as fast as 4.
func BenchmarkPipelineSSHD4Filters(b *testing.B) {
	benchPipeline(b, Options{Workload: "sshd", Filters: 4})
}
func BenchmarkPipelineSSHD100Filters(b *testing.B) {
	benchPipeline(b, Options{Workload: "sshd", Filters: 100})
}

// BenchmarkPipelineSSHDState persists through nutsstore in a temp dir.
func BenchmarkPipelineSSHDState(b *testing.B) {
	benchPipeline(b, Options{Workload: "sshd", StateDir: b.TempDir()})
}

// BenchmarkMatcherSSHD is a stream matcher's core alone on the sshd
// workload: Prefilter.Candidates, then Extract.Match of each candidate
// filter. One op is one line.
func BenchmarkMatcherSSHD(b *testing.B) {
	h, err := prepare(Options{Workload: "sshd", Lines: benchLines, TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	g, err := h.graph(nil)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := workload.ReadFile(h.file)
	if err != nil {
		b.Fatal(err)
	}
	v := g.Streams()[0]
	pf := stages.NewPrefilter(v.Prefilter)
	var cands []int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l := lines[i%len(lines)]
		i++
		cands = pf.Candidates(l, cands[:0])
		for _, ci := range cands {
			v.Filters[ci].Extract.Match(l)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
