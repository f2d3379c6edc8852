package graph

import (
	"bytes"
	"encoding/json"
)

// The JSON document is built from these types, never from the graph's own
// structs: the schema (documented in render.go) must not change when a
// compiled type gains a field.

type jsonGraph struct {
	Version  int          `json:"version"`
	Nodes    []jsonNode   `json:"nodes"`
	Edges    []jsonEdge   `json:"edges"`
	Settings jsonSettings `json:"settings"`
}

// jsonNode flattens the parameters of its kind into the node object: at
// most one of the embedded pointers is set, and their field names must
// stay distinct (encoding/json drops a name that two of them share).
type jsonNode struct {
	ID     string `json:"id"`
	Kind   Kind   `json:"kind"`
	Stream string `json:"stream,omitempty"`
	Filter string `json:"filter,omitempty"`
	*jsonSource
	*jsonPrefilter
	*jsonExtract
	*jsonCounter
	*jsonScheduler
	*jsonExecutor
	Counters map[string]uint64 `json:"counters,omitempty"`
}

type jsonSource struct {
	Cmd        []string `json:"cmd"`
	MaxLine    int      `json:"max_line"`
	BatchSize  int      `json:"batch_size"`
	BackoffMin string   `json:"backoff_min"`
	BackoffMax string   `json:"backoff_max"`
}

type jsonPrefilter struct {
	Filters []jsonFilterLiterals `json:"filters"`
	Workers int                  `json:"workers"`
}

type jsonFilterLiterals struct {
	Filter string   `json:"filter"`
	Always bool     `json:"always"`
	AnyOf  []string `json:"any_of"`
}

type jsonExtract struct {
	Regexes  []jsonRegex   `json:"regexes"`
	Patterns []jsonPattern `json:"patterns"`
	Tests    int           `json:"tests"`
}

type jsonRegex struct {
	Source   string        `json:"source"`
	Expanded string        `json:"expanded"`
	Captures []jsonCapture `json:"captures"`
}

type jsonCapture struct {
	Pattern string `json:"pattern"`
	Group   int    `json:"group"`
}

type jsonPattern struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Regex       string   `json:"regex"`
	Ignore      []string `json:"ignore"`
	IgnoreRegex []string `json:"ignoreregex"`
	IgnoreCIDR  []string `json:"ignorecidr"`
	IPv4Mask    int      `json:"ipv4mask"`
	IPv6Mask    int      `json:"ipv6mask"`
}

type jsonCounter struct {
	Retry       int    `json:"retry"`
	RetryPeriod string `json:"retryperiod"`
	Shards      int    `json:"shards"`
	MaxKeys     int    `json:"max_keys"`
}

type jsonScheduler struct {
	Duplicates string       `json:"duplicates"`
	Key        []string     `json:"key"`
	Actions    []jsonAction `json:"actions"`
}

type jsonAction struct {
	Name     string   `json:"name"`
	Cmd      []string `json:"cmd"`
	After    string   `json:"after"`
	OnExit   bool     `json:"onexit"`
	OneShot  bool     `json:"oneshot"`
	IPv4Only bool     `json:"ipv4only"`
	IPv6Only bool     `json:"ipv6only"`
}

type jsonExecutor struct {
	Concurrency int    `json:"concurrency"`
	Timeout     string `json:"timeout"`
}

type jsonEdge struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Capacity int    `json:"capacity"`
	Unit     string `json:"unit"`
}

type jsonSettings struct {
	Start            [][]string `json:"start"`
	Stop             [][]string `json:"stop"`
	StateDirectory   string     `json:"state_directory"`
	RotationInterval string     `json:"state_rotation_interval"`
	Files            []string   `json:"files"`
}

// jsonVersion is the schema version; see render.go.
const jsonVersion = 1

