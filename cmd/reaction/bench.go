package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"reaction/bench"
	"reaction/cmd/reaction/internal/daemon"
)

// benchLong is the help of `reaction bench`; the README's "Benchmarks"
// section says the same at more length.
const benchLong = "Measure the pipeline's throughput on a generated fail2ban-style workload (or a log file).\n\n" +
	"The configuration is compiled as by 'reaction start': -c CONFIG, or a built-in one per workload (sshd: upstream's four sshd regexes; nginx; mixed: both filters on one stream; <ip> patterns, retry 3 within 6h, ban, unban after 48h). Every stream's command becomes 'cat WORKLOAD', the real engine runs in-process, and action commands are recorded, never run.\n\n" +
	"Reported: lines/s of the whole run; per stage the counts and the cost of its core timed alone (prefilter pass rate and ns/line, prefilter+extract ns/line, counter ns/match); allocations and bytes per line; peak heap and RSS; the latency from a line to the action it starts (a second run, on a FIFO fed at --latency-rate lines/s); the settings used.\n\n" +
	"Knobs (0 keeps the compiled value, which 'reaction graph' shows): --batch-size (lines per batch, source to matcher; 128), --line-queue (batches buffered, source to matcher; 64), --shards (counter shards; 4), --workers (prefilter and extract goroutines per stream; 2), --filters N (pad the built-in stream to N filters whose literals occur in no line), --state DIR (persist through nutsdb in a fresh directory under DIR). Workload: --lines, --seed, --attackers, --attack-fraction; --save-workload FILE keeps the generated lines.\n\n" +
	"--daemon also times the real daemon: this executable started as 'reaction start -c CONFIG -s SOCKET' in a temporary directory, its stream 'cat WORKLOAD', the built-in filters with a retry never reached (every match counted and persisted, no action run; actions 'true <ip>'), state_directory a fresh directory (under --state DIR when given); reported: lines/s from exec to exit, user and system CPU (with cat's), peak RSS (maxrss), disk used by the state. It cannot be used with -c.\n\n" +
	"--against fail2ban also times 'fail2ban-regex --no-check-all WORKLOAD /etc/fail2ban/filter.d/sshd.conf' on the sshd workload (Debian package fail2ban), runs the daemon as --daemon does, and prints the ratio of the daemon's rate to fail2ban-regex's (SPEC: at least 100) and that of the in-process pipeline's.\n\n" +
	"Unless GOMEMLIMIT is set, the in-process pipeline runs under the Go soft memory limit 'reaction start' keeps (" + defaultMemoryLimitText + "); the daemon child sets its own."

type benchCmd struct {
	env *env

	Config   string `short:"c" long:"config" description:"configuration file or directory (default: built-in for the workload)" value-name:"CONFIG"`
	Workload string `short:"w" long:"workload" description:"sshd, nginx, mixed, or the path of a log file" default:"sshd" value-name:"sshd|nginx|mixed|FILE"`
	Lines    int    `short:"n" long:"lines" description:"lines to generate" default:"1000000" value-name:"N"`
	Seed     uint64 `long:"seed" description:"seed of the generated workload" default:"1" value-name:"N"`
	Format   string `short:"f" long:"format" description:"output format" choice:"text" choice:"json" default:"text"`

	Attackers      int     `long:"attackers" description:"distinct attacking addresses in the generated workload (0: 1000)" value-name:"N"`
	AttackFraction float64 `long:"attack-fraction" description:"share of attack lines in the generated workload (0: 0.25; negative: none)" value-name:"F"`
	SaveWorkload   string  `long:"save-workload" description:"write the generated workload to FILE and keep it" value-name:"FILE"`

	BatchSize int    `long:"batch-size" description:"lines per batch, source → matcher (0: as compiled)" value-name:"N"`
	LineQueue int    `long:"line-queue" description:"batches buffered, source → matcher (0: as compiled)" value-name:"N"`
	Shards    int    `long:"shards" description:"counter shards (0: as compiled)" value-name:"N"`
	Workers   int    `long:"workers" description:"prefilter and extract goroutines per stream (0: as compiled)" value-name:"N"`
	Filters   int    `long:"filters" description:"pad the built-in stream to N filters whose literals occur in no line" value-name:"N"`
	State     string `long:"state" description:"use a nutsdb state database in a fresh directory under DIR" value-name:"DIR"`

	LatencyLines int `long:"latency-lines" description:"lines of the paced latency run (negative: skip it)" default:"50000" value-name:"N"`
	LatencyRate  int `long:"latency-rate" description:"pace of the latency run in lines/s" default:"10000" value-name:"N"`

	Daemon    bool   `long:"daemon" description:"also time the real daemon, 'reaction start' as a child, on the same lines (state on, counting only)"`
	Against   string `long:"against" description:"also run another tool on the same lines (fail2ban: with the daemon run, see --daemon)" choice:"fail2ban" value-name:"TOOL"`
	F2BFilter string `long:"fail2ban-filter" description:"fail2ban filter for --against fail2ban" default:"/etc/fail2ban/filter.d/sshd.conf" value-name:"FILE"`

	CPUProfile string `long:"cpuprofile" description:"write a CPU profile of the pipeline run to FILE" value-name:"FILE"`
	MemProfile string `long:"memprofile" description:"write a heap profile taken after the pipeline run to FILE" value-name:"FILE"`
	Level      string `short:"l" long:"loglevel" description:"show the engine's logs at this level (DEBUG, INFO, WARN, ERROR); default: none" value-name:"LEVEL"`
}

func (c *benchCmd) Execute(args []string) error {
	if len(args) > 0 {
		return usageErrorf("bench: unexpected argument %q", args[0])
	}
	if c.Lines <= 0 {
		return usageErrorf("bench: --lines must be positive")
	}
	if c.LatencyRate <= 0 {
		return usageErrorf("bench: --latency-rate must be positive")
	}
	opts := bench.Options{
		Config: c.Config, Workload: c.Workload, Lines: c.Lines, Seed: c.Seed,
		Attackers: c.Attackers, AttackFraction: c.AttackFraction, SaveWorkload: c.SaveWorkload,
		Filters: c.Filters, BatchSize: c.BatchSize, LineQueue: c.LineQueue, Shards: c.Shards, Workers: c.Workers,
		StateDir: c.State, LatencyLines: c.LatencyLines, LatencyRate: c.LatencyRate,
		Daemon: c.Daemon, Against: c.Against, F2BFilter: c.F2BFilter,
		CPUProfile: c.CPUProfile, MemProfile: c.MemProfile,
	}
	if c.LatencyLines == 0 {
		opts.LatencyLines = -1
	}
	if c.Level != "" {
		var l logLevel
		if err := l.UnmarshalFlag(c.Level); err != nil {
			return usageErrorf("bench: %v", err)
		}
		opts.Logger = newLogger(c.env.stderr, slog.Level(l))
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		opts.MemoryLimit = daemon.DefaultMemoryLimit
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		var uerr *bench.UsageError
		var cerr *bench.ConfigError
		switch {
		case errors.As(err, &uerr):
			return usageErrorf("bench: %s", uerr.Msg)
		case errors.As(err, &cerr):
			return &exitError{exitConfig, cerr.Err}
		}
		return runtimeError(err)
	}
	if c.Format == "json" {
		err = rep.WriteJSON(c.env.stdout)
	} else {
		err = rep.WriteText(c.env.stdout)
	}
	if err != nil {
		return runtimeError(err)
	}
	return nil
}
