package compile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration, located for the person who
// wrote it.
type Error struct {
	File   string
	Line   int    // 0 = unknown (always for values produced by Jsonnet)
	Column int    // 0 = unknown; only set for Jsonnet evaluation errors
	Path   string // config path, e.g. streams.ssh.filters.failedlogin.regex[2]
	Msg    string
}

// Error renders "file:line: path: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration. Load returns it when
// the configuration is wrong, as opposed to unreadable.
type Errors struct {
	List []*Error
}

// Error prints one error per line, sorted by file, line and path.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, err := range e.List {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *Errors) sort() {
	slices.SortStableFunc(e.List, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	// The same problem reached twice (through a YAML alias, say) is shown once.
	e.List = slices.CompactFunc(e.List, func(a, b *Error) bool { return *a == *b })
}

// loc is where a value of the configuration comes from.
type loc struct {
	file string
	line int // 0 when unknown
	path string
}

func (l loc) with(path string) loc { return loc{file: l.file, line: l.line, path: path} }

// diag collects errors; nothing in compile stops at the first one.
type diag struct {
	list []*Error
}

func (d *diag) add(l loc, format string, args ...any) {
	d.list = append(d.list, &Error{File: l.file, Line: l.line, Path: l.path, Msg: fmt.Sprintf(format, args...)})
}

func (d *diag) err() error {
	if len(d.list) == 0 {
		return nil
	}
	e := &Errors{List: d.list}
	e.sort()
	return e
}
