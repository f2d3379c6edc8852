package control

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Output formats of show, flush and trigger.
const (
	FormatText = "text"
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// WriteShow prints the answer to show. now is the reference of relative
// due times, and its location is the zone times are shown in.
func WriteShow(w io.Writer, s Snapshot, format string, now time.Time) error {
	if format != FormatText {
		return writeData(w, s, format)
	}
	keys, _ := s.Counts()
	if keys == 0 {
		_, err := fmt.Fprintln(w, "no matches and no pending actions")
		return err
	}
	return writeTables(w, s, now, "MATCHES", "PENDING ACTIONS", "DUE", true)
}

// WriteFlush prints the answer to flush: what was forgotten and which
// pending actions were run.
func WriteFlush(w io.Writer, s Snapshot, format string, now time.Time) error {
	if format != FormatText {
		return writeData(w, s, format)
	}
	keys, actions := s.Counts()
	if keys == 0 {
		_, err := fmt.Fprintln(w, "nothing to flush")
		return err
	}
	if _, err := fmt.Fprintf(w, "flushed %s, ran %s now\n\n", plural(keys, "key"), plural(actions, "pending action")); err != nil {
		return err
	}
	return writeTables(w, s, now, "FORGOTTEN MATCHES", "ACTIONS RUN NOW", "WAS DUE", false)
}

// WriteTrigger prints the answer to trigger.
func WriteTrigger(w io.Writer, t Triggered, format string) error {
	if t.Values == nil {
		t.Values = map[string]string{}
	}
	if format != FormatText {
		return writeData(w, t, format)
	}
	names := make([]string, 0, len(t.Values))
	for name := range t.Values {
		names = append(names, name)
	}
	slices.Sort(names)
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = t.Values[n]
	}
	_, err := fmt.Fprintf(w, "triggered %s.%s %s\n", t.Stream, t.Filter, key(names, values))
	return err
}

func writeData(w io.Writer, v any, format string) error {
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case FormatYAML:
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return fmt.Errorf("unknown format %q (formats: %s, %s, %s)", format, FormatText, FormatJSON, FormatYAML)
}

// writeTables prints the matches and the pending actions as two aligned
// tables; withRelative adds "(in 47h59m)" to due times.
func writeTables(w io.Writer, s Snapshot, now time.Time, matchesTitle, pendingTitle, dueTitle string, withRelative bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	var nMatches, nPending int
	for _, f := range s.Filters {
		nMatches += len(f.Matches)
		nPending += len(f.Pending)
	}
	if nMatches > 0 {
		fmt.Fprintf(tw, "%s\nFILTER\tKEY\tCOUNT\n", matchesTitle)
		for _, f := range s.Filters {
			for _, m := range f.Matches {
				fmt.Fprintf(tw, "%s.%s\t%s\t%d\n", f.Stream, f.Filter, key(f.Patterns, m.Values), m.Count)
			}
		}
	}
	if nPending > 0 {
		if nMatches > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s\nFILTER\tKEY\tACTION\t%s\n", pendingTitle, dueTitle)
		for _, f := range s.Filters {
			for _, p := range f.Pending {
				due := p.Due.In(now.Location()).Format("2006-01-02 15:04:05 MST")
				if withRelative {
					due += " (" + relative(p.Due.Sub(now)) + ")"
				}
				fmt.Fprintf(tw, "%s.%s\t%s\t%s\t%s\n", f.Stream, f.Filter, key(f.Patterns, p.Values), visible(p.Action), due)
			}
		}
	}
	return tw.Flush()
}

// key shows a key as name=value pairs. Values come from logs: anything
// that could disturb a terminal or the table is quoted.
func key(patterns, values []string) string {
	if len(values) == 0 {
		return "-"
	}
	parts := make([]string, len(values))
	for i, v := range values {
		if i < len(patterns) {
			parts[i] = patterns[i] + "=" + visible(v)
		} else {
			parts[i] = visible(v)
		}
	}
	return strings.Join(parts, " ")
}

func visible(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '\\' || r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// relative says when a due time comes: "in 47h59m", "in 12s", "due now".
func relative(d time.Duration) string {
	switch {
	case d <= 0:
		return "due now"
	case d < time.Minute:
		return "in " + max(d.Round(time.Second), time.Second).String()
	}
	s := strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s") // "47h59m", "1h0m", "5m"
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return "in " + s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
