package rx

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ipRe is the expansion of an <ip> pattern, as compile produces it.
const ipRe = `(?P<ip>(?:(?:[0-9a-fA-F]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-fA-F]{0,4})|(?:[0-9]{1,3}\.){3}[0-9]{1,3}))`

// Filter regexes of the shapes operators write: sshd, nginx, upstream's
// examples, and a few that exercise the less common operators.
var filterRegexes = []string{
	`authentication failure;.*rhost=` + ipRe,
	`Failed password for .* from ` + ipRe,
	`Invalid user .* from ` + ipRe,
	`banner exchange: Connection from ` + ipRe + ` port [0-9]*: invalid format`,
	`Connection (?:reset|closed) by (?:authenticating|invalid) user (?P<user>\S+) ` + ipRe + ` port \d+`,
	`^` + ipRe + ` \S+ \S+ \[[^\]]*\] "(?:GET|POST|HEAD) /(?:wp-login\.php|xmlrpc\.php)`,
	`^` + ipRe + ` \S+ \S+ \[[^\]]*\] "[A-Z]+ [^"]*(?:\.env|\.git/)`,
	`^` + ipRe + ` .*" 40[01] `,
	`(?m)^.*?user (?P<user>[a-z_][a-z0-9_-]*)$`,
	`\bfrom\b ` + ipRe + `\b`,
	`(?s)begin.*end`,
	`x(?:ab|a)+?y`,
	`(a|ab)(c|bcd)(d*)`,
	`é+.*ü`,
	`[^a]*?b`,
}

var filterLines = []string{
	"Nov 21 13:40:01 host sshd[95323]: Failed password for invalid user admin from 81.247.75.65 port 48760 ssh2",
	"Nov 21 13:40:01 host sshd[95323]: Failed password for root from 2001:db8::17 port 22 ssh2",
	"Nov 21 13:40:01 host sshd[95323]: Failed password for from from from 1.2.3.4 from 5.6.7.8 port 1",
	"Nov 21 13:40:01 host sshd[1]: Failed password for x from 999.1.1.1.1 port 2",
	"Nov 21 13:40:01 host sshd[1]: Failed password for x from ::ffff:10.0.0.1",
	"Nov 21 13:40:01 host sshd[1]: Failed password for x from fe80::1:2:3:4:5:6:7:8:9",
	"Nov 21 13:40:01 host sshd[34645]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=81.247.75.65  user=root",
	"Nov 21 13:40:01 host sshd[1]: Invalid user é\xff\xfe from 10.1.2.3 port 4",
	"Nov 21 13:40:01 host sshd[1]: banner exchange: Connection from 10.9.8.7 port 5123: invalid format",
	"Nov 21 13:40:01 host sshd[1]: Connection closed by authenticating user root 81.247.75.65 port 48760 [preauth]",
	`203.0.113.9 - - [21/Nov/2026:13:40:01 +0000] "POST /wp-login.php HTTP/1.1" 200 512 "-" "curl"`,
	`203.0.113.9 - bob [21/Nov/2026:13:40:01 +0000] "GET /app/.env HTTP/1.1" 404 0 "-" "x"`,
	`2001:db8::1 - - [21/Nov/2026:13:40:01 +0000] "GET /admin HTTP/1.1" 401 0 "-" "x"`,
	"first line\nuser alice\nuser bob9",
	"begin\nmiddle\nend",
	"xababy xaby",
	"abcd",
	"ééé middle ü",
	"aaab",
	"",
}

func same(t *testing.T, re *regexp.Regexp, p *Program, line []byte) {
	t.Helper()
	want := re.FindSubmatchIndex(line)
	got := p.FindSubmatchIndex(line, nil)
	if !slices.Equal(got, want) {
		t.Fatalf("regex %q on %q:\n got %v\nwant %v", re, line, got, want)
	}
	if gm, wm := p.Match(line), re.Match(line); gm != wm {
		t.Fatalf("regex %q on %q: Match %v, want %v", re, line, gm, wm)
	}
}

