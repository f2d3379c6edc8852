package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"reaction/cmd/reaction/internal/daemon"
)

type startCmd struct {
	env *env
	configOpt
	socketOpt
	Level      logLevel `short:"l" long:"loglevel" description:"log level: DEBUG, INFO, WARN or ERROR" default:"INFO" value-name:"LEVEL"`
	CPUProfile string   `long:"cpuprofile" description:"write a CPU profile of the whole run to FILE (go tool pprof)" value-name:"FILE"`
}

func (c *startCmd) Execute(args []string) error {
	if len(args) > 0 {
		return usageErrorf("start: unexpected argument %q", args[0])
	}
	res, err := c.load()
	if err != nil {
		return err
	}
	log := newLogger(c.env.stderr, slog.Level(c.Level))
	defer keepMemoryLimit(log)()
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return usageErrorf("start: --cpuprofile: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return usageErrorf("start: --cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			log.Info("signal received: stopping (send it again to exit at once)", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			log.Error("second signal: exiting at once", "signal", s.String())
			os.Exit(exitRuntime)
		case <-done:
		}
	}()

	if err := daemon.Run(ctx, res, daemon.Options{Logger: log, Socket: c.Socket}); err != nil {
		return runtimeError(err)
	}
	log.Info("reaction stopped")
	return nil
}

// keepMemoryLimit runs a daemon.MemoryLimit with the default limit until
// the returned function is called, unless the GOMEMLIMIT environment
// variable is set (the runtime has applied it; "off" means none).
func keepMemoryLimit(log *slog.Logger) (stop func()) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Debug("Go soft memory limit from the environment", "GOMEMLIMIT", v)
		return func() {}
	}
	log.Debug("Go soft memory limit", "limit_mib", daemon.DefaultMemoryLimit>>20, "override", "GOMEMLIMIT")
	ml := daemon.NewMemoryLimit(daemon.DefaultMemoryLimit, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ml.Run(ctx) }()
	return func() { cancel(); <-done }
}

// defaultMemoryLimitText is daemon.DefaultMemoryLimit for help texts.
const defaultMemoryLimitText = "120 MiB"
