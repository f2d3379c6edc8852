package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	flags "github.com/jessevdk/go-flags"

	"reaction/compile"
)

// Exit codes, as documented in the README.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitConfig  = 3
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries the exit code a command failure maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func runtimeError(err error) error { return &exitError{exitRuntime, err} }

// env is what every command gets instead of globals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// run parses args, runs the command and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	p := flags.NewNamedParser("reaction", flags.HelpFlag|flags.PassDoubleDash)
	p.LongDescription = "reaction scans the output of commands such as `journalctl -fu sshd` for repeated\n" +
		"offences, counts them per captured value (an IP address) in a time window,\n" +
		"and runs ban and delayed unban commands."
	commands := []struct {
		name, short, long string
		data              any
	}{
		{"start", "Run the daemon", "Run the daemon with a configuration file or directory.", &startCmd{env: e}},
		{"test-config", "Validate a configuration and print it normalized", "Compile the configuration, run its inline filter tests, and print the normalized configuration.", &testConfigCmd{env: e}},
		{"test-regex", "Test a regex or a configured filter against lines", "Test REGEX (which may use the configuration's <patterns>) or a configured filter STREAM.FILTER against LINE, or against every line of standard input.", &testRegexCmd{env: e}},
		{"graph", "Print the compiled pipeline", "Print the stage graph the configuration compiles into.", &graphCmd{env: e}},
		{"show", "Show current matches and pending actions", "Show the daemon's current matches (count per key) and pending actions with their due times, optionally only for STREAM[.FILTER] and for keys whose values match NAME=REGEX (as a whole).", newShowCmd(e)},
		{"flush", "Forget matches and run pending actions now", "Forget the selected keys' matches and run their pending actions now (a manual unban). Selects like show.", newFlushCmd(e)},
		{"trigger", "Run a filter's actions for given values", "Run the actions of filter STREAM.FILTER for the values NAME=VALUE, as if the filter had triggered (a manual ban).", &triggerCmd{env: e}},
		{"bench", "Measure the pipeline's throughput", benchLong, &benchCmd{env: e}},
		{"version", "Print the version", "Print the version.", &versionCmd{env: e}},
	}
	for _, c := range commands {
		if _, err := p.AddCommand(c.name, c.short, c.long, c.data); err != nil {
			panic(err) // programming error: bad struct tags
		}
	}
	if len(args) == 0 || args[0] == "help" {
		var buf strings.Builder
		p.WriteHelp(&buf)
		if len(args) > 1 {
			if c := p.Find(args[1]); c != nil {
				p.Active = c
				buf.Reset()
				p.WriteHelp(&buf)
			}
		}
		if len(args) == 0 {
			fmt.Fprint(stderr, buf.String())
			return exitUsage
		}
		fmt.Fprint(stdout, buf.String())
		return exitOK
	}
	_, err := p.ParseArgs(args)
	return report(stdout, stderr, err)
}

// report prints err for the person at the terminal and maps it to an exit code.
func report(stdout, stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ferr *flags.Error
	if errors.As(err, &ferr) {
		if ferr.Type == flags.ErrHelp {
			fmt.Fprintln(stdout, ferr.Message)
			return exitOK
		}
		fmt.Fprintf(stderr, "reaction: %s\nRun 'reaction help' for usage.\n", ferr.Message)
		return exitUsage
	}
	var cerr *compile.Errors
	if errors.As(err, &cerr) {
		fmt.Fprintln(stderr, cerr.Error())
		fmt.Fprintf(stderr, "reaction: configuration has %d error(s)\n", len(cerr.List))
		return exitConfig
	}
	var xerr *exitError
	if errors.As(err, &xerr) {
		fmt.Fprintf(stderr, "reaction: %s\n", xerr.err)
		return xerr.code
	}
	fmt.Fprintf(stderr, "reaction: %s\n", err)
	return exitRuntime
}

// configOpt is the -c option shared by commands that read a configuration.
type configOpt struct {
	Config string `short:"c" long:"config" description:"configuration file or directory" value-name:"CONFIG" required:"true"`
}

// load compiles the configuration: the one path every command takes.
func (o configOpt) load() (*compile.Result, error) {
	res, err := compile.Load(o.Config)
	if err != nil {
		var cerr *compile.Errors
		if errors.As(err, &cerr) {
			return nil, err
		}
		return nil, &exitError{exitConfig, err}
	}
	return res, nil
}

// logLevel parses -l values of `start`.
type logLevel slog.Level

func (l *logLevel) UnmarshalFlag(s string) error {
	switch strings.ToUpper(s) {
	case "DEBUG":
		*l = logLevel(slog.LevelDebug)
	case "INFO":
		*l = logLevel(slog.LevelInfo)
	case "WARN", "WARNING":
		*l = logLevel(slog.LevelWarn)
	case "ERROR":
		*l = logLevel(slog.LevelError)
	default:
		return fmt.Errorf("--loglevel: %q is not one of DEBUG, INFO, WARN, ERROR", s)
	}
	return nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type versionCmd struct{ env *env }

func (c *versionCmd) Execute(args []string) error {
	if len(args) > 0 {
		return usageErrorf("version takes no argument")
	}
	fmt.Fprintf(c.env.stdout, "reaction %s\n", version)
	return nil
}
