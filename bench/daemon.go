package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"reaction/bench/workload"
)

// Daemon is the run of the real daemon: the reaction executable started as
// a child `reaction start` on a `cat` stream of the workload, state on,
// timed from exec to exit.
type Daemon struct {
	Ran     bool     `json:"ran"`
	Command []string `json:"command,omitempty"`
	// Retry is the configuration's threshold, never reached: every match
	// is counted and persisted, no action runs.
	Retry    int  `json:"retry"`
	ExitCode *int `json:"exit_code"` // null when it could not be started

	Lines          uint64  `json:"lines"`   // lines of the workload (the daemon does not report them)
	Seconds        float64 `json:"seconds"` // exec to exit
	LinesPerSecond float64 `json:"lines_per_second"`
	// CPU of the daemon and of the children it waited for (`cat`, actions).
	UserSeconds   float64 `json:"user_seconds"`
	SystemSeconds float64 `json:"system_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	// PeakRSSBytes is the kernel's maxrss of the child (getrusage); it
	// counts the harness's resident set at the fork, HarnessRSSBytes, so it
	// is at least that.
	PeakRSSBytes    uint64 `json:"peak_rss_bytes"`
	HarnessRSSBytes uint64 `json:"harness_rss_bytes"`
	// StateBytes is the disk space used by the state directory when the
	// daemon has exited (the directory is removed afterwards).
	StateBytes uint64 `json:"state_bytes"`

	Note string `json:"note,omitempty"`
}

// wantDaemon reports whether Run measures the daemon: asked for, or
// implied by a fail2ban comparison that applies to the workload (its ratio
// is the one SPEC §6 sets).
func (h *harness) wantDaemon() bool {
	return h.o.Daemon || (h.o.Against == "fail2ban" && h.againstApplies())
}

// runDaemon starts `EXECUTABLE start -c CONFIG -s SOCKET` with a
// configuration written for the run (daemonYAML: the built-in filters,
// counting only, state in a fresh directory) and waits for it to exit,
// which it does when `cat` has finished. It never fails the Run: what
// went wrong is a note.
func (h *harness) runDaemon(ctx context.Context, lines uint64) *Daemon {
	d := &Daemon{Retry: DaemonRetry, Lines: lines}
	if !h.builtin {
		d.Note = "not run: the daemon run uses the built-in configuration (without -c)"
		return d
	}
	exe := h.o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			d.Note = "not run: the reaction executable: " + err.Error()
			return d
		}
	}
	base := h.dir
	if h.o.StateDir != "" {
		if err := os.MkdirAll(h.o.StateDir, 0o700); err != nil {
			d.Note = "not run: " + err.Error()
			return d
		}
		base = h.o.StateDir
	}
	dir, err := os.MkdirTemp(base, "reaction-bench-daemon-")
	if err != nil {
		d.Note = "not run: " + err.Error()
		return d
	}
	defer os.RemoveAll(dir)
	kind := h.kind
	if kind == "" {
		kind = workload.SSHD
	}
	stateDir := filepath.Join(dir, "state")
	config := filepath.Join(dir, "reaction.yml")
	if err := os.WriteFile(config, []byte(daemonYAML(kind, []string{"cat", h.file}, h.o.Filters, stateDir)), 0o600); err != nil {
		d.Note = "not run: " + err.Error()
		return d
	}
	d.Command = []string{exe, "start", "-c", config, "-s", filepath.Join(dir, "reaction.sock")}

	cmd := exec.CommandContext(ctx, d.Command[0], d.Command[1:]...)
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	stderr := &tailBuffer{max: 2000}
	cmd.Stderr = stderr

	// The child's maxrss starts at the harness's resident set (the kernel
	// carries it over the exec): make that small and say what it is.
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	d.HarnessRSSBytes = procStatus("/proc/self/status", "VmRSS:")

	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	ps := cmd.ProcessState
	if ps == nil {
		d.Note = "not run: " + err.Error()
		return d
	}
	code := ps.ExitCode()
	d.ExitCode = &code
	if err := ctx.Err(); err != nil {
		d.Note = "not measured: interrupted"
		return d
	}
	if code != 0 {
		err = errors.New(ps.String())
	}
	if err != nil {
		d.Note = fmt.Sprintf("not measured: reaction start: %v: %s", err, strings.TrimSpace(stderr.String()))
		return d
	}
	d.Ran = true
	d.Seconds = elapsed.Seconds()
	if d.Seconds > 0 {
		d.LinesPerSecond = float64(lines) / d.Seconds
	}
	d.UserSeconds = ps.UserTime().Seconds()
	d.SystemSeconds = ps.SystemTime().Seconds()
	d.CPUSeconds = d.UserSeconds + d.SystemSeconds
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		d.PeakRSSBytes = uint64(ru.Maxrss) << 10 // kB on Linux
	}
	d.StateBytes, err = diskUsage(stateDir)
	if err != nil {
		d.Note = "state directory: " + err.Error()
	}
	return d
}

// diskUsage is the space the files under dir take on disk (allocated
// blocks: the database's segments are preallocated sparse files).
func diskUsage(dir string) (uint64, error) {
	var n uint64
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += uint64(st.Blocks) * 512
		} else {
			n += uint64(info.Size())
		}
		return nil
	})
	return n, err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
