package nutsstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commitT(t testing.TB, s stages.Store, changes ...stages.Change) {
	t.Helper()
	if err := s.Commit(changes); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// render prints a state canonically, for comparisons with readable diffs.
func render(st *stages.State) string {
	var b strings.Builder
	for _, f := range st.Filters {
		fmt.Fprintf(&b, "filter %q %q\n", f.Filter.Name, f.Filter.Identity)
		for _, m := range f.Matches {
			fmt.Fprintf(&b, "  match %q", m.Key)
			for _, t := range m.Times {
				fmt.Fprintf(&b, " %d", t.UnixNano())
			}
			b.WriteString("\n")
		}
		for _, p := range f.Pending {
			fmt.Fprintf(&b, "  pending %q %q due=%d trigger=%d\n", p.Key, p.Action, p.Due.UnixNano(), p.Trigger.UnixNano())
		}
	}
	return b.String()
}

func loadT(t testing.TB, s stages.Store) string {
	t.Helper()
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return render(st)
}

// reference applies batches to a MemStore, the reference semantics.
func reference(t testing.TB, batches ...[]stages.Change) string {
	t.Helper()
	m := stages.NewMemStore()
	for _, b := range batches {
		commitT(t, m, b...)
	}
	return loadT(t, m)
}

func same(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

var (
	ssh   = stages.FilterRef{Name: "ssh.failedlogin", Identity: "ssh.failedlogin\x00r:fail <ip>"}
	nginx = stages.FilterRef{Name: "nginx.scan", Identity: "nginx.scan\x00r:GET <ip>"}
	bare  = stages.FilterRef{Name: "kern.oops", Identity: "kern.oops\x00r:Oops"}
)

func match(f stages.FilterRef, at time.Duration, key ...string) stages.Change {
	return stages.Change{Op: stages.OpMatch, Filter: f, Key: key, Time: t0.Add(at)}
}

func clearKey(f stages.FilterRef, key ...string) stages.Change {
	return stages.Change{Op: stages.OpClear, Filter: f, Key: key}
}

func pending(f stages.FilterRef, action string, trigger, due time.Duration, key ...string) stages.Change {
	return stages.Change{Op: stages.OpPending, Filter: f, Key: key, Action: action, Time: t0.Add(trigger), Due: t0.Add(due)}
}

func done(f stages.FilterRef, action string, due time.Duration, key ...string) stages.Change {
	return stages.Change{Op: stages.OpDone, Filter: f, Key: key, Action: action, Due: t0.Add(due)}
}

func drop(f stages.FilterRef) stages.Change { return stages.Change{Op: stages.OpDrop, Filter: f} }

// TestRoundTrip passes every Op through Close, Open and Load.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	batches := [][]stages.Change{
		{
			match(ssh, 0, "1.2.3.4"), match(ssh, time.Second, "1.2.3.4"), match(ssh, 0, "5.6.7.8"),
			pending(ssh, "unban", 0, 48*time.Hour, "9.9.9.9"),
			pending(ssh, "notify", 0, time.Hour, "9.9.9.9"),
			match(nginx, 2*time.Second, "10.0.0.1", "GET /wp-login.php"),
			match(bare, time.Minute), // a filter without patterns: one shared key
			match(ssh, 3*time.Second, "odd\x00value", "", "é"),
		},
		{
			clearKey(ssh, "1.2.3.4"),
			done(ssh, "notify", time.Hour, "9.9.9.9"),
			match(ssh, 4*time.Second, "5.6.7.8"),
			done(ssh, "never-pending", time.Hour, "9.9.9.9"), // no such record: nothing happens
		},
		{drop(nginx)},
		{match(nginx, 5*time.Second, "10.0.0.2")}, // a dropped filter can come back
	}
	s := openT(t, dir, Options{})
	for i, b := range batches {
		commitT(t, s, b...)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openT(t, dir, Options{})
		same(t, fmt.Sprintf("after batch %d", i), loadT(t, s), reference(t, batches[:i+1]...))
	}
	if got := loadT(t, s); !strings.Contains(got, `pending ["9.9.9.9"] "unban"`) || strings.Contains(got, "notify") || strings.Contains(got, "10.0.0.1") {
		t.Fatalf("unexpected final state:\n%s", got)
	}
	if r := s.Recovered(); len(r) != 0 {
		t.Fatalf("Recovered on a clean database: %q", r)
	}
}

