// Package control is the daemon's control socket: the versioned JSON
// protocol spoken over it, the server the daemon runs, the client the CLI
// uses, and the CLI's parsing of selectors and printing of answers.
//
// It does not know the engine nor the configuration: the daemon adapts its
// engine to the Controller interface. It starts no goroutine outside
// Server.Serve and keeps no package-level state.
package control

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Version is the protocol version. A peer speaking another version gets an
// error naming both versions, on either side.
const Version = 1

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/reaction/reaction.sock"

// MaxRequestSize bounds a request; the daemon rejects larger ones.
const MaxRequestSize = 64 << 10

// MaxResponseSize bounds what the client reads: a snapshot of a million
// keys fits with room to spare.
const MaxResponseSize = 1 << 30

// Command is the operation a request asks for.
type Command string

const (
	CommandShow    Command = "show"    // current matches and pending actions
	CommandFlush   Command = "flush"   // forget matches, run pending actions now
	CommandTrigger Command = "trigger" // run a filter's actions for given values
	CommandStats   Command = "stats"   // per-node counters, for `graph --live`
)

// The wire format. One connection carries one request and one response,
// each a single JSON object followed by a newline.
//
// Request:
//
//	{"version":1, "command":"show|flush|trigger|stats",
//	 "stream":"ssh", "filter":"failedlogin",   // optional for show and flush; both required for trigger
//	 "patterns":{"ip":"^1\\.2\\."},            // show, flush: pattern name → RE2 regex the value must match as a whole
//	 "values":{"ip":"1.2.3.4"}}                // trigger: pattern name → value
//
// Response:
//
//	{"version":1, "ok":true,
//	 "error":"unknown stream \"sshh\"",        // only when ok is false
//	 "snapshot":{...},                         // show, flush
//	 "stats":{"counter:ssh.failedlogin":{"matches":12}}} // stats: node ID → counter → value
//
// Snapshot (also the output of `show` and `flush` with --format json or yaml):
//
//	{"filters":[                               // sorted by stream, then filter
//	  {"stream":"ssh", "filter":"failedlogin",
//	   "patterns":["ip"],                       // the key's pattern names, sorted; [] when the filter has none
//	   "matches":[                              // sorted by values
//	     {"values":["1.2.3.4"], "count":2}],    // values[i] is the value of patterns[i]
//	   "pending":[                              // delayed actions not run yet; sorted by due, values, action
//	     {"values":["5.6.7.8"], "action":"unban", "due":"2025-06-01T12:00:00+02:00"}]}]}
//
// Lists are never null. Times are RFC 3339. Fields may be added within a
// version; none is removed or changes meaning.

// Request is what a client sends.
type Request struct {
	Version  int               `json:"version"`
	Command  Command           `json:"command"`
	Stream   string            `json:"stream,omitempty"`
	Filter   string            `json:"filter,omitempty"`
	Patterns map[string]string `json:"patterns,omitempty"`
	Values   map[string]string `json:"values,omitempty"`
}

// Response is what the daemon answers.
type Response struct {
	Version  int                          `json:"version"`
	OK       bool                         `json:"ok"`
	Error    string                       `json:"error,omitempty"`
	Snapshot *Snapshot                    `json:"snapshot,omitempty"`
	Stats    map[string]map[string]uint64 `json:"stats,omitempty"`
}

// Snapshot is the state of the selected filters.
type Snapshot struct {
	Filters []Filter `json:"filters" yaml:"filters"`
}

// Filter is the state of one filter.
type Filter struct {
	Stream   string    `json:"stream" yaml:"stream"`
	Filter   string    `json:"filter" yaml:"filter"`
	Patterns []string  `json:"patterns" yaml:"patterns"`
	Matches  []Match   `json:"matches" yaml:"matches"`
	Pending  []Pending `json:"pending" yaml:"pending"`
}

// Match is a key with matches inside the filter's window.
type Match struct {
	Values []string `json:"values" yaml:"values"`
	Count  int      `json:"count" yaml:"count"`
}

// Pending is a delayed action waiting for its due time.
type Pending struct {
	Values []string  `json:"values" yaml:"values"`
	Action string    `json:"action" yaml:"action"`
	Due    time.Time `json:"due" yaml:"due"`
}

// Triggered is what `trigger` prints with --format json or yaml.
type Triggered struct {
	Stream string            `json:"stream" yaml:"stream"`
	Filter string            `json:"filter" yaml:"filter"`
	Values map[string]string `json:"values" yaml:"values"`
}

