package graph

import (
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"reaction/graph/rx"
)

// testGraph builds by hand what compile would build for two streams:
//
//	ssh:   one filter (failedlogin) capturing <ip>, four actions
//	nginx: two filters, login capturing <ip> and <user>, scan capturing <ip>
//
// with all six kinds, compiled regexes and prepared patterns. Each call
// returns a fresh graph that a test may change.
func testGraph(t testing.TB) *Graph {
	t.Helper()
	ip := &Pattern{
		Name:       "ip",
		Type:       TypeIP,
		Regex:      RegexIP,
		Ignore:     []string{"127.0.0.1", "::1"},
		IgnoreCIDR: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		IPv6Mask:   64,
	}
	user := &Pattern{
		Name:        "user",
		Type:        TypeRegex,
		Regex:       `[a-z0-9._-]+`,
		IgnoreRegex: []string{`adm.*`},
	}
	for _, p := range []*Pattern{ip, user} {
		if err := p.Prepare(); err != nil {
			t.Fatal(err)
		}
	}
	g := &Graph{
		Patterns: []*Pattern{ip, user},
		Settings: Settings{
			Start:            [][]string{{"iptables", "-w", "-N", "reaction"}},
			Stop:             [][]string{{"iptables", "-w", "-X", "reaction"}},
			StateDirectory:   "/var/lib/reaction",
			RotationInterval: 24 * time.Hour,
			Files:            []string{"/etc/reaction/reaction.yml"},
		},
	}
	type filter struct {
		name     string
		literals []string // nil: none provable
		regexes  []string
		patterns []*Pattern
		tests    []Test
		counter  Counter
		dup      Duplicates
		actions  []*Action
	}
	streams := []struct {
		name    string
		cmd     []string
		filters []filter
	}{{
		name: "ssh",
		cmd:  []string{"journalctl", "-fu", "sshd.service", "-o", "cat"},
		filters: []filter{{
			name:     "failedlogin",
			literals: []string{"Failed password", "Connection closed by authenticating user"},
			regexes: []string{
				`^Failed password for (?:invalid user )?\S+ from <ip> port \d+`,
				`^Connection closed by authenticating user "?\S+"? <ip>`,
			},
			patterns: []*Pattern{ip},
			tests: []Test{
				{Line: "Failed password for root from 192.0.2.1 port 22 ssh2", Values: map[string]string{"ip": "192.0.2.1"}},
				{Line: "Accepted password for root from 192.0.2.1 port 22 ssh2", NoMatch: true},
			},
			counter: Counter{Retry: 3, Period: 6 * time.Hour, Shards: 4, MaxKeys: DefaultMaxKeys},
			dup:     DuplicatesExtend,
			actions: []*Action{
				{Name: "ban", Cmd: args("iptables", "-w", "-I", "reaction", "1", "-s", "<ip>", "-j", "DROP"), IPv4Only: true},
				{Name: "ban6", Cmd: args("ip6tables", "-w", "-I", "reaction", "1", "-s", "<ip>", "-j", "DROP"), IPv6Only: true},
				{Name: "mail", Cmd: args("sh", "-c", "echo <ip> banned; date"), OneShot: true},
				{Name: "unban", Cmd: args("iptables", "-w", "-D", "reaction", "-s", "<ip>", "-j", "DROP"), After: 48 * time.Hour, OnExit: true, IPv4Only: true},
			},
		}},
	}, {
		name: "nginx",
		cmd:  []string{"tail", "-F", "-n0", "/var/log/nginx/access.log"},
		filters: []filter{{
			name:     "login",
			literals: []string{"POST /login"},
			regexes:  []string{`^<ip> - <user> \[[^]]+\] "POST /login HTTP/[0-9.]+" 401`},
			patterns: []*Pattern{ip, user},
			counter:  Counter{Retry: 5, Period: 10 * time.Minute, Shards: 2, MaxKeys: 10000},
			dup:      DuplicatesRerun,
			actions: []*Action{
				{Name: "block", Cmd: args("nft", "add", "element", "inet", "reaction", "banned", "{ <ip> }"), After: 0},
				{Name: "log", Cmd: args("logger", "-t", "reaction", "<user>@<ip> failed login"), OneShot: true},
			},
		}, {
			name:     "scan",
			regexes:  []string{`^<ip> \S+ \S+ \[[^]]+\] "GET /(?:wp-login\.php|\.env)`},
			patterns: []*Pattern{ip},
			counter:  Counter{Retry: 1, Shards: 1, MaxKeys: DefaultMaxKeys},
			dup:      DuplicatesIgnore,
			actions: []*Action{
				{Name: "ban", Cmd: args("nft", "add", "element", "inet", "reaction", "banned", "{ <ip> }")},
			},
		}},
	}}
	for _, s := range streams {
		g.Add(&Node{ID: SourceID(s.name), Kind: KindSource, Source: &Source{
			Stream: s.name, Cmd: s.cmd, MaxLine: DefaultMaxLine, BatchSize: DefaultBatchSize,
			BackoffMin: DefaultBackoffMin, BackoffMax: DefaultBackoffMax,
		}})
		pf := &Prefilter{Stream: s.name, Workers: DefaultWorkers}
		g.Add(&Node{ID: PrefilterID(s.name), Kind: KindPrefilter, Prefilter: pf})
		g.Connect(SourceID(s.name), PrefilterID(s.name), DefaultLineQueue, "batches of 128 lines")
		for _, f := range s.filters {
			pf.Filters = append(pf.Filters, FilterLiterals{Filter: f.name, Always: f.literals == nil, AnyOf: f.literals})
			x := &Extract{Stream: s.name, Filter: f.name, Patterns: f.patterns, Tests: f.tests}
			for _, src := range f.regexes {
				x.Regexes = append(x.Regexes, testRegex(t, src, f.patterns))
			}
			c := f.counter
			c.Stream, c.Filter = s.name, f.name
			for _, a := range f.actions {
				a.Cmd = bindArgs(a.Cmd, f.patterns)
			}
			g.Add(&Node{ID: ExtractID(s.name, f.name), Kind: KindExtract, Extract: x})
			g.Add(&Node{ID: CounterID(s.name, f.name), Kind: KindCounter, Counter: &c})
			g.Add(&Node{ID: SchedulerID(s.name, f.name), Kind: KindScheduler, Scheduler: &Scheduler{
				Stream: s.name, Filter: f.name, Duplicates: f.dup, Actions: f.actions, Patterns: f.patterns,
			}})
			g.Connect(PrefilterID(s.name), ExtractID(s.name, f.name), 0, "lines (same goroutine)")
			g.Connect(ExtractID(s.name, f.name), CounterID(s.name, f.name), DefaultMatchQueue, "match batches")
			g.Connect(CounterID(s.name, f.name), SchedulerID(s.name, f.name), DefaultEventQueue, "triggers")
			g.Connect(SchedulerID(s.name, f.name), ExecutorID, DefaultJobQueue, "jobs")
		}
	}
	g.Add(&Node{ID: ExecutorID, Kind: KindExecutor, Executor: &Executor{Concurrency: -1, Timeout: DefaultTimeout}})
	return g
}

