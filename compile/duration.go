package compile

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationUnits are the units of reaction v2's duration syntax,
// <integer><optional spaces><unit>.
var durationUnits = map[string]time.Duration{
	"ms": time.Millisecond, "millis": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

const durationForms = `a duration such as "90s", "1h30m" (Go syntax) or "10 secs", "30m", "2d", "1 day" (units ms, s, m, h, d or their long names)`

// parseDuration accepts Go's syntax and reaction v2's. A bare number is
// refused: its unit would be a guess. Negative durations are refused too.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty duration: expected " + durationForms)
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return 0, errors.New(strconv.Quote(s) + " has no unit: expected " + durationForms)
	}
	if t[0] == '-' {
		return 0, errors.New(strconv.Quote(s) + " is negative")
	}
	if d, err := time.ParseDuration(t); err == nil {
		return d, nil
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i > 0 {
		unit := strings.ToLower(strings.TrimSpace(t[i:]))
		if mult, ok := durationUnits[unit]; ok {
			n, err := strconv.ParseInt(t[:i], 10, 64)
			if err != nil || n > math.MaxInt64/int64(mult) {
				return 0, errors.New(strconv.Quote(s) + " is too long")
			}
			return time.Duration(n) * mult, nil
		}
	}
	return 0, errors.New("invalid duration " + strconv.Quote(s) + ": expected " + durationForms)
}

// Duration is a duration in the normalized configuration. It is written
// in Go's syntax ("48h0m0s"), which Load reads back.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes the duration as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

func durationPtr(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}
