package compile

// Configuration keywords, shared by the decoder, the error messages and
// the normalized Config's struct tags (which must spell them the same).
const (
	keyPatterns         = "patterns"
	keyStreams          = "streams"
	keyStart            = "start"
	keyStop             = "stop"
	keyConcurrency      = "concurrency"
	keyStateDirectory   = "state_directory"
	keyRotationInterval = "state_rotation_interval"
	keyDefinitions      = "definitions" // reaction v1: a place for YAML anchors; ignored
	keyPlugins          = "plugins"     // reaction v2: not supported

	keyRegex       = "regex"
	keyType        = "type"
	keyIgnore      = "ignore"
	keyIgnoreRegex = "ignoreregex"
	keyIgnoreCIDR  = "ignorecidr"
	keyIPv4Mask    = "ipv4mask"
	keyIPv6Mask    = "ipv6mask"

	keyCmd     = "cmd"
	keyFilters = "filters"

	keyRetry       = "retry"
	keyRetryPeriod = "retryperiod"
	keyDuplicate   = "duplicate"
	keyDuplicates  = "duplicates" // accepted alias of duplicate
	keyActions     = "actions"
	keyTests       = "tests"

	keyAfter    = "after"
	keyOnExit   = "onexit"
	keyOneShot  = "oneshot"
	keyIPv4Only = "ipv4only"
	keyIPv6Only = "ipv6only"

	keyLine    = "line"
	keyMatch   = "match"
	keyNoMatch = "nomatch"
	keyIgnored = "ignored"
)

var (
	topKeys     = []string{keyConcurrency, keyDefinitions, keyPatterns, keyPlugins, keyRotationInterval, keyStart, keyStateDirectory, keyStop, keyStreams}
	patternKeys = []string{keyIgnore, keyIgnoreCIDR, keyIgnoreRegex, keyIPv4Mask, keyIPv6Mask, keyRegex, keyType}
	streamKeys  = []string{keyCmd, keyFilters, keyType}
	filterKeys  = []string{keyActions, keyDuplicate, keyDuplicates, keyRegex, keyRetry, keyRetryPeriod, keyTests}
	actionKeys  = []string{keyAfter, keyCmd, keyIPv4Only, keyIPv6Only, keyOnExit, keyOneShot}
	testKeys    = []string{keyIgnored, keyLine, keyMatch, keyNoMatch}
)

const errPlugins = "plugins are not supported by this implementation of reaction; use a stream command instead"
