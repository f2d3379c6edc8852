// Package examples holds real configurations; this test compiles every one
// of them (and runs their inline tests) so none can rot.
package examples

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"reaction/compile"
)

func TestEveryExampleCompiles(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml", ".json", ".jsonnet":
		default:
			return nil
		}
		if strings.HasPrefix(filepath.Base(path), "_") {
			return nil
		}
		n++
		t.Run(path, func(t *testing.T) {
			res, err := compile.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Graph.Validate(); err != nil {
				t.Fatal(err)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("found only %d examples", n)
	}
}