// testRegex expands <name> placeholders the way compile does: each becomes
// a capture group holding the pattern's regex.
func testRegex(t testing.TB, source string, patterns []*Pattern) *Regex {
	t.Helper()
	var named strings.Builder // with unique group names, to learn group numbers
	var caps []Capture
	rest := source
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			named.WriteString(rest)
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		pi := -1
		if j > 0 {
			pi = slices.IndexFunc(patterns, func(p *Pattern) bool { return p.Name == rest[i+1:i+j] })
		}
		if pi < 0 {
			named.WriteString(rest[:i+1])
			rest = rest[i+1:]
			continue
		}
		named.WriteString(rest[:i] + "(?P<g" + strconv.Itoa(len(caps)) + ">" + patterns[pi].Regex + ")")
		caps = append(caps, Capture{Pattern: pi})
		rest = rest[i+j+1:]
	}
	re := regexp.MustCompile(named.String())
	for k := range caps {
		caps[k].Group = re.SubexpIndex("g" + strconv.Itoa(k))
	}
	expanded := regexp.MustCompile(`\(\?P<g[0-9]+>`).ReplaceAllString(named.String(), "(")
	compiled := regexp.MustCompile(expanded)
	return &Regex{Source: source, Expanded: expanded, Re: compiled, Prog: rx.Compile(compiled), Captures: caps}
}

// args builds an unbound command; bindArgs turns its <name> into pattern parts.
func args(argv ...string) []Arg {
	out := make([]Arg, len(argv))
	for i, a := range argv {
		out[i] = Arg{{Text: a, Pattern: -1}}
	}
	return out
}