func TestFilterRegexesAgree(t *testing.T) {
	for _, src := range filterRegexes {
		re := regexp.MustCompile(src)
		p := Compile(re)
		if !p.Fast() {
			t.Errorf("%q: not run by the fast matcher", src)
		}
		for _, l := range filterLines {
			same(t, re, p, []byte(l))
			// Every cut of the line too: partial addresses, a missing tail.
			for cut := 0; cut < len(l); cut += 7 {
				same(t, re, p, []byte(l[:cut]))
				same(t, re, p, []byte(l[cut:]))
			}
		}
	}
}

func TestUnsupportedFallsBack(t *testing.T) {
	for _, src := range []string{`(?i)failed password`, `(a*)*b`, `(?:a|)+b`, `x(?:y?)*z`} {
		re := regexp.MustCompile(src)
		p := Compile(re)
		if p.Fast() {
			t.Errorf("%q should be left to the standard library", src)
		}
		for _, l := range []string{"FAILED PASSWORD", "aab", "b", "xyyz", "xz"} {
			same(t, re, p, []byte(l))
		}
	}
}

// A hostile line against a regex that backtracks exponentially without a
// bitmap: the budget runs out and the standard library answers.
func TestBudgetBoundsBacktracking(t *testing.T) {
	re := regexp.MustCompile(`^(?:a+a+)+$`)
	p := Compile(re)
	if !p.Fast() {
		t.Fatal("expected the fast matcher")
	}
	line := []byte(strings.Repeat("a", 40) + "b")
	same(t, re, p, line)
	m := machine{p: p, in: line, budget: 1024 + 32*len(line)}
	if m.search() || m.budget >= 0 {
		t.Fatalf("search on the hostile line returned with budget %d left", m.budget)
	}
}

// gen builds random regexes over a small alphabet from the operators rx
// runs, and lines likely to exercise them.
type gen struct{ r *rand.Rand }

var atoms = []string{"a", "b", "ab", "ba", ".", "[ab]", "[^a]", "[0-9]", "\\d", "\\S", "\\s", "é", "(?s:.)", "\\.", ":", " ", "[a-f0-9]", "\\b", "\\B", "^", "$", "(?m:^)", "(?m:$)", "x"}

func (g gen) regex(depth int) string {
	if depth <= 0 || g.r.IntN(3) == 0 {
		return atoms[g.r.IntN(len(atoms))]
	}
	switch g.r.IntN(8) {
	case 0, 1:
		return g.regex(depth-1) + g.regex(depth-1)
	case 2:
		return "(?:" + g.regex(depth-1) + "|" + g.regex(depth-1) + ")"
	case 3:
		return "(" + g.regex(depth-1) + ")"
	case 4:
		ops := []string{"*", "+", "?", "*?", "+?", "??", "{2}", "{1,3}", "{0,2}?", "{2,}", "{0}", "{1}", "{0,}", "{1,}?", "{3,5}", "{2,4}?", "{0,3}"}
		return "(?:" + g.regex(depth-1) + ")" + ops[g.r.IntN(len(ops))]
	case 5:
		return ".*" + g.regex(depth-1)
	case 6:
		return g.regex(depth-1) + ".*?" + g.regex(depth-1)
	}
	return "(?P<v>" + g.regex(depth-1) + ")"
}

var lineBytes = []string{"a", "b", "x", " ", ":", ".", "1", "9", "f", "é", "\n", "\xff", "ab", "ba", "aab"}

func (g gen) line() []byte {
	var b []byte
	for range g.r.IntN(24) {
		b = append(b, lineBytes[g.r.IntN(len(lineBytes))]...)
	}
	return b
}

