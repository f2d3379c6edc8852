package nutsstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"reaction/stages"
)

func benchIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

// fill commits, for each of pendingKeys keys, one pending action and, for
// the first matchKeys keys (counting from keys with no pending action when
// apart is set), two matches; in batches of about 10,000 changes.
func fill(b testing.TB, s *Store, pendingKeys, matchKeys int, apart bool) {
	batch := make([]stages.Change, 0, 10000)
	flush := func(force bool) {
		if len(batch) >= cap(batch)-3 || force && len(batch) > 0 {
			commitT(b, s, batch...)
			batch = batch[:0]
		}
	}
	for i := range pendingKeys {
		batch = append(batch, pending(ssh, "unban", 0, 48*time.Hour+time.Duration(i)*time.Millisecond, benchIP(i)))
		flush(false)
	}
	first := 0
	if apart {
		first = pendingKeys
	}
	for i := first; i < first+matchKeys; i++ {
		at := time.Duration(i) * time.Millisecond
		batch = append(batch, match(ssh, at, benchIP(i)), match(ssh, at+time.Second, benchIP(i)))
		flush(false)
	}
	flush(true)
}

// benchLoad times Open and Load of a database filled by fill, and reports
// the heap that the opened database holds (nutsdb keeps every record in
// memory).
func benchLoad(b *testing.B, pendingKeys, matchKeys int, apart bool) {
	dir := b.TempDir()
	s := openT(b, dir, Options{})
	fill(b, s, pendingKeys, matchKeys, apart)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	u, _ := dirUsage(dir)
	b.Logf("database: %d files, %d bytes on disk", u.files, u.allocated)
	var heap uint64
	cpu := cpuTime()
	for b.Loop() {
		s, err := Open(dir, Options{Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		st, err := s.Load(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Filters) != 1 || len(st.Filters[0].Pending) != pendingKeys || len(st.Filters[0].Matches) != matchKeys {
			b.Fatalf("loaded %d filters", len(st.Filters))
		}
		if heap == 0 {
			b.StopTimer()
			st = nil
			heap = heapInUse()
			b.StartTimer()
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(heap>>20), "open-heap-MiB")
}

// BenchmarkLoad100k is the restart of SPEC §6: Open and Load of 100,000
// keys that each have a pending action, and of 20,000 more keys that are
// still counting (two matches each): 120,000 records.
func BenchmarkLoad100k(b *testing.B) { benchLoad(b, 100_000, 20_000, true) }

// BenchmarkLoad100kAllMatched is the worst case: each of the 100,000 keys
// with a pending action also has matches (200,000 records). Usually a key
// that triggered has no matches left: they are cleared at the trigger.
func BenchmarkLoad100kAllMatched(b *testing.B) { benchLoad(b, 100_000, 100_000, false) }

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// cpuTime is the process's user and system CPU time: the machine running
// the benchmarks may be shared, which wall time shows and this does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommit10kMatches commits batches of 10,000 matches of distinct,
// new keys (a flood from many addresses); the keys are cleared between
// iterations, untimed.
func BenchmarkCommit10kMatches(b *testing.B) {
	const n = 10_000
	s := openT(b, b.TempDir(), Options{})
	batch := make([]stages.Change, n)
	clears := make([]stages.Change, n)
	for i := range batch {
		batch[i] = match(ssh, time.Duration(i)*time.Millisecond, benchIP(i))
		clears[i] = clearKey(ssh, benchIP(i))
	}
	for b.Loop() {
		commitT(b, s, batch...)
		b.StopTimer()
		commitT(b, s, clears...)
		b.StartTimer()
	}
	b.ReportMetric(n, "changes/op")
}

// BenchmarkCommit10kMatchesSameKeys commits batches of 10,000 matches that
// append to the times of 1,000 keys (10 each).
func BenchmarkCommit10kMatchesSameKeys(b *testing.B) {
	const n = 10_000
	s := openT(b, b.TempDir(), Options{})
	batch := make([]stages.Change, n)
	clears := make([]stages.Change, 1000)
	for i := range batch {
		batch[i] = match(ssh, time.Duration(i)*time.Millisecond, benchIP(i%1000))
	}
	for i := range clears {
		clears[i] = clearKey(ssh, benchIP(i))
	}
	for b.Loop() {
		commitT(b, s, batch...)
		b.StopTimer()
		commitT(b, s, clears...)
		b.StartTimer()
	}
	b.ReportMetric(n, "changes/op")
}

// BenchmarkCompact100k compacts a database of 100,000 live keys, as fill
// leaves it (matches and pending actions for each key), a fresh copy each
// time: nutsdb's Merge rewrites each live record in its own synced
// transaction.
func BenchmarkCompact100k(b *testing.B) {
	filled := b.TempDir()
	s := openT(b, filled, Options{})
	fill(b, s, 100_000, 100_000, false)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		copyDir(b, filled, dir)
		s := openT(b, dir, Options{})
		b.StartTimer()
		if err := s.Compact(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func copyDir(b *testing.B, from, to string) {
	entries, err := os.ReadDir(from)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(to, e.Name()), data, 0o600)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// sshd is a filter whose identity is as long as a real one (sshd's
// regexes and the ip pattern: about 300 bytes).
var sshd = stages.FilterRef{
	Name: "ssh.failedlogin",
	Identity: "ssh.failedlogin" +
		"\x00r:authentication failure;.*rhost=<ip>" +
		"\x00r:Failed password for .* from <ip>" +
		"\x00r:Invalid user .* from <ip>" +
		"\x00r:Connection (?:closed|reset) by (?:authenticating|invalid) user .* <ip>" +
		"\x00r:banner exchange: Connection from <ip> port [0-9]*: invalid format" +
		"\x00p:ip=(?:(?:[0-9]{1,3}\\.){3}[0-9]{1,3})|(?:[0-9a-fA-F:]{2,90})",
}

// BenchmarkMemory1M opens a database of 1,000,000 keys of one filter
// (IPv4 addresses, one or two match times each), loads it, commits a batch
// of 10,000 matches of existing keys, and reports the heap that the open
// store holds per key, once the loaded State is dropped: after Load and
// after the Commit. rss-MiB is the growth of the resident set over the
// same span (after returning free memory to the system).
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	s := openT(b, dir, Options{})
	batch := make([]stages.Change, 0, 10_000)
	for i := range n {
		at := time.Duration(i) * time.Millisecond
		batch = append(batch, match(sshd, at, benchIP(i)))
		if i%2 == 0 {
			batch = append(batch, match(sshd, at+time.Second, benchIP(i)))
		}
		if len(batch) >= cap(batch)-1 || i == n-1 {
			commitT(b, s, batch...)
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	u, _ := dirUsage(dir)
	b.Logf("database: %d files, %d bytes on disk", u.files, u.allocated)
	more := make([]stages.Change, 10_000)
	for i := range more {
		more[i] = match(sshd, time.Hour, benchIP(i*97))
	}
	var loadHeap, commitHeap, rss int64
	for b.Loop() {
		heap0, rss0 := memNow()
		s, err := Open(dir, Options{Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		st, err := s.Load(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Filters) != 1 || len(st.Filters[0].Matches) != n {
			b.Fatalf("loaded %d filters", len(st.Filters))
		}
		st = nil
		b.StopTimer()
		h, _ := memNow()
		loadHeap = h - heap0
		b.StartTimer()
		commitT(b, s, more...)
		b.StopTimer()
		h, r := memNow()
		commitHeap, rss = h-heap0, r-rss0
		b.StartTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(loadHeap)/n, "load-B/key")
	b.ReportMetric(float64(commitHeap)/n, "commit-B/key")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
}

// memNow returns the live heap and the resident set, after a collection
// that returns free memory to the system.
func memNow() (heap, rss int64) {
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	statm, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		if f := strings.Fields(string(statm)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return int64(m.HeapAlloc), rss
}

// BenchmarkFlood1M commits what the journal commits under a flood of
// 2,000,000 matches of 1,000,000 distinct keys with a retry never reached
// (reaction bench --daemon --attackers 1000000 --attack-fraction 1): ticks
// of 20,000 matches, each key of a tick rewritten whole (OpClear, then all
// its times so far). It reports the bytes written to the database per key
// (before compaction), the peak of the live heap sampled every
// millisecond, and the CPU time per run.
func BenchmarkFlood1M(b *testing.B) {
	const keys, matches, tick = 1_000_000, 2_000_000, 20_000
	names := make([]string, keys)
	for i := range names {
		names[i] = benchIP(i)
	}
	rnd := uint64(1)
	seq := make([]int32, matches)
	for i := range seq {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		seq[i] = int32(rnd>>33) % keys
	}
	var written, peak, cpuMs float64
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s := openT(b, dir, Options{})
		runtime.GC()
		stop := make(chan struct{})
		peakc := make(chan uint64)
		go func() {
			var m runtime.MemStats
			var top uint64
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					peakc <- top
					return
				case <-t.C:
					runtime.ReadMemStats(&m)
					top = max(top, m.HeapAlloc)
				}
			}
		}()
		cpu := cpuTime()
		b.StartTimer()
		count := make([]uint8, keys)
		seen := make([]int32, keys)
		var batch []stages.Change
		for start := 0; start < matches; start += tick {
			batch = batch[:0]
			for i, k := range seq[start : start+tick] {
				count[k]++
				seen[k] = int32(start + i + 1)
			}
			for i, k := range seq[start : start+tick] {
				if seen[k] != int32(start+i+1) {
					continue // a later match of the tick hands the key over
				}
				batch = append(batch, clearKey(sshd, names[k]))
				for n := range count[k] {
					batch = append(batch, match(sshd, time.Duration(start+i-int(n))*time.Millisecond, names[k]))
				}
			}
			commitT(b, s, batch...)
		}
		b.StopTimer()
		cpuMs += float64((cpuTime() - cpu).Milliseconds())
		close(stop)
		peak = max(peak, float64(<-peakc))
		u, _ := dirUsage(dir)
		written = float64(u.apparent)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(written/keys, "written-B/key")
	b.ReportMetric(peak/(1<<20), "peak-heap-MiB")
	b.ReportMetric(cpuMs/float64(b.N), "cpu-ms/op")
}
