package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"reaction/bench/workload"
)

// f2bLines parses fail2ban-regex's summary line
// "Lines: 1000000 lines, 0 ignored, 250000 matched, 750000 missed".
var f2bLines = regexp.MustCompile(`Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed`)

// against runs fail2ban-regex --no-check-all on the same file with the
// stock sshd filter and compares its rate with the in-process pipeline's
// and, when it was measured, the daemon's. It never
// fails the run: a missing tool or filter is a note in the report.
func (h *harness) against(ctx context.Context, rep *Report) *Against {
	a := &Against{Tool: "fail2ban", Filter: h.o.F2BFilter}
	if !h.againstApplies() {
		a.Note = "not run: the comparison uses fail2ban's sshd filter, which only applies to the sshd workload"
		return a
	}
	path, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		a.Note = "not run: fail2ban-regex is not installed (Debian/Ubuntu: apt-get install fail2ban)"
		return a
	}
	if _, err := os.Stat(h.o.F2BFilter); err != nil {
		a.Note = fmt.Sprintf("not run: fail2ban filter %s: %v", h.o.F2BFilter, err)
		return a
	}
	a.Command = []string{path, "--no-check-all", h.file, h.o.F2BFilter}
	cmd := exec.CommandContext(ctx, a.Command[0], a.Command[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		tail := out.Bytes()
		if len(tail) > 500 {
			tail = tail[len(tail)-500:]
		}
		a.Note = fmt.Sprintf("not measured: fail2ban-regex failed: %v: %s", err, bytes.TrimSpace(tail))
		return a
	}
	a.Ran = true
	a.Seconds = d.Seconds()
	lines := rep.Lines
	if m := f2bLines.FindSubmatch(out.Bytes()); m != nil {
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
		matched, _ := strconv.ParseUint(string(m[3]), 10, 64)
		lines = n
		a.Lines = n
		a.Matched = &matched
	} else {
		a.Lines = lines
		a.Note = "fail2ban-regex's summary line was not found; its rate assumes it read every line"
	}
	if a.Seconds > 0 {
		a.LinesPerSecond = float64(lines) / a.Seconds
	}
	if a.LinesPerSecond > 0 {
		a.Ratio = rep.LinesPerSecond / a.LinesPerSecond
		if d := rep.Daemon; d != nil && d.Ran {
			r := d.LinesPerSecond / a.LinesPerSecond
			a.DaemonRatio = &r
		}
	}
	return a
}

// againstApplies reports whether fail2ban's sshd filter applies to the
// workload: the sshd one, or a log file (the operator's call).
func (h *harness) againstApplies() bool {
	return h.kind == "" || h.kind == workload.SSHD
}
