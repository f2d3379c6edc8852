package compile

import "time"

// The spec types mirror the files: values as written, each with where it
// was written, so that errors found while compiling can point at it. One
// spec is decoded per file, then the files' specs are merged.

// opt is an optional value with its location; set is false when the key
// is absent (or null, where null means absent).
type opt[T any] struct {
	v   T
	set bool
	bad bool // present but not decodable (already reported): not "missing"
	at  loc
}

// str is a string with its location.
type str struct {
	v  string
	at loc
}

type configSpec struct {
	patterns    map[string]*patternSpec
	streams     map[string]*streamSpec
	start, stop []argvSpec
	concurrency opt[int]
	stateDir    opt[string]
	rotation    opt[*time.Duration] // set with a nil value: null, rotation disabled
	streamsBad  bool                // "streams" misspelled (already reported)
}

type argvSpec struct {
	args []string
	at   loc
}

type patternSpec struct {
	broken      bool // decoding failed, already reported: compile nothing, report nothing more
	name        string
	at          loc
	regex       opt[string]
	typ         opt[string]
	ignore      []str
	ignoreRegex []str
	ignoreCIDR  []str
	ipv4Mask    opt[int]
	ipv6Mask    opt[int]
}

type streamSpec struct {
	broken  bool // decoding failed, already reported
	name    string
	at      loc
	cmd     opt[argvSpec]
	filters map[string]*filterSpec
	// filtersBad: "filters" misspelled (already reported), not missing.
	filtersBad bool
}

type filterSpec struct {
	broken      bool // decoding failed, already reported: compile nothing, report nothing more
	name        string
	at          loc
	regex       opt[[]str]
	retry       opt[int]
	retryPeriod opt[time.Duration]
	duplicate   opt[string]
	actions     map[string]*actionSpec
	tests       []testSpec
	incomplete  bool // some of it could not be decoded: its tests are not run
	actionsBad  bool // "actions" misspelled (already reported), not missing
}

type actionSpec struct {
	broken   bool // decoding failed, already reported
	name     string
	at       loc
	cmd      opt[argvSpec]
	after    opt[time.Duration]
	onExit   opt[bool]
	oneShot  opt[bool]
	ipv4Only opt[bool]
	ipv6Only opt[bool]
}

type testSpec struct {
	at      loc
	line    opt[string]
	match   opt[map[string]str]
	noMatch opt[bool]
	ignored opt[bool]
}