func bindArgs(cmd []Arg, patterns []*Pattern) []Arg {
	out := make([]Arg, len(cmd))
	for i, arg := range cmd {
		rest := arg[0].Text
		var parts Arg
		for {
			k, name := -1, ""
			for _, p := range patterns {
				if at := strings.Index(rest, "<"+p.Name+">"); at >= 0 && (k < 0 || at < k) {
					k, name = at, p.Name
				}
			}
			if k < 0 {
				break
			}
			if k > 0 {
				parts = append(parts, ArgPart{Text: rest[:k], Pattern: -1})
			}
			pi := slices.IndexFunc(patterns, func(p *Pattern) bool { return p.Name == name })
			parts = append(parts, ArgPart{Pattern: pi})
			rest = rest[k+len(name)+2:]
		}
		if rest != "" || len(parts) == 0 {
			parts = append(parts, ArgPart{Text: rest, Pattern: -1})
		}
		out[i] = parts
	}
	return out
}

func TestTestGraphIsValid(t *testing.T) {
	if err := testGraph(t).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(g *Graph)
		want   []string // substrings of the error, all required
	}{{
		name: "duplicate ID",
		change: func(g *Graph) {
			g.Add(&Node{ID: SourceID("ssh"), Kind: KindSource, Source: &Source{Stream: "ssh"}})
		},
		want: []string{"node source:ssh: duplicate ID"},
	}, {
		name:   "dangling edge to",
		change: func(g *Graph) { g.Connect(CounterID("ssh", "failedlogin"), SchedulerID("ssh", "nope"), 1, "triggers") },
		want:   []string{"edge counter:ssh.failedlogin → scheduler:ssh.nope: no node scheduler:ssh.nope"},
	}, {
		name:   "dangling edge from",
		change: func(g *Graph) { g.Connect("source:ghost", PrefilterID("ssh"), 1, "batches") },
		want:   []string{"edge source:ghost → prefilter:ssh: no node source:ghost"},
	}, {
		name:   "backward edge",
		change: func(g *Graph) { g.Connect(CounterID("ssh", "failedlogin"), ExtractID("ssh", "failedlogin"), 1, "x") },
		want:   []string{"counter may not feed extract"},
	}, {
		name:   "self loop",
		change: func(g *Graph) { g.Connect(ExtractID("ssh", "failedlogin"), ExtractID("ssh", "failedlogin"), 1, "x") },
		want:   []string{"extract may not feed extract"},
	}, {
		name: "cycle back to a source",
		change: func(g *Graph) {
			g.Connect(ExecutorID, SourceID("nginx"), 1, "x")
		},
		want: []string{"edge executor → source:nginx: executor may not feed source"},
	}, {
		name: "kind with the parameters of another",
		change: func(g *Graph) {
			n := g.Node(CounterID("ssh", "failedlogin"))
			n.Scheduler, n.Counter = &Scheduler{}, nil
		},
		want: []string{"node counter:ssh.failedlogin: kind counter but parameters for [scheduler]"},
	}, {
		name: "two sets of parameters",
		change: func(g *Graph) {
			g.Node(ExecutorID).Counter = &Counter{}
		},
		want: []string{"node executor: kind executor but parameters for [counter executor]"},
	}, {
		name: "no parameters",
		change: func(g *Graph) {
			g.Node(SourceID("ssh")).Source = nil
		},
		want: []string{"node source:ssh: kind source but parameters for []"},
	}, {
		name:   "unknown kind",
		change: func(g *Graph) { g.Node(ExecutorID).Kind = "sink" },
		want:   []string{`node executor: unknown kind "sink"`},
	}, {
		name:   "negative capacity",
		change: func(g *Graph) { g.Edges[0].Capacity = -1 },
		want:   []string{"edge source:ssh → prefilter:ssh: negative capacity"},
	}, {
		name: "node leading nowhere",
		change: func(g *Graph) {
			g.Edges = slices.DeleteFunc(g.Edges, func(e Edge) bool { return e.From == SchedulerID("nginx", "login") })
		},
		want: []string{"node scheduler:nginx.login: leads nowhere"},
	}, {
		name: "node fed by nothing",
		change: func(g *Graph) {
			g.Edges = slices.DeleteFunc(g.Edges, func(e Edge) bool { return e.To == PrefilterID("ssh") })
		},
		want: []string{"node source:ssh: leads nowhere", "node prefilter:ssh: fed by nothing"},
	}, {
		name: "incomplete filter chain",
		change: func(g *Graph) {
			id := CounterID("nginx", "scan")
			g.Nodes = slices.DeleteFunc(g.Nodes, func(n *Node) bool { return n.ID == id })
			g.Edges = slices.DeleteFunc(g.Edges, func(e Edge) bool { return e.From == id || e.To == id })
			g.Connect(ExtractID("nginx", "scan"), SchedulerID("nginx", "scan"), 1, "x")
		},
		want: []string{"node prefilter:nginx: filter scan has no node counter:nginx.scan"},
	}, {
		name: "every problem at once",
		change: func(g *Graph) {
			g.Add(&Node{ID: ExecutorID, Kind: KindExecutor, Executor: &Executor{}})
			g.Connect(ExecutorID, "nowhere", 1, "x")
		},
		want: []string{"node executor: duplicate ID", "edge executor → nowhere: no node nowhere"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGraph(t)
			tt.change(g)
			err := g.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestWalk(t *testing.T) {
	g := testGraph(t)
	var got []string
	for _, n := range g.Walk() {
		got = append(got, n.ID)
	}
	want := []string{
		"source:ssh", "source:nginx",
		"prefilter:ssh", "prefilter:nginx",
		"extract:ssh.failedlogin", "extract:nginx.login", "extract:nginx.scan",
		"counter:ssh.failedlogin", "counter:nginx.login", "counter:nginx.scan",
		"scheduler:ssh.failedlogin", "scheduler:nginx.login", "scheduler:nginx.scan",
		"executor",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Walk() =\n%q\nwant\n%q", got, want)
	}
	if g.Nodes[0].ID != "source:ssh" || g.Nodes[1].ID != "prefilter:ssh" {
		t.Error("Walk reordered g.Nodes")
	}
	for _, e := range g.Edges {
		if slices.Index(want, e.From) >= slices.Index(want, e.To) {
			t.Errorf("edge %s → %s goes backwards in walk order", e.From, e.To)
		}
	}
}

func TestStreams(t *testing.T) {
	g := testGraph(t)
	streams := g.Streams()
	var got []string
	for _, s := range streams {
		line := s.Source.Stream + " (" + s.Prefilter.Stream + "):"
		for _, f := range s.Filters {
			line += " " + f.Extract.Filter + "/" + f.Counter.Filter + "/" + f.Scheduler.Filter
			if f.Extract.Stream != s.Source.Stream || f.Counter.Stream != s.Source.Stream || f.Scheduler.Stream != s.Source.Stream {
				t.Errorf("stream %s: filter %s has nodes of another stream", s.Source.Stream, f.Extract.Filter)
			}
		}
		got = append(got, line)
	}
	want := []string{"ssh (ssh): failedlogin/failedlogin/failedlogin", "nginx (nginx): login/login/login scan/scan/scan"}
	if !slices.Equal(got, want) {
		t.Errorf("Streams() = %q, want %q", got, want)
	}
	if g.Executor() == nil || g.Executor().Concurrency != -1 {
		t.Errorf("Executor() = %+v", g.Executor())
	}
}

func TestNodeAfterAdd(t *testing.T) {
	g := testGraph(t)
	if g.Node(ExecutorID) == nil {
		t.Fatal("no executor")
	}
	n := g.Add(&Node{ID: "source:late", Kind: KindSource, Source: &Source{Stream: "late"}})
	if g.Node("source:late") != n {
		t.Error("Node does not see a node added after a lookup")
	}
	if g.Node("nope") != nil {
		t.Error("Node(nope) != nil")
	}
	if got := len(g.Of(KindExtract)); got != 3 {
		t.Errorf("Of(extract) has %d nodes, want 3", got)
	}
	if got := len(g.In(ExecutorID)); got != 3 {
		t.Errorf("In(executor) has %d edges, want 3", got)
	}
	if got := len(g.Out(PrefilterID("nginx"))); got != 2 {
		t.Errorf("Out(prefilter:nginx) has %d edges, want 2", got)
	}
}

func TestActionExpand(t *testing.T) {
	ip := &Pattern{Name: "ip", Type: TypeIP}
	user := &Pattern{Name: "user", Type: TypeRegex}
	patterns := []*Pattern{ip, user}
	tests := []struct {
		cmd    []string
		values []string
		want   []string
	}{
		{[]string{"iptables", "-s", "<ip>", "-j", "DROP"}, []string{"192.0.2.1", "bob"}, []string{"iptables", "-s", "192.0.2.1", "-j", "DROP"}},
		{[]string{"logger", "<user>@<ip>"}, []string{"192.0.2.1", "bob"}, []string{"logger", "bob@192.0.2.1"}},
		{[]string{"echo", "<ip>", "<user>", "<ip><ip>"}, []string{"2001:db8::/64", "x"}, []string{"echo", "2001:db8::/64", "x", "2001:db8::/642001:db8::/64"}},
		// Hostile values stay one argv element, untouched: there is no shell.
		{[]string{"notify", "<user>"}, []string{"", "a b; rm -rf / $(reboot) `id` | nc x 1 > /etc/passwd"}, []string{"notify", "a b; rm -rf / $(reboot) `id` | nc x 1 > /etc/passwd"}},
		{[]string{"say", "user=<user>!"}, []string{"", "'; DROP TABLE bans; --\n"}, []string{"say", "user='; DROP TABLE bans; --\n!"}},
		{[]string{"empty", "<user>"}, []string{"", ""}, []string{"empty", ""}},
		{[]string{"no-patterns"}, nil, []string{"no-patterns"}},
	}
	for _, tt := range tests {
		a := &Action{Name: "a", Cmd: bindArgs(args(tt.cmd...), patterns)}
		got := a.Expand(tt.values)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q.Expand(%q) = %q, want %q", tt.cmd, tt.values, got, tt.want)
		}
		if len(got) != len(tt.cmd) {
			t.Errorf("%q.Expand(%q) has %d arguments, want %d", tt.cmd, tt.values, len(got), len(tt.cmd))
		}
		if s := a.String(patterns); s != strings.Join(tt.cmd, " ") {
			t.Errorf("%q.String() = %q", tt.cmd, s)
		}
	}
}

func TestPatternCheck(t *testing.T) {
	mk := func(p Pattern) *Pattern {
		if p.Name == "" {
			p.Name = "ip"
		}
		if err := p.Prepare(); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	ip := mk(Pattern{Type: TypeIP})
	ipv4 := mk(Pattern{Type: TypeIPv4})
	ipv6 := mk(Pattern{Type: TypeIPv6})
	masked := mk(Pattern{Type: TypeIP, IPv4Mask: 24, IPv6Mask: 64})
	fullMask := mk(Pattern{Type: TypeIP, IPv4Mask: 32, IPv6Mask: 128})
	ignoring := mk(Pattern{
		Type:        TypeIP,
		Ignore:      []string{"127.0.0.1", "::1"},
		IgnoreCIDR:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		IgnoreRegex: []string{`192\.168\..*`, `172\.16`},
	})
	maskedIgnoring := mk(Pattern{Type: TypeIP, IPv4Mask: 24, Ignore: []string{"198.51.100.0/24"}, IgnoreRegex: []string{`203\.0\.113\.0/24`}})
	user := mk(Pattern{Name: "user", Type: TypeRegex, Regex: `[a-z]+`, Ignore: []string{"root"}, IgnoreRegex: []string{`adm.*`}})

	const (
		invalidIP   = "invalid ip value for <ip>"
		invalidIPv4 = "invalid ipv4 value for <ip>"
		invalidIPv6 = "invalid ipv6 value for <ip>"
	)
	tests := []struct {
		name   string
		p      *Pattern
		raw    string
		want   string
		reason Reason
	}{
		{"ipv4", ip, "192.0.2.1", "192.0.2.1", ""},
		{"ipv6 canonical", ip, "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1", ""},
		{"ipv6 already canonical", ip, "2001:db8::1", "2001:db8::1", ""},
		{"ipv6 longest zero run", ip, "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", ""},
		{"mapped ipv4", ip, "::ffff:1.2.3.4", "1.2.3.4", ""},
		{"mapped ipv4 hex", ip, "::ffff:102:304", "1.2.3.4", ""},
		{"octet too large", ip, "999.1.1.1", "", invalidIP},
		{"leading zero", ip, "01.2.3.4", "", invalidIP},
		{"ipv4 zone", ip, "1.2.3.4%eth0", "", invalidIP},
		{"ipv6 zone", ip, "fe80::1%eth0", "", invalidIP},
		{"empty", ip, "", "", invalidIP},
		{"garbage", ip, "example.com", "", invalidIP},
		{"prefix is not an address", ip, "1.2.3.0/24", "", invalidIP},

		{"ipv4 type", ipv4, "192.0.2.1", "192.0.2.1", ""},
		{"ipv4 type mapped", ipv4, "::ffff:192.0.2.1", "192.0.2.1", ""},
		{"ipv4 type rejects ipv6", ipv4, "2001:db8::1", "", invalidIPv4},
		{"ipv6 type", ipv6, "2001:DB8::1", "2001:db8::1", ""},
		{"ipv6 type rejects ipv4", ipv6, "192.0.2.1", "", invalidIPv6},
		{"ipv6 type rejects mapped ipv4", ipv6, "::ffff:192.0.2.1", "", invalidIPv6},

		{"ipv4 mask", masked, "1.2.3.4", "1.2.3.0/24", ""},
		{"ipv6 mask", masked, "2001:db8:85a3:9de5:1234:5678:9abc:def0", "2001:db8:85a3:9de5::/64", ""},
		{"mask after unmapping", masked, "::ffff:1.2.3.4", "1.2.3.0/24", ""},
		{"full-length mask is no mask", fullMask, "2001:db8::1", "2001:db8::1", ""},

		{"ignore", ignoring, "127.0.0.1", "", "ignored by patterns.ip.ignore: 127.0.0.1"},
		{"ignore after normalizing", ignoring, "0:0:0:0:0:0:0:1", "", "ignored by patterns.ip.ignore: ::1"},
		{"ignore mapped", ignoring, "::ffff:127.0.0.1", "", "ignored by patterns.ip.ignore: 127.0.0.1"},
		{"ignorecidr v4", ignoring, "10.20.30.40", "", "ignored by patterns.ip.ignorecidr: 10.0.0.0/8"},
		{"ignorecidr v6", ignoring, "2001:db8:ffff::1", "", "ignored by patterns.ip.ignorecidr: 2001:db8::/32"},
		{"ignoreregex", ignoring, "192.168.1.1", "", `ignored by patterns.ip.ignoreregex: 192\.168\..*`},
		{"ignoreregex must match whole value", ignoring, "172.16.0.1", "172.16.0.1", ""},
		{"not ignored", ignoring, "192.0.2.1", "192.0.2.1", ""},
		{"ignore a masked value", maskedIgnoring, "198.51.100.7", "", "ignored by patterns.ip.ignore: 198.51.100.0/24"},
		{"ignoreregex on a masked value", maskedIgnoring, "203.0.113.9", "", `ignored by patterns.ip.ignoreregex: 203\.0\.113\.0/24`},

		{"regex", user, "bob", "bob", ""},
		{"regex ignore", user, "root", "", "ignored by patterns.user.ignore: root"},
		{"regex ignoreregex", user, "admin", "", "ignored by patterns.user.ignoreregex: adm.*"},
		{"regex must match whole value", user, "bob1", "", "invalid regex value for <user>"},
		{"regex case", user, "Bob", "", "invalid regex value for <user>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := tt.p.Check(tt.raw)
			if got != tt.want || reason != tt.reason {
				t.Errorf("Check(%q) = %q, %q; want %q, %q", tt.raw, got, reason, tt.want, tt.reason)
			}
			norm, err := tt.p.Normalize(tt.raw)
			if invalid := strings.HasPrefix(string(tt.reason), "invalid"); invalid != (err != nil) {
				t.Errorf("Normalize(%q) error = %v, want error: %v", tt.raw, err, invalid)
			}
			if tt.reason == "" && norm != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.raw, norm, tt.want)
			}
		})
	}
}

