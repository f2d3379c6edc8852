package graph

import (
	"net/netip"
	"regexp"
	"strings"
)

// PatternType is the type of a pattern's values.
type PatternType string

const (
	TypeRegex PatternType = "regex"
	TypeIP    PatternType = "ip"
	TypeIPv4  PatternType = "ipv4"
	TypeIPv6  PatternType = "ipv6"
)

// IsIP tells whether values of this type are addresses.
func (t PatternType) IsIP() bool { return t == TypeIP || t == TypeIPv4 || t == TypeIPv6 }

// Built-in regexes of the IP types. They are deliberately permissive: a
// capture is then parsed with net/netip, and whatever does not parse is
// never counted nor passed to a command.
const (
	RegexIPv4 = `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`
	// The embedded-IPv4 tail comes first: Go's regexp prefers the first
	// alternative, and "::ffff:1.2.3.4" must not be captured as "::ffff:1".
	RegexIPv6 = `(?:[0-9a-fA-F]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-fA-F]{0,4})`
	RegexIP   = RegexIPv6 + `|` + RegexIPv4
)

// Pattern is a compiled pattern: the value type, its regex and its ignore rules.
type Pattern struct {
	Name        string
	Type        PatternType
	Regex       string // inserted as a capture group wherever <Name> appears
	Ignore      []string
	IgnoreRegex []string
	IgnoreCIDR  []netip.Prefix
	IPv4Mask    int // 0 = no mask
	IPv6Mask    int

	ignore      map[string]struct{}
	ignoreRegex []*regexp.Regexp
	whole       *regexp.Regexp
}

// Reason says why a captured value was not counted. The empty Reason means
// the value is valid and not ignored.
type Reason string

const (
	ReasonOK Reason = ""
)

// Prepare compiles the pattern's matchers. compile calls it once; it
// returns the first ignoreregex that does not compile.
func (p *Pattern) Prepare() error {
	p.ignore = make(map[string]struct{}, len(p.Ignore))
	for _, v := range p.Ignore {
		p.ignore[v] = struct{}{}
		if p.Type.IsIP() { // "2001:DB8::1" must ignore the canonical "2001:db8::1"
			if addr, err := p.addr(v); err == nil {
				p.ignore[addr.String()] = struct{}{}
			}
		}
	}
	p.ignoreRegex = p.ignoreRegex[:0]
	for _, s := range p.IgnoreRegex {
		re, err := regexp.Compile(`^(?:` + s + `)$`)
		if err != nil {
			return err
		}
		p.ignoreRegex = append(p.ignoreRegex, re)
	}
	if !p.Type.IsIP() {
		re, err := regexp.Compile(`^(?:` + p.Regex + `)$`)
		if err != nil {
			return err
		}
		p.whole = re
	}
	return nil
}

// Normalize parses a raw captured value and returns the value that is
// counted and passed to actions: for IP types the canonical address
// (IPv4-mapped IPv6 turned into IPv4), or its network in prefix form when a
// mask applies. It fails when the value is not a valid value of the type.
// Ignore rules are not applied; see Check.
func (p *Pattern) Normalize(raw string) (string, error) {
	if !p.Type.IsIP() {
		if p.whole != nil && !p.whole.MatchString(raw) {
			return "", errInvalid{p, raw}
		}
		return raw, nil
	}
	addr, err := p.addr(raw)
	if err != nil {
		return "", err
	}
	if pfx, ok := p.mask(addr); ok {
		return pfx.String(), nil
	}
	return addr.String(), nil
}

func (p *Pattern) addr(raw string) (netip.Addr, error) {
	if strings.IndexByte(raw, '%') >= 0 { // zones are never part of a banned address
		return netip.Addr{}, errInvalid{p, raw}
	}
	addr, err := netip.ParseAddr(raw)
	if err != nil {
		return netip.Addr{}, errInvalid{p, raw}
	}
	addr = addr.Unmap()
	switch {
	case p.Type == TypeIPv4 && !addr.Is4(), p.Type == TypeIPv6 && !addr.Is6():
		return netip.Addr{}, errInvalid{p, raw}
	}
	return addr, nil
}