func TestIdentitiesKeptApart(t *testing.T) {
	dir := t.TempDir()
	v1 := stages.FilterRef{Name: "ssh.failedlogin", Identity: "regex v1"}
	v2 := stages.FilterRef{Name: "ssh.failedlogin", Identity: "regex v2"}
	s := openT(t, dir, Options{})
	b1 := []stages.Change{
		match(v1, 0, "1.1.1.1"), match(v2, time.Second, "1.1.1.1"),
		pending(v1, "unban", 0, time.Hour, "2.2.2.2"), pending(v2, "unban", 0, 2*time.Hour, "2.2.2.2"),
	}
	b2 := []stages.Change{drop(v1)}
	commitT(t, s, b1...)
	s.Close()
	s = openT(t, dir, Options{})
	got := loadT(t, s)
	same(t, "two identities", got, reference(t, b1))
	if strings.Count(got, "filter ") != 2 {
		t.Fatalf("want two filters:\n%s", got)
	}
	commitT(t, s, b2...)
	s.Close()
	s = openT(t, dir, Options{})
	got = loadT(t, s)
	same(t, "after dropping v1", got, reference(t, b1, b2))
	if strings.Contains(got, "regex v1") || !strings.Contains(got, "regex v2") {
		t.Fatalf("drop of v1 must keep v2 only:\n%s", got)
	}
}

// TestOrderWithinBatch checks that changes apply in order inside one batch,
// around drops and clears.
func TestOrderWithinBatch(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	b0 := []stages.Change{match(ssh, 0, "a"), match(ssh, 0, "b"), pending(ssh, "unban", 0, time.Hour, "c"), match(nginx, 0, "x")}
	b1 := []stages.Change{
		match(ssh, time.Second, "a"), // appended to a's persisted time
		drop(ssh),                    // forgets a, b, c, persisted or not
		match(ssh, 2*time.Second, "a"),
		pending(ssh, "unban", 0, time.Hour, "d"),
		done(ssh, "unban", time.Hour, "d"),
		pending(ssh, "unban", 0, 2*time.Hour, "d"),
		match(nginx, time.Second, "x"), clearKey(nginx, "x"), match(nginx, 3*time.Second, "x"),
		match(nginx, 4*time.Second, "y"), clearKey(nginx, "y"),
	}
	commitT(t, s, b0...)
	commitT(t, s, b1...)
	s.Close()
	s = openT(t, dir, Options{})
	same(t, "ordered batch", loadT(t, s), reference(t, b0, b1))
}

// TestDifferential compares random histories with stages.MemStore: with
// the default log, whose changes are folded late; with commits that fold
// everything they log; with groups so small that filters split many times.
func TestDifferential(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		groupBytes, logBytes int
		keys                 int
	}{
		{"log", 0, 0, 8},
		{"fold every commit", 0, 1, 8},
		{"small groups, small log", 64, 512, 60},
		{"small groups, larger log", 64, 2048, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			differential(t, Options{SegmentSize: 16 << 10, groupBytes: tc.groupBytes, logBytes: tc.logBytes}, tc.keys)
		})
	}
}