func TestPatternNormalizeError(t *testing.T) {
	p := &Pattern{Name: "ip", Type: TypeIPv4}
	_, err := p.Normalize(`1.2.3.4"x`)
	if err == nil || err.Error() != `<ip>: "1.2.3.4\"x" is not a valid ipv4 value` {
		t.Errorf("Normalize error = %v", err)
	}
}

func TestPrepareBadIgnoreRegex(t *testing.T) {
	p := &Pattern{Name: "user", Type: TypeRegex, Regex: `\w+`, IgnoreRegex: []string{"("}}
	if err := p.Prepare(); err == nil {
		t.Error("Prepare accepted ignoreregex \"(\"")
	}
}

func TestFamily(t *testing.T) {
	for v, want := range map[string]int{
		"192.0.2.1": 4, "192.0.2.0/24": 4, "2001:db8::1": 6, "2001:db8::/64": 6, "bob": 0, "": 0,
	} {
		if got := Family(v); got != want {
			t.Errorf("Family(%q) = %d, want %d", v, got, want)
		}
	}
}

func TestExtractMatch(t *testing.T) {
	g := testGraph(t)
	ip, user := g.Patterns[0], g.Patterns[1]
	patterns := []*Pattern{ip, user}
	x := &Extract{Stream: "s", Filter: "f", Patterns: patterns}
	for _, src := range []string{
		`^login <ip> as <user>$`,
		`^login <ip>`,
		`^user <user> from <ip>$`, // values still come out in pattern order
		`^(?:from <ip> )?reset$`,  // an optional capture that may be empty
		`^reboot$`,                // no capture at all
	} {
		x.Regexes = append(x.Regexes, testRegex(t, src, patterns))
	}
	tests := []struct {
		line    string
		values  []string
		which   int
		matched bool
		reason  Reason
	}{
		{"login 192.0.2.1 as bob", []string{"192.0.2.1", "bob"}, 0, true, ""},
		{"login 192.0.2.1 as Bob", []string{"192.0.2.1", ""}, 1, true, ""}, // first regex fails on Bob, second matches
		{"login 2001:db8::1 now", []string{"2001:db8::/64", ""}, 1, true, ""},
		{"user bob from 192.0.2.1", []string{"192.0.2.1", "bob"}, 2, true, ""},
		{"login 127.0.0.1 as bob", nil, 0, true, "ignored by patterns.ip.ignore: 127.0.0.1"},
		{"login 192.0.2.1 as admin", nil, 0, true, "ignored by patterns.user.ignoreregex: adm.*"},
		{"login 999.1.1.1 as bob", nil, 0, true, "invalid ip value for <ip>"},
		{"from 192.0.2.1 reset", []string{"192.0.2.1", ""}, 3, true, ""},
		{"reset", nil, 3, true, "<ip> captured nothing"},
		{"reboot", nil, 4, true, ""},
		{"nothing here", nil, -1, false, ""},
	}
	var into []string
	for _, tt := range tests {
		values, which, matched, reason := x.Match([]byte(tt.line))
		if !slices.Equal(values, tt.values) || which != tt.which || matched != tt.matched || reason != tt.reason {
			t.Errorf("Match(%q) = %q, %d, %v, %q; want %q, %d, %v, %q",
				tt.line, values, which, matched, reason, tt.values, tt.which, tt.matched, tt.reason)
		}
		// MatchInto decides the same, in a reused slice.
		line := []byte(tt.line)
		into, which, matched, reason = x.MatchInto(line, AllRegexes, into)
		if !slices.Equal(into, tt.values) || which != tt.which || matched != tt.matched || reason != tt.reason {
			t.Errorf("MatchInto(%q) = %q, %d, %v, %q; want %q, %d, %v, %q",
				tt.line, into, which, matched, reason, tt.values, tt.which, tt.matched, tt.reason)
		}
	}
	// The hot path: a canonical address allocates nothing.
	line := []byte("login 192.0.2.1 as bob")
	if n := testing.AllocsPerRun(100, func() { into, _, _, _ = x.MatchInto(line, AllRegexes, into) }); n != 0 {
		t.Errorf("MatchInto allocates %v times per line", n)
	}
}

