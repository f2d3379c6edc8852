package compile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/go-jsonnet"
	"github.com/google/go-jsonnet/ast"
	"gopkg.in/yaml.v3"
)

type format int

const (
	formatYAML format = iota
	formatJSON
	formatJsonnet
)

func formatOf(file string) format {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yml", ".yaml":
		return formatYAML
	case ".json":
		return formatJSON
	default: // .jsonnet, .libsonnet and anything else
		return formatJsonnet
	}
}

// dirExtensions are the files read from a configuration directory.
// Libraries (.libsonnet) are left out: they are meant to be imported.
var dirExtensions = []string{".yml", ".yaml", ".json", ".jsonnet"}

// configFiles lists the files a path stands for: itself, or for a
// directory its configuration files in name order.
func configFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || e.IsDir() {
			continue
		}
		if !contains(dirExtensions, strings.ToLower(filepath.Ext(name))) {
			continue
		}
		full := filepath.Join(path, name)
		if info, err := os.Stat(full); err != nil || info.IsDir() { // a symlink to a directory
			continue
		}
		files = append(files, full)
	}
	sort.Strings(files)
	return files, nil
}

// readFile parses one configuration file into a spec. Syntax and
// evaluation errors go to d; the error returned is for I/O only.
func readFile(file string, d *diag) (*configSpec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	f := formatOf(file)
	if f == formatJsonnet {
		out, ok := evalJsonnet(file, data, d)
		if !ok {
			return nil, nil
		}
		data = []byte(out)
	}
	if f != formatYAML {
		data = yamlSafeJSON(data)
	}
	root, ok := parseYAML(file, data, d)
	if !ok {
		return nil, nil
	}
	return newDecoder(file, f != formatJsonnet, d).config(root), nil
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parseYAML(file string, data []byte, d *diag) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	err := dec.Decode(&root)
	if errors.Is(err, io.EOF) {
		return nil, true
	}
	if err == nil {
		var next yaml.Node
		if err2 := dec.Decode(&next); !errors.Is(err2, io.EOF) {
			line := 0
			if err2 == nil {
				line = next.Line
			}
			d.list = append(d.list, &Error{File: file, Line: line, Msg: "a configuration file holds one YAML document, this one has several"})
			return nil, false
		}
		return &root, true
	}
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	d.list = append(d.list, e)
	return nil, false
}

// yamlSafeJSON rewrites JSON string literals so that YAML reads them as
// JSON does: YAML refuses some JSON escapes (`\/`, surrogate pairs). Each
// literal is decoded as JSON and written back as a YAML double-quoted
// string on the same line, so line numbers are kept.
func yamlSafeJSON(data []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		j := i + 1
		for j < len(data) && data[j] != '"' && data[j] != '\n' {
			if data[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(data) || data[j] != '"' {
			break // unterminated: let the YAML parser report it
		}
		lit := data[i : j+1]
		var s string
		if needsRewrite(lit) {
			if err := json.Unmarshal(lit, &s); err == nil {
				out = append(out, data[last:i]...)
				out = appendYAMLQuoted(out, s)
				last = j + 1
			}
		}
		i = j
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

// needsRewrite tells whether a JSON string literal may read differently
// as YAML: escapes, and non-ASCII text YAML may refuse raw (C1 controls,
// byte order marks, invalid UTF-8).
func needsRewrite(lit []byte) bool {
	for _, c := range lit {
		if c == '\\' || c >= 0x80 {
			return true
		}
	}
	return false
}

func appendYAMLQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == 0x2028 || r == 0x2029: // line breaks to YAML: escaped, like 0x85 below
			b = fmt.Appendf(b, `\u%04x`, r)
		case (r >= 0x20 && r <= 0x7e) || (r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd && r != 0xfeff) || r >= 0x10000:
			b = utf8.AppendRune(b, r)
		case r <= 0xffff:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = fmt.Appendf(b, `\U%08x`, r)
		}
	}
	return append(b, '"')
}

// evalJsonnet evaluates a Jsonnet file with a fresh VM (a VM caches its
// imports, and a reload must see edited files). Imports are relative to
// the file. std.trace output is discarded: compile writes nothing.
func evalJsonnet(file string, data []byte, d *diag) (string, bool) {
	vm := jsonnet.MakeVM()
	ef := &jsonnetErrors{file: file}
	vm.ErrorFormatter = ef
	vm.SetTraceOut(io.Discard)
	out, err := vm.EvaluateSnippet(file, string(data))
	if err != nil {
		e := ef.last
		if e == nil {
			e = &Error{File: file, Msg: oneLine(err.Error())}
		}
		d.list = append(d.list, e)
		return "", false
	}
	return out, true
}

// jsonnetErrors is a jsonnet.ErrorFormatter that renders an error on one
// line, "file:line:col: message", and keeps it as an *Error.
type jsonnetErrors struct {
	file string
	last *Error
}

func (f *jsonnetErrors) Format(err error) string {
	e := &Error{File: f.file}
	var lr ast.LocationRange
	switch err := err.(type) {
	case jsonnet.RuntimeError:
		e.Msg = err.Msg
		// Frames go from the outermost call to where the error was raised.
		for _, fr := range err.StackTrace {
			if fr.Loc.IsSet() {
				lr = fr.Loc
			}
		}
	case interface {
		error
		Loc() ast.LocationRange
	}: // static (parse) errors
		lr = err.Loc()
		e.Msg = err.Error()
		if lr.IsSet() {
			// The message starts with the location; keep only the message.
			e.Msg = strings.TrimPrefix(e.Msg, lr.String()+" ")
		}
	default:
		e.Msg = err.Error()
	}
	if lr.IsSet() {
		if lr.File != nil && lr.File.DiagnosticFileName != "" {
			e.File = string(lr.File.DiagnosticFileName)
		} else if lr.FileName != "" {
			e.File = lr.FileName
		}
		e.Line, e.Column = lr.Begin.Line, lr.Begin.Column
	}
	e.Msg = "jsonnet: " + oneLine(e.Msg)
	f.last = e
	return e.Error()
}

func (f *jsonnetErrors) SetMaxStackTraceSize(int)                 {}
func (f *jsonnetErrors) SetColorFormatter(jsonnet.ColorFormatter) {}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
