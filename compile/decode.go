package compile

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree into a configSpec. Walking the tree by
// hand (rather than yaml's struct decoding) is what gives every value its
// path and line, reports unknown keys with a suggestion, and lets every
// error be collected instead of stopping at the first.
type decoder struct {
	file    string
	lines   bool // false for Jsonnet: lines of the generated JSON mean nothing to the author
	d       *diag
	budget  int                 // values left to visit; aliases can make a small file huge
	merging map[*yaml.Node]bool // mappings being merged, against `<<: *self`
	typos   map[string]bool     // paths of known keys that were found misspelled
}

// maxValues bounds how many values one file may expand to through aliases.
const maxValues = 1 << 20

func newDecoder(file string, lines bool, d *diag) *decoder {
	return &decoder{file: file, lines: lines, d: d, budget: maxValues, merging: map[*yaml.Node]bool{}, typos: map[string]bool{}}
}

type kv struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
	path    string // path of the value
}

func (dc *decoder) at(n *yaml.Node, path string) loc {
	l := loc{file: dc.file, path: path}
	if dc.lines && n != nil {
		l.line = n.Line
	}
	return l
}

// resolve follows aliases.
func (dc *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// spend counts one visited value; it reports false once the budget is gone.
func (dc *decoder) spend(n *yaml.Node, path string) bool {
	dc.budget--
	if dc.budget == 0 {
		dc.d.add(dc.at(n, path), "the configuration expands to more than %d values (through YAML aliases?)", maxValues)
	}
	return dc.budget > 0
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names the kind of a value for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "null"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!int" || n.Tag == "!!float":
		return "the number " + n.Value
	case n.Tag == "!!bool":
		return "the boolean " + n.Value
	default:
		return "the string " + strconv.Quote(n.Value)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// pairs returns the entries of a mapping, with YAML merge keys applied:
// keys written in the mapping win over merged ones, earlier merged maps
// win over later ones.
func (dc *decoder) pairs(n *yaml.Node, path string) []kv {
	if dc.merging[n] {
		dc.d.add(dc.at(n, path), "a YAML merge (<<) includes the map it is in")
		return nil
	}
	dc.merging[n] = true
	defer delete(dc.merging, n)

	var out []kv
	seen := map[string]bool{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := dc.resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			dc.d.add(dc.at(n.Content[i], path), "keys must be strings, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if seen[k.Value] {
			dc.d.add(dc.at(k, path), "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, kv{key: k.Value, keyNode: k, val: v, path: join(path, k.Value)})
	}
	for _, m := range merges {
		m = dc.resolve(m)
		var sources []*yaml.Node
		switch {
		case m != nil && m.Kind == yaml.MappingNode:
			sources = []*yaml.Node{m}
		case m != nil && m.Kind == yaml.SequenceNode:
			for _, s := range m.Content {
				sources = append(sources, dc.resolve(s))
			}
		}
		for _, s := range sources {
			if s == nil || s.Kind != yaml.MappingNode {
				dc.d.add(dc.at(m, path), "a YAML merge (<<) takes a map or a list of maps, got %s", describe(s))
				continue
			}
			for _, p := range dc.pairs(s, path) {
				if !seen[p.key] {
					seen[p.key] = true
					out = append(out, p)
				}
			}
		}
		if len(sources) == 0 {
			dc.d.add(dc.at(m, path), "a YAML merge (<<) takes a map or a list of maps, got %s", describe(m))
		}
	}
	return out
}

// mapping returns the entries of a map value, or reports that it is not one.
func (dc *decoder) mapping(n *yaml.Node, path string) ([]kv, bool) {
	r := dc.resolve(n)
	if !dc.spend(n, path) {
		return nil, false
	}
	if r == nil || r.Kind != yaml.MappingNode {
		dc.d.add(dc.at(n, path), "expected a map, got %s", describe(r))
		return nil, false
	}
	return dc.pairs(r, path), true
}

// object is mapping plus a check of the keys against the known ones.
// Entries whose value is null are left out, as if absent.
func (dc *decoder) object(n *yaml.Node, path string, known []string) (map[string]kv, bool) {
	entries, ok := dc.mapping(n, path)
	if !ok {
		return nil, false
	}
	out := make(map[string]kv, len(entries))
	for _, e := range entries {
		if !contains(known, e.key) {
			msg := fmt.Sprintf("unknown key %q", e.key)
			if s := suggest(e.key, known); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
				dc.typos[join(path, s)] = true
			}
			dc.d.add(dc.at(e.keyNode, path), "%s", msg)
			continue
		}
		if isNull(dc.resolve(e.val)) {
			if e.key == keyRotationInterval { // the one key where null means something
				out[e.key] = e
			}
			continue
		}
		out[e.key] = e
	}
	return out, true
}

// misspelled tells whether key was written with a typo in the map at
// path: then it is not also reported missing.
func (dc *decoder) misspelled(path, key string) bool { return dc.typos[join(path, key)] }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (dc *decoder) list(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	r := dc.resolve(n)
	if !dc.spend(n, path) {
		return nil, false
	}
	if r == nil || r.Kind != yaml.SequenceNode {
		dc.d.add(dc.at(n, path), "expected a list, got %s", describe(r))
		return nil, false
	}
	return r.Content, true
}

// str accepts any scalar but null: numbers and booleans are taken as
// written, so that `cmd: [iptables, -I, reaction, 1]` works.
func (dc *decoder) str(n *yaml.Node, path string) (string, bool) {
	r := dc.resolve(n)
	if !dc.spend(n, path) {
		return "", false
	}
	if r == nil || r.Kind != yaml.ScalarNode || isNull(r) {
		dc.d.add(dc.at(n, path), "expected a string, got %s", describe(r))
		return "", false
	}
	return r.Value, true
}

func (dc *decoder) int(n *yaml.Node, path string) (int, bool) {
	r := dc.resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode {
		switch r.Tag {
		case "!!int":
			var i int
			if err := r.Decode(&i); err == nil {
				return i, true
			}
			dc.d.add(dc.at(n, path), "%s is out of range", r.Value)
			return 0, false
		case "!!float": // JSON has no integers; accept 3.0
			var f float64
			if err := r.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<31 {
				return int(f), true
			}
		}
	}
	dc.d.add(dc.at(n, path), "expected an integer, got %s", describe(r))
	return 0, false
}

func (dc *decoder) bool(n *yaml.Node, path string) (bool, bool) {
	r := dc.resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!bool" {
		var b bool
		if err := r.Decode(&b); err == nil {
			return b, true
		}
	}
	dc.d.add(dc.at(n, path), "expected true or false, got %s", describe(r))
	return false, false
}

func (dc *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	r := dc.resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode || isNull(r) {
		dc.d.add(dc.at(n, path), "expected %s, got %s", durationForms, describe(r))
		return 0, false
	}
	d, err := parseDuration(r.Value)
	if err != nil {
		dc.d.add(dc.at(n, path), "%v", err)
		return 0, false
	}
	return d, true
}

func (dc *decoder) strList(n *yaml.Node, path string) ([]str, bool) {
	items, ok := dc.list(n, path)
	if !ok {
		return nil, false
	}
	out := make([]str, 0, len(items))
	for i, item := range items {
		p := index(path, i)
		if s, ok := dc.str(item, p); ok {
			out = append(out, str{v: s, at: dc.at(dc.resolve(item), p)})
		}
	}
	return out, true
}

// argv decodes a command: a non-empty list of strings whose first one,
// the program, is not empty.
func (dc *decoder) argv(n *yaml.Node, path string) (argvSpec, bool) {
	if r := dc.resolve(n); r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		// A command line written as one string: it is never given to a shell.
		dc.d.add(dc.at(n, path), "a command is a list, program first, run without a shell: write [%s]", strings.Join(strings.Fields(r.Value), ", "))
		return argvSpec{}, false
	}
	items, ok := dc.list(n, path)
	if !ok {
		return argvSpec{}, false
	}
	a := argvSpec{args: make([]string, 0, len(items)), at: dc.at(dc.resolve(n), path)}
	good := true
	for i, item := range items {
		s, ok := dc.str(item, index(path, i))
		good = good && ok
		a.args = append(a.args, s)
	}
	switch {
	case !good:
		return argvSpec{}, false
	case len(a.args) == 0:
		dc.d.add(a.at, "a command must not be empty: write it as a list, program first")
		return argvSpec{}, false
	case a.args[0] == "":
		dc.d.add(a.at.with(index(path, 0)), "the program name is empty")
		return argvSpec{}, false
	}
	return a, true
}

// config decodes one file's top-level value.
func (dc *decoder) config(root *yaml.Node) *configSpec {
	c := &configSpec{patterns: map[string]*patternSpec{}, streams: map[string]*streamSpec{}}
	if root != nil && root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return c
		}
		root = root.Content[0]
	}
	if isNull(dc.resolve(root)) { // an empty file is an empty configuration
		return c
	}
	top, ok := dc.object(root, "", topKeys)
	if !ok {
		return c
	}
	if e, ok := top[keyPatterns]; ok {
		entries, _ := dc.mapping(e.val, e.path) // a broken patterns map makes <name>s unknown: reported below, acceptable
		for _, p := range entries {
			ps := dc.pattern(p)
			if ps == nil {
				ps = &patternSpec{broken: true, name: p.key, at: dc.at(p.keyNode, p.path)}
			}
			c.patterns[p.key] = ps
		}
	}
	if e, ok := top[keyStreams]; ok {
		entries, ok := dc.mapping(e.val, e.path)
		c.streamsBad = !ok
		for _, s := range entries {
			ss := dc.stream(s)
			if ss == nil {
				ss = &streamSpec{broken: true, name: s.key, at: dc.at(s.keyNode, s.path), filters: map[string]*filterSpec{}}
			}
			c.streams[s.key] = ss
		}
	}
	for key, dst := range map[string]*[]argvSpec{keyStart: &c.start, keyStop: &c.stop} {
		if e, ok := top[key]; ok {
			items, _ := dc.list(e.val, e.path)
			if len(items) > 0 && !slices.ContainsFunc(items, func(n *yaml.Node) bool { return dc.resolve(n).Kind != yaml.ScalarNode }) {
				dc.d.add(dc.at(e.val, e.path), "a list of commands, each a list: write [[%s]]", strings.Join(dc.scalars(items), ", "))
				continue
			}
			for i, item := range items {
				if a, ok := dc.argv(item, index(e.path, i)); ok {
					*dst = append(*dst, a)
				}
			}
		}
	}
	if e, ok := top[keyConcurrency]; ok {
		if v, ok := dc.int(e.val, e.path); ok {
			c.concurrency = opt[int]{v: v, set: true, at: dc.at(e.val, e.path)}
		}
	}
	if e, ok := top[keyStateDirectory]; ok {
		if v, ok := dc.str(e.val, e.path); ok {
			c.stateDir = opt[string]{v: v, set: true, at: dc.at(e.val, e.path)}
		}
	}
	if e, ok := top[keyRotationInterval]; ok {
		c.rotation = opt[*time.Duration]{set: true, at: dc.at(e.val, e.path)}
		if !isNull(dc.resolve(e.val)) {
			d, ok := dc.duration(e.val, e.path)
			if !ok {
				c.rotation.set = false
			}
			c.rotation.v = &d
		}
	}
	if e, ok := top[keyPlugins]; ok && !isEmpty(dc.resolve(e.val)) {
		dc.d.add(dc.at(e.keyNode, e.path), errPlugins)
	}
	// keyDefinitions is only a place for YAML anchors: not read.
	c.streamsBad = c.streamsBad || dc.misspelled("", keyStreams)
	return c
}

