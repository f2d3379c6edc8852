package main

import (
	"reaction/graph"
)

type graphCmd struct {
	env *env
	configOpt
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
	if err := graph.Render(c.env.stdout, res.Graph, graph.Format(c.Format), nil); err != nil {
		return runtimeError(err)
	}
	return nil
}