func (p *Pattern) mask(addr netip.Addr) (netip.Prefix, bool) {
	bits := p.IPv6Mask
	if addr.Is4() {
		bits = p.IPv4Mask
	}
	if bits <= 0 || bits >= addr.BitLen() {
		return netip.Prefix{}, false
	}
	pfx, err := addr.Prefix(bits)
	return pfx, err == nil
}

// Check normalizes a raw captured value and applies the ignore rules. It
// returns the value to count, or a non-empty Reason naming the rule that
// dropped it.
func (p *Pattern) Check(raw string) (string, Reason) {
	if !p.Type.IsIP() {
		v, err := p.Normalize(raw)
		if err != nil {
			return "", Reason("invalid " + string(p.Type) + " value for <" + p.Name + ">")
		}
		if _, ok := p.ignore[v]; ok {
			return "", Reason("ignored by patterns." + p.Name + ".ignore: " + v)
		}
		for i, re := range p.ignoreRegex {
			if re.MatchString(v) {
				return "", Reason("ignored by patterns." + p.Name + ".ignoreregex: " + p.IgnoreRegex[i])
			}
		}
		return v, ReasonOK
	}
	// The hot path of every match: parse once, and keep raw when it is
	// already the canonical form (nearly always), allocating nothing.
	addr, plain := canonicalIPv4(raw)
	if !addr.IsValid() {
		addr, plain = canonicalIPv6(raw)
	}
	if !addr.IsValid() || addr.Is4() && p.Type == TypeIPv6 || addr.Is6() && p.Type == TypeIPv4 {
		var err error
		if addr, err = p.addr(raw); err != nil {
			return "", Reason("invalid " + string(p.Type) + " value for <" + p.Name + ">")
		}
		plain = canonical(addr, raw)
	}
	v := plain
	if pfx, ok := p.mask(addr); ok {
		v = pfx.String()
	}
	if len(p.ignore) > 0 {
		if _, ok := p.ignore[v]; ok {
			return "", Reason("ignored by patterns." + p.Name + ".ignore: " + v)
		}
		if _, ok := p.ignore[plain]; ok && plain != v {
			return "", Reason("ignored by patterns." + p.Name + ".ignore: " + plain)
		}
	}
	for _, c := range p.IgnoreCIDR {
		if c.Contains(addr) {
			return "", Reason("ignored by patterns." + p.Name + ".ignorecidr: " + c.String())
		}
	}
	for i, re := range p.ignoreRegex {
		if re.MatchString(plain) || (plain != v && re.MatchString(v)) {
			return "", Reason("ignored by patterns." + p.Name + ".ignoreregex: " + p.IgnoreRegex[i])
		}
	}
	return v, ReasonOK
}

// CanonicalIPv4 returns the IPv4 address raw is when raw is written exactly
// the way netip.Addr.String writes it, without netip's round trip: the
// counter keeps such a value in 4 bytes and gives the same text back.
func CanonicalIPv4(raw string) (netip.Addr, bool) {
	addr, _ := canonicalIPv4(raw)
	return addr, addr.IsValid()
}

// canonicalIPv4 parses raw when it is an IPv4 address written the way
// netip.Addr.String writes it (four decimal fields of 0 to 255, no leading
// zeros), and returns the address and raw. For anything else it returns
// the zero Addr: netip.ParseAddr must decide.
func canonicalIPv4(raw string) (netip.Addr, string) {
	var a [4]byte
	field, digits, v := 0, 0, 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case '0' <= c && c <= '9':
			if digits == 1 && v == 0 {
				return netip.Addr{}, "" // a leading zero
			}
			v = v*10 + int(c-'0')
			if digits++; v > 255 {
				return netip.Addr{}, ""
			}
		case c == '.' && digits > 0 && field < 3:
			a[field] = byte(v)
			field, digits, v = field+1, 0, 0
		default:
			return netip.Addr{}, ""
		}
	}
	if field != 3 || digits == 0 {
		return netip.Addr{}, ""
	}
	a[3] = byte(v)
	return netip.AddrFrom4(a), raw
}

