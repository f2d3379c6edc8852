package workload

import (
	"bytes"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ipGroup is a permissive IP regex in the spirit of reaction's ip pattern
// type (capture permissively, then validate with net/netip). The IPv4 tail
// of the IPv6 branch comes before the hex group: with the hex group first,
// a regex ending in <ip> captures "::ffff:1" out of "::ffff:1.2.3.4"
// (leftmost-first semantics stop at the first alternative that lets the
// whole regex match).
const ipGroup = `((?:[0-9a-fA-F]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-fA-F]{0,4})|(?:[0-9]{1,3}\.){3}[0-9]{1,3})`

// filterRe is one reference regex with <ip> as ipGroup, and lit, a literal
// every line it matches contains (the longest literal of its top-level
// concatenation), checked first only to keep the test fast under -race.
type filterRe struct {
	re  *regexp.Regexp
	lit []byte
}

func compileSet(t testing.TB, res []string) []filterRe {
	t.Helper()
	var out []filterRe
	for _, s := range res {
		if strings.Count(s, "<ip>") != 1 {
			t.Fatalf("regex %q: want exactly one <ip>", s)
		}
		s = strings.ReplaceAll(s, "<ip>", ipGroup)
		f := filterRe{re: regexp.MustCompile(s)}
		if tree, err := syntax.Parse(s, syntax.Perl); err == nil && tree.Op == syntax.OpConcat {
			for _, sub := range tree.Sub {
				if sub.Op == syntax.OpLiteral && sub.Flags&syntax.FoldCase == 0 && len(string(sub.Rune)) > len(f.lit) {
					f.lit = []byte(string(sub.Rune))
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// scanResult is what running the reference filters over a log finds.
type scanResult struct {
	hits    map[string]int
	matched int               // lines matched by at least one filter
	both    int               // lines matched by more than one filter
	raw     map[string]string // one raw capture per line, for lines whose raw capture differs from the key
}

// match applies one filter (first matching regex decides) to a line and
// returns the raw capture.
func match(set []filterRe, line []byte) (string, bool) {
	for _, f := range set {
		if !bytes.Contains(line, f.lit) {
			continue
		}
		if m := f.re.FindSubmatch(line); m != nil {
			return string(m[1]), true
		}
	}
	return "", false
}

func normalize(t testing.TB, raw string, line []byte) string {
	t.Helper()
	a, err := netip.ParseAddr(raw)
	if err != nil {
		t.Fatalf("captured %q is no address in line %q", raw, line)
	}
	return a.Unmap().String()
}

func scan(t testing.TB, lines [][]byte, filters ...[]filterRe) scanResult {
	t.Helper()
	r := scanResult{hits: map[string]int{}, raw: map[string]string{}}
	for _, l := range lines {
		n := 0
		for _, f := range filters {
			raw, ok := match(f, l)
			if !ok {
				continue
			}
			n++
			key := normalize(t, raw, l)
			r.hits[key]++
			if raw != key {
				r.raw[raw] = key
			}
		}
		if n > 0 {
			r.matched++
		}
		if n > 1 {
			r.both++
		}
	}
	return r
}

func generate(t testing.TB, kind Workload, p Params) ([]byte, *Truth) {
	t.Helper()
	var buf bytes.Buffer
	tr, err := Generate(&buf, kind, p)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tr
}

func filtersFor(t testing.TB, kind Workload) [][]filterRe {
	switch kind {
	case SSHD:
		return [][]filterRe{compileSet(t, SSHDRegexes())}
	case Nginx:
		return [][]filterRe{compileSet(t, NginxRegexes())}
	}
	return [][]filterRe{compileSet(t, SSHDRegexes()), compileSet(t, NginxRegexes())}
}

// A fixture is a generated workload and what the reference regexes find
// in it, computed once and shared by the tests (regexp is slow under -race).
type fixture struct {
	kind  Workload
	p     Params
	out   []byte
	lines [][]byte
	truth *Truth
	scan  scanResult

	once sync.Once
}

var fixtures = map[string]*fixture{
	"sshd-syslog":  {kind: SSHD, p: Params{Lines: 100_000, Seed: 1}},
	"sshd-journal": {kind: SSHD, p: Params{Lines: 100_000, Seed: 2, Style: Journal}},
	"sshd-heavy":   {kind: SSHD, p: Params{Lines: 20_000, Seed: 3, AttackFraction: 0.9, Attackers: 50, IPv6Fraction: 0.5}},
	"nginx":        {kind: Nginx, p: Params{Lines: 50_000, Seed: 4}},
	"mixed":        {kind: Mixed, p: Params{Lines: 40_000, Seed: 5}},
	"no-attacks":   {kind: Mixed, p: Params{Lines: 10_000, Seed: 6, AttackFraction: -1}},
}

func getFixture(t *testing.T, name string) *fixture {
	t.Helper()
	f := fixtures[name]
	f.once.Do(func() {
		f.out, f.truth = generate(t, f.kind, f.p)
		f.lines = splitLines(f.out)
		f.scan = scan(t, f.lines, filtersFor(t, f.kind)...)
	})
	if f.truth == nil {
		t.Fatalf("fixture %s failed", name)
	}
	return f
}

// TestTruthMatchesRegexScan is the proof that Truth is right: running the
// reference regexes over the output finds exactly Truth.Hits.
func TestTruthMatchesRegexScan(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(fixtures)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := getFixture(t, name)
			tr, got := f.truth, f.scan
			if len(f.lines) != f.p.Lines || tr.Lines != f.p.Lines || !bytes.HasSuffix(f.out, []byte("\n")) {
				t.Fatalf("got %d lines, Truth.Lines %d, want %d", len(f.lines), tr.Lines, f.p.Lines)
			}
			af := f.p.AttackFraction
			if af == 0 {
				af = DefaultAttackFraction
			} else if af < 0 {
				af = 0
			}
			if want := int(math.Round(float64(f.p.Lines) * af)); tr.AttackLines != want {
				t.Errorf("AttackLines = %d, want %d", tr.AttackLines, want)
			}
			sum := 0
			for _, n := range tr.Hits {
				sum += n
			}
			if sum != tr.AttackLines {
				t.Errorf("sum of Hits %d != AttackLines %d", sum, tr.AttackLines)
			}
			if got.both != 0 {
				t.Errorf("%d lines matched by both rule sets", got.both)
			}
			if got.matched != tr.AttackLines {
				t.Errorf("regexes match %d lines, Truth.AttackLines = %d", got.matched, tr.AttackLines)
			}
			if !maps.Equal(got.hits, tr.Hits) {
				n := 0
				for k, v := range tr.Hits {
					if got.hits[k] != v && n < 10 {
						t.Errorf("%s: truth %d, regex scan %d", k, v, got.hits[k])
						n++
					}
				}
				for k, v := range got.hits {
					if _, ok := tr.Hits[k]; !ok && n < 20 {
						t.Errorf("%s: regex scan %d, not in truth", k, v)
						n++
					}
				}
				t.Fatalf("Truth.Hits (%d keys) != regex scan (%d keys)", len(tr.Hits), len(got.hits))
			}
			for k := range tr.Hits {
				a, err := netip.ParseAddr(k)
				if err != nil || a.String() != k || a.Is4In6() {
					t.Errorf("Hits key %q is not a canonical address", k)
				}
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	for _, kind := range []Workload{SSHD, Nginx, Mixed} {
		p := Params{Lines: 20_000, Seed: 42}
		a, ta := generate(t, kind, p)
		b, tb := generate(t, kind, p)
		if !bytes.Equal(a, b) || !reflect.DeepEqual(ta, tb) {
			t.Errorf("%s: same seed, different output", kind)
		}
		p.Seed = 43
		c, _ := generate(t, kind, p)
		if bytes.Equal(a, c) {
			t.Errorf("%s: different seeds, same output", kind)
		}
	}
	// The attacker pool does not depend on the number of lines: a prefix
	// of a longer run uses the same addresses.
	_, short := generate(t, SSHD, Params{Lines: 2000, Seed: 7, AttackFraction: 1, Attackers: 500})
	_, long := generate(t, SSHD, Params{Lines: 4000, Seed: 7, AttackFraction: 1, Attackers: 500})
	for k := range short.Hits {
		if _, ok := long.Hits[k]; !ok {
			t.Fatalf("%s attacks in 2000 lines but not in 4000", k)
		}
	}
}

func TestZipfSkew(t *testing.T) {
	t.Parallel()
	tr := getFixture(t, "sshd-syslog").truth
	if len(tr.Hits) != DefaultAttackers {
		t.Errorf("%d distinct attackers, want all %d (25000 attack lines >= 2x pool)", len(tr.Hits), DefaultAttackers)
	}
	counts := slices.Sorted(maps.Values(tr.Hits))
	slices.Reverse(counts)
	top, median := counts[0], counts[len(counts)/2]
	few := 0
	for _, n := range counts {
		if n <= 2 {
			few++
		}
	}
	t.Logf("top 5 %v, median %d, %d of %d attackers with 1-2 hits, Banned(3) %d",
		counts[:5], median, few, len(counts), len(tr.Banned(3)))
	if top < tr.AttackLines/5 {
		t.Errorf("top attacker has %d of %d attack lines, want a heavy hitter (>= 20%%)", top, tr.AttackLines)
	}
	if median > 3 {
		t.Errorf("median attacker has %d hits, want a long tail", median)
	}
	if few < len(counts)/3 {
		t.Errorf("only %d of %d attackers have 1-2 hits", few, len(counts))
	}

	// Fewer attack lines than 2x the pool: half of them are first
	// appearances, the rest Zipf draws, so heavy hitters still exist.
	_, small := generate(t, SSHD, Params{Lines: 1000, Seed: 1})
	if len(small.Hits) < small.AttackLines/2 || len(small.Banned(3)) == 0 {
		t.Errorf("1000 lines: %d attackers for %d attack lines, Banned(3) = %v",
			len(small.Hits), small.AttackLines, small.Banned(3))
	}
}

var decoyLine = regexp.MustCompile(` user (\S*) from (\S+) port 22 from (\S+) port [0-9]+`)

func TestDecoys(t *testing.T) {
	t.Parallel()
	f := getFixture(t, "sshd-syslog")
	out, tr := f.out, f.truth
	set := compileSet(t, SSHDRegexes())
	decoys := map[string]bool{}
	for _, d := range decoyAddrs {
		decoys[normalize(t, d, nil)] = true
	}
	n, real := 0, 0
	for _, l := range f.lines {
		if !bytes.Contains(l, []byte(" port 22 from ")) {
			continue
		}
		m := decoyLine.FindSubmatch(l)
		if m == nil {
			continue
		}
		n++
		decoy, attacker := normalize(t, string(m[2]), l), normalize(t, string(m[3]), l)
		if !decoys[decoy] {
			real++ // an actual attacker's address used as a decoy
		}
		raw, ok := match(set, l)
		if !ok {
			t.Fatalf("decoy line not matched: %q", l)
		}
		if got := normalize(t, raw, l); got != attacker {
			t.Fatalf("regex captured %s, want the last address %s in %q", got, attacker, l)
		}
	}
	t.Logf("%d decoy lines, %d of them with a real attacker's address as the decoy", n, real)
	if n < 50 || real == 0 || real == n {
		t.Fatalf("%d decoy lines (%d with a real attacker's address), want >= 50 of both kinds", n, real)
	}
	for d := range decoys {
		if _, ok := tr.Hits[d]; ok {
			t.Errorf("decoy %s counted in Truth", d)
		}
	}
	// The jump host 10.9.8.7 also logs in for real: present, never counted.
	if !bytes.Contains(out, []byte("Accepted publickey for deploy from 10.9.8.7 ")) {
		t.Error("no benign line from the decoy jump host")
	}
}

func TestAddressForms(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sshd-syslog", "sshd-journal", "nginx"} {
		f := getFixture(t, name)
		kind, tr := name, f.truth
		banned := tr.Banned(3)
		if !slices.IsSorted(banned) {
			t.Errorf("%s: Banned not sorted", kind)
		}
		v6 := 0
		for _, a := range banned {
			if tr.Hits[a] < 3 {
				t.Errorf("%s: %s banned with %d hits", kind, a, tr.Hits[a])
			}
			if netip.MustParseAddr(a).Is6() {
				v6++
			}
		}
		if v6 == 0 {
			t.Errorf("%s: no IPv6 address in Banned(3) (%d banned)", kind, len(banned))
		}
		if n := len(tr.Banned(0)); n != len(tr.Hits) {
			t.Errorf("%s: Banned(0) has %d addresses, Hits %d", kind, n, len(tr.Hits))
		}

		// Attack lines write IPv4-mapped and uncompressed IPv6 forms; the
		// truth has them normalized.
		mapped, expanded := 0, 0
		got := f.scan
		for raw, key := range got.raw {
			a := netip.MustParseAddr(raw)
			switch {
			case strings.HasPrefix(raw, "::ffff:"):
				if !a.Is4In6() || !netip.MustParseAddr(key).Is4() {
					t.Errorf("%s: %s normalized to %s", kind, raw, key)
				}
				mapped++
			case a.Is6():
				expanded++
			}
			if tr.Hits[key] == 0 {
				t.Errorf("%s: %s (written %s) not in Truth", kind, key, raw)
			}
		}
		if mapped < 10 || expanded < 10 {
			t.Errorf("%s: %d mapped and %d expanded IPv6 addresses in attack lines", kind, mapped, expanded)
		}
		t.Logf("%s: %d banned (%d IPv6), %d mapped and %d expanded forms", kind, len(banned), v6, mapped, expanded)
	}
}

func TestAttackerAddressesInBenignLines(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sshd-syslog", "nginx"} {
		f := getFixture(t, name)
		set := filtersFor(t, f.kind)[0]
		n := 0
		for _, l := range f.lines[:20_000] {
			if _, ok := match(set, l); ok {
				continue
			}
			for _, w := range strings.Fields(string(l)) {
				a, err := netip.ParseAddr(strings.TrimRight(w, ":"))
				if err == nil && f.truth.Hits[a.Unmap().String()] > 0 {
					n++
				}
			}
		}
		if n < 500 {
			t.Errorf("%s: only %d attacker addresses in non-matching lines", name, n)
		}
		t.Logf("%s: %d attacker addresses in 20000 lines' non-matching lines", name, n)
	}
}

func TestTimestamps(t *testing.T) {
	start := time.Date(2026, time.March, 1, 23, 59, 59, 0, time.FixedZone("CET", 3600))
	out, _ := generate(t, SSHD, Params{Lines: 200, Seed: 1, Start: start, Style: Journal})
	lines := splitLines(out)
	if !bytes.HasPrefix(lines[0], []byte("2026-03-01T23:59:59+01:00 host ")) {
		t.Errorf("journal line: %q", lines[0])
	}
	if !bytes.HasPrefix(lines[len(lines)-1], []byte("2026-03-02T00:00:0")) {
		t.Errorf("clock did not advance about 10 ms per line: %q", lines[len(lines)-1])
	}
	out, _ = generate(t, SSHD, Params{Lines: 1, Seed: 1, Start: start})
	if !bytes.HasPrefix(out, []byte("Mar  1 23:59:59 host ")) {
		t.Errorf("syslog line: %q", out)
	}
	out, _ = generate(t, Nginx, Params{Lines: 1, Seed: 1, Start: start})
	if !bytes.Contains(out, []byte(" [01/Mar/2026:23:59:59 +0100] \"")) {
		t.Errorf("nginx line: %q", out)
	}
	out, _ = generate(t, SSHD, Params{Lines: 1, Seed: 1})
	if !bytes.HasPrefix(out, []byte("Nov 21 13:40:01 host ")) {
		t.Errorf("default start: %q", out)
	}
}

func TestSampleAndReadFile(t *testing.T) {
	s := Sample(Mixed, 5000, 11)
	if len(s) != 5000 {
		t.Fatalf("Sample: %d lines", len(s))
	}
	if !reflect.DeepEqual(s, Sample(Mixed, 5000, 11)) {
		t.Error("Sample is not deterministic")
	}
	for _, l := range s {
		if len(l) == 0 || bytes.IndexByte(l, '\n') >= 0 || cap(l) != len(l) {
			t.Fatalf("bad sample line %q (cap %d)", l, cap(l))
		}
	}
	out, _ := generate(t, Mixed, Params{Lines: 5000, Seed: 11})
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("ReadFile != Sample (err %v)", err)
	}
	if err := os.WriteFile(path, []byte("a\r\n\nb\nc"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = ReadFile(path)
	if want := [][]byte{[]byte("a"), {}, []byte("b"), []byte("c")}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadFile of a missing file: no error")
	}
	if len(Sample(SSHD, 0, 1)) != 0 {
		t.Error("Sample(0) not empty")
	}
}

func TestParams(t *testing.T) {
	bad := []struct {
		kind Workload
		p    Params
	}{
		{"apache", Params{Lines: 1}},
		{SSHD, Params{Lines: -1}},
		{SSHD, Params{Lines: 1, Attackers: -1}},
		{SSHD, Params{Lines: 1, AttackFraction: 1.5}},
		{SSHD, Params{Lines: 1, IPv6Fraction: math.NaN()}},
		{SSHD, Params{Lines: 1, Style: "rfc5424"}},
	}
	for _, c := range bad {
		var buf bytes.Buffer
		if _, err := Generate(&buf, c.kind, c.p); err == nil || buf.Len() != 0 {
			t.Errorf("%s %+v: err %v, %d bytes written", c.kind, c.p, err, buf.Len())
		}
	}
	_, tr := generate(t, SSHD, Params{Lines: 5000, Seed: 1, IPv6Fraction: -1, Attackers: 10, AttackFraction: 1})
	if tr.AttackLines != 5000 || len(tr.Hits) != 10 {
		t.Errorf("all attack, 10 attackers: %d attack lines, %d attackers", tr.AttackLines, len(tr.Hits))
	}
	for k := range tr.Hits {
		if !netip.MustParseAddr(k).Is4() {
			t.Errorf("IPv6Fraction<0 but %s attacks", k)
		}
	}
	_, tr = generate(t, Nginx, Params{Lines: 5000, Seed: 1, IPv6Fraction: 1, Attackers: 1})
	if len(tr.Hits) != 1 || !netip.MustParseAddr(slices.Collect(maps.Keys(tr.Hits))[0]).Is6() {
		t.Errorf("one IPv6 attacker: %v", tr.Hits)
	}
	out, tr := generate(t, SSHD, Params{})
	if len(out) != 0 || tr.Lines != 0 || len(tr.Hits) != 0 {
		t.Errorf("zero lines: %q %+v", out, tr)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteError(t *testing.T) {
	if _, err := Generate(failWriter{}, SSHD, Params{Lines: 10}); err == nil {
		t.Error("no error from a failing writer")
	}
}

func BenchmarkGenerate(b *testing.B) {
	const lines = 1_000_000
	for _, kind := range []Workload{SSHD, Nginx, Mixed} {
		b.Run(string(kind), func(b *testing.B) {
			var n int64
			for b.Loop() {
				cw := &countWriter{}
				if _, err := Generate(cw, kind, Params{Lines: lines, Seed: 1}); err != nil {
					b.Fatal(err)
				}
				n = cw.n
			}
			b.SetBytes(n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/lines, "ns/line")
		})
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
