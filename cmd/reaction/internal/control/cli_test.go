package control

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in             string
		stream, filter string
		err            string
	}{
		{"", "", "", ""},
		{"ssh", "ssh", "", ""},
		{"ssh.failedlogin", "ssh", "failedlogin", ""},
		{"ssh.", "", "", `-l "ssh.": empty filter name`},
		{".failedlogin", "", "", `-l ".failedlogin": empty stream name`},
		{".", "", "", `-l ".": empty stream name`},
		{"a.b.c", "", "", `-l "a.b.c": expected STREAM or STREAM.FILTER (names cannot contain '.')`},
		{"a..b", "", "", `-l "a..b": expected STREAM or STREAM.FILTER`},
	}
	for _, tt := range tests {
		s, f, err := ParseLimit(tt.in)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("ParseLimit(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || s != tt.stream || f != tt.filter {
			t.Errorf("ParseLimit(%q) = %q, %q, %v", tt.in, s, f, err)
		}
	}
}

func TestParseAssignments(t *testing.T) {
	tests := []struct {
		in   []string
		want map[string]string
		err  string
	}{
		{nil, nil, ""},
		{[]string{"ip=1.2.3.4"}, map[string]string{"ip": "1.2.3.4"}, ""},
		{[]string{"ip=a=b", "user="}, map[string]string{"ip": "a=b", "user": ""}, ""},
		{[]string{"ip"}, nil, `"ip": expected NAME=VALUE`},
		{[]string{"=1.2.3.4"}, nil, `"=1.2.3.4": empty pattern name before '='`},
		{[]string{"ip=1", "ip=2"}, nil, `pattern "ip" given twice`},
	}
	for _, tt := range tests {
		got, err := ParseAssignments(tt.in, "VALUE")
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseAssignments(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseAssignments(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestSelectRequest(t *testing.T) {
	tests := []struct {
		limit string
		args  []string
		want  Request
		err   string
	}{
		{"", nil, Request{Version: 1, Command: CommandShow}, ""},
		{"ssh.login", []string{`ip=1\.2\..*`}, Request{Version: 1, Command: CommandShow, Stream: "ssh", Filter: "login", Patterns: map[string]string{"ip": `1\.2\..*`}}, ""},
		{"ssh", []string{"ip=("}, Request{}, `"ip=(": error parsing regexp: missing closing ): ` + "`(`"},
		{"ssh", []string{"ip"}, Request{}, `"ip": expected NAME=REGEX`},
		{"a.b.c", nil, Request{}, `-l "a.b.c"`},
	}
	for _, tt := range tests {
		got, err := SelectRequest(CommandShow, tt.limit, tt.args)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("SelectRequest(%q, %q) error = %v, want %q", tt.limit, tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SelectRequest(%q, %q) = %+v, %v", tt.limit, tt.args, got, err)
		}
	}
}

func TestTriggerRequest(t *testing.T) {
	tests := []struct {
		limit string
		args  []string
		want  Request
		err   string
	}{
		{"ssh.login", []string{"ip=1.2.3.4"}, Request{Version: 1, Command: CommandTrigger, Stream: "ssh", Filter: "login", Values: map[string]string{"ip": "1.2.3.4"}}, ""},
		{"ssh.login", nil, Request{Version: 1, Command: CommandTrigger, Stream: "ssh", Filter: "login"}, ""},
		{"", []string{"ip=1.2.3.4"}, Request{}, "trigger needs -l STREAM.FILTER"},
		{"ssh", []string{"ip=1.2.3.4"}, Request{}, `-l "ssh": trigger needs STREAM.FILTER, not only a stream`},
		{"ssh.", nil, Request{}, `-l "ssh.": empty filter name`},
		{"ssh.login", []string{"1.2.3.4"}, Request{}, `"1.2.3.4": expected NAME=VALUE`},
		{"ssh.login", []string{"ip=("}, Request{Version: 1, Command: CommandTrigger, Stream: "ssh", Filter: "login", Values: map[string]string{"ip": "("}}, ""},
	}
	for _, tt := range tests {
		got, err := TriggerRequest(tt.limit, tt.args)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("TriggerRequest(%q, %q) error = %v, want %q", tt.limit, tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("TriggerRequest(%q, %q) = %+v, %v", tt.limit, tt.args, got, err)
		}
	}
}

func TestCheckSelector(t *testing.T) {
	filters := []FilterInfo{
		{Stream: "ssh", Filter: "login", Patterns: []string{"ip"}},
		{Stream: "ssh", Filter: "invalid", Patterns: []string{"ip", "user"}},
		{Stream: "web", Filter: "scan", Patterns: []string{"ip"}},
		{Stream: "cron", Filter: "any"},
	}
	sel := func(stream, filter string, patterns ...string) Selector {
		s := Selector{Stream: stream, Filter: filter}
		for _, p := range patterns {
			if s.Patterns == nil {
				s.Patterns = map[string]*regexp.Regexp{}
			}
			s.Patterns[p] = nil
		}
		return s
	}
	tests := []struct {
		sel Selector
		err string
	}{
		{sel("", ""), ""},
		{sel("ssh", ""), ""},
		{sel("ssh", "invalid", "user"), ""},
		{sel("", "", "user"), ""},
		{sel("ssh", "", "user", "ip"), ""},
		{sel("sshh", ""), `unknown stream "sshh" (streams: cron, ssh, web)`},
		{sel("ssh", "logn"), `stream ssh has no filter "logn" (filters: invalid, login)`},
		{sel("ssh", "login", "user"), `unknown pattern "user": not captured by filter ssh.login (patterns: ip)`},
		{sel("web", "", "user"), `unknown pattern "user": not captured by any filter of stream web (patterns: ip)`},
		{sel("", "", "usr"), `unknown pattern "usr": not captured by any filter (patterns: ip, user)`},
		{sel("cron", "any", "ip"), `unknown pattern "ip": not captured by filter cron.any (patterns: none)`},
	}
	for _, tt := range tests {
		err := CheckSelector(tt.sel, filters)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.err {
			t.Errorf("CheckSelector(%+v) = %q, want %q", tt.sel, got, tt.err)
		}
	}
}
