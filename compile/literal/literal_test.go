package literal

import (
	"bytes"
	"hash/fnv"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The built-in IP regexes of graph (not imported: literal depends on
// nothing of ours).
const (
	ipv4 = `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`
	ipv6 = `(?:[0-9a-fA-F]{0,4}:){2,7}(?:[0-9a-fA-F]{0,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})`
	ip   = `(` + ipv6 + `|` + ipv4 + `)`
)

func expand(s string) string { return strings.ReplaceAll(s, "<ip>", ip) }

func parse(t testing.TB, expr string) *syntax.Regexp {
	t.Helper()
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		t.Fatalf("parse %q: %v", expr, err)
	}
	return re.Simplify()
}

func TestLiteralRequired(t *testing.T) {
	tests := []struct {
		expr string
		want []string // nil: nothing provable
	}{
		{`abc`, []string{"abc"}},
		{`Failed password for .* from <ip>`, []string{"Failed password for "}},
		{`authentication failure;.*rhost=<ip>`, []string{"authentication failure;"}},
		{`Invalid user .* from <ip>`, []string{"Invalid user "}},
		{`banner exchange: Connection from <ip> port [0-9]*: invalid format`, []string{"banner exchange: Connection from "}},
		{`Connection (reset|closed) by`, []string{"Connection closed by", "Connection reset by"}},
		{`Connection (reset|closed) by (authenticating|invalid) user .* <ip>`, []string{
			"Connection closed by authenticating user ", "Connection closed by invalid user ",
			"Connection reset by authenticating user ", "Connection reset by invalid user "}},
		{`^<ip> .* "(GET|POST) /(wp-login|xmlrpc)\.php`, []string{
			` "GET /wp-login.php`, ` "GET /xmlrpc.php`, ` "POST /wp-login.php`, ` "POST /xmlrpc.php`}},
		{`<ip>`, []string{".", ":"}},
		{`(?i)foo`, nil},
		{`(?i)foo=123`, []string{"=123"}},
		{`(?i)123`, []string{"123"}},
		{`a*b?`, nil},
		{`.*`, nil},
		{``, nil},
		{`^$`, nil},
		{`a|b*`, nil},
		{`(foo)+bar?`, []string{"foo"}},
		{`x(foo)+y`, []string{"foo"}},
		{`(abc){2,5}`, []string{"abcabc"}},
		{`(abc){0,5}`, nil},
		{`abc|abd`, []string{"ab"}},
		{`hello|world`, []string{"hello", "world"}},
		{`hello|world|.*`, nil},
		{`[a]bc[d]`, []string{"abcd"}},
		{`ab[cd]ef`, []string{"ab"}}, // tie: same length and size, the first one
		{`port (?:\d+)?x`, []string{"port "}},
		{`for (invalid user )?\S+ from`, []string{" from"}},
		{`for (invalid user )?root`, []string{"for invalid user root", "for root"}},
		{"caf\u00e9 \\x{FFFD}", []string{"caf\u00e9 "}},
		{"\\x{FFFD}", nil},
		{`a\bb`, []string{"ab"}},
		{`[^\x00-\x{10FFFF}]`, nil},
		{`(a|b|c|d)(e|f|g|h)(i|j|k|l)(m|n|o|p)`, nil}, // classes, not literals
		{"(?i)caf\u00e9 \\x{FFFD}!", []string{" "}},
		{"ab\\x{FFFD}cde\\x{FFFD}f", []string{"cde"}},
	}
	for _, tt := range tests {
		expr := expand(tt.expr)
		got, ok := Required(parse(t, expr))
		if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("Required(%q) = %q, %v; want %q", tt.expr, got, ok, tt.want)
		}
	}
}

// A cross product that would pass the cap is cut into runs; each run is a
// candidate on its own.
func TestLiteralCap(t *testing.T) {
	got, ok := Required(parse(t, `(aa|bb|cc|dd)(ee|ff|gg|hh)(ii|jj|kk|ll)(mm|nn|oo|pp)`))
	if !ok || len(got) != 64 || got[0] != "aaeeii" {
		t.Errorf("got %d literals %.3q, %v; want the 64 texts of the first three groups", len(got), got, ok)
	}
	// 65 alternatives: no set at all.
	var alts []string
	for i := 0; i < MaxAlternatives+1; i++ {
		alts = append(alts, strings.Repeat("x", i+1)+"y")
	}
	if got, ok := Required(parse(t, "q(?:"+strings.Join(alts, "|")+")")); ok && len(got) > MaxAlternatives {
		t.Errorf("got %d literals", len(got))
	}
}

// corpus is the differential test's regexes: the sshd and nginx filters of
// the examples and shapes that exercise every node kind.
var corpus = []string{
	`authentication failure;.*rhost=<ip>`,
	`Failed password for .* from <ip>`,
	`Failed password for (invalid user )?\S+ from <ip> port \d+ ssh2`,
	`Invalid user .* from <ip>`,
	`banner exchange: Connection from <ip> port [0-9]*: invalid format`,
	`Connection (reset|closed) by (authenticating|invalid) user .* <ip>`,
	`^<ip> .* "(GET|POST) /(wp-login|xmlrpc)\.php`,
	`^<ip> - - \[[^\]]*\] "[A-Z]+ /\.env`,
	`(?i)foo`,
	`(?i)user=ROOT from <ip>`,
	`a*b?`,
	`(ab)+c|d(ef)*`,
	`x{2,4}y`,
	`^(?:a|b)c$`,
	`\bword\b`,
	`(?s)begin.end`,
	`(?m)^line$`,
	`caf\x{e9}|na\x{ef}ve`,
	`\x{FFFD}x`,
	`[\x{FFFD}]y`,
	`.\x{FFFD}`,
	`(?U)a+?b`,
	`(foo|foobar|bar)baz`,
	`a(bc)+d`,
	`x(yz)*w`,
	`p(q|r(st)?)u`,
	`<ip>`,
}

func TestLiteralDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, src := range corpus {
		expr := expand(src)
		tree := parse(t, expr)
		re := regexp.MustCompile(expr)
		anyOf, ok := Required(tree)
		if !ok {
			continue
		}
		matched := 0
		const n = 4000
		for i := 0; i < n; i++ {
			line := generate(rng, tree, 3*rng.IntN(2))
			if rng.IntN(2) == 0 {
				line = mutate(rng, line, anyOf)
			}
			if re.Match(line) {
				matched++
				if !containsAny(line, anyOf) {
					t.Fatalf("%q matches %q but contains none of %q", src, line, anyOf)
				}
			}
		}
		if matched < n/10 {
			t.Errorf("%q: only %d of %d generated lines match; the test proves little", src, matched, n)
		}
	}
}

func containsAny(line []byte, anyOf []string) bool {
	for _, l := range anyOf {
		if bytes.Contains(line, []byte(l)) {
			return true
		}
	}
	return false
}

// generate returns a random text the tree is likely to match (anchors and
// word boundaries are not enforced), surrounded by random noise.
func generate(rng *rand.Rand, tree *syntax.Regexp, noise int) []byte {
	var b []byte
	b = appendNoise(rng, b, noise)
	b = gen(rng, b, tree)
	return appendNoise(rng, b, noise)
}

func gen(rng *rand.Rand, b []byte, re *syntax.Regexp) []byte {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && rng.IntN(2) == 0 {
				r = unicode.SimpleFold(r)
			}
			b = utf8.AppendRune(b, r)
		}
	case syntax.OpCharClass:
		if len(re.Rune) > 0 {
			i := rng.IntN(len(re.Rune)/2) * 2
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo > 300 {
				hi = lo + 300
			}
			r := lo + rune(rng.IntN(int(hi-lo)+1))
			if r == utf8.RuneError && rng.IntN(2) == 0 {
				b = append(b, 0xff) // read as U+FFFD by the regexp package
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b = appendNoise(rng, b, 1)
	case syntax.OpCapture:
		b = gen(rng, b, re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 3
		switch re.Op {
		case syntax.OpPlus:
			lo = 1
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 {
				hi = lo + 3
			}
		}
		for n := lo + rng.IntN(hi-lo+1); n > 0; n-- {
			b = gen(rng, b, re.Sub[0])
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			b = gen(rng, b, s)
		}
	case syntax.OpAlternate:
		b = gen(rng, b, re.Sub[rng.IntN(len(re.Sub))])
	}
	return b
}

var noiseAlphabet = []string{"a", "Z", "0", "9", ".", ":", " ", "-", "\"", "/", "é", "\xff", "\xe2\x82", "\u00ef", "\uFFFD", "\t"}

func appendNoise(rng *rand.Rand, b []byte, max int) []byte {
	for n := rng.IntN(max + 1); n > 0; n-- {
		b = append(b, noiseAlphabet[rng.IntN(len(noiseAlphabet))]...)
	}
	return b
}

// mutate damages a line: byte edits, case flips, or cuts inside a
// required literal, the places where a wrong proof would show.
func mutate(rng *rand.Rand, line []byte, anyOf []string) []byte {
	line = slices.Clone(line)
	for n := 1 + rng.IntN(3); n > 0 && len(line) > 0; n-- {
		i := rng.IntN(len(line))
		switch rng.IntN(5) {
		case 0:
			line = slices.Delete(line, i, i+1)
		case 1:
			line = slices.Insert(line, i, []byte(noiseAlphabet[rng.IntN(len(noiseAlphabet))])...)
		case 2:
			line[i] ^= 0x20 // flips ASCII case
		case 3:
			line[i] = byte(rng.IntN(256))
		case 4:
			l := anyOf[rng.IntN(len(anyOf))]
			if j := bytes.Index(line, []byte(l)); j >= 0 && len(l) > 1 {
				k := j + 1 + rng.IntN(len(l)-1)
				line = slices.Delete(line, k, k+1)
			}
		}
	}
	return line
}

// FuzzPrefilter checks the one property that matters: a line that contains
// none of the required literals is never matched by the regex. For each
// fuzzed (regex, line) pair it checks the line and a text generated from
// the regex's tree (seeded by the line), which the regex usually matches.
func FuzzPrefilter(f *testing.F) {
	for _, src := range corpus {
		f.Add(expand(src), []byte("Failed password for root from 1.2.3.4 port 22 ssh2"))
	}
	f.Add(`(?i)abc\x{FFFD}`, []byte("ABC\xff"))
	f.Add(`a(b|c)d`, []byte("xacdx"))
	f.Fuzz(func(t *testing.T, expr string, line []byte) {
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		anyOf, ok := Required(tree.Simplify())
		if !ok {
			return
		}
		if len(anyOf) > MaxAlternatives {
			t.Fatalf("%q: %d literals", expr, len(anyOf))
		}
		if re.Match(line) && !containsAny(line, anyOf) {
			t.Fatalf("%q matches %q but contains none of %q", expr, line, anyOf)
		}
		h := fnv.New64a()
		h.Write(line)
		rng := rand.New(rand.NewPCG(h.Sum64(), 0))
		gline := generate(rng, tree.Simplify(), 2)
		if re.Match(gline) && !containsAny(gline, anyOf) {
			t.Fatalf("%q matches generated %q but contains none of %q", expr, gline, anyOf)
		}
	})
}
