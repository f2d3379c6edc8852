// Package graph holds the compiled, immutable pipeline of a reaction
// configuration: nodes of six kinds (source, prefilter, extract, counter,
// scheduler, executor) with their compiled parameters, joined by edges that
// carry a bounded capacity.
//
// The package is pure data: it starts no goroutine, opens no file and reads
// no configuration. It imports only the standard library and its own leaf
// package rx (the regex matcher of the hot path). compile builds a
// Graph, stages runs one, cmd renders one.
package graph

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"reaction/graph/rx"
)

// Kind is the kind of a node. The set is closed.
type Kind string

const (
	KindSource    Kind = "source"
	KindPrefilter Kind = "prefilter"
	KindExtract   Kind = "extract"
	KindCounter   Kind = "counter"
	KindScheduler Kind = "scheduler"
	KindExecutor  Kind = "executor"
)

// kindRank orders kinds along the pipeline; an edge always goes to a higher rank.
var kindRank = map[Kind]int{
	KindSource: 0, KindPrefilter: 1, KindExtract: 2, KindCounter: 3, KindScheduler: 4, KindExecutor: 5,
}

// Default runtime sizes, shown by `reaction graph` and tunable by `reaction bench`.
const (
	DefaultMaxLine     = 64 << 10 // bytes; longer lines are cut and counted
	DefaultBatchSize   = 128      // lines per batch on the source → prefilter edge
	DefaultLineQueue   = 64       // batches buffered between source and prefilter
	DefaultMatchQueue  = 64       // match batches buffered towards each counter shard
	DefaultWorkers     = 2        // goroutines prefiltering and extracting each stream's lines
	DefaultEventQueue  = 1024     // triggers buffered towards the scheduler
	DefaultJobQueue    = 1024     // jobs buffered towards the executor
	DefaultMaxKeys     = 1 << 20  // tracked keys per filter before the oldest is evicted
	DefaultTimeout     = time.Minute
	DefaultBackoffMin  = time.Second
	DefaultBackoffMax  = time.Minute
	DefaultStopTimeout = 10 * time.Second
)

// Graph is a compiled configuration. Nodes are kept in a deterministic
// order (walk order); Edges in the order they were added.
type Graph struct {
	Nodes    []*Node
	Edges    []Edge
	Patterns []*Pattern // every configured pattern, sorted by name
	Settings Settings

	mu   sync.Mutex // guards byID, the lazily built index of Nodes
	byID map[string]*Node
}

// Settings are the daemon-wide values of a configuration.
type Settings struct {
	Start            [][]string    // run in order before streams start
	Stop             [][]string    // run in order at shutdown
	StateDirectory   string        // "" means the working directory
	RotationInterval time.Duration // database compaction period; 0 = never
	Files            []string      // configuration files the graph was compiled from
}

// Edge joins two nodes. Capacity is the number of Unit items the channel
// between them buffers; 0 means the downstream node is called directly in
// the upstream node's goroutine.
type Edge struct {
	From, To string
	Capacity int
	Unit     string
}

// Node is one stage of the pipeline. Exactly one of the kind-specific
// fields is set, the one named by Kind.
type Node struct {
	ID   string
	Kind Kind

	Source    *Source    `json:",omitempty"`
	Prefilter *Prefilter `json:",omitempty"`
	Extract   *Extract   `json:",omitempty"`
	Counter   *Counter   `json:",omitempty"`
	Scheduler *Scheduler `json:",omitempty"`
	Executor  *Executor  `json:",omitempty"`
}

// Source runs one stream's command and reads its stdout and stderr lines.
type Source struct {
	Stream     string
	Cmd        []string
	MaxLine    int
	BatchSize  int
	BackoffMin time.Duration
	BackoffMax time.Duration
}