// Normalize gives s its documented shape: no nil list, everything sorted.
func (s *Snapshot) Normalize() {
	if s.Filters == nil {
		s.Filters = []Filter{}
	}
	for i := range s.Filters {
		f := &s.Filters[i]
		f.Patterns = nonNil(f.Patterns)
		f.Matches = nonNil(f.Matches)
		f.Pending = nonNil(f.Pending)
		for j := range f.Matches {
			f.Matches[j].Values = nonNil(f.Matches[j].Values)
		}
		for j := range f.Pending {
			f.Pending[j].Values = nonNil(f.Pending[j].Values)
		}
		slices.SortFunc(f.Matches, func(a, b Match) int { return slices.Compare(a.Values, b.Values) })
		slices.SortFunc(f.Pending, func(a, b Pending) int {
			return cmp.Or(a.Due.Compare(b.Due), slices.Compare(a.Values, b.Values), cmp.Compare(a.Action, b.Action))
		})
	}
	slices.SortFunc(s.Filters, func(a, b Filter) int {
		return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Filter, b.Filter))
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Selector is a show or flush request as the Controller gets it: the
// patterns compiled, anchored so that a value must match as a whole.
type Selector struct {
	Stream, Filter string                    // "" = all
	Patterns       map[string]*regexp.Regexp // pattern name → regex its value must match
}

// Selector compiles the request's stream, filter and patterns.
func (r Request) Selector() (Selector, error) {
	if r.Stream == "" && r.Filter != "" {
		return Selector{}, fmt.Errorf("filter %q given without its stream", r.Filter)
	}
	sel := Selector{Stream: r.Stream, Filter: r.Filter}
	if len(r.Patterns) > 0 {
		sel.Patterns = make(map[string]*regexp.Regexp, len(r.Patterns))
	}
	for name, src := range r.Patterns {
		if name == "" {
			return Selector{}, fmt.Errorf("empty pattern name")
		}
		re, err := CompileWhole(src)
		if err != nil {
			return Selector{}, fmt.Errorf("pattern %s: %w", name, err)
		}
		sel.Patterns[name] = re
	}
	return sel, nil
}

// CompileWhole compiles an RE2 regex that must match a value as a whole.
func CompileWhole(src string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(src); err != nil {
		return nil, err // the error names the expression as written
	}
	return regexp.Compile(`^(?:` + src + `)$`)
}

// FilterInfo names a configured filter and the patterns of its keys. The
// daemon passes the list to CheckSelector.
type FilterInfo struct {
	Stream, Filter string
	Patterns       []string
}

// CheckSelector tells whether sel names streams, filters and patterns that
// exist among filters. A pattern must be captured by at least one of the
// selected filters.
func CheckSelector(sel Selector, filters []FilterInfo) error {
	var streams, names []string
	var selected []FilterInfo
	streamFound := false
	for _, f := range filters {
		if !slices.Contains(streams, f.Stream) {
			streams = append(streams, f.Stream)
		}
		if sel.Stream != "" && f.Stream != sel.Stream {
			continue
		}
		streamFound = true
		names = append(names, f.Filter)
		if sel.Filter != "" && f.Filter != sel.Filter {
			continue
		}
		selected = append(selected, f)
	}
	switch {
	case sel.Stream != "" && !streamFound:
		return fmt.Errorf("unknown stream %q (streams: %s)", sel.Stream, list(streams))
	case sel.Filter != "" && len(selected) == 0:
		return fmt.Errorf("stream %s has no filter %q (filters: %s)", sel.Stream, sel.Filter, list(names))
	}
	var patterns []string
	for _, f := range selected {
		for _, p := range f.Patterns {
			if !slices.Contains(patterns, p) {
				patterns = append(patterns, p)
			}
		}
	}
	var unknown []string
	for name := range sel.Patterns {
		if !slices.Contains(patterns, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		where := "any filter"
		if sel.Filter != "" {
			where = "filter " + sel.Stream + "." + sel.Filter
		} else if sel.Stream != "" {
			where = "any filter of stream " + sel.Stream
		}
		return fmt.Errorf("unknown pattern %q: not captured by %s (patterns: %s)", unknown[0], where, list(patterns))
	}
	return nil
}

func list(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	ss = slices.Clone(ss)
	slices.Sort(ss)
	const max = 10
	if len(ss) > max {
		return fmt.Sprintf("%s, ... (%d more)", strings.Join(ss[:max], ", "), len(ss)-max)
	}
	return strings.Join(ss, ", ")
}
