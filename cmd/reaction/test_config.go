package main

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"
)

type testConfigCmd struct {
	env *env
	configOpt
	Format string `short:"f" long:"format" description:"output format" choice:"yaml" choice:"json" default:"yaml"`
}

func (c *testConfigCmd) Execute(args []string) error {
	if len(args) > 0 {
		return usageErrorf("test-config: unexpected argument %q", args[0])
	}
	res, err := c.load()
	if err != nil {
		return err
	}
	switch c.Format {
	case "json":
		enc := json.NewEncoder(c.env.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res.Config)
	default:
		enc := yaml.NewEncoder(c.env.stdout)
		enc.SetIndent(2)
		err = enc.Encode(res.Config)
		if err == nil {
			err = enc.Close()
		}
	}
	if err != nil {
		return runtimeError(fmt.Errorf("printing the configuration: %w", err))
	}
	return nil
}
