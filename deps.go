//go:build tools

package tools

import (
	_ "github.com/cespare/xxhash/v2"
	_ "github.com/cloudflare/ahocorasick"
	_ "github.com/google/go-jsonnet"
	_ "github.com/jessevdk/go-flags"
	_ "github.com/nutsdb/nutsdb"
	_ "gopkg.in/yaml.v3"
)