func TestRandomRegexesAgree(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(7, 11))}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	fast := 0
	for range n {
		src := g.regex(4)
		re, err := regexp.Compile(src)
		if err != nil {
			continue
		}
		p := Compile(re)
		if p.Fast() {
			fast++
		}
		for range 12 {
			same(t, re, p, g.line())
		}
	}
	if fast < n/2 {
		t.Fatalf("only %d of %d random regexes ran on the fast matcher", fast, n)
	}
}

func FuzzAgree(f *testing.F) {
	for i, src := range filterRegexes {
		f.Add(src, filterLines[i%len(filterLines)])
	}
	f.Add(`a.*b(c+)?`, "xaxxbccb")
	f.Fuzz(func(t *testing.T, src, line string) {
		re, err := regexp.Compile(src)
		if err != nil {
			return
		}
		same(t, re, Compile(re), []byte(line))
	})
}

func BenchmarkFilterRegex(b *testing.B) {
	for _, bc := range []struct {
		name string
		re   int
		line int
	}{{"failed-password", 1, 0}, {"auth-failure", 0, 6}, {"nginx-anchored", 6, 11}, {"no-match", 0, 0}} {
		re := regexp.MustCompile(filterRegexes[bc.re])
		line := []byte(filterLines[bc.line])
		b.Run(bc.name+"/stdlib", func(b *testing.B) {
			for b.Loop() {
				re.FindSubmatchIndex(line)
			}
		})
		p := Compile(re)
		b.Run(bc.name+"/rx", func(b *testing.B) {
			dst := make([]int, 0, 16)
			for b.Loop() {
				dst = p.FindSubmatchIndex(line, dst)
			}
		})
	}
}

func ExampleProgram_FindSubmatchIndex() {
	re := regexp.MustCompile(`Failed password for .* from (?P<ip>[0-9.]+)`)
	p := Compile(re)
	line := []byte("sshd[7]: Failed password for root from 192.0.2.7 port 22")
	loc := p.FindSubmatchIndex(line, nil)
	fmt.Println(p.Fast(), string(line[loc[2]:loc[3]]))
	// Output: true 192.0.2.7
}

// TestIPAgrees: the address regex matched by hand (opIP) gives the
// standard library's results, on lines built from address bytes and
// with continuations that refuse the first ends it tries: a digit, a hex
// digit, ':' or '.' right after the address, an anchor, a word boundary.
func TestIPAgrees(t *testing.T) {
	ip := "(?:" + IPSource() + ")"
	var regexes []*regexp.Regexp
	var progs []*Program
	for _, src := range []string{
		`from (` + ip + `)`, `(` + ip + `)`, `(` + ip + `)5`, `(` + ip + `):`, `(` + ip + `)[0-9a-f]`,
		`(` + ip + `)\.`, `^(` + ip + `)$`, `(` + ip + `) port`, `(` + ip + `)\b`, `x(` + ip + `)(:\d+)?$`,
		`(` + ip + `)(?:1|:1)`, `(` + ip + `)[.:][0-9]{2}$`, `(` + ip + `)|z`,
	} {
		re := regexp.MustCompile(src)
		if p := Compile(re); !p.Fast() || !slices.ContainsFunc(p.insts, func(in inst) bool { return in.op == opIP }) {
			t.Fatalf("%s: the address is not matched by opIP", src)
		}
		regexes, progs = append(regexes, re), append(progs, Compile(re))
	}
	r := rand.New(rand.NewPCG(8, 8))
	pieces := []string{"1", "12", "123", "1234", "255", "0", "a", "ff", "beef", "12345", "abcde", ":", ":", "::", ".", ".", "x", " ", "5", "f", "from ", "É"}
	for range 20000 {
		var b []byte
		for range r.IntN(14) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		for k, re := range regexes {
			same(t, re, progs[k], b)
		}
	}
	for _, l := range filterLines {
		for k, re := range regexes {
			same(t, re, progs[k], []byte(l))
		}
	}
}
