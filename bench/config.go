package bench

import (
	"fmt"
	"strconv"
	"strings"

	"reaction/bench/workload"
)

// Built-in configurations, one per workload kind. They are YAML text
// compiled by compile.Load like any operator's file, so that `reaction
// bench` measures the graph `reaction start` would run.
//
//   - sshd: one stream, filter failedlogin = the four regexes of upstream's
//     README example (workload.SSHDRegexes), <ip> of type ip, retry 3 within
//     6h, action ban now and unban after 48h.
//   - nginx: one stream, filter web = workload.NginxRegexes, same counting
//     and actions.
//   - mixed: one stream carrying both logs, with both filters (sshd and
//     web), as a journal without -u would be read.
//
// Padding filters (Options.Filters) are added to the stream: made-up
// services whose literals never occur in the generated lines, with the same
// counting and actions, the case "many filters, most lines match none".
//
// Action commands are never run by the in-process runs (a recording
// runner takes them): ban records "ban <ip>", unban "unban <ip>".
//
// The daemon run (Options.Daemon) writes its own variant: the same filters
// with a retry never reached (DaemonRetry), actions `true <ip>`, and a
// state_directory.

// BanCommand is argv[0] of the built-in configurations' ban action.
const BanCommand = "ban"

// builtinFilter is one filter of a built-in configuration.
type builtinFilter struct {
	name    string
	regexes []string
}

// builtinFilters returns the real filters of a workload kind's built-in
// configuration.
func builtinFilters(kind workload.Workload) []builtinFilter {
	ssh := builtinFilter{"failedlogin", workload.SSHDRegexes()}
	web := builtinFilter{"web", workload.NginxRegexes()}
	switch kind {
	case workload.Nginx:
		return []builtinFilter{web}
	case workload.Mixed:
		return []builtinFilter{ssh, web}
	}
	return []builtinFilter{ssh}
}

// Padding filters: service × event × variant gives distinct literals that
// start differently (the prefilter's multi-literal scan keys on a literal's
// first bytes) and appear in neither sshd nor nginx lines.
var (
	padServices = []string{"postfix/smtpd", "dovecot", "vsftpd", "proftpd", "asterisk", "named", "slapd", "mysqld", "gitea", "nextcloud"}
	padEvents   = []string{"login failed", "authentication rejected", "access denied", "bad credentials", "blocked request", "unknown account", "relay denied", "too many errors", "invalid token", "protocol violation"}
)

// padFilter returns the i-th padding filter (i from 0).
func padFilter(i int) builtinFilter {
	svc := padServices[i%len(padServices)]
	if v := i / (len(padServices) * len(padEvents)); v > 0 {
		svc += "-" + strconv.Itoa(v)
	}
	ev := padEvents[(i/len(padServices))%len(padEvents)]
	return builtinFilter{
		name:    fmt.Sprintf("pad%03d", i+1),
		regexes: []string{svc + `: ` + ev + ` for .* from <ip>`},
	}
}

// builtinYAML renders the built-in configuration of kind with its stream
// reading cmd, padded to total filters (0 or fewer than the real ones: no
// padding).
func builtinYAML(kind workload.Workload, cmd []string, total int) string {
	return configYAML(configSpec{
		kind: kind, cmd: cmd, total: total, retry: 3,
		ban: []string{BanCommand, "<ip>"}, unban: []string{"unban", "<ip>"},
	})
}

// DaemonRetry is the retry of the daemon run's configuration: a threshold
// no workload reaches, so that the daemon counts (and persists) every
// match and never spawns an action.
const DaemonRetry = 1_000_000_000

// daemonYAML renders the configuration of the daemon run: the filters of
// the built-in configuration of kind (padded to total), counting only
// (retry DaemonRetry), actions `true <ip>`, state in stateDir.
func daemonYAML(kind workload.Workload, cmd []string, total int, stateDir string) string {
	return configYAML(configSpec{
		kind: kind, cmd: cmd, total: total, retry: DaemonRetry, stateDir: stateDir,
		ban: []string{"true", "<ip>"}, unban: []string{"true", "<ip>"},
	})
}

// configSpec is what differs between the configurations the harness
// writes.
type configSpec struct {
	kind       workload.Workload
	cmd        []string
	total      int
	retry      int
	stateDir   string // "" = no state_directory key
	ban, unban []string
}

func configYAML(c configSpec) string {
	filters := builtinFilters(c.kind)
	for i := 0; len(filters) < c.total; i++ {
		filters = append(filters, padFilter(i))
	}
	var b strings.Builder
	b.WriteString("# reaction bench: built-in configuration for the " + string(c.kind) + " workload\n")
	if c.stateDir != "" {
		b.WriteString("state_directory: " + yamlQuote(c.stateDir) + "\n")
	}
	b.WriteString("patterns:\n  ip:\n    type: ip\n")
	b.WriteString("streams:\n  " + string(c.kind) + ":\n    cmd: " + yamlList(c.cmd) + "\n    filters:\n")
	for _, f := range filters {
		b.WriteString("      " + f.name + ":\n        regex:\n")
		for _, r := range f.regexes {
			b.WriteString("          - " + yamlQuote(r) + "\n")
		}
		b.WriteString("        retry: " + strconv.Itoa(c.retry) + "\n        retryperiod: 6h\n")
		b.WriteString("        actions:\n")
		b.WriteString("          ban:\n            cmd: " + yamlList(c.ban) + "\n")
		b.WriteString("          unban:\n            cmd: " + yamlList(c.unban) + "\n            after: 48h\n")
	}
	return b.String()
}

// yamlQuote single-quotes s for YAML, where a quote inside is doubled.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func yamlList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = yamlQuote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