func TestExtractMatchTestGraph(t *testing.T) {
	for _, s := range testGraph(t).Streams() {
		for _, f := range s.Filters {
			for _, tc := range f.Extract.Tests {
				values, _, matched, reason := f.Extract.Match([]byte(tc.Line))
				if tc.NoMatch {
					if matched {
						t.Errorf("%s.%s: %q matched", s.Source.Stream, f.Extract.Filter, tc.Line)
					}
					continue
				}
				if !matched || reason != ReasonOK {
					t.Errorf("%s.%s: %q: matched=%v reason=%q", s.Source.Stream, f.Extract.Filter, tc.Line, matched, reason)
					continue
				}
				for i, p := range f.Extract.Patterns {
					if values[i] != tc.Values[p.Name] {
						t.Errorf("%s.%s: %q: <%s> = %q, want %q", s.Source.Stream, f.Extract.Filter, tc.Line, p.Name, values[i], tc.Values[p.Name])
					}
				}
			}
		}
	}
}

// canonicalIPv4 takes exactly the strings netip parses as IPv4 and
// writes back unchanged; everything else goes the slow way.
func TestCanonicalIPv4(t *testing.T) {
	check := func(raw string) {
		addr, got := canonicalIPv4(raw)
		want, err := netip.ParseAddr(raw)
		isCanon := err == nil && want.Is4() && want.String() == raw
		switch {
		case addr.IsValid() != isCanon:
			t.Fatalf("canonicalIPv4(%q) valid=%v, netip says canonical IPv4=%v", raw, addr.IsValid(), isCanon)
		case isCanon && (addr != want || got != raw):
			t.Fatalf("canonicalIPv4(%q) = %v %q, want %v", raw, addr, got, want)
		}
	}
	for _, raw := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"1..3.4", ".1.2.3", "1.2.3.", "", "1.2.3.4 ", "::ffff:1.2.3.4", "1.2.3.0400", "10.0.0.10", "100.200.250.255"} {
		check(raw)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var b []byte
		for range r.IntN(16) {
			b = append(b, "0123456789.....x"[r.IntN(16)])
		}
		check(string(b))
	}
}

