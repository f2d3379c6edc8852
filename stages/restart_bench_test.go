package stages_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"reaction/compile"
	"reaction/graph"
	"reaction/stages"
	"reaction/stages/nutsstore"
)

// BenchmarkRestart100k is the restart of SPEC §6 as the daemon does it:
// open the nutsdb state of 100,000 banned keys with a pending unban (and
// 20,000 keys still counting), load it and restore it into a new engine,
// up to Ready (the control socket answers from then on). The re-applied
// bans run on a recording runner; shutting the engine down is not timed.
func BenchmarkRestart100k(b *testing.B) {
	const banned, counting = 100_000, 20_000
	dir := b.TempDir()
	cfg := filepath.Join(dir, "reaction.yml")
	if err := os.WriteFile(cfg, []byte(`
patterns:
  ip:
    type: ip
streams:
  ssh:
    cmd: ['cat', '/dev/null']
    filters:
      failedlogin:
        regex: ['Failed password for .* from <ip>']
        retry: 3
        retryperiod: 6h
        actions:
          ban:
            cmd: ['ban', '<ip>']
          unban:
            cmd: ['unban', '<ip>']
            after: 48h
`), 0o600); err != nil {
		b.Fatal(err)
	}
	res, err := compile.Load(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var ref stages.FilterRef
	for _, n := range res.Graph.Nodes {
		if n.Kind == graph.KindExtract {
			ref = stages.FilterRef{Name: n.Extract.Stream + "." + n.Extract.Filter, Identity: n.Extract.Identity()}
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	state := filepath.Join(dir, "state")
	now := time.Now()
	s, err := nutsstore.Open(state, nutsstore.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	var changes []stages.Change
	for i := range banned + counting {
		key := []string{fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)}
		if i < banned {
			changes = append(changes, stages.Change{Op: stages.OpPending, Filter: ref, Key: key, Action: "unban",
				Time: now.Add(-time.Hour), Due: now.Add(47 * time.Hour)})
		} else {
			changes = append(changes,
				stages.Change{Op: stages.OpMatch, Filter: ref, Key: key, Time: now.Add(-2 * time.Minute)},
				stages.Change{Op: stages.OpMatch, Filter: ref, Key: key, Time: now.Add(-time.Minute)})
		}
		if len(changes) >= 10_000 {
			if err := s.Commit(changes); err != nil {
				b.Fatal(err)
			}
			changes = changes[:0]
		}
	}
	if err := s.Commit(changes); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	var opening, restoring time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := nutsstore.Open(state, nutsstore.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		runner := &stages.RecordingRunner{}
		e, err := stages.New(res.Graph, stages.Options{Logger: quiet, Store: s, Runner: runner})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		t1 := time.Now()
		go func() { done <- e.Run(ctx) }()
		<-e.Ready()
		b.StopTimer()
		opening += t1.Sub(t0)
		restoring += time.Since(t1)
		restored := e.Show(stages.Selector{})
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if len(restored.Filters) != 1 || len(restored.Filters[0].Pending) != banned || len(restored.Filters[0].Matches) != counting {
			b.Fatalf("restored %+v", restored.Filters)
		}
		b.StartTimer()
	}
	b.ReportMetric(opening.Seconds()/float64(b.N), "open-s/op")
	b.ReportMetric(restoring.Seconds()/float64(b.N), "load+restore-s/op")
}
