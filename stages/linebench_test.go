package stages

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"reaction/graph"
)

// sshdCorpus returns n sshd-like journal lines, about a quarter of them
// attack lines the sshd filters match, the rest ordinary traffic.
func sshdCorpus(n int) [][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	ip := func() string {
		return fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(223), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
	}
	users := []string{"root", "admin", "oracle", "test", "ubuntu", "git", "postgres"}
	attack := []func() string{
		func() string {
			return fmt.Sprintf("Failed password for %s from %s port %d ssh2", users[rng.IntN(len(users))], ip(), 1024+rng.IntN(60000))
		},
		func() string {
			return fmt.Sprintf("Failed password for invalid user %s from %s port %d ssh2", users[rng.IntN(len(users))], ip(), 1024+rng.IntN(60000))
		},
		func() string {
			return fmt.Sprintf("Invalid user %s from %s port %d", users[rng.IntN(len(users))], ip(), 1024+rng.IntN(60000))
		},
		func() string {
			return fmt.Sprintf("Connection closed by authenticating user root %s port %d [preauth]", ip(), 1024+rng.IntN(60000))
		},
		func() string {
			return "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=" + ip() + "  user=root"
		},
	}
	benign := []func() string{
		func() string {
			return fmt.Sprintf("Accepted publickey for deploy from %s port %d ssh2: ED25519 SHA256:Xk3u9Qm1vZ0bq8rT2yH5nL7aP4sW6dF0gJ1kC3eB9oU", ip(), 1024+rng.IntN(60000))
		},
		func() string {
			return "pam_unix(sshd:session): session opened for user deploy(uid=1000) by deploy(uid=0)"
		},
		func() string { return "pam_unix(sshd:session): session closed for user deploy" },
		func() string {
			return fmt.Sprintf("Received disconnect from %s port %d:11: disconnected by user", ip(), 1024+rng.IntN(60000))
		},
		func() string {
			return fmt.Sprintf("Disconnected from user deploy %s port %d", ip(), 1024+rng.IntN(60000))
		},
		func() string { return "Server listening on 0.0.0.0 port 22." },
	}
	lines := make([][]byte, n)
	for i := range lines {
		var msg string
		if rng.IntN(4) == 0 {
			msg = attack[rng.IntN(len(attack))]()
		} else {
			msg = benign[rng.IntN(len(benign))]()
		}
		lines[i] = fmt.Appendf(nil, "May %2d %02d:%02d:%02d web-1 sshd[%d]: %s", 1+i/1000000, i/3600%24, i/60%60, i%60, 1000+rng.IntN(90000), msg)
	}
	return lines
}

var benchCorpus = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	for _, l := range sshdCorpus(1_000_000) {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
})

