// Package daemon wires a compiled configuration into a running reaction:
// start commands, the stage engine, stop commands. It owns the order of
// startup and shutdown; it does not parse flags nor handle signals (the
// caller cancels the context).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"reaction/cmd/reaction/internal/control"
	"reaction/compile"
	"reaction/graph"
	"reaction/stages"
	"reaction/stages/nutsstore"
)

// Options are the daemon's collaborators; zero values mean the real ones.
type Options struct {
	Logger *slog.Logger
	Runner stages.Runner
	Socket string // control socket path; "" = none
	// Stateless runs without a state database (bench, tests); otherwise the
	// database in the configuration's state_directory is opened.
	Stateless bool
}

// Run runs the daemon until every stream has finished or ctx is done.
//
// Order: start commands (a failure aborts: the stop commands are run to
// undo what the start commands did, and Run fails), then the engine, then
// the stop commands. The engine runs pending onexit actions and awaits
// running actions before it returns.
func Run(ctx context.Context, res *compile.Result, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	runner := opts.Runner
	if runner == nil {
		runner = stages.ExecRunner{}
	}
	g := res.Graph
	timeout := graph.DefaultTimeout
	if x := g.Executor(); x != nil && x.Timeout > 0 {
		timeout = x.Timeout
	}

	// The state database and the socket come first: a second daemon must
	// refuse before it runs any start command.
	var store stages.Store
	if !opts.Stateless {
		dir := g.Settings.StateDirectory
		if dir == "" {
			dir = "."
		}
		db, err := nutsstore.Open(dir, nutsstore.Options{Logger: log, RotationInterval: g.Settings.RotationInterval})
		if err != nil {
			return fmt.Errorf("state database: %w", err)
		}
		for _, r := range db.Recovered() {
			log.Warn("state database repaired", "what", r)
		}
		defer func() {
			if err := db.Close(); err != nil {
				log.Error("closing the state database", "error", err)
			}
		}()
		cctx, stopCompaction := context.WithCancel(context.WithoutCancel(ctx))
		compacted := make(chan struct{})
		go func() { defer close(compacted); _ = db.Run(cctx) }()
		defer func() { stopCompaction(); <-compacted }()
		store = db
	}

	var srv *control.Server
	if opts.Socket != "" {
		var err error
		if srv, err = control.Listen(opts.Socket); err != nil {
			return err
		}
		defer srv.Close()
		srv.Logger = log
	}

	if err := runAll(context.WithoutCancel(ctx), log, runner, "start", g.Settings.Start, timeout, true); err != nil {
		_ = runAll(context.WithoutCancel(ctx), log, runner, "stop", g.Settings.Stop, timeout, false)
		return err
	}

	engine, err := stages.New(g, stages.Options{Logger: log, Runner: runner, Store: store})
	var runErr error
	if err != nil {
		runErr = fmt.Errorf("engine: %w", err)
	} else {
		log.Info("reaction started", "streams", len(g.Of(graph.KindSource)), "filters", len(g.Of(graph.KindExtract)))
		serveDone := make(chan error, 1)
		sctx, stopServe := context.WithCancel(ctx)
		if srv != nil {
			// Answer only once state is restored: before that, show would
			// be empty and trigger would fail. Clients wait in the backlog.
			go func() {
				select {
				case <-engine.Ready():
					serveDone <- srv.Serve(sctx, newController(engine, g))
				case <-sctx.Done():
					serveDone <- nil
				}
			}()
		} else {
			serveDone <- nil
		}
		runErr = engine.Run(ctx)
		stopServe()
		if err := <-serveDone; err != nil {
			log.Error("control socket", "error", err)
		}
	}
	// Stop commands run whatever happened: they undo the start commands.
	stopErr := runAll(context.WithoutCancel(ctx), log, runner, "stop", g.Settings.Stop, timeout, false)
	return errors.Join(runErr, stopErr)
}

// runAll runs commands in order. With abort, the first failure stops the
// sequence and is returned; otherwise every command runs and failures are
// logged and returned together.
func runAll(ctx context.Context, log *slog.Logger, runner stages.Runner, what string, cmds [][]string, timeout time.Duration, abort bool) error {
	var errs []error
	for i, argv := range cmds {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		code, out, err := runner.Run(cctx, argv)
		cancel()
		attrs := []any{"command", strings.Join(argv, " ")}
		if len(out) > 0 {
			attrs = append(attrs, "output", strings.TrimSpace(string(out)))
		}
		if err == nil && code == 0 {
			log.Info(what+" command ran", attrs...)
			continue
		}
		if err == nil {
			err = fmt.Errorf("exit status %d", code)
		}
		err = fmt.Errorf("%s[%d] %q: %w", what, i, strings.Join(argv, " "), err)
		log.Error(what+" command failed", append(attrs, "error", err)...)
		errs = append(errs, err)
		if abort {
			return err
		}
	}
	return errors.Join(errs...)
}