func differential(t *testing.T, opts Options, keys int) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	filters := []stages.FilterRef{ssh, nginx, bare, {Name: ssh.Name, Identity: "other"}}
	var batches [][]stages.Change
	most := 0 // groups in a filter
	s := openT(t, dir, opts)
	for round := range 40 {
		var b []stages.Change
		for range rng.IntN(200) { // some batches span two 16 KiB segments
			f := filters[rng.IntN(len(filters))]
			key := []string{fmt.Sprint(rng.IntN(keys))}
			if f == bare {
				key = nil
			}
			at := time.Duration(rng.IntN(1000)) * time.Second
			due := time.Duration(rng.IntN(3)) * time.Hour
			switch r := rng.IntN(100); {
			case r < 35:
				b = append(b, match(f, at, key...))
			case r < 50: // several times at once, as the shards hand them over
				var ns []int64
				for k := range 1 + rng.IntN(4) {
					ns = append(ns, t0.Add(at+time.Duration(k)*time.Second).UnixNano())
				}
				b = append(b, stages.Change{Op: stages.OpMatches, Filter: f, Key: key, Times: ns})
			case r < 65:
				b = append(b, clearKey(f, key...))
			case r < 82:
				b = append(b, pending(f, []string{"unban", "notify"}[rng.IntN(2)], at, due, key...))
			case r < 97:
				b = append(b, done(f, []string{"unban", "notify"}[rng.IntN(2)], due, key...))
			default:
				b = append(b, drop(f))
			}
		}
		batches = append(batches, b)
		commitT(t, s, b...)
		if round%5 == 4 {
			s.Close()
			s = openT(t, dir, opts)
			if r := s.Recovered(); len(r) != 0 {
				t.Fatalf("round %d: repair of a clean database: %q", round, r)
			}
		}
		same(t, fmt.Sprintf("round %d", round), loadT(t, s), reference(t, batches...))
		for _, n := range checkInvariants(t, s) {
			most = max(most, n)
		}
	}
	t.Logf("at most %d groups in a filter", most)
	if opts.groupBytes > 0 && most < 8 {
		t.Fatalf("at most %d groups in a filter: the test should split groups", most)
	}
	spans := 0 // transactions that continue in the next segment
	for _, si := range segmentsT(t, dir) {
		if n := len(si.records); n > 0 && !si.records[n-1].committed {
			spans++
		}
	}
	if spans == 0 {
		t.Fatal("no transaction spans two segments: the test should cover it")
	}
}

