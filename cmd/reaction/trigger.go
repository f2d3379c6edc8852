package main

import (
	"reaction/cmd/reaction/internal/control"
)

type triggerCmd struct {
	env *env
	socketOpt
	stateFormatOpt
	Limit string `short:"l" long:"limit" description:"the filter whose actions to run" value-name:"STREAM.FILTER"`
	Args  struct {
		Values []string `positional-arg-name:"NAME=VALUE" description:"the value of each pattern of the filter"`
	} `positional-args:"yes"`
}

func (c *triggerCmd) Execute(args []string) error {
	req, err := control.TriggerRequest(c.Limit, append(c.Args.Values, args...))
	if err != nil {
		return controlUsage("trigger", err)
	}
	if _, err := c.ask(req); err != nil {
		return err
	}
	t := control.Triggered{Stream: req.Stream, Filter: req.Filter, Values: req.Values}
	if err := control.WriteTrigger(c.env.stdout, t, c.Format); err != nil {
		return runtimeError(err)
	}
	return nil
}
