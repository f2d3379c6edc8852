package nutsstore

import (
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

// segmentsT lists the segments of dir with their records.
type segmentInfo struct {
	name    string
	size    int64
	records []recordInfo
	end     int64
}

func segmentsT(t testing.TB, dir string) []segmentInfo {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []segmentInfo
	for _, seg := range segs {
		data, err := os.ReadFile(filepath.Join(dir, seg.name))
		if err != nil {
			t.Fatal(err)
		}
		si := segmentInfo{name: seg.name, size: int64(len(data))}
		end, damage := walkSegment(data, func(r recordInfo) { si.records = append(si.records, r) })
		if damage != "" {
			t.Fatalf("%s is already damaged: %s", seg.name, damage)
		}
		si.end = end
		out = append(out, si)
	}
	return out
}

// damagedCopies returns the files kept in damaged-* directories.
func damagedCopies(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	matches, _ := filepath.Glob(filepath.Join(dir, "damaged-*", "*"))
	for _, m := range matches {
		rel, _ := filepath.Rel(dir, m)
		out = append(out, rel)
	}
	return out
}

// nutsdbOpenFails checks that nutsdb alone refuses the damaged directory
// (on a copy: a failed nutsdb.Open leaks its directory lock).
func nutsdbOpenFails(t *testing.T, dir, want string) {
	t.Helper()
	cp := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &Store{dir: cp, opts: Options{SegmentSize: DefaultSegmentSize}}
	db, err := func() (db *nutsdb.DB, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return nutsdb.Open(s.nutsOptions())
	}()
	if err == nil {
		db.Close()
		t.Fatalf("nutsdb opened the damaged directory: the test does not damage it")
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("nutsdb.Open: %v, want %q", err, want)
	}
}

func history(n int, f func(i int) []stages.Change) [][]stages.Change {
	var bs [][]stages.Change
	for i := range n {
		bs = append(bs, f(i))
	}
	return bs
}

// twoBatches: a first batch, then a second of several records (one
// transaction) that the damage hits.
var twoBatches = [][]stages.Change{
	{match(ssh, 0, "1.1.1.1"), pending(ssh, "unban", 0, time.Hour, "2.2.2.2")},
	{match(ssh, time.Second, "3.3.3.3"), match(ssh, time.Second, "4.4.4.4"), pending(nginx, "unban", 0, time.Hour, "5.5.5.5")},
}

func writeBatches(t *testing.T, dir string, opts Options, batches [][]stages.Change) {
	t.Helper()
	s := openT(t, dir, opts)
	for _, b := range batches {
		commitT(t, s, b...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func openRecovered(t *testing.T, dir string, opts Options) (*Store, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := openT(t, dir, opts)
	if len(s.Recovered()) == 0 {
		t.Fatal("Recovered() is empty after damage")
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("no warning logged: %s", logs.String())
	}
	if len(damagedCopies(t, dir)) == 0 {
		t.Fatal("no damaged copy kept")
	}
	t.Logf("recovered: %q", s.Recovered())
	return s, &logs
}

// checkStillWorks commits after a repair and reopens: the repaired segment
// must take new records cleanly.
func checkStillWorks(t *testing.T, dir string, s *Store, opts Options, batches [][]stages.Change) {
	t.Helper()
	more := []stages.Change{match(bare, time.Hour), pending(ssh, "unban", 0, 3*time.Hour, "7.7.7.7")}
	commitT(t, s, more...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Logger = quiet()
	s = openT(t, dir, opts)
	if r := s.Recovered(); len(r) != 0 {
		t.Fatalf("a second repair after the first: %q", r)
	}
	same(t, "after a repair and a commit", loadT(t, s), reference(t, append(batches, more)...))
}

func TestRecoverGarbageAfterLastRecord(t *testing.T) {
	dir := t.TempDir()
	writeBatches(t, dir, Options{}, twoBatches)
	segs := segmentsT(t, dir)
	last := segs[len(segs)-1]
	garbage := make([]byte, 100)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range garbage {
		garbage[i] = byte(1 + rng.IntN(255))
	}
	f, err := os.OpenFile(filepath.Join(dir, last.name), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(garbage, last.end); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s, _ := openRecovered(t, dir, Options{})
	same(t, "after garbage", loadT(t, s), reference(t, twoBatches...))
	if r := s.Recovered()[0]; !strings.Contains(r, "cut 100 bytes") {
		t.Errorf("Recovered()[0] = %q, want it to say 100 bytes were cut", r)
	}
	checkStillWorks(t, dir, s, Options{}, twoBatches)
}

// TestRecoverGarbageAtFileEnd appends to the file itself, past the
// preallocated segment.
func TestRecoverGarbageAtFileEnd(t *testing.T) {
	dir := t.TempDir()
	writeBatches(t, dir, Options{}, twoBatches)
	segs := segmentsT(t, dir)
	f, err := os.OpenFile(filepath.Join(dir, segs[len(segs)-1].name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(strings.Repeat("garbage!", 12)))
	f.Close()

	s, _ := openRecovered(t, dir, Options{})
	same(t, "after garbage at the file end", loadT(t, s), reference(t, twoBatches...))
	checkStillWorks(t, dir, s, Options{}, twoBatches)
}

// TestRecoverTornLastRecord cuts the file in the middle of the last record,
// as a power loss during the last write does: the last transaction is lost
// whole, the ones before are kept.
func TestRecoverTornLastRecord(t *testing.T) {
	dir := t.TempDir()
	writeBatches(t, dir, Options{}, twoBatches)
	segs := segmentsT(t, dir)
	last := segs[len(segs)-1]
	rec := last.records[len(last.records)-1]
	if err := os.Truncate(filepath.Join(dir, last.name), rec.off+rec.size/2); err != nil {
		t.Fatal(err)
	}
	nutsdbOpenFails(t, dir, "crc error")

	s, _ := openRecovered(t, dir, Options{})
	same(t, "after a torn record", loadT(t, s), reference(t, twoBatches[0]))
	copies := damagedCopies(t, dir)
	info, err := os.Stat(filepath.Join(dir, copies[0]))
	if err != nil || info.Size() != rec.off+rec.size/2 {
		t.Fatalf("damaged copy %v: %v, size %d, want the whole damaged file", copies, err, info.Size())
	}
	checkStillWorks(t, dir, s, Options{}, twoBatches[:1])
}

// TestRecoverUnfinishedTransaction leaves the first records of a
// transaction without its last one (the one with the commit mark) at the
// end of the newest segment.
func TestRecoverUnfinishedTransaction(t *testing.T) {
	dir := t.TempDir()
	writeBatches(t, dir, Options{}, twoBatches)
	segs := segmentsT(t, dir)
	last := segs[len(segs)-1]
	rec := last.records[len(last.records)-1]
	if !rec.committed || last.records[len(last.records)-2].committed {
		t.Fatal("expected a transaction of several records at the end")
	}
	// Zero the last record: as if the power went before it was written.
	f, err := os.OpenFile(filepath.Join(dir, last.name), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, rec.size), rec.off)
	f.Close()

	s, _ := openRecovered(t, dir, Options{})
	same(t, "after an unfinished transaction", loadT(t, s), reference(t, twoBatches[0]))
	// Without the cut, nutsdb would drop the first record of this commit.
	checkStillWorks(t, dir, s, Options{}, twoBatches[:1])
}

// TestRecoverTruncatedMiddleSegment truncates a segment that is not the
// newest: its transactions after the cut are lost, every other one is kept.
func TestRecoverTruncatedMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	// Each batch is the only one of its filter: what a transaction writes
	// (the filter's record and its group) is never rewritten by another.
	batches := history(300, func(i int) []stages.Change {
		f := stages.FilterRef{Name: fmt.Sprintf("s.f%d", i), Identity: "r"}
		return []stages.Change{match(f, time.Duration(i)*time.Second, fmt.Sprintf("10.0.%d.%d", i/256, i%256))}
	})
	writeBatches(t, dir, opts, batches)
	segs := segmentsT(t, dir)
	if len(segs) < 4 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	batchOf := map[uint64]int{} // transaction i is batch i
	for _, s := range segs {
		for _, r := range s.records {
			if _, ok := batchOf[r.txID]; !ok {
				batchOf[r.txID] = len(batchOf)
			}
		}
	}
	if len(batchOf) != len(batches) {
		t.Fatalf("%d transactions for %d batches", len(batchOf), len(batches))
	}
	victim := 2
	recs := segs[victim].records
	keep := len(recs) / 2
	cutAt := recs[keep].off + recs[keep].size/3 // in the middle of a record
	if err := os.Truncate(filepath.Join(dir, segs[victim].name), cutAt); err != nil {
		t.Fatal(err)
	}
	// nutsdb alone opens this one (its reader takes the short read for the
	// end of the segment); the repair only makes the cut explicit.

	s, _ := openRecovered(t, dir, opts)
	lost := map[int]bool{}
	for _, r := range recs[keep:] {
		lost[batchOf[r.txID]] = true
	}
	var kept [][]stages.Change
	for i, b := range batches {
		if !lost[i] {
			kept = append(kept, b)
		}
	}
	same(t, "after a truncated middle segment", loadT(t, s), reference(t, kept...))
	if n := len(batches) - len(kept); n == 0 || n >= len(batches)/2 {
		t.Fatalf("lost %d of %d batches", n, len(batches))
	}
	checkStillWorks(t, dir, s, opts, kept)
}

func TestRecoverBucketFile(t *testing.T) {
	dir := t.TempDir()
	writeBatches(t, dir, Options{}, twoBatches)
	f, err := os.OpenFile(filepath.Join(dir, nutsdb.BucketStoreFileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("\x01\x02\x03\x04\x01\x00\x05\x00\x00\x00hello"))
	f.Close()
	nutsdbOpenFails(t, dir, "panic: runtime error: slice bounds out of range")

	s, _ := openRecovered(t, dir, Options{})
	same(t, "after a damaged bucket file", loadT(t, s), reference(t, twoBatches...))
	checkStillWorks(t, dir, s, Options{}, twoBatches)
}

func TestDamagedDirectoriesDoNotCollide(t *testing.T) {
	dir := t.TempDir()
	clock := stages.NewFakeClock(t0)
	for range 2 {
		writeBatches(t, dir, Options{Clock: clock}, twoBatches[:1])
		segs := segmentsT(t, dir)
		last := segs[len(segs)-1]
		f, _ := os.OpenFile(filepath.Join(dir, last.name), os.O_WRONLY, 0)
		f.WriteAt([]byte("junk"), last.end)
		f.Close()
		s := openT(t, dir, Options{Clock: clock})
		s.Close()
	}
	dirs, _ := filepath.Glob(filepath.Join(dir, "damaged-*"))
	if len(dirs) != 2 {
		t.Fatalf("damaged directories: %v, want two", dirs)
	}
	for _, d := range dirs {
		if info, err := os.Stat(d); err != nil || !info.IsDir() || info.Mode().Perm()&fs.ModePerm != 0o700 {
			t.Errorf("%s: %v %v", d, info.Mode(), err)
		}
	}
}
