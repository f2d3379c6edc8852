package compile

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// Config is the normalized configuration: what was loaded, merged across
// files, with defaults filled in. test-config prints it. It marshals to
// YAML (gopkg.in/yaml.v3) and JSON (encoding/json) with the configuration's
// own keys, maps sorted by name, and it is itself a valid configuration:
// loading its YAML gives the same graph.
type Config struct {
	// Concurrency is resolved: the number of CPUs when the file says 0 or
	// nothing, -1 when it says unlimited (any negative number).
	Concurrency    int    `yaml:"concurrency" json:"concurrency"`
	StateDirectory string `yaml:"state_directory" json:"state_directory"` // "" = working directory
	// StateRotationInterval is null when rotation is disabled.
	StateRotationInterval *Duration           `yaml:"state_rotation_interval" json:"state_rotation_interval"`
	Patterns              map[string]*Pattern `yaml:"patterns" json:"patterns"`
	Start                 []Argv              `yaml:"start" json:"start"`
	Stop                  []Argv              `yaml:"stop" json:"stop"`
	Streams               map[string]*Stream  `yaml:"streams" json:"streams"`
}

// Pattern is a normalized pattern. Regex is left out for IP types unless
// the file overrides the built-in one; ignore values are normalized
// (canonical addresses) and ignorecidr networks are in canonical form.
type Pattern struct {
	Type        string   `yaml:"type" json:"type"`
	Regex       string   `yaml:"regex,omitempty" json:"regex,omitempty"`
	Ignore      []string `yaml:"ignore,omitempty" json:"ignore,omitempty"`
	IgnoreRegex []string `yaml:"ignoreregex,omitempty" json:"ignoreregex,omitempty"`
	IgnoreCIDR  []string `yaml:"ignorecidr,omitempty" json:"ignorecidr,omitempty"`
	IPv4Mask    int      `yaml:"ipv4mask,omitempty" json:"ipv4mask,omitempty"`
	IPv6Mask    int      `yaml:"ipv6mask,omitempty" json:"ipv6mask,omitempty"`
}

// Stream is a normalized stream.
type Stream struct {
	Cmd     Argv               `yaml:"cmd" json:"cmd"`
	Filters map[string]*Filter `yaml:"filters" json:"filters"`
}

// Filter is a normalized filter. Retry is at least 1; RetryPeriod is only
// present when Retry > 1; Duplicate is always set.
type Filter struct {
	Regex       []string           `yaml:"regex" json:"regex"`
	Retry       int                `yaml:"retry" json:"retry"`
	RetryPeriod *Duration          `yaml:"retryperiod,omitempty" json:"retryperiod,omitempty"`
	Duplicate   string             `yaml:"duplicate" json:"duplicate"`
	Actions     map[string]*Action `yaml:"actions" json:"actions"`
	Tests       []FilterTest       `yaml:"tests,omitempty" json:"tests,omitempty"`
}

// Action is a normalized action. After is absent for immediate actions.
type Action struct {
	Cmd      Argv      `yaml:"cmd" json:"cmd"`
	After    *Duration `yaml:"after,omitempty" json:"after,omitempty"`
	OnExit   bool      `yaml:"onexit,omitempty" json:"onexit,omitempty"`
	OneShot  bool      `yaml:"oneshot,omitempty" json:"oneshot,omitempty"`
	IPv4Only bool      `yaml:"ipv4only,omitempty" json:"ipv4only,omitempty"`
	IPv6Only bool      `yaml:"ipv6only,omitempty" json:"ipv6only,omitempty"`
}

// FilterTest is an inline filter test. Match values are normalized.
type FilterTest struct {
	Line    string            `yaml:"line" json:"line"`
	Match   map[string]string `yaml:"match,omitempty" json:"match,omitempty"`
	NoMatch bool              `yaml:"nomatch,omitempty" json:"nomatch,omitempty"`
	Ignored bool              `yaml:"ignored,omitempty" json:"ignored,omitempty"`
}

// Argv is a command, program first. In YAML it is written on one line,
// as configurations usually write it.
type Argv []string

// MarshalYAML writes the command as a flow sequence of strings.
func (a Argv) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range a {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
	}
	return n, nil
}

// YAML renders the configuration as test-config prints it: YAML indented
// by two spaces.
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