func FuzzCanonicalIPv4(f *testing.F) {
	f.Add("192.0.2.1")
	f.Fuzz(func(t *testing.T, raw string) {
		addr, _ := canonicalIPv4(raw)
		want, err := netip.ParseAddr(raw)
		if isCanon := err == nil && want.Is4() && want.String() == raw; addr.IsValid() != isCanon || isCanon && addr != want {
			t.Fatalf("canonicalIPv4(%q) = %v, netip: %v %v", raw, addr, want, err)
		}
	})
}

// rx matches the <ip> address regex by hand: it must be this one.
func TestRegexIPIsWhatRxKnows(t *testing.T) {
	if RegexIP != rx.IPSource() {
		t.Fatalf("graph.RegexIP %q differs from rx.IPSource %q: update both, and rx's hand matcher", RegexIP, rx.IPSource())
	}
}

// canonicalIPv6 takes only strings netip parses as IPv6 (not IPv4-mapped)
// and writes back unchanged, and nearly all of them.
func TestCanonicalIPv6(t *testing.T) {
	missed := 0
	check := func(raw string) {
		addr, got := canonicalIPv6(raw)
		want, err := netip.ParseAddr(raw)
		isCanon := err == nil && want.Is6() && !want.Is4In6() && want.Zone() == "" && want.String() == raw
		switch {
		case addr.IsValid() && !isCanon:
			t.Fatalf("canonicalIPv6(%q) = %v, but netip says it is not a canonical IPv6 address (%v, %v)", raw, addr, want, err)
		case addr.IsValid() && (addr != want || got != raw):
			t.Fatalf("canonicalIPv6(%q) = %v %q, want %v", raw, addr, got, want)
		case !addr.IsValid() && isCanon && raw != "::" && !strings.Contains(raw, "."):
			missed++
			if missed < 5 {
				t.Errorf("canonicalIPv6(%q) refused a canonical address", raw)
			}
		}
	}
	for _, raw := range []string{"::1", "1::", "::", "2001:db8::1", "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "2001:db8:0:1:1:1:1:1",
		"2001:0db8::1", "2001:DB8::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::ffff:102:304", "::ffff:1.2.3.4", "fe80::1%eth0",
		"1:0:0:2:0:0:0:3", "1:0:0:0:2:0:0:3", "1::2:0:0:3", "0:0:1::", "::0:1", "12345::", "1:::2", ":1::", "1::2::3", "a:b:c:d:e:f:0:0"} {
		check(raw)
	}
	r := rand.New(rand.NewPCG(3, 4))
	parts := []string{"0", "1", "a", "ff", "db8", "2001", "0db8", "ffff", "10000", ":", ":", "::", "A"}
	for range 300000 {
		var b []byte
		for range 1 + r.IntN(12) {
			b = append(b, parts[r.IntN(len(parts))]...)
		}
		check(string(b))
		// And random canonical addresses, which must all be taken.
		var a [16]byte
		for k := range a {
			if r.IntN(3) > 0 {
				a[k] = byte(r.IntN(256))
			}
		}
		check(netip.AddrFrom16(a).String())
	}
}

func FuzzCanonicalIPv6(f *testing.F) {
	f.Add("2001:db8::1")
	f.Fuzz(func(t *testing.T, raw string) {
		addr, _ := canonicalIPv6(raw)
		want, err := netip.ParseAddr(raw)
		if isCanon := err == nil && want.Is6() && !want.Is4In6() && want.Zone() == "" && want.String() == raw; addr.IsValid() && (!isCanon || addr != want) {
			t.Fatalf("canonicalIPv6(%q) = %v, netip: %v %v", raw, addr, want, err)
		}
	})
}

// BenchmarkPatternCheck is the check of every captured address: IPv4,
// IPv6, and an IPv4-mapped one (unmapped, so written anew).
func BenchmarkPatternCheck(b *testing.B) {
	p := &Pattern{Name: "ip", Type: TypeIP}
	if err := p.Prepare(); err != nil {
		b.Fatal(err)
	}
	for _, raw := range []string{"203.0.113.45", "2698:a982:46ac:518b:dc9d:b7c9:d2c0:8b31", "2001:db8::17", "::ffff:81.247.75.65"} {
		b.Run(raw, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, why := p.Check(raw); why != ReasonOK {
					b.Fatal(why)
				}
			}
		})
	}
}