func (dc *decoder) scalars(nodes []*yaml.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = dc.resolve(n).Value
	}
	return out
}

func isEmpty(n *yaml.Node) bool {
	return isNull(n) || ((n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && len(n.Content) == 0)
}

func (dc *decoder) pattern(e kv) *patternSpec {
	p := &patternSpec{name: e.key, at: dc.at(e.keyNode, e.path)}
	if r := dc.resolve(e.val); r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		// reaction v1 shorthand: `ip: '<regex>'`.
		p.regex = opt[string]{v: r.Value, set: true, at: dc.at(r, e.path)}
		return p
	}
	fields, ok := dc.object(e.val, e.path, patternKeys)
	if !ok {
		return nil
	}
	if f, ok := fields[keyRegex]; ok {
		if v, ok := dc.str(f.val, f.path); ok {
			p.regex = opt[string]{v: v, set: true, at: dc.at(f.val, f.path)}
		} else {
			p.regex.bad = true
		}
	}
	if f, ok := fields[keyType]; ok {
		if v, ok := dc.str(f.val, f.path); ok {
			p.typ = opt[string]{v: v, set: true, at: dc.at(f.val, f.path)}
		} else {
			p.typ.bad = true
		}
	}
	for key, dst := range map[string]*[]str{keyIgnore: &p.ignore, keyIgnoreRegex: &p.ignoreRegex, keyIgnoreCIDR: &p.ignoreCIDR} {
		if f, ok := fields[key]; ok {
			*dst, _ = dc.strList(f.val, f.path)
		}
	}
	for key, dst := range map[string]*opt[int]{keyIPv4Mask: &p.ipv4Mask, keyIPv6Mask: &p.ipv6Mask} {
		if f, ok := fields[key]; ok {
			if v, ok := dc.int(f.val, f.path); ok {
				*dst = opt[int]{v: v, set: true, at: dc.at(f.val, f.path)}
			}
		}
	}
	p.regex.bad = p.regex.bad || dc.misspelled(e.path, keyRegex)
	p.typ.bad = p.typ.bad || dc.misspelled(e.path, keyType)
	return p
}

