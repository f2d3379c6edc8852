package nutsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
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

// TestDifferential compares random histories with stages.MemStore, with
// groups of the default size and with groups so small that every filter
// splits many times.
func TestDifferential(t *testing.T) {
	for _, tc := range []struct {
		name       string
		groupBytes int
		keys       int
	}{
		{"default groups", 0, 8},
		{"small groups", 64, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			differential(t, Options{SegmentSize: 16 << 10, groupBytes: tc.groupBytes}, tc.keys)
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
			case r < 50:
				b = append(b, match(f, at, key...))
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
// those of their groups, and the store's table is what the filter records
// say. It returns the number of groups of each filter.
func checkInvariants(t testing.TB, s *Store) map[stages.FilterRef]int {
	t.Helper()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	onDisk := newTable()
	got := map[uint32]*counts{}
	groups := map[stages.FilterRef]int{}
	err := s.db.View(func(tx *nutsdb.Tx) error {
		keys, values, err := tx.GetAll(bucketState)
		if err != nil {
			return err
		}
		byID := map[uint32]*filterMeta{}
		for i, key := range keys {
			kind, id, n, err := parseKey(key)
			if err != nil {
				return fmt.Errorf("record %q: %v", key, err)
			}
			if kind == kindFilter {
				f, err := decodeFilterValue(id, values[i])
				if err != nil {
					return err
				}
				onDisk.add(f)
				byID[id] = f
				got[id] = &counts{}
				continue
			}
			f := byID[id]
			if f == nil {
				return fmt.Errorf("group %q of no filter", key)
			}
			if uint64(n) >= f.groups() {
				return fmt.Errorf("group %d of %s beyond its %d groups", n, f.ref.Name, f.groups())
			}
			g := &group{entries: map[string]*entry{}}
			if err := decodeGroup(g, values[i]); err != nil {
				return err
			}
			if len(g.entries) == 0 {
				return fmt.Errorf("empty group %d of %s", n, f.ref.Name)
			}
			if enc := encodeGroup(nil, g); !bytes.Equal(enc, values[i]) {
				return fmt.Errorf("group %d of %s is not in canonical form", n, f.ref.Name)
			}
			groups[f.ref]++
			for k, e := range g.entries {
				if e.empty() {
					return fmt.Errorf("empty entry %q in group %d of %s", k, n, f.ref.Name)
				}
				if a := f.group(hashKey(k)); a != n {
					return fmt.Errorf("key %q of %s in group %d, addressed to %d", k, f.ref.Name, n, a)
				}
				*got[id] = got[id].add(entryCounts(k, e))
			}
		}
		for id, c := range got {
			f := byID[id]
			if *c != f.counts {
				return fmt.Errorf("filter %s: counts %+v, its groups have %+v", f.ref.Name, f.counts, *c)
			}
			if c.keys == 0 {
				return fmt.Errorf("filter %s has a record and no keys", f.ref.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for ref, f := range s.table.byRef {
		if d := onDisk.byRef[ref]; d == nil || *d != *f {
			t.Fatalf("filter %s: the store has %+v, its record %+v", ref.Name, f, d)
		}
	}
	if len(onDisk.byRef) != len(s.table.byRef) {
		t.Fatalf("%d filter records, the store knows %d", len(onDisk.byRef), len(s.table.byRef))
	}
	if s.table.next < onDisk.next {
		t.Fatalf("next id %d, but id %d is in use", s.table.next, onDisk.next-1)
	}
	return groups
}

// TestMatchFloodIsOnePut checks that the matches of one key in one batch
// are written as one record, its group's, with the filter's record (whose
// counts changed).
func TestMatchFloodIsOnePut(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	flood := make([]stages.Change, 10000)
	for i := range flood {
		flood[i] = match(ssh, time.Duration(i)*time.Millisecond, "6.6.6.6")
	}
	for round := range 2 {
		before := countRecords(t, dir)
		commitT(t, s, flood...)
		if n := countRecords(t, dir) - before; n != 2 {
			t.Fatalf("round %d: 10000 matches of one key wrote %d records, want 2 (its group, the filter)", round, n)
		}
	}
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Filters[0].Matches[0].Times); n != 20000 {
		t.Fatalf("loaded %d times, want 20000", n)
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