// canonicalIPv6 is canonicalIPv4 for IPv6 addresses written with hex
// groups only: lowercase, no leading zeros, the first longest run of two
// or more zero groups written "::" and no other (RFC 5952, as
// netip.Addr.String writes them). An IPv4-mapped address is left to
// netip, which unmaps it.
func canonicalIPv6(raw string) (netip.Addr, string) {
	var g [8]uint16
	n, gap := 0, -1 // groups read; where "::" stands (a group index), if any
	i := 0
	if len(raw) >= 2 && raw[0] == ':' && raw[1] == ':' {
		gap, i = 0, 2
		if i == len(raw) {
			return netip.Addr{}, "" // "::" is canonical, but rare: leave it
		}
	}
	for i < len(raw) {
		if n == 8 {
			return netip.Addr{}, ""
		}
		v, d := 0, 0
		for ; i < len(raw) && d < 5; i, d = i+1, d+1 {
			c := raw[i]
			switch {
			case '0' <= c && c <= '9':
				v = v<<4 | int(c-'0')
			case 'a' <= c && c <= 'f':
				v = v<<4 | int(c-'a'+10)
			default:
				goto end
			}
		}
	end:
		if d == 0 || d > 4 || d > 1 && raw[i-d] == '0' {
			return netip.Addr{}, "" // empty, too long, or a leading zero
		}
		g[n] = uint16(v)
		n++
		if i == len(raw) {
			break
		}
		if raw[i] != ':' || i+1 == len(raw) {
			return netip.Addr{}, ""
		}
		i++
		if raw[i] == ':' {
			if gap >= 0 {
				return netip.Addr{}, ""
			}
			gap = n
			i++
			if i == len(raw) {
				break
			}
		}
	}
	var a [16]byte
	switch {
	case gap < 0 && n != 8, gap >= 0 && n > 6:
		return netip.Addr{}, ""
	case gap >= 0:
		// The groups after the gap go to the end.
		copy(g[8-(n-gap):], g[gap:n])
		clear(g[gap : 8-(n-gap)])
	}
	// The run String would write "::": the first longest of two or more.
	zs, ze := -1, -1
	for s := 0; s < 8; {
		e := s
		for e < 8 && g[e] == 0 {
			e++
		}
		if e-s >= 2 && e-s > ze-zs {
			zs, ze = s, e
		}
		s = max(e, s+1)
	}
	if gap >= 0 && (zs != gap || ze != 8-(n-gap)) || gap < 0 && zs >= 0 {
		return netip.Addr{}, ""
	}
	for k, v := range g {
		a[2*k], a[2*k+1] = byte(v>>8), byte(v)
	}
	addr := netip.AddrFrom16(a)
	if addr.Is4In6() {
		return netip.Addr{}, ""
	}
	return addr, raw
}

// canonical returns addr.String(), which is raw itself when raw is
// already written that way.
func canonical(addr netip.Addr, raw string) string {
	var buf [64]byte
	b := addr.AppendTo(buf[:0])
	if string(b) == raw {
		return raw
	}
	return string(b)
}

// Family returns 4 or 6 for a normalized IP value (address or prefix), 0
// for anything else.
func Family(value string) int {
	if pfx, err := netip.ParsePrefix(value); err == nil {
		value = pfx.Addr().String()
	}
	addr, err := netip.ParseAddr(value)
	switch {
	case err != nil:
		return 0
	case addr.Is4():
		return 4
	default:
		return 6
	}
}

type errInvalid struct {
	p   *Pattern
	raw string
}

func (e errInvalid) Error() string {
	return "<" + e.p.Name + ">: " + quote(e.raw) + " is not a valid " + string(e.p.Type) + " value"
}

func quote(s string) string {
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80]) + "…"
	}
	return "\"" + strings.ReplaceAll(s, "\"", "\\\"") + "\""
}