// Prefilter decides, per line, which filters of a stream may match it,
// from literals every match must contain.
type Prefilter struct {
	Stream  string
	Filters []FilterLiterals // one per filter of the stream, in filter order
	// Workers is how many goroutines take the stream's line batches and
	// run the prefilter and the extracts on them, in parallel (≤ 1: one).
	// Batches are then counted in an order that may differ from the
	// stream's; the counters keep their match times sorted.
	Workers int
}

// FilterLiterals lists, for one filter, the literals a line must contain
// for any of the filter's regexes to match. A line passes when it contains
// at least one of AnyOf. When Always is set no literal could be proven
// required, and every line is passed on.
type FilterLiterals struct {
	Filter string
	Always bool
	AnyOf  []string
	// Regexes holds, for each regex of the filter, the literals one of
	// which every match of that regex contains (nil: none provable, the
	// regex is always tried). AnyOf is their union. The prefilter uses
	// them to try only the regexes whose literal is in the line.
	Regexes [][]string `json:"-"`
}

// Extract applies a filter's regexes and turns captures into a key.
type Extract struct {
	Stream, Filter string
	Regexes        []*Regex
	Patterns       []*Pattern // patterns captured by this filter, sorted by name: the key order
	Tests          []Test
}

// Regex is one of a filter's regexes.
type Regex struct {
	Source   string         // as written in the configuration
	Expanded string         // with every <name> replaced by its pattern's capture group
	Re       *regexp.Regexp `json:"-"`
	Prog     *rx.Program    `json:"-"` // Re for the hot path; nil: Re alone
	Captures []Capture      // the capture group of each pattern in this regex
}

// Capture says which submatch of a Regex holds the value of a pattern.
type Capture struct {
	Pattern int // index into Extract.Patterns
	Group   int // submatch index in Regex.Re
}

// Test is an inline filter test: a line and the values it must capture,
// or NoMatch.
type Test struct {
	Line    string
	Values  map[string]string // pattern name → expected normalized value
	NoMatch bool
}

// Counter counts matches per key in a sliding window.
type Counter struct {
	Stream, Filter string
	Retry          int           // matches needed to trigger; ≤1 triggers on the first
	Period         time.Duration // sliding window; 0 when Retry ≤ 1
	Shards         int
	MaxKeys        int
}

// Duplicates is what a filter does when a key triggers again while its
// delayed actions are pending.
type Duplicates string

const (
	DuplicatesExtend Duplicates = "extend"
	DuplicatesIgnore Duplicates = "ignore"
	DuplicatesRerun  Duplicates = "rerun"
)

// Scheduler runs a filter's actions when a key triggers: immediate ones at
// once, delayed ones at trigger time + After.
type Scheduler struct {
	Stream, Filter string
	Duplicates     Duplicates
	Actions        []*Action // in name order
	Patterns       []*Pattern
}

// Action is one command of a filter.
type Action struct {
	Name     string
	Cmd      []Arg
	After    time.Duration // 0 = immediate
	OnExit   bool
	OneShot  bool
	IPv4Only bool
	IPv6Only bool
}

// Arg is one argv element of an action: literal text and pattern values.
// The expanded argument is the concatenation of its parts.
type Arg []ArgPart

// ArgPart is either literal Text (Pattern < 0) or the value of the
// filter's pattern at index Pattern.
type ArgPart struct {
	Text    string
	Pattern int
}

// Expand returns the argv of an action for the given key values (in
// Scheduler.Patterns order). Values are passed as whole argv elements
// (or parts of them); nothing is ever interpreted by a shell.
func (a *Action) Expand(values []string) []string {
	argv := make([]string, len(a.Cmd))
	for i, arg := range a.Cmd {
		if len(arg) == 1 {
			if arg[0].Pattern < 0 {
				argv[i] = arg[0].Text
			} else {
				argv[i] = values[arg[0].Pattern]
			}
			continue
		}
		var b strings.Builder
		for _, p := range arg {
			if p.Pattern < 0 {
				b.WriteString(p.Text)
			} else {
				b.WriteString(values[p.Pattern])
			}
		}
		argv[i] = b.String()
	}
	return argv
}

