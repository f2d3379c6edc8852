package compile

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string // substring of the error; "" = no error
	}{
		// Go syntax.
		{"90s", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"0s", 0, ""},
		// reaction v2 syntax.
		{"10 secs", 10 * time.Second, ""},
		{"10secs", 10 * time.Second, ""},
		{"1 sec", time.Second, ""},
		{"2 seconds", 2 * time.Second, ""},
		{"1 second", time.Second, ""},
		{"30m", 30 * time.Minute, ""},
		{"30 min", 30 * time.Minute, ""},
		{"30 mins", 30 * time.Minute, ""},
		{"1 minute", time.Minute, ""},
		{"5 minutes", 5 * time.Minute, ""},
		{"2d", 48 * time.Hour, ""},
		{"1 day", 24 * time.Hour, ""},
		{"2 days", 48 * time.Hour, ""},
		{"3 hours", 3 * time.Hour, ""},
		{"1 hour", time.Hour, ""},
		{"6h", 6 * time.Hour, ""},
		{"250 ms", 250 * time.Millisecond, ""},
		{"250 millis", 250 * time.Millisecond, ""},
		{"1 millisecond", time.Millisecond, ""},
		{"250 milliseconds", 250 * time.Millisecond, ""},
		{" 2 Days ", 48 * time.Hour, ""},
		// Refused.
		{"10", 0, "has no unit"},
		{"0", 0, "has no unit"},
		{"1.5", 0, "has no unit"},
		{"", 0, "empty"},
		{"   ", 0, "empty"},
		{"-5m", 0, "negative"},
		{"-5 days", 0, "negative"},
		{"10 parsecs", 0, "invalid duration"},
		{"1.5 days", 0, "invalid duration"},
		{"d", 0, "invalid duration"},
		{"2 d ays", 0, "invalid duration"},
		{"1 week", 0, "invalid duration"},
		{"99999999999999999 days", 0, "too long"},
		{"999999999999999999999 s", 0, "too long"},
	} {
		got, err := parseDuration(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("parseDuration(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("parseDuration(%q) = %v, want %v", tc.in, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseDuration(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"actions", "duplicate", "duplicates", "regex", "retry", "retryperiod", "tests"}
	for _, tc := range []struct{ word, want string }{
		{"retryperoid", "retryperiod"}, // transposition
		{"retryperiode", "retryperiod"},
		{"retry_period", "retryperiod"},
		{"regexp", "regex"},
		{"regexes", "regex"},
		{"retr", "retry"},
		{"action", "actions"},
		{"Actions", "actions"},
		{"duplicat", "duplicate"},
		{"test", "tests"},
		{"zzz", ""},
		{"cmd", ""},
		{"ab", ""},
	} {
		if got := suggest(tc.word, keys); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := suggest("iip", []string{"ip", "port"}); got != "ip" {
		t.Errorf("suggest(iip) = %q", got)
	}
	if got := suggest("x", []string{"ip"}); got != "" {
		t.Errorf("suggest(x) = %q, want nothing: one letter is no evidence", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"abc", "abc", 0},
		{"ab", "ba", 1}, {"retryperoid", "retryperiod", 1}, {"kitten", "sitting", 3},
		{"été", "ete", 2},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRegexRefs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"from <ip> port <port>", []string{"ip", "port"}},
		{"<ip>", []string{"ip"}},
		{"<a-b_c9>", []string{"a-b_c9"}},
		{`\<ip> and <ip>`, []string{"ip"}},          // escaped: literal
		{`\\<ip>`, []string{"ip"}},                  // an escaped backslash, then a reference
		{`(?P<user>\w+) from <ip>`, []string{"ip"}}, // the regex's own named group
		{`(?<user>\w+) from <ip>`, []string{"ip"}},
		{`\(?<ip>`, []string{"ip"}}, // an optional literal paren, then a reference
		{"<9ip> <> < ip> <ip", nil},
		{"<<ip>>", []string{"ip"}},
		{"a <b.c> d", nil},
	} {
		var got []string
		for _, r := range regexRefs(tc.in) {
			if tc.in[r.start:r.end] != "<"+r.name+">" {
				t.Errorf("%q: ref %+v does not cover <%s>", tc.in, r, r.name)
			}
			got = append(got, r.name)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("regexRefs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExpandRegex(t *testing.T) {
	regexOf := func(name string) string {
		return map[string]string{"ip": `[0-9.]+`, "user": `\w+`, "a-b": `x`, "a_b": `y`}[name]
	}
	for _, tc := range []struct {
		src      string
		line     string
		want     []string // captured text of each ref
		expanded string   // "" = do not check
	}{
		{"from <ip> user <user>", "from 1.2.3.4 user bob", []string{"1.2.3.4", "bob"}, `from (?P<ip>(?:[0-9.]+)) user (?P<user>(?:\w+))`},
		// The regex has its own group named like a pattern: generated names.
		{`(?P<ip>\d+) from <ip>`, "42 from 1.2.3.4", []string{"1.2.3.4"}, `(?P<ip>\d+) from (?P<__0_1>(?:[0-9.]+))`},
		// Two pattern names that sanitize to the same group name.
		{"<a-b> <a_b>", "x y", []string{"x", "y"}, ""},
		// Groups of the user before the pattern shift the submatch index.
		{`(a)(b)(?:c) <user>`, "abc bob", []string{"bob"}, ""},
	} {
		refs := regexRefs(tc.src)
		expanded, re, groups, err := expandRegex(tc.src, refs, regexOf)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if tc.expanded != "" && expanded != tc.expanded {
			t.Errorf("%q expands to %q, want %q", tc.src, expanded, tc.expanded)
		}
		m := re.FindStringSubmatch(tc.line)
		if m == nil {
			t.Errorf("%q does not match %q", expanded, tc.line)
			continue
		}
		for k, g := range groups {
			if m[g] != tc.want[k] {
				t.Errorf("%q: <%s> captured %q, want %q", tc.src, refs[k].name, m[g], tc.want[k])
			}
		}
	}
}

func TestYAMLSafeJSON(t *testing.T) {
	in := "{\"a\": \"x\\/y \\ud83d\\ude00 \\u00e9 \\\\\\/ \\\"q\\\" \\t\",\n \"b\": \"plain\", \"c\": \"\u0085\ufeff\u2028\"}"
	var want, got map[string]string
	if err := yaml.Unmarshal(yamlSafeJSON([]byte(in)), &got); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"a": "x/y 😀 é \\/ \"q\" \t", "b": "plain", "c": "\u0085\ufeff\u2028"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := strings.Count(string(yamlSafeJSON([]byte(in))), "\n"); n != 1 {
		t.Errorf("lines changed: %d newlines", n)
	}
}

func TestErrorFormat(t *testing.T) {
	errs := &Errors{List: []*Error{
		{File: "b.yml", Line: 3, Path: "streams.s", Msg: "m3"},
		{File: "a.yml", Line: 10, Path: "patterns.ip", Msg: "m2"},
		{File: "a.yml", Line: 2, Path: "streams", Msg: "m1"},
		{File: "a.jsonnet", Path: "streams.s.cmd", Msg: "no line"},
		{File: "a.jsonnet", Line: 4, Column: 7, Msg: "jsonnet: boom"},
		{File: "a.yml", Line: 2, Path: "streams", Msg: "m1"}, // reached twice
	}}
	errs.sort()
	want := strings.Join([]string{
		"a.jsonnet: streams.s.cmd: no line",
		"a.jsonnet:4:7: jsonnet: boom",
		"a.yml:2: streams: m1",
		"a.yml:10: patterns.ip: m2",
		"b.yml:3: streams.s: m3",
	}, "\n")
	if got := errs.Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
