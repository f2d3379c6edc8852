package main

import (
	"time"

	"reaction/cmd/reaction/internal/control"
)

type showCmd struct {
	env *env
	socketOpt
	stateFormatOpt
	Limit string `short:"l" long:"limit" description:"only this stream, or only this filter" value-name:"STREAM[.FILTER]"`
	Args  struct {
		Keys []string `positional-arg-name:"NAME=REGEX" description:"only keys whose value of pattern NAME matches REGEX as a whole"`
	} `positional-args:"yes"`
}

func (c *showCmd) Execute(args []string) error {
	req, err := control.SelectRequest(control.CommandShow, c.Limit, append(c.Args.Keys, args...))
	if err != nil {
		return controlUsage("show", err)
	}
	resp, err := c.ask(req)
	if err != nil {
		return err
	}
	if resp.Snapshot == nil {
		return runtimeError(errNoSnapshot)
	}
	if err := control.WriteShow(c.env.stdout, *resp.Snapshot, c.Format, time.Now()); err != nil {
		return runtimeError(err)
	}
	return nil
}