// String renders the action's command with <name> placeholders.
func (a *Action) String(patterns []*Pattern) string {
	parts := make([]string, len(a.Cmd))
	for i, arg := range a.Cmd {
		var b strings.Builder
		for _, p := range arg {
			if p.Pattern < 0 {
				b.WriteString(p.Text)
			} else {
				b.WriteString("<" + patterns[p.Pattern].Name + ">")
			}
		}
		parts[i] = b.String()
	}
	return strings.Join(parts, " ")
}

// Executor runs actions' commands.
type Executor struct {
	Concurrency int // > 0; Unlimited when < 0
	Timeout     time.Duration
}

// Node IDs. Stream, filter and action names never contain '.'.
func SourceID(stream string) string            { return "source:" + stream }
func PrefilterID(stream string) string         { return "prefilter:" + stream }
func ExtractID(stream, filter string) string   { return "extract:" + stream + "." + filter }
func CounterID(stream, filter string) string   { return "counter:" + stream + "." + filter }
func SchedulerID(stream, filter string) string { return "scheduler:" + stream + "." + filter }

const ExecutorID = "executor"

// Add appends a node. IDs must be unique; Validate reports duplicates.
func (g *Graph) Add(n *Node) *Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Nodes = append(g.Nodes, n)
	g.byID = nil
	return n
}

// Connect appends an edge.
func (g *Graph) Connect(from, to string, capacity int, unit string) {
	g.Edges = append(g.Edges, Edge{From: from, To: to, Capacity: capacity, Unit: unit})
}

// Node returns the node with the given ID, or nil.
func (g *Graph) Node(id string) *Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byID == nil {
		g.byID = make(map[string]*Node, len(g.Nodes))
		for _, n := range g.Nodes {
			g.byID[n.ID] = n
		}
	}
	return g.byID[id]
}

// Out returns the edges leaving a node, in insertion order.
func (g *Graph) Out(id string) []Edge {
	var out []Edge
	for _, e := range g.Edges {
		if e.From == id {
			out = append(out, e)
		}
	}
	return out
}

// In returns the edges entering a node, in insertion order.
func (g *Graph) In(id string) []Edge {
	var in []Edge
	for _, e := range g.Edges {
		if e.To == id {
			in = append(in, e)
		}
	}
	return in
}

// Of returns the nodes of a kind, in walk order.
func (g *Graph) Of(k Kind) []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		if n.Kind == k {
			out = append(out, n)
		}
	}
	return out
}

// Filter is a convenience view of the three nodes of one filter.
type Filter struct {
	Extract   *Extract
	Counter   *Counter
	Scheduler *Scheduler
}

// Stream is a convenience view of the nodes of one stream.
type Stream struct {
	Source    *Source
	Prefilter *Prefilter
	Filters   []Filter // in Prefilter.Filters order
}

