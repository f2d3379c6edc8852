package compile

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"

	"reaction/compile/literal"
	"reaction/graph"
	"reaction/graph/rx"
)

// builder compiles a merged configSpec into a graph and a normalized
// Config, reporting every error to d.
type builder struct {
	d        *diag
	o        options
	path     string                    // what Load was given, for errors about the whole configuration
	patterns map[string]*graph.Pattern // compiled patterns
	broken   map[string]bool           // defined, but not compilable (already reported)
	names    []string                  // every defined pattern name, sorted, for suggestions
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (b *builder) build(c *configSpec) (*graph.Graph, *Config) {
	g := &graph.Graph{}
	cfg := &Config{
		Patterns: map[string]*Pattern{},
		Start:    []Argv{},
		Stop:     []Argv{},
		Streams:  map[string]*Stream{},
	}
	b.patterns, b.broken = map[string]*graph.Pattern{}, map[string]bool{}
	b.names = sortedKeys(c.patterns)
	for _, name := range b.names {
		p, np := b.pattern(c.patterns[name])
		if p == nil {
			b.broken[name] = true
			continue
		}
		b.patterns[name] = p
		g.Patterns = append(g.Patterns, p)
		cfg.Patterns[name] = np
	}

	b.settings(c, g, cfg)

	if len(c.streams) == 0 && !c.streamsBad {
		b.d.add(loc{file: b.path, path: keyStreams}, "at least one stream is needed")
	}
	for _, name := range sortedKeys(c.streams) {
		b.stream(g, cfg, c.streams[name])
	}
	g.Add(&graph.Node{ID: graph.ExecutorID, Kind: graph.KindExecutor, Executor: &graph.Executor{
		Concurrency: cfg.Concurrency,
		Timeout:     graph.DefaultTimeout,
	}})
	return g, cfg
}

func (b *builder) settings(c *configSpec, g *graph.Graph, cfg *Config) {
	for _, a := range c.start {
		g.Settings.Start = append(g.Settings.Start, a.args)
		cfg.Start = append(cfg.Start, a.args)
	}
	for _, a := range c.stop {
		g.Settings.Stop = append(g.Settings.Stop, a.args)
		cfg.Stop = append(cfg.Stop, a.args)
	}
	switch v := c.concurrency.v; {
	case v == 0:
		cfg.Concurrency = max(b.o.numCPU, 1)
	case v < 0:
		cfg.Concurrency = -1 // unlimited
	default:
		cfg.Concurrency = v
	}
	g.Settings.StateDirectory = c.stateDir.v
	cfg.StateDirectory = c.stateDir.v

	rotation := time.Duration(DefaultRotationInterval)
	if c.rotation.set {
		if c.rotation.v == nil {
			rotation = 0 // null: never
		} else {
			rotation = *c.rotation.v
			if rotation < MinRotationInterval {
				b.d.add(c.rotation.at, "must be at least %v (or null, to never rotate), got %v", time.Duration(MinRotationInterval), rotation)
			}
		}
	}
	g.Settings.RotationInterval = rotation
	if rotation > 0 {
		cfg.StateRotationInterval = durationPtr(rotation)
	}
}

var patternTypes = []string{string(graph.TypeIP), string(graph.TypeIPv4), string(graph.TypeIPv6), string(graph.TypeRegex)}

// pattern compiles one pattern. It returns nil when the pattern is wrong.
func (b *builder) pattern(ps *patternSpec) (*graph.Pattern, *Pattern) {
	if ps.broken {
		return nil, nil
	}
	errs := len(b.d.list)
	path := ps.at.path
	if !validPatternName(ps.name) {
		b.d.add(ps.at, "a pattern name is made of letters, digits, '_' and '-', and starts with a letter or '_': it is written <%s> in regexes", ps.name)
	}
	p := &graph.Pattern{Name: ps.name, Type: graph.TypeRegex}
	if ps.typ.set {
		p.Type = graph.PatternType(ps.typ.v)
		if !contains(patternTypes, ps.typ.v) {
			msg := fmt.Sprintf("unknown type %q: expected regex, ip, ipv4 or ipv6", ps.typ.v)
			if s := suggest(ps.typ.v, patternTypes); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			b.d.add(ps.typ.at, "%s", msg)
			return nil, nil
		}
	} else if ps.typ.bad {
		return nil, nil
	}
	ip := p.Type.IsIP()
	switch {
	case ps.regex.set:
		p.Regex = ps.regex.v
		if p.Regex == "" {
			b.d.add(ps.regex.at, "the regex is empty")
		} else if _, err := syntax.Parse(p.Regex, syntax.Perl); err != nil {
			b.d.add(ps.regex.at, "%s", regexError(err))
		}
	case ps.regex.bad:
	case ip:
		p.Regex = map[graph.PatternType]string{graph.TypeIP: graph.RegexIP, graph.TypeIPv4: graph.RegexIPv4, graph.TypeIPv6: graph.RegexIPv6}[p.Type]
	default:
		b.d.add(ps.at.with(path), "missing %q (or give an address type: %q: ip, ipv4 or ipv6)", keyRegex, keyType)
	}

	for _, m := range []struct {
		key  string
		o    opt[int]
		dst  *int
		bits int
		not  graph.PatternType // the IP type the mask cannot apply to
	}{{keyIPv4Mask, ps.ipv4Mask, &p.IPv4Mask, 32, graph.TypeIPv6}, {keyIPv6Mask, ps.ipv6Mask, &p.IPv6Mask, 128, graph.TypeIPv4}} {
		switch {
		case !m.o.set:
		case !ip || p.Type == m.not:
			b.d.add(m.o.at, "%s applies to patterns of type ip or %s, this one is of type %s", m.key, map[int]string{32: "ipv4", 128: "ipv6"}[m.bits], p.Type)
		case m.o.v < 0 || m.o.v > m.bits:
			b.d.add(m.o.at, "%s must be between 0 and %d, got %d", m.key, m.bits, m.o.v)
		default:
			*m.dst = m.o.v
		}
	}

	for _, c := range ps.ignoreCIDR {
		if !ip {
			b.d.add(c.at, "%s applies to patterns of type ip, ipv4 or ipv6, this one is of type %s", keyIgnoreCIDR, p.Type)
			break
		}
		pfx, err := netip.ParsePrefix(strings.TrimSpace(c.v))
		if err != nil {
			if addr, err2 := netip.ParseAddr(strings.TrimSpace(c.v)); err2 == nil {
				pfx = netip.PrefixFrom(addr, addr.BitLen())
			} else {
				b.d.add(c.at, "%q is not a network in CIDR notation (such as 192.168.0.0/16 or fd00::/8)", c.v)
				continue
			}
		}
		if (p.Type == graph.TypeIPv4 && !pfx.Addr().Is4()) || (p.Type == graph.TypeIPv6 && !pfx.Addr().Is6()) {
			b.d.add(c.at, "%s is not an %s network", pfx, p.Type)
			continue
		}
		p.IgnoreCIDR = append(p.IgnoreCIDR, pfx.Masked())
	}
	for _, r := range ps.ignoreRegex {
		if _, err := regexp.Compile(`^(?:` + r.v + `)$`); err != nil {
			b.d.add(r.at, "%s", regexError(err))
			continue
		}
		p.IgnoreRegex = append(p.IgnoreRegex, r.v)
	}
	if len(b.d.list) > errs {
		return nil, nil
	}
	if err := p.Prepare(); err != nil {
		b.d.add(ps.at, "%s", regexError(err))
		return nil, nil
	}

	// Ignored values are compared with normalized captures, so they are
	// normalized too, as plain values: a mask applies to what is counted,
	// not to what the configuration names.
	plain := *p
	plain.IPv4Mask, plain.IPv6Mask = 0, 0
	for _, v := range ps.ignore {
		n, err := plain.Normalize(v.v)
		if err != nil {
			msg := fmt.Sprintf("%q is not a valid value of <%s>", v.v, p.Name)
			if _, perr := netip.ParsePrefix(v.v); perr == nil && ip {
				msg += fmt.Sprintf(": networks go in %q", keyIgnoreCIDR)
			}
			b.d.add(v.at, "%s", msg)
			continue
		}
		p.Ignore = append(p.Ignore, n)
	}
	if len(b.d.list) > errs {
		return nil, nil
	}
	if err := p.Prepare(); err != nil {
		b.d.add(ps.at, "%s", regexError(err))
		return nil, nil
	}

	np := &Pattern{Type: string(p.Type), Ignore: p.Ignore, IgnoreRegex: p.IgnoreRegex, IPv4Mask: p.IPv4Mask, IPv6Mask: p.IPv6Mask}
	if !ip || ps.regex.set {
		np.Regex = p.Regex
	}
	for _, c := range p.IgnoreCIDR {
		np.IgnoreCIDR = append(np.IgnoreCIDR, c.String())
	}
	return p, np
}

func (b *builder) checkName(at loc, what, name string) {
	switch {
	case name == "":
		b.d.add(at, "a %s name must not be empty", what)
	case strings.Contains(name, "."):
		b.d.add(at, "%s name %q must not contain '.': the command line names filters STREAM.FILTER", what, name)
	}
}

func (b *builder) stream(g *graph.Graph, cfg *Config, ss *streamSpec) {
	if ss.broken {
		return
	}
	b.checkName(ss.at, "stream", ss.name)
	if !ss.cmd.set && !ss.cmd.bad {
		b.d.add(ss.at, "missing %q: the command whose output is read", keyCmd)
	}
	if len(ss.filters) == 0 && !ss.filtersBad {
		b.d.add(ss.at, "at least one filter is needed")
	}
	src := &graph.Source{
		Stream:     ss.name,
		Cmd:        ss.cmd.v.args,
		MaxLine:    graph.DefaultMaxLine,
		BatchSize:  graph.DefaultBatchSize,
		BackoffMin: graph.DefaultBackoffMin,
		BackoffMax: graph.DefaultBackoffMax,
	}
	pf := &graph.Prefilter{Stream: ss.name, Workers: graph.DefaultWorkers}
	ns := &Stream{Cmd: ss.cmd.v.args, Filters: map[string]*Filter{}}
	var nodes []*graph.Node
	for _, name := range sortedKeys(ss.filters) {
		f := b.filter(ss.name, ss.filters[name])
		if f == nil {
			continue
		}
		pf.Filters = append(pf.Filters, f.literals)
		nodes = append(nodes,
			&graph.Node{ID: graph.ExtractID(ss.name, name), Kind: graph.KindExtract, Extract: f.extract},
			&graph.Node{ID: graph.CounterID(ss.name, name), Kind: graph.KindCounter, Counter: f.counter},
			&graph.Node{ID: graph.SchedulerID(ss.name, name), Kind: graph.KindScheduler, Scheduler: f.scheduler},
		)
		ns.Filters[name] = f.cfg
	}
	cfg.Streams[ss.name] = ns

	srcID, pfID := graph.SourceID(ss.name), graph.PrefilterID(ss.name)
	g.Add(&graph.Node{ID: srcID, Kind: graph.KindSource, Source: src})
	g.Add(&graph.Node{ID: pfID, Kind: graph.KindPrefilter, Prefilter: pf})
	for _, n := range nodes {
		g.Add(n)
	}
	g.Connect(srcID, pfID, graph.DefaultLineQueue, "batches of 128 lines")
	for _, fl := range pf.Filters {
		x, c, s := graph.ExtractID(ss.name, fl.Filter), graph.CounterID(ss.name, fl.Filter), graph.SchedulerID(ss.name, fl.Filter)
		g.Connect(pfID, x, 0, "lines (same goroutine)")
		g.Connect(x, c, graph.DefaultMatchQueue, "match batches")
		g.Connect(c, s, graph.DefaultEventQueue, "triggers")
		g.Connect(s, graph.ExecutorID, graph.DefaultJobQueue, "jobs")
	}
}

// builtFilter is what one filter compiles to.
type builtFilter struct {
	extract   *graph.Extract
	counter   *graph.Counter
	scheduler *graph.Scheduler
	literals  graph.FilterLiterals
	cfg       *Filter
}

// filterRegex is one of a filter's regexes while it is being compiled.
type filterRegex struct {
	src    str
	refs   []ref    // references to compiled patterns
	names  []string // their names, sorted
	usable bool     // every reference resolved and the syntax is right
}

func (b *builder) filter(stream string, fs *filterSpec) *builtFilter {
	if fs.broken {
		return nil
	}
	errs := len(b.d.list)
	b.checkName(fs.at, "filter", fs.name)
	if !fs.regex.bad && len(fs.regex.v) == 0 {
		at := fs.at
		if fs.regex.set {
			at = fs.regex.at
		}
		b.d.add(at, "at least one regex is needed")
	}

	x, lits, capturesKnown := b.regexes(stream, fs.name, fs.regex.v)
	pats := x.Patterns
	idx := make(map[string]int, len(pats))
	for i, p := range pats {
		idx[p.Name] = i
	}

	nf := &Filter{Actions: map[string]*Action{}}
	for _, r := range fs.regex.v {
		nf.Regex = append(nf.Regex, r.v)
	}

	counter := &graph.Counter{Stream: stream, Filter: fs.name, Retry: 1, Shards: DefaultShards, MaxKeys: graph.DefaultMaxKeys}
	if fs.retry.set {
		if fs.retry.v < 0 {
			b.d.add(fs.retry.at, "must not be negative (1 or less triggers on the first match), got %d", fs.retry.v)
		}
		counter.Retry = max(fs.retry.v, 1)
	}
	nf.Retry = counter.Retry
	if counter.Retry > 1 {
		switch {
		case !fs.retryPeriod.set:
			if !fs.retryPeriod.bad {
				b.d.add(fs.at, "missing %q: with retry %d, the window in which the %d matches must happen", keyRetryPeriod, counter.Retry, counter.Retry)
			}
		case fs.retryPeriod.v <= 0:
			b.d.add(fs.retryPeriod.at, "must be longer than 0s")
		default:
			counter.Period = fs.retryPeriod.v
			nf.RetryPeriod = durationPtr(counter.Period)
		}
	}

	sched := &graph.Scheduler{Stream: stream, Filter: fs.name, Duplicates: graph.DuplicatesExtend, Patterns: pats}
	if fs.duplicate.set {
		dups := []string{string(graph.DuplicatesExtend), string(graph.DuplicatesIgnore), string(graph.DuplicatesRerun)}
		if contains(dups, fs.duplicate.v) {
			sched.Duplicates = graph.Duplicates(fs.duplicate.v)
		} else {
			msg := fmt.Sprintf("unknown value %q: expected extend, ignore or rerun", fs.duplicate.v)
			if s := suggest(fs.duplicate.v, dups); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			b.d.add(fs.duplicate.at, "%s", msg)
		}
	}
	nf.Duplicate = string(sched.Duplicates)

	if len(fs.actions) == 0 && !fs.actionsBad {
		b.d.add(fs.at, "at least one action is needed")
	}
	hasIP := slices.ContainsFunc(pats, func(p *graph.Pattern) bool { return p.Type.IsIP() })
	for _, name := range sortedKeys(fs.actions) {
		a, na := b.action(fs.actions[name], pats, idx, hasIP, capturesKnown)
		if a != nil {
			sched.Actions = append(sched.Actions, a)
			nf.Actions[name] = na
		}
	}

	var testPaths []string
	if capturesKnown {
		x.Tests, nf.Tests, testPaths = b.tests(fs, pats, idx)
	}
	// Tests run only on a filter that compiled whole: otherwise their
	// failures would only echo the errors already reported.
	if len(b.d.list) == errs && !fs.incomplete {
		for _, e := range runTests(x, testPaths) {
			at := fs.at
			for _, t := range fs.tests {
				if t.at.path == e.Path {
					at = t.at
				}
			}
			e.File, e.Line = at.file, at.line
			b.d.list = append(b.d.list, e)
		}
	}

	return &builtFilter{
		extract:   x,
		counter:   counter,
		scheduler: sched,
		literals:  lits,
		cfg:       nf,
	}
}

// regexes compiles the regexes of a filter: <name>s resolved against the
// configuration's patterns and expanded into capture groups, the captured
// patterns (the same for every regex), and the literals of the
// prefilter. capturesKnown is false when a regex is broken: what the
// filter captures is then a guess, and checks that depend on it are
// skipped.
func (b *builder) regexes(stream, filter string, list []str) (x *graph.Extract, lits graph.FilterLiterals, capturesKnown bool) {
	// Resolve the <name>s of every regex.
	regexes := make([]*filterRegex, len(list))
	for i, r := range list {
		fr := &filterRegex{src: r, usable: true}
		regexes[i] = fr
		seen := map[string]bool{}
		for _, rf := range regexRefs(r.v) {
			switch {
			case b.patterns[rf.name] != nil:
				if seen[rf.name] {
					b.d.add(r.at, "<%s> appears twice: a regex captures a pattern at most once", rf.name)
					fr.usable = false
					continue
				}
				seen[rf.name] = true
				fr.refs = append(fr.refs, rf)
				fr.names = append(fr.names, rf.name)
			case b.broken[rf.name]:
				fr.usable = false
			default:
				msg := fmt.Sprintf("unknown pattern <%s>", rf.name)
				if s := suggest(rf.name, b.names); s != "" {
					msg += fmt.Sprintf(", did you mean <%s>?", s)
				} else if len(b.names) == 0 {
					msg += " (no pattern is defined)"
				}
				b.d.add(r.at, "%s (write \\<%s> to match the text itself)", msg, rf.name)
				fr.usable = false
			}
		}
		sort.Strings(fr.names)
		// Check the syntax of the regex as written (a <name> is literal
		// text there), so that an error quotes the author's text, not the
		// expansion.
		if _, err := syntax.Parse(r.v, syntax.Perl); err != nil {
			b.d.add(r.at, "%s", regexError(err))
			fr.usable = false
		}
	}

	// Every regex captures the same patterns: they make the key.
	var ref *filterRegex
	refIndex := -1
	for i, fr := range regexes {
		if fr.usable {
			ref, refIndex = fr, i
			break
		}
	}
	capturesKnown = len(regexes) > 0 && !slices.ContainsFunc(regexes, func(fr *filterRegex) bool { return !fr.usable })
	var pats []*graph.Pattern
	idx := map[string]int{}
	if ref != nil {
		for i, name := range ref.names {
			pats = append(pats, b.patterns[name])
			idx[name] = i
		}
		for _, fr := range regexes {
			if fr.usable && !slices.Equal(fr.names, ref.names) {
				b.d.add(fr.src.at, "captures %s but regex[%d] captures %s: every regex of a filter must capture the same patterns",
					listNames(fr.names), refIndex, listNames(ref.names))
			}
		}
	}

	x = &graph.Extract{Stream: stream, Filter: filter, Patterns: pats}
	lits = graph.FilterLiterals{Filter: filter}
	anyOf := map[string]bool{}
	for _, fr := range regexes {
		if !fr.usable {
			continue
		}
		expanded, re, groups, err := expandRegex(fr.src.v, fr.refs, func(name string) string { return b.patterns[name].Regex })
		if err != nil {
			b.d.add(fr.src.at, "%s", regexError(err))
			continue
		}
		gr := &graph.Regex{Source: fr.src.v, Expanded: expanded, Re: re, Prog: rx.Compile(re)}
		for k, rf := range fr.refs {
			if i, ok := idx[rf.name]; ok {
				gr.Captures = append(gr.Captures, graph.Capture{Pattern: i, Group: groups[k]})
			}
		}
		slices.SortFunc(gr.Captures, func(a, b graph.Capture) int { return cmp.Compare(a.Pattern, b.Pattern) })
		x.Regexes = append(x.Regexes, gr)

		parsed, err := syntax.Parse(expanded, syntax.Perl)
		if err != nil {
			lits.Always = true
			lits.Regexes = append(lits.Regexes, nil)
			continue
		}
		req, ok := literal.Required(parsed.Simplify())
		if !ok {
			lits.Always = true
			lits.Regexes = append(lits.Regexes, nil)
			continue
		}
		lits.Regexes = append(lits.Regexes, req)
		for _, l := range req {
			anyOf[l] = true
		}
	}
	if !lits.Always {
		lits.AnyOf = sortedKeys(anyOf)
	}
	return x, lits, capturesKnown
}

func listNames(names []string) string {
	if len(names) == 0 {
		return "no pattern"
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "<" + n + ">"
	}
	return strings.Join(out, ", ")
}

func (b *builder) action(as *actionSpec, pats []*graph.Pattern, idx map[string]int, hasIP, capturesKnown bool) (*graph.Action, *Action) {
	if as.broken {
		return nil, nil
	}
	b.checkName(as.at, "action", as.name)
	a := &graph.Action{Name: as.name}
	na := &Action{}
	if !as.cmd.set && !as.cmd.bad {
		b.d.add(as.at, "missing %q: the command to run", keyCmd)
	}
	captured := make([]string, len(pats))
	for i, p := range pats {
		captured[i] = p.Name
	}
	for i, s := range as.cmd.v.args {
		var arg graph.Arg
		last := 0
		text := func(t string) {
			if t == "" {
				return
			}
			if n := len(arg); n > 0 && arg[n-1].Pattern < 0 {
				arg[n-1].Text += t
				return
			}
			arg = append(arg, graph.ArgPart{Text: t, Pattern: -1})
		}
		defined := func(name string) bool { return b.patterns[name] != nil || b.broken[name] }
		for _, rf := range argRefs(s, defined) {
			k, ok := idx[rf.name]
			if !ok {
				if !b.broken[rf.name] && capturesKnown {
					b.d.add(as.cmd.at.with(index(as.cmd.at.path, i)), "<%s> is not captured by this filter's regexes (they capture %s)", rf.name, listNames(captured))
				}
				continue
			}
			text(s[last:rf.start])
			arg = append(arg, graph.ArgPart{Pattern: k})
			last = rf.end
		}
		text(s[last:])
		if len(arg) == 0 {
			arg = graph.Arg{{Text: "", Pattern: -1}}
		}
		a.Cmd = append(a.Cmd, arg)
	}
	na.Cmd = as.cmd.v.args

	if as.after.set && as.after.v > 0 {
		a.After = as.after.v
		na.After = durationPtr(a.After)
	}
	a.OnExit, a.OneShot = as.onExit.v, as.oneShot.v
	a.IPv4Only, a.IPv6Only = as.ipv4Only.v, as.ipv6Only.v
	na.OnExit, na.OneShot, na.IPv4Only, na.IPv6Only = a.OnExit, a.OneShot, a.IPv4Only, a.IPv6Only
	if a.OnExit && a.After == 0 {
		b.d.add(as.onExit.at, "onexit applies to delayed actions: give %q too", keyAfter)
	}
	if a.IPv4Only && a.IPv6Only {
		b.d.add(as.ipv6Only.at, "%s and %s together would never run", keyIPv4Only, keyIPv6Only)
	}
	for _, o := range []struct {
		key string
		o   opt[bool]
	}{{keyIPv4Only, as.ipv4Only}, {keyIPv6Only, as.ipv6Only}} {
		if o.o.v && !hasIP && capturesKnown {
			b.d.add(o.o.at, "%s needs the filter to capture a pattern of type ip, ipv4 or ipv6 (it captures %s)", o.key, listNames(captured))
		}
	}
	return a, na
}

// tests compiles a filter's inline tests. It returns them with their
// normalized form and the config path of each.
func (b *builder) tests(fs *filterSpec, pats []*graph.Pattern, idx map[string]int) ([]graph.Test, []FilterTest, []string) {
	var tests []graph.Test
	var norm []FilterTest
	var paths []string
	names := make([]string, len(pats))
	for i, p := range pats {
		names[i] = p.Name
	}
	for _, t := range fs.tests {
		given := 0
		for _, set := range []bool{t.match.set, t.noMatch.v, t.ignored.v} {
			if set {
				given++
			}
		}
		if given > 1 {
			b.d.add(t.at, "give only one of %q, %q and %q", keyMatch, keyNoMatch, keyIgnored)
			continue
		}
		gt := graph.Test{Line: t.line.v}
		nt := FilterTest{Line: t.line.v}
		switch {
		case t.noMatch.v:
			gt.NoMatch, nt.NoMatch = true, true
		case t.ignored.v:
			if len(pats) == 0 {
				b.d.add(t.ignored.at, "this filter captures no pattern, so no value can be ignored")
				continue
			}
			nt.Ignored = true // encoded as a test that expects no value; see RunTests
		default:
			if len(pats) > 0 && !t.match.set {
				b.d.add(t.at, "say what the line must give: %q with the value of %s, %q: true or %q: true", keyMatch, listNames(names), keyNoMatch, keyIgnored)
				continue
			}
			values := map[string]string{}
			for _, key := range sortedKeys(t.match.v) {
				v := t.match.v[key]
				i, ok := idx[key]
				if !ok {
					msg := fmt.Sprintf("this filter does not capture <%s> (it captures %s)", key, listNames(names))
					if s := suggest(key, names); s != "" {
						msg += fmt.Sprintf("; did you mean %q?", s)
					}
					b.d.add(v.at, "%s", msg)
					continue
				}
				n, err := normalizeExpected(pats[i], v.v)
				if err != nil {
					b.d.add(v.at, "%q is not a valid value of <%s>", v.v, key)
					continue
				}
				values[key] = n
			}
			for _, name := range names {
				if _, ok := t.match.v[name]; !ok {
					b.d.add(t.match.at, "missing the value of <%s>", name)
				}
			}
			if len(pats) > 0 {
				gt.Values, nt.Match = values, values
			}
		}
		tests = append(tests, gt)
		norm = append(norm, nt)
		paths = append(paths, t.at.path)
	}
	return tests, norm, paths
}

// normalizeExpected normalizes a value a test expects. With a mask, the
// expected value may be written as the address or as its network.
func normalizeExpected(p *graph.Pattern, v string) (string, error) {
	n, err := p.Normalize(v)
	if err == nil || !p.Type.IsIP() {
		return n, err
	}
	pfx, perr := netip.ParsePrefix(v)
	if perr != nil {
		return "", err
	}
	if want, merr := p.Normalize(pfx.Addr().String()); merr == nil && want == pfx.String() {
		return want, nil
	}
	return "", err
}
