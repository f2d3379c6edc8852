package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	flags "github.com/jessevdk/go-flags"

	"reaction/cmd/reaction/internal/control"
)

// fakeDaemon answers the control socket like a daemon with one filter,
// ssh.login, capturing ip.
type fakeDaemon struct {
	mu      sync.Mutex
	flushed control.Selector
	trigger map[string]string
}

var fakeFilters = []control.FilterInfo{{Stream: "ssh", Filter: "login", Patterns: []string{"ip"}}}

func (d *fakeDaemon) Show(sel control.Selector) (control.Snapshot, error) {
	if err := control.CheckSelector(sel, fakeFilters); err != nil {
		return control.Snapshot{}, err
	}
	return control.Snapshot{Filters: []control.Filter{{Stream: "ssh", Filter: "login", Patterns: []string{"ip"},
		Matches: []control.Match{{Values: []string{"1.2.3.4"}, Count: 2}},
		Pending: []control.Pending{{Values: []string{"5.6.7.8"}, Action: "unban", Due: time.Now().Add(48 * time.Hour)}}}}}, nil
}

func (d *fakeDaemon) Flush(sel control.Selector) (control.Snapshot, error) {
	d.mu.Lock()
	d.flushed = sel
	d.mu.Unlock()
	return d.Show(sel)
}

func (d *fakeDaemon) Trigger(stream, filter string, values map[string]string) error {
	if stream != "ssh" || filter != "login" {
		return errors.New("unknown filter " + stream + "." + filter)
	}
	if values["ip"] == "" || strings.Count(values["ip"], ".") != 3 {
		return errors.New(`pattern ip: "` + values["ip"] + `" is not a valid address`)
	}
	d.mu.Lock()
	d.trigger = values
	d.mu.Unlock()
	return nil
}

func (d *fakeDaemon) Stats() map[string]map[string]uint64 { return nil }

func startFake(t *testing.T) (string, *fakeDaemon) {
	t.Helper()
	dir, err := os.MkdirTemp("", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "reaction.sock")
	s, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d := &fakeDaemon{}
	go func() { s.Serve(ctx, d); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path, d
}

// runControl parses args with only the control commands declared, as
// app.go declares them, and returns the exit code and outputs.
func runControl(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr}
	p := flags.NewNamedParser("reaction", flags.HelpFlag|flags.PassDoubleDash)
	p.AddCommand("show", "", "", newShowCmd(e))
	p.AddCommand("flush", "", "", newFlushCmd(e))
	p.AddCommand("trigger", "", "", &triggerCmd{env: e})
	_, err := p.ParseArgs(args)
	code := report(&stdout, &stderr, err)
	return code, stdout.String(), stderr.String()
}

func TestControlCommands(t *testing.T) {
	path, d := startFake(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		args         []string
		code         int
		stdout, errs string // substrings
	}{
		{[]string{"show", "-s", path}, 0, "ssh.login  ip=1.2.3.4", ""},
		{[]string{"show", "-s", path, "-l", "ssh.login", "ip=1\\..*"}, 0, "(in 47h59m)", ""},
		{[]string{"show", "-s", path, "-f", "json"}, 0, `"patterns": [`, ""},
		{[]string{"show", "-s", path, "-f", "yaml"}, 0, "  - stream: ssh\n", ""},
		{[]string{"show", "-s", path, "-l", "sshh"}, 1, "", "reaction: unknown stream \"sshh\" (streams: ssh)\n"},
		{[]string{"show", "-s", path, "user=root"}, 1, "", `unknown pattern "user"`},
		{[]string{"show", "-s", path, "-l", "a.b.c"}, 2, "", "reaction: show: -l \"a.b.c\": expected STREAM or STREAM.FILTER (names cannot contain '.')\n"},
		{[]string{"show", "-s", path, "-l", "ssh."}, 2, "", "empty filter name"},
		{[]string{"show", "-s", path, "ip"}, 2, "", `reaction: show: "ip": expected NAME=REGEX` + "\n"},
		{[]string{"show", "-s", path, "=x"}, 2, "", "empty pattern name"},
		{[]string{"show", "-s", path, "ip=("}, 2, "", "error parsing regexp"},
		{[]string{"show", "-s", path, "-f", "xml"}, 2, "", "Invalid value `xml'"},
		{[]string{"show", "-s", missing}, 1, "", "reaction: no reaction daemon is listening on " + missing + " (is it running? is -s right?)\n"},
		{[]string{"flush", "-s", path, "-l", "ssh", "ip=5.6.7.8"}, 0, "flushed 2 keys, ran 1 pending action now", ""},
		{[]string{"flush", "-s", path, "-l", ".x"}, 2, "", "empty stream name"},
		{[]string{"trigger", "-s", path, "-l", "ssh.login", "ip=1.2.3.4"}, 0, "triggered ssh.login ip=1.2.3.4\n", ""},
		{[]string{"trigger", "-s", path, "-l", "ssh.login", "-f", "json", "ip=1.2.3.4"}, 0, `"values": {` + "\n" + `    "ip": "1.2.3.4"`, ""},
		{[]string{"trigger", "-s", path, "-l", "ssh.login", "ip=1.2.3"}, 1, "", "reaction: pattern ip: \"1.2.3\" is not a valid address\n"},
		{[]string{"trigger", "-s", path, "-l", "ssh.nope", "ip=1.2.3.4"}, 1, "", "unknown filter ssh.nope"},
		{[]string{"trigger", "-s", path, "ip=1.2.3.4"}, 2, "", "reaction: trigger: trigger needs -l STREAM.FILTER\n"},
		{[]string{"trigger", "-s", path, "-l", "ssh", "ip=1.2.3.4"}, 2, "", "not only a stream"},
		{[]string{"trigger", "-s", path, "-l", "ssh.login", "1.2.3.4"}, 2, "", `"1.2.3.4": expected NAME=VALUE`},
		{[]string{"trigger", "-s", missing, "-l", "ssh.login", "ip=1.2.3.4"}, 1, "", "no reaction daemon is listening"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runControl(tt.args...)
		if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.errs) {
			t.Errorf("reaction %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, stdout, stderr)
		}
		if tt.errs != "" && strings.Count(stderr, "\n") > 2 {
			t.Errorf("reaction %s: stderr is more than a message:\n%s", strings.Join(tt.args, " "), stderr)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flushed.Stream != "ssh" || d.flushed.Patterns["ip"] == nil || !d.flushed.Patterns["ip"].MatchString("5.6.7.8") {
		t.Errorf("flush selector = %+v", d.flushed)
	}
	if d.trigger["ip"] != "1.2.3.4" {
		t.Errorf("trigger values = %v", d.trigger)
	}
}

func TestDefaultSocket(t *testing.T) {
	f, _ := reflect.TypeFor[socketOpt]().FieldByName("Socket")
	if got := f.Tag.Get("default"); got != control.DefaultSocket {
		t.Errorf("-s default %q, control.DefaultSocket %q", got, control.DefaultSocket)
	}
}
