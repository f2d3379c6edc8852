// Package compile turns configuration files (YAML, JSON, Jsonnet; one file
// or a directory) into a *graph.Graph, or into every error they contain at
// once, each with its file, line (YAML and JSON) and config path.
//
// compile is pure: it starts no goroutine, opens no socket nor database,
// runs no command and reads nothing but configuration files (and what
// Jsonnet imports). Every command that reads a configuration goes through
// Load, so validation is never a second code path.
package compile

import (
	"errors"
	"runtime"
	"strings"
	"time"

	"reaction/graph"
)

// DefaultShards is the number of counter shards per filter. It is a
// constant, not the number of CPUs, so that a configuration compiles to
// the same graph on every machine.
const DefaultShards = 4

// Rotation bounds of the state database.
const (
	DefaultRotationInterval = 24 * time.Hour
	MinRotationInterval     = 30 * time.Minute
)

// Result is a compiled configuration.
type Result struct {
	Graph  *graph.Graph
	Config *Config  // normalized, for test-config
	Files  []string // the configuration files read, in merge order
}

// options are Load's inputs besides the files. Tests fix them so that
// goldens do not depend on the machine.
type options struct {
	numCPU int // what concurrency 0 resolves to
}

// Load reads a configuration file or directory and compiles it. The error
// is an *Errors when the configuration is wrong (including failing inline
// tests), another error when it cannot be read.
func Load(path string) (*Result, error) {
	return load(path, options{numCPU: runtime.NumCPU()})
}

func load(path string, o options) (*Result, error) {
	files, err := configFiles(path)
	if err != nil {
		return nil, err
	}
	d := &diag{}
	if len(files) == 0 {
		d.add(loc{file: path}, "no configuration file (%s) in this directory", strings.Join(dirExtensions, ", "))
		return nil, d.err()
	}
	c := &configSpec{patterns: map[string]*patternSpec{}, streams: map[string]*streamSpec{}}
	parsed := true
	for _, f := range files {
		spec, err := readFile(f, d)
		if err != nil {
			return nil, err
		}
		if spec == nil {
			parsed = false // keep reading: report every file's syntax errors
			continue
		}
		merge(c, spec, d)
	}
	if !parsed {
		// What a broken file defines is unknown: compiling the rest would
		// report errors (unknown patterns, no stream) that are not there.
		return nil, d.err()
	}
	b := &builder{d: d, o: o, path: path}
	g, cfg := b.build(c)
	g.Settings.Files = files
	if err := d.err(); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, errors.Join(errors.New("compile: internal error: the compiled graph is invalid"), err)
	}
	return &Result{Graph: g, Config: cfg, Files: files}, nil
}