func (dc *decoder) stream(e kv) *streamSpec {
	fields, ok := dc.object(e.val, e.path, streamKeys)
	if !ok {
		return nil
	}
	s := &streamSpec{name: e.key, at: dc.at(e.keyNode, e.path), filters: map[string]*filterSpec{}}
	if f, ok := fields[keyType]; ok {
		dc.d.add(dc.at(f.keyNode, f.path), errPlugins)
	}
	if f, ok := fields[keyCmd]; ok {
		if a, ok := dc.argv(f.val, f.path); ok {
			s.cmd = opt[argvSpec]{v: a, set: true, at: a.at}
		} else {
			s.cmd.bad = true
		}
	}
	if f, ok := fields[keyFilters]; ok {
		entries, ok := dc.mapping(f.val, f.path)
		s.filtersBad = !ok
		for _, fe := range entries {
			fs := dc.filter(fe)
			if fs == nil {
				fs = &filterSpec{broken: true, name: fe.key, at: dc.at(fe.keyNode, fe.path)}
			}
			s.filters[fe.key] = fs
		}
	}
	s.cmd.bad = s.cmd.bad || dc.misspelled(e.path, keyCmd)
	s.filtersBad = s.filtersBad || dc.misspelled(e.path, keyFilters)
	return s
}