// BenchmarkSourceReadLines reads a 1M-line in-memory sshd corpus through
// ReadLines to a consumer that releases the batches. One op is the whole
// corpus.
func BenchmarkSourceReadLines(b *testing.B) {
	corpus := benchCorpus()
	const lines = 1_000_000
	s := NewSource(&graph.Source{Stream: "bench"}, WallClock{}, nil)
	b.SetBytes(int64(len(corpus)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out := make(chan *Batch, graph.DefaultLineQueue)
		done := make(chan int)
		go func() {
			n := 0
			for batch := range out {
				n += len(batch.Lines)
				batch.Release()
			}
			done <- n
		}()
		if err := s.ReadLines(context.Background(), bytes.NewReader(corpus), out); err != nil {
			b.Fatal(err)
		}
		close(out)
		if n := <-done; n != lines {
			b.Fatalf("%d lines", n)
		}
	}
	perLine := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / lines
	b.ReportMetric(perLine, "ns/line")
	b.ReportMetric(1e9/perLine, "lines/s")
}

// The literal sets compile/literal derives for the sshd example filters.
func sshdLiterals() []graph.FilterLiterals {
	return []graph.FilterLiterals{
		{Filter: "pam", AnyOf: []string{"authentication failure;"}},
		{Filter: "failedpassword", AnyOf: []string{"Failed password for "}},
		{Filter: "invaliduser", AnyOf: []string{"Invalid user "}},
		{Filter: "connection", AnyOf: []string{
			"Connection closed by authenticating user ", "Connection closed by invalid user ",
			"Connection reset by authenticating user ", "Connection reset by invalid user "}},
	}
}

// nFilters returns the sshd filters plus filters of made-up services whose
// literals do not occur in sshd lines, up to n filters.
func nFilters(n int) *graph.Prefilter {
	g := &graph.Prefilter{Stream: "bench", Filters: sshdLiterals()}
	verbs := []string{"login refused for ", "rejected token from ", "too many requests by ", "bad signature: "}
	for i := len(g.Filters); i < n; i++ {
		fl := graph.FilterLiterals{Filter: fmt.Sprint("svc", i)}
		for j := 0; j <= i%2; j++ {
			fl.AnyOf = append(fl.AnyOf, fmt.Sprintf("svc%03d[%d]: %s", i, j, verbs[(i+j)%len(verbs)]))
		}
		g.Filters = append(g.Filters, fl)
	}
	return g
}

func benchPrefilter(b *testing.B, n int) {
	lines := sshdCorpus(10_000)
	p := NewPrefilter(nFilters(n))
	dst := make([]int, 0, n)
	passed := 0
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		dst = p.Candidates(lines[i%len(lines)], dst[:0])
		passed += len(dst)
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/line")
	b.ReportMetric(float64(passed)/float64(b.N), "candidates/line")
}

// SPEC §6: 100 filters whose literals do not occur cost at most half the
// throughput of 4.
func BenchmarkPrefilter4(b *testing.B)   { benchPrefilter(b, 4) }
func BenchmarkPrefilter100(b *testing.B) { benchPrefilter(b, 100) }

// BenchmarkBatchHop is one producer sending recycled batches of lines to
// one consumer, the cost of an edge per line.
func BenchmarkBatchHop(b *testing.B) {
	line := []byte("May  1 12:00:00 web-1 sshd[1234]: Failed password for root from 1.2.3.4 port 22 ssh2")
	out := make(chan *Batch, graph.DefaultLineQueue)
	done := make(chan struct{})
	go func() {
		for batch := range out {
			batch.Release()
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	batch := GetBatch()
	for b.Loop() {
		batch.Append(line)
		if len(batch.Lines) == graph.DefaultBatchSize {
			batch.Time = time.Time{}
			out <- batch
			batch = GetBatch()
		}
	}
	close(out)
	<-done
}

// BenchmarkExtractCandidates runs the extract of upstream's four sshd
// regexes on the lines of the sshd corpus that the prefilter passes, as
// the matcher does (only the regexes whose literal is in the line), with
// graph/rx and with the standard library's regexp alone. One op is one
// candidate line.
func BenchmarkExtractCandidates(b *testing.B) {
	g := compileYAML(b, `
patterns:
  ip:
    type: ip
streams:
  s:
    cmd: ['true']
    filters:
      f:
        regex:
          - 'authentication failure;.*rhost=<ip>'
          - 'Failed password for .* from <ip>'
          - 'Invalid user .* from <ip>'
          - 'banner exchange: Connection from <ip> port [0-9]*: invalid format'
        actions: {ban: {cmd: ['true']}}
`)
	var x *graph.Extract
	var pf *Prefilter
	for _, n := range g.Nodes {
		switch {
		case n.Extract != nil:
			x = n.Extract
		case n.Prefilter != nil:
			pf = NewPrefilter(n.Prefilter)
		}
	}
	var lines [][]byte
	var masks []uint64
	for _, l := range sshdCorpus(20_000) {
		if c, m := pf.CandidateRegexes(l, nil, nil); len(c) > 0 {
			lines, masks = append(lines, l), append(masks, m[0])
		}
	}
	stdlib := *x
	stdlib.Regexes = nil
	for _, r := range x.Regexes {
		r := *r
		r.Prog = nil
		stdlib.Regexes = append(stdlib.Regexes, &r)
	}
	for _, bc := range []struct {
		name string
		x    *graph.Extract
	}{{"rx", x}, {"stdlib", &stdlib}} {
		b.Run(bc.name, func(b *testing.B) {
			matched, i := 0, 0
			var values []string
			b.ReportAllocs()
			for b.Loop() {
				var ok bool
				if values, _, ok, _ = bc.x.MatchInto(lines[i%len(lines)], masks[i%len(lines)], values); ok {
					matched++
				}
				i++
			}
			if matched == 0 {
				b.Fatal("nothing matched")
			}
		})
	}
}

// BenchmarkPrefilterBatch runs the sshd prefilter over batches of the
// sshd corpus as the matcher does: each literal searched through the whole
// batch at once ("batch"), or line by line ("lines"). One op is one line.
func BenchmarkPrefilterBatch(b *testing.B) {
	lines := sshdCorpus(128 * 100)
	var batches []*Batch
	for i, l := range lines {
		if i%graph.DefaultBatchSize == 0 {
			batches = append(batches, GetBatch())
		}
		batches[len(batches)-1].Append(l)
	}
	for _, n := range []int{4, 100} {
		p := NewPrefilter(nFilters(n))
		var cands []int
		var masks, found []uint64
		b.Run(fmt.Sprintf("filters=%d/batch", n), func(b *testing.B) {
			passed, i := 0, 0
			for b.Loop() {
				bt := batches[i%len(batches)]
				found = p.scanBatch(bt, found)
				for k, line := range bt.Lines {
					cands, masks = p.candidatesFound(line, found[k], cands[:0], masks[:0], true)
					passed += len(cands)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*graph.DefaultBatchSize), "ns/line")
		})
		b.Run(fmt.Sprintf("filters=%d/lines", n), func(b *testing.B) {
			passed, i := 0, 0
			for b.Loop() {
				for _, line := range batches[i%len(batches)].Lines {
					cands, masks = p.CandidateRegexes(line, cands[:0], masks[:0])
					passed += len(cands)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*graph.DefaultBatchSize), "ns/line")
		})
	}
}
