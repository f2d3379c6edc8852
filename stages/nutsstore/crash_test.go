package nutsstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

const helperEnv = "NUTSSTORE_TEST_HELPER"

// TestHelperProcess is not a test: the tests below run the test binary
// again with it, to crash or to break a real process.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("run by the crash tests only")
	}
	dir := os.Getenv("NUTSSTORE_TEST_DIR")
	var err error
	switch mode {
	case "kill9":
		err = helperKill9(dir)
	case "commitfail":
		err = helperCommitFail(dir)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runHelper(t *testing.T, mode, dir string, env ...string) (stdout string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+mode, "NUTSSTORE_TEST_DIR="+dir)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if errOut.Len() > 0 {
		t.Logf("helper stderr: %s", errOut.String())
	}
	return out.String(), err
}

var crashFilters = []stages.FilterRef{ssh, nginx, bare}

// crashBatch is batch i of the crash history: a mix of every Op.
func crashBatch(i int) []stages.Change {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	n := 1 + rng.IntN(80)
	b := make([]stages.Change, 0, n)
	for range n {
		f := crashFilters[rng.IntN(len(crashFilters))]
		key := []string{fmt.Sprintf("203.0.113.%d", rng.IntN(40))}
		if f == bare {
			key = nil
		}
		at := time.Duration(i)*time.Minute + time.Duration(rng.IntN(60))*time.Second
		due := time.Duration(1+rng.IntN(2)) * time.Hour
		switch r := rng.IntN(100); {
		case r < 55:
			b = append(b, match(f, at, key...))
		case r < 65:
			b = append(b, clearKey(f, key...))
		case r < 85:
			b = append(b, pending(f, "unban", at, due, key...))
		case r < 99:
			b = append(b, done(f, "unban", due, key...))
		default:
			b = append(b, drop(f))
		}
	}
	return b
}

const crashSegment = 16 << 10 // small: transactions span segments

// crashOptions are the options of the crash tests: "log" keeps changes in
// the log, "fold" makes commits fold and split groups too.
func crashOptions(kind string, log *slog.Logger) Options {
	opts := Options{Logger: log, SegmentSize: crashSegment}
	if kind == "fold" {
		opts.groupBytes, opts.logBytes = 64, 2048
	}
	return opts
}

// helperKill9 commits batches [from, from+n), printing "acked i" once
// Commit(i) returned, then starts Commit(from+n) and kills itself after
// the given delay (which only moves the kill: both outcomes are accepted).
func helperKill9(dir string) error {
	from, _ := strconv.Atoi(os.Getenv("NUTSSTORE_TEST_FROM"))
	n, _ := strconv.Atoi(os.Getenv("NUTSSTORE_TEST_N"))
	s, err := Open(dir, crashOptions(os.Getenv("NUTSSTORE_TEST_OPTS"), quiet()))
	if err != nil {
		return err
	}
	for i := from; i < from+n; i++ {
		if err := s.Commit(crashBatch(i)); err != nil {
			return err
		}
		fmt.Printf("acked %d\n", i) // os.Stdout is not buffered
	}
	delay, _ := time.ParseDuration(os.Getenv("NUTSSTORE_TEST_DELAY"))
	go s.Commit(crashBatch(from + n))
	time.Sleep(delay)
	return syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

// TestCrashKill9 kills a process that commits, right after a Commit
// returned and while the next one runs: every acknowledged batch must be
// there, the one in flight whole or not at all.
func TestCrashKill9(t *testing.T) {
	for _, kind := range []string{"log", "fold"} {
		t.Run(kind, func(t *testing.T) { crashKill9(t, kind) })
	}
}

func crashKill9(t *testing.T, kind string) {
	dir := t.TempDir()
	var history [][]stages.Change
	from := 0
	rounds := []struct {
		n     int
		delay string
	}{{25, "0s"}, {1, "200us"}, {40, "1ms"}, {10, "3ms"}, {5, "20ms"}}
	for round, r := range rounds {
		n := r.n
		out, err := runHelper(t, "kill9", dir, "NUTSSTORE_TEST_FROM="+strconv.Itoa(from), "NUTSSTORE_TEST_N="+strconv.Itoa(n), "NUTSSTORE_TEST_DELAY="+r.delay, "NUTSSTORE_TEST_OPTS="+kind)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper: %v, want killed by SIGKILL; stdout:\n%s", round, err, out)
		}
		acked := 0
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if want := fmt.Sprintf("acked %d", from+acked); sc.Text() != want {
				t.Fatalf("round %d: helper said %q, want %q", round, sc.Text(), want)
			}
			acked++
		}
		if acked != n {
			t.Fatalf("round %d: %d batches acknowledged, want %d", round, acked, n)
		}
		for i := from; i < from+n; i++ {
			history = append(history, crashBatch(i))
		}
		s := openT(t, dir, crashOptions(kind, nil))
		got := loadT(t, s)
		inflight := crashBatch(from + n)
		switch got {
		case reference(t, history...):
			t.Logf("round %d: %d batches acknowledged, the one in flight is not there", round, n)
		case reference(t, append(history, inflight)...):
			t.Logf("round %d: %d batches acknowledged, the one in flight is there", round, n)
			history = append(history, inflight)
		default:
			same(t, fmt.Sprintf("round %d after kill -9", round), got, reference(t, history...))
		}
		t.Logf("round %d: recovered %q", round, s.Recovered())
		checkInvariants(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		from += n + 1
	}
	if len(segmentsT(t, dir)) < 2 {
		t.Fatal("the history should span several segments")
	}
}