func renderJSON(buf *bytes.Buffer, v *view) error {
	doc := jsonGraph{
		Version:  jsonVersion,
		Nodes:    make([]jsonNode, 0, len(v.nodes)),
		Edges:    make([]jsonEdge, 0, len(v.edges)),
		Settings: jsonSettingsOf(v.g.Settings),
	}
	for _, n := range v.nodes {
		doc.Nodes = append(doc.Nodes, v.jsonNodeOf(n))
	}
	for _, e := range v.edges {
		doc.Edges = append(doc.Edges, jsonEdge{From: e.From, To: e.To, Capacity: e.Capacity, Unit: e.Unit})
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // keep <ip> readable
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func (v *view) jsonNodeOf(n *Node) jsonNode {
	out := jsonNode{ID: n.ID, Kind: n.Kind}
	out.Stream, out.Filter = nodeStream(n)
	switch {
	case n.Source != nil:
		s := n.Source
		out.jsonSource = &jsonSource{
			Cmd:        list(s.Cmd),
			MaxLine:    s.MaxLine,
			BatchSize:  s.BatchSize,
			BackoffMin: s.BackoffMin.String(),
			BackoffMax: s.BackoffMax.String(),
		}
	case n.Prefilter != nil:
		p := &jsonPrefilter{Filters: []jsonFilterLiterals{}, Workers: max(1, n.Prefilter.Workers)}
		for _, fl := range n.Prefilter.Filters {
			p.Filters = append(p.Filters, jsonFilterLiterals{Filter: fl.Filter, Always: fl.Always, AnyOf: list(fl.AnyOf)})
		}
		out.jsonPrefilter = p
	case n.Extract != nil:
		x := n.Extract
		j := &jsonExtract{Regexes: []jsonRegex{}, Patterns: []jsonPattern{}, Tests: len(x.Tests)}
		for _, re := range x.Regexes {
			jr := jsonRegex{Source: re.Source, Expanded: re.Expanded, Captures: []jsonCapture{}}
			for _, c := range re.Captures {
				name := ""
				if c.Pattern >= 0 && c.Pattern < len(x.Patterns) {
					name = x.Patterns[c.Pattern].Name
				}
				jr.Captures = append(jr.Captures, jsonCapture{Pattern: name, Group: c.Group})
			}
			j.Regexes = append(j.Regexes, jr)
		}
		for _, p := range x.Patterns {
			j.Patterns = append(j.Patterns, jsonPattern{
				Name:        p.Name,
				Type:        string(p.Type),
				Regex:       p.Regex,
				Ignore:      list(p.Ignore),
				IgnoreRegex: list(p.IgnoreRegex),
				IgnoreCIDR:  cidrs(p),
				IPv4Mask:    p.IPv4Mask,
				IPv6Mask:    p.IPv6Mask,
			})
		}
		out.jsonExtract = j
	case n.Counter != nil:
		c := n.Counter
		out.jsonCounter = &jsonCounter{Retry: c.Retry, RetryPeriod: c.Period.String(), Shards: c.Shards, MaxKeys: c.MaxKeys}
	case n.Scheduler != nil:
		s := n.Scheduler
		j := &jsonScheduler{Duplicates: string(s.Duplicates), Key: patternNames(s.Patterns), Actions: []jsonAction{}}
		for _, a := range s.Actions {
			j.Actions = append(j.Actions, jsonAction{
				Name:     a.Name,
				Cmd:      cmdTemplate(a.Cmd, s.Patterns),
				After:    a.After.String(),
				OnExit:   a.OnExit,
				OneShot:  a.OneShot,
				IPv4Only: a.IPv4Only,
				IPv6Only: a.IPv6Only,
			})
		}
		out.jsonScheduler = j
	case n.Executor != nil:
		out.jsonExecutor = &jsonExecutor{Concurrency: n.Executor.Concurrency, Timeout: n.Executor.Timeout.String()}
	}
	if m := v.live[n.ID]; len(m) > 0 {
		out.Counters = m // encoding/json sorts map keys
	}
	return out
}

func jsonSettingsOf(s Settings) jsonSettings {
	out := jsonSettings{
		Start:            [][]string{},
		Stop:             [][]string{},
		StateDirectory:   s.StateDirectory,
		RotationInterval: s.RotationInterval.String(),
		Files:            list(s.Files),
	}
	for _, c := range s.Start {
		out.Start = append(out.Start, list(c))
	}
	for _, c := range s.Stop {
		out.Stop = append(out.Stop, list(c))
	}
	return out
}

// list returns a copy of ss that encodes as [] when empty, never null.
func list(ss []string) []string {
	return append([]string{}, ss...)
}
