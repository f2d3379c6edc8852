package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// reaction start keeps the default Go soft memory limit, unless
// GOMEMLIMIT is set: then the runtime's is left alone.
func TestStartMemoryLimit(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"", `msg="Go soft memory limit" limit_mib=120`},
		{"200MiB", `msg="Go soft memory limit from the environment" GOMEMLIMIT=200MiB`},
	} {
		t.Run("GOMEMLIMIT="+tt.env, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tt.env)
			dir := shortDir(t)
			writeFile(t, filepath.Join(dir, "reaction.yml"), `
streams:
  s:
    cmd: ['true']
    filters:
      f:
        regex: ['offence']
        actions:
          a:
            cmd: ['true']
`)
			r := reaction(t, dir, "start", "-c", "reaction.yml", "-s", filepath.Join(dir, "r.sock"), "-l", "DEBUG")
			if r.code != 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want 0 and a log line with %q:\n%s", r.code, tt.want, r.stderr)
			}
		})
	}
}
