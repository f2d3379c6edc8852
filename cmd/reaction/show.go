package main

import (
	"io"
	"time"

	"reaction/cmd/reaction/internal/control"
)

// selectCmd is `show` and `flush`: both select keys the same way and
// differ only in the request they send and how they print the answer.
type selectCmd struct {
	env     *env
	command control.Command
	write   func(w io.Writer, s control.Snapshot, format string, now time.Time) error
	socketOpt
	stateFormatOpt
	Limit string `short:"l" long:"limit" description:"only this stream, or only this filter" value-name:"STREAM[.FILTER]"`
	Args  struct {
		Keys []string `positional-arg-name:"NAME=REGEX" description:"only keys whose value of pattern NAME matches REGEX as a whole"`
	} `positional-args:"yes"`
}

func newShowCmd(e *env) *selectCmd {
	return &selectCmd{env: e, command: control.CommandShow, write: control.WriteShow}
}

func newFlushCmd(e *env) *selectCmd {
	return &selectCmd{env: e, command: control.CommandFlush, write: control.WriteFlush}
}

func (c *selectCmd) Execute(args []string) error {
	req, err := control.SelectRequest(c.command, c.Limit, append(c.Args.Keys, args...))
	if err != nil {
		return controlUsage(string(c.command), err)
	}
	resp, err := c.ask(req)
	if err != nil {
		return err
	}
	if resp.Snapshot == nil {
		return runtimeError(errNoSnapshot)
	}
	if err := c.write(c.env.stdout, *resp.Snapshot, c.Format, time.Now()); err != nil {
		return runtimeError(err)
	}
	return nil
}
