package control

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

var (
	now  = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	snap = Snapshot{Filters: []Filter{
		{Stream: "ssh", Filter: "login", Patterns: []string{"ip"},
			Matches: []Match{{Values: []string{"1.2.3.4"}, Count: 2}, {Values: []string{"evil \x1b[2J"}, Count: 1}},
			Pending: []Pending{{Values: []string{"5.6.7.8"}, Action: "unban", Due: now.Add(47*time.Hour + 59*time.Minute + 30*time.Second)}}},
		{Stream: "web", Filter: "scan", Patterns: []string{"ip", "path"},
			Pending: []Pending{{Values: []string{"::1", "/wp-login.php"}, Action: "unban", Due: now.Add(12 * time.Second)}}},
		{Stream: "cron", Filter: "any", Patterns: []string{}, Matches: []Match{{Values: []string{}, Count: 7}}},
	}}
)

func normalized() Snapshot {
	s := Snapshot{Filters: append([]Filter(nil), snap.Filters...)}
	s.Normalize()
	return s
}

func TestWriteShowText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteShow(&b, normalized(), FormatText, now); err != nil {
		t.Fatal(err)
	}
	want := `MATCHES
FILTER      KEY                    COUNT
cron.any    -                      7
ssh.login   ip=1.2.3.4             2
ssh.login   ip="evil \x1b[2J"      1

PENDING ACTIONS
FILTER      KEY                    ACTION  DUE
ssh.login   ip=5.6.7.8             unban   2025-06-03 11:59:30 UTC (in 47h59m)
web.scan    ip=::1 path=/wp-login.php  unban   2025-06-01 12:00:12 UTC (in 12s)
`
	// tabwriter aligns each section on its own; compare line by line without trailing blanks.
	if got := b.String(); squash(got) != squash(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Error("a control character reached the terminal")
	}
}

// squash collapses runs of spaces, so that the test pins content and
// order, not column widths.
func squash(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " \\n ")), " ")
}

func TestWriteShowAligned(t *testing.T) {
	var b bytes.Buffer
	WriteShow(&b, normalized(), FormatText, now)
	t.Logf("\n%s", b.String())
	lines := strings.Split(b.String(), "\n")
	// The KEY column starts at the same offset in every line of a section.
	col := strings.Index(lines[1], "KEY")
	for _, l := range lines[2:5] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("misaligned line %q (KEY at %d)", l, col)
		}
	}
}

func TestWriteEmpty(t *testing.T) {
	var b bytes.Buffer
	WriteShow(&b, Snapshot{Filters: []Filter{{Stream: "s", Filter: "f"}}}, FormatText, now)
	WriteFlush(&b, Snapshot{}, FormatText, now)
	if got := b.String(); got != "no matches and no pending actions\nnothing to flush\n" {
		t.Errorf("got %q", got)
	}
}

func TestWriteFlushText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFlush(&b, normalized(), FormatText, now); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{"flushed 5 keys, ran 2 pending actions now\n", "FORGOTTEN MATCHES\n", "ACTIONS RUN NOW\n", "WAS DUE", "2025-06-03 11:59:30 UTC\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "(in ") {
		t.Errorf("flushed actions ran now; their former due time needs no countdown:\n%s", got)
	}
}

// TestJSONShape pins the documented, stable shape of show and flush
// --format json (and of the protocol's snapshot).
func TestJSONShape(t *testing.T) {
	var b bytes.Buffer
	s := Snapshot{Filters: []Filter{
		{Stream: "ssh", Filter: "login", Patterns: []string{"ip"},
			Matches: []Match{{Values: []string{"1.2.3.4"}, Count: 2}},
			Pending: []Pending{{Values: []string{"5.6.7.8"}, Action: "unban", Due: now.Add(time.Hour)}}},
		{Stream: "web", Filter: "scan"},
	}}
	s.Normalize()
	if err := WriteShow(&b, s, FormatJSON, now); err != nil {
		t.Fatal(err)
	}
	want := `{
  "filters": [
    {
      "stream": "ssh",
      "filter": "login",
      "patterns": [
        "ip"
      ],
      "matches": [
        {
          "values": [
            "1.2.3.4"
          ],
          "count": 2
        }
      ],
      "pending": [
        {
          "values": [
            "5.6.7.8"
          ],
          "action": "unban",
          "due": "2025-06-01T13:00:00Z"
        }
      ]
    },
    {
      "stream": "web",
      "filter": "scan",
      "patterns": [],
      "matches": [],
      "pending": []
    }
  ]
}
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestYAML(t *testing.T) {
	var b bytes.Buffer
	s := Snapshot{Filters: []Filter{{Stream: "ssh", Filter: "login", Patterns: []string{"ip"},
		Pending: []Pending{{Values: []string{"5.6.7.8"}, Action: "unban", Due: now}}}}}
	s.Normalize()
	if err := WriteShow(&b, s, FormatYAML, now); err != nil {
		t.Fatal(err)
	}
	want := `filters:
  - stream: ssh
    filter: login
    patterns:
      - ip
    matches: []
    pending:
      - values:
          - 5.6.7.8
        action: unban
        due: 2025-06-01T12:00:00Z
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteTrigger(t *testing.T) {
	tr := Triggered{Stream: "ssh", Filter: "login", Values: map[string]string{"user": "root", "ip": "1.2.3.4"}}
	var b bytes.Buffer
	WriteTrigger(&b, tr, FormatText)
	if got := b.String(); got != "triggered ssh.login ip=1.2.3.4 user=root\n" {
		t.Errorf("text: %q", got)
	}
	b.Reset()
	WriteTrigger(&b, Triggered{Stream: "cron", Filter: "any"}, FormatJSON)
	if got := b.String(); got != "{\n  \"stream\": \"cron\",\n  \"filter\": \"any\",\n  \"values\": {}\n}\n" {
		t.Errorf("json: %q", got)
	}
}

func TestRelative(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "due now"},
		{0, "due now"},
		{100 * time.Millisecond, "in 1s"},
		{12*time.Second + 400*time.Millisecond, "in 12s"},
		{59 * time.Second, "in 59s"},
		{time.Hour, "in 1h"},
		{time.Hour + time.Minute, "in 1h1m"},
		{48*time.Hour + 30*time.Second, "in 48h"},
		{47*time.Hour + 59*time.Minute + 59*time.Second, "in 47h59m"},
		{90 * time.Second, "in 1m"},
	}
	for _, tt := range tests {
		if got := relative(tt.d); got != tt.want {
			t.Errorf("relative(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestVisible(t *testing.T) {
	tests := map[string]string{
		"1.2.3.4":  "1.2.3.4",
		"":         `""`,
		"a b":      `"a b"`,
		"a\tb":     `"a\tb"`,
		"\x1b[31m": `"\x1b[31m"`,
		"\xff":     `"\xff"`,
		"héllo":    "héllo",
	}
	for in, want := range tests {
		if got := visible(in); got != want {
			t.Errorf("visible(%q) = %s, want %s", in, got, want)
		}
	}
}