var (
	failB0 = []stages.Change{match(ssh, 0, "1.1.1.1")}
	failB1 = []stages.Change{match(bare, time.Minute), pending(ssh, "unban", 0, time.Hour, "2.2.2.2")}
)

func failBig() []stages.Change {
	var big []stages.Change
	for i := range 100 {
		big = append(big, pending(nginx, "unban", 0, time.Hour, fmt.Sprintf("192.168.0.%d", i)))
	}
	return big
}

// failOpts make every commit fold what it logs: it writes several records,
// groups and filters.
var failOpts = Options{SegmentSize: 4096, logBytes: 1}

// helperCommitFail makes nutsdb fail in the middle of a commit: it wrote
// the first records when it cannot create the next segment.
func helperCommitFail(dir string) error {
	opts := failOpts
	opts.Logger = quiet()
	s, err := Open(dir, opts)
	if err != nil {
		return err
	}
	if err := s.Commit(failB0); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "1.dat"), 0o700); err != nil {
		return err
	}
	if err := s.Commit(failBig()); err == nil {
		return errors.New("the commit that needs segment 1 succeeded")
	}
	if err := s.Commit(failB1); !errors.Is(err, ErrUnusable) {
		return fmt.Errorf("commit after the failure: %v, want ErrUnusable", err)
	}
	return s.Close()
}

// TestCommitFailureMidTransaction: after a commit that failed half written
// (in a process that then stops), the next start cuts the written half, and
// the next commit is whole. nutsdb alone would keep the half and drop the
// first record of the next transaction.
func TestCommitFailureMidTransaction(t *testing.T) {
	dir := t.TempDir()
	if out, err := runHelper(t, "commitfail", dir); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dir, "1.dat")); err != nil {
		t.Fatal(err)
	}
	nutsdbDropsARecord(t, dir)

	opts := failOpts
	s, _ := openRecovered(t, dir, opts)
	same(t, "after the failed commit", loadT(t, s), reference(t, failB0))
	commitT(t, s, failB1...)
	s.Close()
	s = openT(t, dir, opts)
	same(t, "reopened", loadT(t, s), reference(t, failB0, failB1))
}

// nutsdbDropsARecord shows, on a copy of dir, what nutsdb does alone with
// an unfinished transaction followed by a committed one of two records.
func nutsdbDropsARecord(t *testing.T, dir string) {
	t.Helper()
	cp := t.TempDir()
	for _, name := range []string{"0.dat", nutsdb.BucketStoreFileName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(cp, name), data, 0o600)
	}
	s := &Store{dir: cp, opts: Options{SegmentSize: 4096}}
	open := func() *nutsdb.DB {
		db, err := nutsdb.Open(s.nutsOptions())
		if err != nil {
			t.Fatalf("nutsdb.Open: %v", err)
		}
		return db
	}
	db := open()
	keys := [][]byte{[]byte("k1"), []byte("k2")}
	err := db.Update(func(tx *nutsdb.Tx) error {
		for _, k := range keys {
			if err := tx.Put(bucketState, k, []byte("v"), nutsdb.Persistent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open()
	defer db.Close()
	found := 0
	db.View(func(tx *nutsdb.Tx) error {
		for _, k := range keys {
			if _, err := tx.Get(bucketState, k); err == nil {
				found++
			}
		}
		return nil
	})
	t.Logf("nutsdb alone, after an unfinished transaction: %d of the 2 records of the next committed transaction survive a restart", found)
	if found != 1 {
		t.Fatalf("nutsdb alone kept %d of 2 records; the repair's premise changed", found)
	}
}
