package control

import (
	"errors"
	"fmt"
	"strings"
)

// The CLI's arguments, parsed here as pure functions so that they are
// tested without a daemon. Every error they return is a usage error.

// ParseLimit parses a -l argument: STREAM or STREAM.FILTER. The empty
// string selects every stream.
func ParseLimit(s string) (stream, filter string, err error) {
	if s == "" {
		return "", "", nil
	}
	parts := strings.Split(s, ".")
	switch {
	case len(parts) > 2:
		return "", "", fmt.Errorf("-l %q: expected STREAM or STREAM.FILTER (names cannot contain '.')", s)
	case parts[0] == "":
		return "", "", fmt.Errorf("-l %q: empty stream name", s)
	case len(parts) == 2 && parts[1] == "":
		return "", "", fmt.Errorf("-l %q: empty filter name", s)
	case len(parts) == 2:
		return parts[0], parts[1], nil
	}
	return parts[0], "", nil
}

// ParseAssignments parses NAME=RHS arguments into a map; rhs names the
// right-hand side in messages ("REGEX", "VALUE"). The right-hand side may
// contain '=' and may be empty; a name may be given once.
func ParseAssignments(args []string, rhs string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(args))
	for _, a := range args {
		name, val, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("%q: expected NAME=%s", a, rhs)
		case name == "":
			return nil, fmt.Errorf("%q: empty pattern name before '='", a)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("pattern %q given twice", name)
		}
		out[name] = val
	}
	return out, nil
}

// SelectRequest builds a show or flush request from -l and NAME=REGEX
// arguments. The regexes are compiled here too, so that a typo is a usage
// error before the daemon is asked.
func SelectRequest(cmd Command, limit string, args []string) (Request, error) {
	stream, filter, err := ParseLimit(limit)
	if err != nil {
		return Request{}, err
	}
	patterns, err := ParseAssignments(args, "REGEX")
	if err != nil {
		return Request{}, err
	}
	for name, src := range patterns {
		if _, err := CompileWhole(src); err != nil {
			return Request{}, fmt.Errorf("%q: %v", name+"="+src, err)
		}
	}
	return Request{Version: Version, Command: cmd, Stream: stream, Filter: filter, Patterns: patterns}, nil
}

// TriggerRequest builds a trigger request from -l STREAM.FILTER and
// NAME=VALUE arguments. The values are checked by the daemon, which knows
// the patterns' types.
func TriggerRequest(limit string, args []string) (Request, error) {
	if limit == "" {
		return Request{}, errors.New("trigger needs -l STREAM.FILTER")
	}
	stream, filter, err := ParseLimit(limit)
	if err != nil {
		return Request{}, err
	}
	if filter == "" {
		return Request{}, fmt.Errorf("-l %q: trigger needs STREAM.FILTER, not only a stream", limit)
	}
	values, err := ParseAssignments(args, "VALUE")
	if err != nil {
		return Request{}, err
	}
	return Request{Version: Version, Command: CommandTrigger, Stream: stream, Filter: filter, Values: values}, nil
}