func (dc *decoder) filter(e kv) *filterSpec {
	errs := len(dc.d.list)
	fields, ok := dc.object(e.val, e.path, filterKeys)
	if !ok {
		return nil
	}
	f := &filterSpec{name: e.key, at: dc.at(e.keyNode, e.path), actions: map[string]*actionSpec{}}
	defer func() { f.incomplete = len(dc.d.list) > errs }()
	if x, ok := fields[keyRegex]; ok {
		if v, ok := dc.strList(x.val, x.path); ok && len(v) == len(dc.resolve(x.val).Content) {
			f.regex = opt[[]str]{v: v, set: true, at: dc.at(dc.resolve(x.val), x.path)}
		} else {
			f.regex.bad = true
		}
	}
	if x, ok := fields[keyRetry]; ok {
		if v, ok := dc.int(x.val, x.path); ok {
			f.retry = opt[int]{v: v, set: true, at: dc.at(x.val, x.path)}
		}
	}
	if x, ok := fields[keyRetryPeriod]; ok {
		if v, ok := dc.duration(x.val, x.path); ok {
			f.retryPeriod = opt[time.Duration]{v: v, set: true, at: dc.at(x.val, x.path)}
		}
	}
	dup, dups := fields[keyDuplicate], fields[keyDuplicates]
	if dup.val != nil && dups.val != nil {
		dc.d.add(dc.at(dups.keyNode, dups.path), "%q is another name for %q: give only one of them", keyDuplicates, keyDuplicate)
	}
	for _, x := range []kv{dup, dups} {
		if x.val == nil {
			continue
		}
		if v, ok := dc.str(x.val, x.path); ok && !f.duplicate.set {
			f.duplicate = opt[string]{v: v, set: true, at: dc.at(x.val, x.path)}
		}
	}
	if x, ok := fields[keyActions]; ok {
		entries, ok := dc.mapping(x.val, x.path)
		f.actionsBad = !ok
		for _, ae := range entries {
			a := dc.action(ae)
			if a == nil {
				a = &actionSpec{broken: true, name: ae.key, at: dc.at(ae.keyNode, ae.path)}
			}
			f.actions[ae.key] = a
		}
	}
	if x, ok := fields[keyTests]; ok {
		items, _ := dc.list(x.val, x.path)
		for i, item := range items {
			if t, ok := dc.test(item, index(x.path, i)); ok {
				f.tests = append(f.tests, t)
			}
		}
	}
	f.regex.bad = f.regex.bad || dc.misspelled(e.path, keyRegex)
	f.retryPeriod.bad = f.retryPeriod.bad || dc.misspelled(e.path, keyRetryPeriod)
	f.actionsBad = f.actionsBad || dc.misspelled(e.path, keyActions)
	return f
}

