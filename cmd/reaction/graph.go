package main

import (
	"reaction/cmd/reaction/internal/control"
	"reaction/graph"
)

type graphCmd struct {
	env *env
	configOpt
	socketOpt
	Live   bool   `long:"live" description:"annotate each node with the running daemon's counters (read over the socket)"`
	Format string `short:"f" long:"format" description:"output format" choice:"text" choice:"dot" choice:"mermaid" choice:"json" default:"text"`
}

func (c *graphCmd) Execute(args []string) error {
	if len(args) > 0 {
		return usageErrorf("graph: unexpected argument %q", args[0])
	}
	res, err := c.load()
	if err != nil {
		return err
	}
	var live map[string]map[string]uint64
	if c.Live {
		resp, err := c.ask(control.Request{Command: control.CommandStats})
		if err != nil {
			return err
		}
		live = resp.Stats
	}
	if err := graph.Render(c.env.stdout, res.Graph, graph.Format(c.Format), live); err != nil {
		return runtimeError(err)
	}
	return nil
}
