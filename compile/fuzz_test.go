package compile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var fuzzExtensions = []string{".yml", ".json", ".jsonnet"}

// FuzzCompile asserts that Load never panics, whatever the file, and that
// what it returns is coherent: a validated graph, or errors that each name
// their file.
func FuzzCompile(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		for _, path := range corpus(f, dir) {
			data, err := os.ReadFile(path)
			if err != nil {
				continue // a directory configuration
			}
			for i, ext := range fuzzExtensions {
				if ext == filepath.Ext(path) {
					f.Add(data, uint8(i))
				}
			}
		}
	}
	f.Add([]byte("a: &a\n  <<: *a\n"), uint8(0))
	f.Add([]byte("streams: &s { s: { cmd: [c], filters: *s } }"), uint8(0))
	f.Add([]byte(`{"streams": {"s": {"cmd": ["\ud800"]}}}`), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		path := filepath.Join(t.TempDir(), "fuzz"+fuzzExtensions[int(kind)%len(fuzzExtensions)])
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := load(path, testOptions)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("not an *Errors: %v", err)
			}
			for _, e := range errs.List {
				if e.File == "" || e.Msg == "" {
					t.Fatalf("incomplete error %+v", e)
				}
			}
			return
		}
		if r.Graph == nil || r.Config == nil || r.Graph.Validate() != nil {
			t.Fatalf("incoherent result %+v", r)
		}
		if _, err := r.Config.YAML(); err != nil {
			t.Fatal(err)
		}
	})
}
