package nutsstore

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"reaction/stages"
)

// churn overwrites and deletes the same few keys many times, leaving
// segments full of dead records.
func churn(t testing.TB, s *Store, rounds int) [][]stages.Change {
	var batches [][]stages.Change
	for r := range rounds {
		var b []stages.Change
		for k := range 50 {
			ip := fmt.Sprintf("198.51.100.%d", k)
			at := time.Duration(r) * time.Second
			b = append(b, clearKey(ssh, ip), match(ssh, at, ip), match(ssh, at+1, ip))
			prev := at - time.Second // the previous round's pending action
			b = append(b, done(ssh, "unban", prev+time.Hour, ip), pending(ssh, "unban", at, at+time.Hour, ip))
		}
		batches = append(batches, b)
		commitT(t, s, b...)
	}
	return batches
}

// compactOpts keep the log small: folded, its records go.
var compactOpts = Options{SegmentSize: 32 << 10, logBytes: 4096}

func TestCompactShrinks(t *testing.T) {
	dir := t.TempDir()
	opts := compactOpts
	s := openT(t, dir, opts)
	batches := churn(t, s, 200)
	want := reference(t, batches...)
	before, err := dirUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	after, err := dirUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before: %+v, after: %+v", before, after)
	if after.allocated >= before.allocated || after.apparent >= before.apparent || after.files >= before.files {
		t.Fatalf("compaction did not shrink the directory: before %+v, after %+v", before, after)
	}
	same(t, "live, after Compact", loadT(t, s), want)
	more := []stages.Change{match(nginx, 0, "10.1.1.1")}
	commitT(t, s, more...)
	s.Close()
	s = openT(t, dir, opts)
	same(t, "reopened, after Compact", loadT(t, s), reference(t, append(batches, more)...))
	if r := s.Recovered(); len(r) != 0 {
		t.Fatalf("Recovered after a compaction: %q", r)
	}
}

func TestCompactNothingToDo(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	commitT(t, s, match(ssh, 0, "1.2.3.4"))
	if err := s.Compact(); err != nil {
		t.Fatalf("Compact of a one-segment database: %v", err)
	}
}

// TestCompactWhileCommitting runs a compaction concurrently with commits.
func TestCompactWhileCommitting(t *testing.T) {
	dir := t.TempDir()
	opts := compactOpts
	s := openT(t, dir, opts)
	batches := churn(t, s, 50)
	errc := make(chan error, 1)
	go func() { errc <- s.Compact() }()
	batches = append(batches, churn(t, s, 20)...)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := reference(t, batches...)
	same(t, "live", loadT(t, s), want)
	s.Close()
	s = openT(t, dir, opts)
	same(t, "reopened", loadT(t, s), want)
}

func TestRunCompactsOnInterval(t *testing.T) {
	dir := t.TempDir()
	clock := stages.NewFakeClock(t0)
	opts := compactOpts
	opts.RotationInterval, opts.Clock = time.Hour, clock
	s := openT(t, dir, opts)
	churn(t, s, 100)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	for clock.Pending() == 0 { // Run has armed its timer
		runtime.Gosched()
	}
	before, _ := dirUsage(dir)
	clock.Advance(59 * time.Minute)
	if u, _ := dirUsage(dir); u.files != before.files {
		t.Fatalf("compacted before the interval: %+v -> %+v", before, u)
	}
	clock.Advance(time.Minute) // runs the compaction, synchronously
	after, _ := dirUsage(dir)
	if after.files >= before.files {
		t.Fatalf("not compacted after the interval: %+v -> %+v", before, after)
	}
	if clock.Pending() != 1 {
		t.Fatalf("%d timers pending after a compaction, want the next one", clock.Pending())
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if clock.Pending() != 0 {
		t.Fatal("Run left its timer armed")
	}
}

func TestRunWithoutInterval(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
