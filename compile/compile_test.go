package compile

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/good and testdata/bad")

// testOptions fix what Load would take from the machine.
var testOptions = options{numCPU: 8}

// corpus lists the configurations of a testdata directory: its files with
// a configuration extension and its subdirectories (loaded as directory
// configurations). Libraries and files starting with "_" are imported by
// the others.
func corpus(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") {
			continue
		}
		switch filepath.Ext(name) {
		case ".yml", ".yaml", ".json", ".jsonnet":
			out = append(out, filepath.Join(dir, name))
		case "":
			if e.IsDir() {
				out = append(out, filepath.Join(dir, name))
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no configuration in %s", dir)
	}
	return out
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	file := path + ".golden"
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, file, got, want)
	}
}

// TestGood loads every good configuration, compares its normalized form
// with the golden file, checks that its inline tests pass on the graph,
// and that the normalized form, as YAML and as JSON, loads again to the
// same normalized form.
func TestGood(t *testing.T) {
	for _, path := range corpus(t, "testdata/good") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r, err := load(path, testOptions)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			out, err := r.Config.YAML()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, path, out)

			if err := RunTests(r.Graph); err != nil {
				t.Errorf("RunTests: %v", err)
			}
			if len(r.Files) == 0 || !reflect.DeepEqual(r.Files, r.Graph.Settings.Files) {
				t.Errorf("Files = %v, Settings.Files = %v", r.Files, r.Graph.Settings.Files)
			}

			js, err := json.Marshal(r.Config)
			if err != nil {
				t.Fatal(err)
			}
			for ext, data := range map[string][]byte{".yml": out, ".json": js} {
				again := filepath.Join(t.TempDir(), "normalized"+ext)
				if err := os.WriteFile(again, data, 0o644); err != nil {
					t.Fatal(err)
				}
				r2, err := load(again, testOptions)
				if err != nil {
					t.Fatalf("the normalized configuration (%s) does not load: %v", ext, err)
				}
				if !reflect.DeepEqual(r2.Config, r.Config) {
					out2, _ := r2.Config.YAML()
					t.Errorf("the normalized configuration (%s) loads differently:\n%s", ext, out2)
				}
				if len(r2.Graph.Nodes) != len(r.Graph.Nodes) || len(r2.Graph.Edges) != len(r.Graph.Edges) {
					t.Errorf("the normalized configuration (%s) compiles to another graph", ext)
				}
			}
		})
	}
}

// TestBad loads every bad configuration and compares the errors with the
// golden file.
func TestBad(t *testing.T) {
	for _, path := range corpus(t, "testdata/bad") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r, err := load(path, testOptions)
			if err == nil {
				out, _ := r.Config.YAML()
				t.Fatalf("loaded:\n%s", out)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("not an *Errors: %T %v", err, err)
			}
			for _, e := range errs.List {
				if e.File == "" {
					t.Errorf("error without a file: %v", e)
				}
				if strings.Contains(e.Msg, "\n") {
					t.Errorf("multi-line message: %q", e.Msg)
				}
			}
			golden(t, path, []byte(err.Error()+"\n"))
		})
	}
}

func TestLoadIOError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yml"))
	var errs *Errors
	if err == nil || errors.As(err, &errs) {
		t.Fatalf("want an I/O error, got %v", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("want os.ErrNotExist, got %v", err)
	}
}