// Streams follows the edges from each source and returns the stream views,
// in walk order. It assumes a validated graph.
func (g *Graph) Streams() []Stream {
	var out []Stream
	for _, src := range g.Of(KindSource) {
		s := Stream{Source: src.Source}
		for _, e := range g.Out(src.ID) {
			if pf := g.Node(e.To); pf != nil && pf.Kind == KindPrefilter {
				s.Prefilter = pf.Prefilter
				for _, fl := range pf.Prefilter.Filters {
					s.Filters = append(s.Filters, Filter{
						Extract:   g.Node(ExtractID(s.Source.Stream, fl.Filter)).Extract,
						Counter:   g.Node(CounterID(s.Source.Stream, fl.Filter)).Counter,
						Scheduler: g.Node(SchedulerID(s.Source.Stream, fl.Filter)).Scheduler,
					})
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// Executor returns the executor node's parameters, or nil.
func (g *Graph) Executor() *Executor {
	if n := g.Node(ExecutorID); n != nil {
		return n.Executor
	}
	return nil
}

// Validate checks the structure: unique IDs, exactly the parameters of
// each node's kind, no dangling edge, edges that go forward along the
// pipeline (which also rules out cycles), and a filter chain complete for
// every stream. It reports every problem found.
func (g *Graph) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		if seen[n.ID] {
			errs = append(errs, fmt.Errorf("node %s: duplicate ID", n.ID))
		}
		seen[n.ID] = true
		if _, ok := kindRank[n.Kind]; !ok {
			errs = append(errs, fmt.Errorf("node %s: unknown kind %q", n.ID, n.Kind))
			continue
		}
		if got := n.paramKinds(); len(got) != 1 || got[0] != n.Kind {
			errs = append(errs, fmt.Errorf("node %s: kind %s but parameters for %v", n.ID, n.Kind, got))
		}
	}
	for _, e := range g.Edges {
		from, to := g.Node(e.From), g.Node(e.To)
		switch {
		case from == nil:
			errs = append(errs, fmt.Errorf("edge %s → %s: no node %s", e.From, e.To, e.From))
		case to == nil:
			errs = append(errs, fmt.Errorf("edge %s → %s: no node %s", e.From, e.To, e.To))
		case kindRank[to.Kind] <= kindRank[from.Kind]:
			errs = append(errs, fmt.Errorf("edge %s → %s: %s may not feed %s", e.From, e.To, from.Kind, to.Kind))
		}
		if e.Capacity < 0 {
			errs = append(errs, fmt.Errorf("edge %s → %s: negative capacity", e.From, e.To))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, n := range g.Nodes {
		if n.Kind != KindExecutor && len(g.Out(n.ID)) == 0 {
			errs = append(errs, fmt.Errorf("node %s: leads nowhere", n.ID))
		}
		if n.Kind != KindSource && len(g.In(n.ID)) == 0 {
			errs = append(errs, fmt.Errorf("node %s: fed by nothing", n.ID))
		}
	}
	for _, n := range g.Of(KindPrefilter) {
		for _, fl := range n.Prefilter.Filters {
			for _, id := range []string{ExtractID(n.Prefilter.Stream, fl.Filter), CounterID(n.Prefilter.Stream, fl.Filter), SchedulerID(n.Prefilter.Stream, fl.Filter)} {
				if g.Node(id) == nil {
					errs = append(errs, fmt.Errorf("node %s: filter %s has no node %s", n.ID, fl.Filter, id))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (n *Node) paramKinds() []Kind {
	var k []Kind
	if n.Source != nil {
		k = append(k, KindSource)
	}
	if n.Prefilter != nil {
		k = append(k, KindPrefilter)
	}
	if n.Extract != nil {
		k = append(k, KindExtract)
	}
	if n.Counter != nil {
		k = append(k, KindCounter)
	}
	if n.Scheduler != nil {
		k = append(k, KindScheduler)
	}
	if n.Executor != nil {
		k = append(k, KindExecutor)
	}
	return k
}

// Walk returns the nodes in a deterministic topological order: by pipeline
// rank, then by insertion order. Rendering and the engine use it, so map
// iteration order never reaches output.
func (g *Graph) Walk() []*Node {
	out := append([]*Node(nil), g.Nodes...)
	sort.SliceStable(out, func(i, j int) bool { return kindRank[out[i].Kind] < kindRank[out[j].Kind] })
	return out
}

// FilterIdentity is what must stay equal for a filter's state (counters,
// pending actions) to be kept across a reload or a restart: the stream and
// filter names, the regexes as written and the patterns they capture.
func (x *Extract) Identity() string {
	var b strings.Builder
	b.WriteString(x.Stream + "." + x.Filter)
	for _, r := range x.Regexes {
		b.WriteString("\x00r:" + r.Source)
	}
	for _, p := range x.Patterns {
		b.WriteString("\x00p:" + p.Name + "=" + p.Regex)
	}
	return b.String()
}