func (dc *decoder) action(e kv) *actionSpec {
	fields, ok := dc.object(e.val, e.path, actionKeys)
	if !ok {
		return nil
	}
	a := &actionSpec{name: e.key, at: dc.at(e.keyNode, e.path)}
	if x, ok := fields[keyCmd]; ok {
		if v, ok := dc.argv(x.val, x.path); ok {
			a.cmd = opt[argvSpec]{v: v, set: true, at: v.at}
		} else {
			a.cmd.bad = true
		}
	}
	if x, ok := fields[keyAfter]; ok {
		if v, ok := dc.duration(x.val, x.path); ok {
			a.after = opt[time.Duration]{v: v, set: true, at: dc.at(x.val, x.path)}
		}
	}
	for key, dst := range map[string]*opt[bool]{keyOnExit: &a.onExit, keyOneShot: &a.oneShot, keyIPv4Only: &a.ipv4Only, keyIPv6Only: &a.ipv6Only} {
		if x, ok := fields[key]; ok {
			if v, ok := dc.bool(x.val, x.path); ok {
				*dst = opt[bool]{v: v, set: true, at: dc.at(x.val, x.path)}
			}
		}
	}
	a.cmd.bad = a.cmd.bad || dc.misspelled(e.path, keyCmd)
	return a
}

func (dc *decoder) test(n *yaml.Node, path string) (testSpec, bool) {
	fields, ok := dc.object(n, path, testKeys)
	if !ok {
		return testSpec{}, false
	}
	t := testSpec{at: dc.at(dc.resolve(n), path)}
	if x, ok := fields[keyLine]; ok {
		if v, ok := dc.str(x.val, x.path); ok {
			t.line = opt[string]{v: v, set: true, at: dc.at(x.val, x.path)}
		}
	}
	if x, ok := fields[keyMatch]; ok {
		entries, ok := dc.mapping(x.val, x.path)
		if ok {
			m := make(map[string]str, len(entries))
			for _, me := range entries {
				if v, ok := dc.str(me.val, me.path); ok {
					m[me.key] = str{v: v, at: dc.at(me.keyNode, me.path)}
				}
			}
			t.match = opt[map[string]str]{v: m, set: true, at: dc.at(dc.resolve(x.val), x.path)}
		}
	}
	for key, dst := range map[string]*opt[bool]{keyNoMatch: &t.noMatch, keyIgnored: &t.ignored} {
		if x, ok := fields[key]; ok {
			if v, ok := dc.bool(x.val, x.path); ok {
				*dst = opt[bool]{v: v, set: true, at: dc.at(x.val, x.path)}
			}
		}
	}
	if !t.line.set {
		if _, present := fields[keyLine]; !present && !dc.misspelled(path, keyLine) {
			dc.d.add(t.at, "a test needs a %q", keyLine)
		}
		return testSpec{}, false
	}
	return t, true
}