// checkInvariants checks the records against what the store knows: every
// key is in the group that its hash addresses, the filters' counts are
// those of their groups, the store's table is what the filter records say,
// and its log what a replay of the log records gives. It returns the
// number of groups of each filter.
func checkInvariants(t testing.TB, s *Store) map[stages.FilterRef]int {
	t.Helper()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	got := map[uint32]*counts{}
	groups := map[stages.FilterRef]int{}
	err := s.db.View(func(tx *nutsdb.Tx) error {
		keys, values, err := tx.GetAll(bucketState)
		if err != nil {
			return err
		}
		for i, key := range keys {
			k, err := parseKey(key)
			if err != nil {
				return fmt.Errorf("record %q: %v", key, err)
			}
			switch k.kind {
			case kindFilter:
				got[k.id] = &counts{}
				continue
			case kindLog:
				continue
			}
			f := s.table.byID[k.id]
			if f == nil {
				return fmt.Errorf("group %q of no filter", key)
			}
			if uint64(k.group) >= f.groups() {
				return fmt.Errorf("group %d of %s beyond its %d groups", k.group, f.ref.Name, f.groups())
			}
			g, err := decodeMapGroup(values[i])
			if err != nil {
				return err
			}
			if len(g.entries) == 0 {
				return fmt.Errorf("empty group %d of %s", k.group, f.ref.Name)
			}
			if enc := g.encode(); !bytes.Equal(enc, values[i]) {
				return fmt.Errorf("group %d of %s is not in canonical form", k.group, f.ref.Name)
			}
			groups[f.ref]++
			for key, e := range g.entries {
				if e.empty() {
					return fmt.Errorf("empty entry %q in group %d of %s", key, k.group, f.ref.Name)
				}
				if a := f.group(hashKey(key)); a != k.group {
					return fmt.Errorf("key %q of %s in group %d, addressed to %d", key, f.ref.Name, k.group, a)
				}
				*got[k.id] = got[k.id].add(entryCounts(key, e))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	table, wal, err := s.read(s.db)
	if err != nil {
		t.Fatal(err)
	}
	for ref, f := range s.table.byRef {
		if d := table.byRef[ref]; d == nil || *d != *f {
			t.Fatalf("filter %s: the store has %+v, its record %+v", ref.Name, f, d)
		}
		if *got[f.id] != f.counts {
			t.Fatalf("filter %s: counts %+v, its groups have %+v", f.ref.Name, f.counts, *got[f.id])
		}
		if f.keys == 0 && len(s.wal.dirty[f.id]) == 0 {
			t.Fatalf("filter %s has a record and no keys", f.ref.Name)
		}
	}
	if len(table.byRef) != len(s.table.byRef) || len(table.byID) != len(s.table.byID) {
		t.Fatalf("%d filter records, the store knows %d", len(table.byRef), len(s.table.byRef))
	}
	if s.table.next < table.next {
		t.Fatalf("next id %d, but id %d is in use", s.table.next, table.next-1)
	}
	if w, r := describeWAL(s.wal), describeWAL(wal); w != r {
		t.Fatalf("the log in memory:\n%s\nthe log replayed:\n%s", w, r)
	}
	if s.wal.bytes > 0 && s.wal.records[0].refs == 0 {
		t.Fatalf("the oldest log record is not needed")
	}
	return groups
}

// describeWAL prints what w waits for.
func describeWAL(w *wal) string {
	var b strings.Builder
	size := 0
	for _, r := range w.records {
		fmt.Fprintf(&b, "record %d: %d bytes, %d groups wait\n", r.seq, r.size, r.refs)
		size += r.size
	}
	fmt.Fprintf(&b, "%d bytes\n", size)
	for _, id := range slices.Sorted(maps.Keys(w.dirty)) {
		for _, n := range slices.Sorted(maps.Keys(w.dirty[id])) {
			fmt.Fprintf(&b, "group %d.%d:", id, n)
			for _, op := range w.dirty[id][n].ops {
				fmt.Fprintf(&b, " %d:%x", op.rec.seq, op.enc())
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// TestMatchFloodIsOnePut checks that the matches of one key in one batch
// are one change: one log record, or, when the commit folds it at once,
// its group's record (with, in both cases, the filter's record when the
// filter is new or its counts changed).
func TestMatchFloodIsOnePut(t *testing.T) {
	for _, tc := range []struct {
		name     string
		logBytes int
		records  [2]int // written by the first commit, by the second
	}{
		{"log", 0, [2]int{2, 1}},
		{"folded", 1, [2]int{2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{logBytes: tc.logBytes})
			flood := make([]stages.Change, 10000)
			for i := range flood {
				flood[i] = match(ssh, time.Duration(i)*time.Millisecond, "6.6.6.6")
			}
			for round, want := range tc.records {
				before := countRecords(t, dir)
				commitT(t, s, flood...)
				if n := countRecords(t, dir) - before; n != want {
					t.Fatalf("round %d: 10000 matches of one key wrote %d records, want %d", round, n, want)
				}
			}
			st, err := s.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n := len(st.Filters[0].Matches[0].Times); n != 20000 {
				t.Fatalf("loaded %d times, want 20000", n)
			}
		})
	}
}

// countRecords counts the intact records of every segment.
func countRecords(t testing.TB, dir string) int {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, seg := range segs {
		data, err := os.ReadFile(filepath.Join(dir, seg.name))
		if err != nil {
			t.Fatal(err)
		}
		if _, damage := walkSegment(data, func(recordInfo) { n++ }); damage != "" {
			t.Fatalf("%s: %s", seg.name, damage)
		}
	}
	return n
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	commitT(t, s, match(ssh, 0, "1.2.3.4"))
	_, err := Open(dir, Options{Logger: quiet()})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, lockName, fmt.Sprint(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if got := loadT(t, s); !strings.Contains(got, "1.2.3.4") {
		t.Fatalf("the first store must be untouched:\n%s", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, dir, Options{})
	if got := loadT(t, s2); !strings.Contains(got, "1.2.3.4") {
		t.Fatalf("reopened:\n%s", got)
	}
}

func TestClosed(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Commit([]stages.Change{match(ssh, 0, "x")}); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	if _, err := s.Load(context.Background()); err == nil {
		t.Fatal("Load after Close succeeded")
	}
}

func TestLoadCancelled(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	commitT(t, s, match(ssh, 0, "x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
}

func TestCodecTimes(t *testing.T) {
	for _, tm := range []time.Time{{}, t0, time.Unix(0, 0), time.Unix(-5, 3), t0.Add(1)} {
		if got := decodeTime(appendTime(nil, tm)); !got.Equal(tm) {
			t.Errorf("time %v came back as %v", tm, got)
		}
	}
	a, b := appendTime(nil, time.Unix(-1, 0)), appendTime(nil, time.Unix(1, 0))
	if bytes.Compare(a, b) >= 0 || bytes.Compare(appendTime(nil, time.Time{}), a) >= 0 {
		t.Error("encoded times do not sort as times")
	}
}

// TestUnknownSchemaSkipped checks that a record of another schema version is
// skipped, with a warning, and the rest loads.
func TestUnknownSchemaSkipped(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	s := openT(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	commitT(t, s, match(ssh, 0, "1.2.3.4"))
	if err := s.db.Update(func(tx *nutsdb.Tx) error {
		return tx.Put(bucketState, []byte("v9\x00future"), []byte("?"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	same(t, "with a v9 record", loadT(t, s), reference(t, []stages.Change{match(ssh, 0, "1.2.3.4")}))
	if !strings.Contains(logs.String(), "skipped") {
		t.Fatalf("no warning in %q", logs.String())
	}
}

// TestOldSchemaDropped opens a database of the v1 layout (one record per key
// in buckets "matches" and "pending"): its records are dropped, with a
// warning that counts them, once.
func TestOldSchemaDropped(t *testing.T) {
	dir := t.TempDir()
	db, err := nutsdb.Open((&Store{dir: dir, opts: Options{SegmentSize: DefaultSegmentSize}}).nutsOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *nutsdb.Tx) error {
		for _, b := range oldBuckets {
			if err := tx.NewBucket(nutsdb.DataStructureBTree, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.Update(func(tx *nutsdb.Tx) error {
			for i, k := range []string{"v1\x00a", "v1\x00b", "v1\x00c"} {
				if err := tx.Put(oldBuckets[i%2], []byte(k), make([]byte, 8), nutsdb.Persistent); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		var logs syncBuffer
		s := openT(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		warned := strings.Contains(logs.String(), "older schema were dropped") && strings.Contains(logs.String(), "records=3")
		if warned != (round == 0) {
			t.Fatalf("round %d: logs %q", round, logs.String())
		}
		same(t, "after dropping the old schema", loadT(t, s), "")
		for _, b := range oldBuckets {
			s.db.View(func(tx *nutsdb.Tx) error {
				if tx.ExistBucket(nutsdb.DataStructureBTree, b) {
					t.Errorf("round %d: bucket %s is still there", round, b)
				}
				return nil
			})
		}
		commitT(t, s, match(ssh, 0, "1.2.3.4"))
		same(t, "new records", loadT(t, s), reference(t, []stages.Change{match(ssh, 0, "1.2.3.4")}))
		commitT(t, s, clearKey(ssh, "1.2.3.4"))
		s.Close()
	}
}

// TestLargeBatchFolded commits batches whose log record would not fit in a
// segment: they are folded at once, and a batch after them in the log
// still replays right.
func TestLargeBatchFolded(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10}
	s := openT(t, dir, opts)
	small := []stages.Change{match(nginx, 0, "10.9.9.9"), pending(ssh, "unban", 0, time.Hour, "10.8.8.8")}
	var large []stages.Change
	for i := range 5000 {
		large = append(large, match(ssh, time.Duration(i)*time.Millisecond, benchIP(i)), pending(ssh, "unban", 0, time.Hour, benchIP(i)))
	}
	more := []stages.Change{clearKey(ssh, benchIP(7)), match(ssh, time.Hour, benchIP(8))}
	for _, b := range [][]stages.Change{small, large, more} {
		commitT(t, s, b...)
		checkInvariants(t, s)
	}
	if s.wal.bytes > 4<<10 {
		t.Fatalf("the log holds %d bytes after a large batch", s.wal.bytes)
	}
	want := reference(t, small, large, more)
	same(t, "live", loadT(t, s), want)
	s.Close()
	s = openT(t, dir, opts)
	same(t, "reopened", loadT(t, s), want)
	checkInvariants(t, s)
}

// TestSortItems checks Load's sort against slices.SortFunc on items with
// many equal bytes and equal prefixes, with and without its radix sort.
func TestSortItems(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 10, 1023, 1024, 5000} {
		items := make([]sortItem, n)
		for i := range items {
			// Bytes 7, 5 and 0 vary, the rest is the same in every item.
			hi := uint64(0x0a2e_0000_0000_0000) | uint64(rng.IntN(3))<<56 | uint64(rng.IntN(4))<<40 | uint64(rng.IntN(200))
			items[i] = sortItem{hi: hi, lo: uint64(rng.IntN(3)), i: i}
		}
		tie := func(i, j int) int { // an order that is not the items' order
			if c := cmp.Compare(i%7, j%7); c != 0 {
				return c
			}
			return cmp.Compare(i, j)
		}
		want := slices.Clone(items)
		slices.SortFunc(want, func(a, b sortItem) int {
			if c := a.compare(&b); c != 0 {
				return c
			}
			return tie(a.i, b.i)
		})
		got := slices.Clone(items)
		sortItems(got, nil, tie)
		if !slices.Equal(got, want) {
			t.Fatalf("%d items: sorted differently", n)
		}
	}
}

// TestLoadOrderLarge loads enough keys for Load's radix sort, with keys
// whose first 16 bytes are the same, keys of two values, and pending
// actions of equal due times: in the order of stages.MemStore.
func TestLoadOrderLarge(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{logBytes: 64 << 10})
	rng := rand.New(rand.NewPCG(7, 8))
	var batches [][]stages.Change
	for range 6 {
		var b []stages.Change
		for range 1000 {
			i := rng.IntN(3000)
			key := []string{fmt.Sprintf("a-shared-prefix-of-16-bytes-%d", i%500), fmt.Sprint(i % 3)}
			due := time.Duration(rng.IntN(4)) * time.Hour
			switch rng.IntN(3) {
			case 0:
				b = append(b, match(nginx, time.Duration(rng.IntN(100))*time.Second, key...))
			case 1:
				b = append(b, pending(nginx, []string{"a", "b"}[rng.IntN(2)], 0, due, key...))
			default:
				b = append(b, pending(ssh, "unban", 0, due, key[0]))
			}
		}
		batches = append(batches, b)
		commitT(t, s, b...)
	}
	same(t, "live", loadT(t, s), reference(t, batches...))
	s.Close()
	s = openT(t, dir, Options{logBytes: 64 << 10})
	same(t, "reopened", loadT(t, s), reference(t, batches...))
}

// TestLogRecordNotUnderstood replays a log record that does not decode: it
// is skipped with a warning, and deleted in its turn.
func TestLogRecordNotUnderstood(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	b := []stages.Change{match(ssh, 0, "1.2.3.4")}
	commitT(t, s, b...)
	if err := s.db.Update(func(tx *nutsdb.Tx) error {
		return tx.Put(bucketState, logKey(0), []byte("\x05garbage"), nutsdb.Persistent)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var logs syncBuffer
	s = openT(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), logBytes: 1})
	if !strings.Contains(logs.String(), "log records not understood were skipped") {
		t.Fatalf("no warning in %q", logs.String())
	}
	same(t, "with a bad log record", loadT(t, s), reference(t, b))
	more := []stages.Change{match(ssh, time.Second, "1.2.3.4")}
	commitT(t, s, more...) // folds everything: the log empties
	if len(s.wal.records) != 0 {
		t.Fatalf("%d log records left", len(s.wal.records))
	}
	s.Close()
	logs = syncBuffer{}
	s = openT(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if strings.Contains(logs.String(), "not understood") {
		t.Fatalf("warned again: %q", logs.String())
	}
	same(t, "reopened", loadT(t, s), reference(t, b, more))
	checkInvariants(t, s)
}
