package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"reaction/compile"
	"reaction/graph"
)

type testRegexCmd struct {
	env *env
	configOpt
	Format string `short:"f" long:"format" description:"output format" choice:"text" choice:"json" default:"text"`
	Trace  bool   `short:"t" long:"trace" description:"REGEX names a stream (STREAM or STREAM.FILTER): show each line's path through its compiled nodes, counting matches from line to line"`
	Args   struct {
		Regex string `positional-arg-name:"REGEX" required:"yes" description:"a regex using the configuration's <patterns>, or STREAM.FILTER"`
		Line  string `positional-arg-name:"LINE" description:"the line to test; without it, lines are read from standard input"`
	} `positional-args:"yes"`
}

// lineResult is one tested line, also the --format json output (one object per line).
type lineResult struct {
	Line    string            `json:"line"`
	Matched bool              `json:"matched"`
	Regex   int               `json:"regex,omitempty"`   // index of the regex that matched
	Values  map[string]string `json:"values,omitempty"`  // pattern name → normalized value
	Ignored string            `json:"ignored,omitempty"` // why a matched line does not count
}

func (c *testRegexCmd) Execute(args []string) error {
	if len(args) > 0 {
		return usageErrorf("test-regex: unexpected argument %q", args[0])
	}
	res, err := c.load()
	if err != nil {
		return err
	}
	if c.Trace {
		return c.trace(res)
	}
	x, err := c.extract(res)
	if err != nil {
		return err
	}
	if c.Args.Line != "" {
		return c.print(test(x, c.Args.Line))
	}
	var lines, matched, ignored int
	err = eachLine(c.env.stdin, func(line string) error {
		lines++
		lr := test(x, line)
		switch {
		case lr.Ignored != "":
			ignored++
		case lr.Matched:
			matched++
		}
		if lr.Matched || c.Format == "json" {
			return c.print(lr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.Format == "text" {
		fmt.Fprintf(c.env.stdout, "%d lines: %d matched, %d ignored, %d did not match\n", lines, matched, ignored, lines-matched-ignored)
	}
	return nil
}

// extract finds the configured filter STREAM.FILTER, or compiles REGEX
// with the configuration's patterns.
func (c *testRegexCmd) extract(res *compile.Result) (*graph.Extract, error) {
	if stream, filter, ok := strings.Cut(c.Args.Regex, "."); ok && !strings.Contains(filter, ".") {
		if n := res.Graph.Node(graph.ExtractID(stream, filter)); n != nil {
			return n.Extract, nil
		}
	}
	x, err := compile.Expression(res, c.Args.Regex)
	if err != nil {
		return nil, &exitError{exitConfig, fmt.Errorf("REGEX: %w", err)}
	}
	return x, nil
}

func test(x *graph.Extract, line string) lineResult {
	values, which, matched, reason := x.Match([]byte(line))
	lr := lineResult{Line: line, Matched: matched, Regex: which, Ignored: string(reason)}
	if matched && reason == graph.ReasonOK && len(values) > 0 {
		lr.Values = make(map[string]string, len(values))
		for i, p := range x.Patterns {
			lr.Values[p.Name] = values[i]
		}
	}
	if !matched {
		lr.Regex = 0
	}
	return lr
}

func (c *testRegexCmd) print(lr lineResult) error {
	w := c.env.stdout
	if c.Format == "json" {
		return json.NewEncoder(w).Encode(lr)
	}
	switch {
	case !lr.Matched:
		fmt.Fprintf(w, "no match   %s\n", lr.Line)
	case lr.Ignored != "":
		fmt.Fprintf(w, "ignored    %s\n           %s\n", lr.Line, lr.Ignored)
	default:
		fmt.Fprintf(w, "match      %s\n", lr.Line)
		for _, name := range slices.Sorted(maps.Keys(lr.Values)) {
			fmt.Fprintf(w, "           <%s> = %s\n", name, lr.Values[name])
		}
	}
	return nil
}

func (c *testRegexCmd) trace(res *compile.Result) error {
	t, err := newTracer(res.Graph, c.Args.Regex)
	if err != nil {
		return usageErrorf("test-regex --trace: %v", err)
	}
	if c.Args.Line != "" {
		return printTrace(c.env.stdout, t.trace(c.Args.Line), c.Format)
	}
	return eachLine(c.env.stdin, func(line string) error {
		return printTrace(c.env.stdout, t.trace(line), c.Format)
	})
}

// eachLine calls f for every line of r, without its line ending.
func eachLine(r io.Reader, f func(string) error) error {
	br := bufio.NewReaderSize(r, graph.DefaultMaxLine)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if ferr := f(strings.TrimRight(line, "\r\n")); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return runtimeError(fmt.Errorf("reading standard input: %w", err))
		}
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
