// Package workload generates deterministic fail2ban-style log workloads
// (OpenSSH auth logs, nginx access logs, or both interleaved) together with
// their ground truth: which addresses the reference filter regexes match,
// and how many times.
//
// The truth is computed from what the generator knows it wrote, never by
// running the regexes; the package tests run the reference regexes over the
// generated output and check they find exactly the same counts.
//
// Everything is a pure function of Params (and the Workload kind): the same
// seed gives byte-identical output.
//
// Attackers and time: timestamps advance by 0–20 ms per line (about 100
// lines per second), so 1,000,000 lines span about 2.8 hours. Truth ignores
// time windows: Banned(retry) assumes all of an address's hits fall inside
// the filter's retry period, which holds for upstream's sshd example
// (retryperiod 6h) up to about 2M lines, and always holds when reaction
// reads the file from a `cat` stream (it timestamps lines when it reads them).
package workload

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"
)

// Workload is the kind of log to generate.
type Workload string

const (
	// SSHD is an OpenSSH/PAM auth log (with some CRON, sudo and
	// systemd-logind noise), filtered by SSHDRegexes.
	SSHD Workload = "sshd"
	// Nginx is an nginx access log in the combined format, filtered by
	// NginxRegexes.
	Nginx Workload = "nginx"
	// Mixed interleaves SSHD and Nginx lines (about half each) in one
	// stream; its Truth counts the matches of both rule sets (see Generate).
	Mixed Workload = "mixed"
)

// Style is the timestamp/prefix style of sshd lines. nginx lines always use
// the combined log format. Both styles have the same line mix, including
// the CRON, sudo and systemd-logind lines of an auth log (as `journalctl`
// without -u would show); only rsyslog's "message repeated" lines are
// syslog-only.
type Style string

const (
	// Syslog: "Nov 21 13:40:01 host sshd[1234]: ..." (rsyslog auth.log).
	Syslog Style = "syslog"
	// Journal: "2026-11-21T13:40:01+00:00 host sshd[1234]: ..."
	// (journalctl -o short-iso, as printed by current systemd).
	Journal Style = "journal"
)

// Defaults applied by Generate to zero-valued Params fields.
const (
	DefaultAttackFraction = 0.25
	DefaultAttackers      = 1000
	DefaultIPv6Fraction   = 0.2
	DefaultStyle          = Syslog
)

// DefaultStart is the timestamp of the first line when Params.Start is zero.
var DefaultStart = time.Date(2026, time.November, 21, 13, 40, 1, 0, time.UTC)

// Params describes a workload. Zero values select the defaults.
type Params struct {
	// Lines is the total number of lines written (each ends with '\n').
	Lines int
	// AttackFraction is the share of lines that are attack lines, i.e.
	// lines the reference regexes match; the count is exactly
	// round(Lines*AttackFraction). 0 means DefaultAttackFraction; a
	// negative value means no attack lines at all.
	AttackFraction float64
	// Attackers is the number of distinct attacking addresses in the pool
	// (0 means DefaultAttackers). About half the attack lines at most are
	// "first appearances" that walk through the pool, the others are Zipf
	// draws (s=1.5): a few heavy hitters and a long tail. With at least
	// 2×Attackers attack lines every pool address appears; with fewer,
	// len(Truth.Hits) is smaller than Attackers.
	Attackers int
	// IPv6Fraction is the share of the attacker pool that is IPv6
	// (exactly round(Attackers*IPv6Fraction) addresses). 0 means
	// DefaultIPv6Fraction; a negative value means IPv4 attackers only.
	IPv6Fraction float64
	// Seed selects the pseudo-random sequence (PCG).
	Seed uint64
	// Style of the sshd lines; "" means DefaultStyle.
	Style Style
	// Start is the timestamp of the first line (its Location is used for
	// printing); zero means DefaultStart.
	Start time.Time
}

// Truth is the ground truth of a generated workload.
type Truth struct {
	// Lines is the number of lines written.
	Lines int
	// AttackLines is the number of lines that the reference regexes match
	// (the sum of Hits).
	AttackLines int
	// Hits maps each matched address, normalized as net/netip prints it
	// (IPv4-mapped IPv6 written as the IPv4 address, IPv6 in canonical
	// compressed lower-case form), to the number of lines matched for it.
	// Each matched line counts once, as reaction counts a line once per
	// filter (the first matching regex decides).
	Hits map[string]int
}

// Banned returns the addresses with at least retry hits, sorted as strings.
func (t *Truth) Banned(retry int) []string {
	var out []string
	for a, n := range t.Hits {
		if n >= retry {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// The reference filters, in reaction syntax: <ip> is an IP pattern
// (type ip). The order is the order of upstream's README example.
var (
	sshdRegexes = []string{
		`authentication failure;.*rhost=<ip>`,
		`Failed password for .* from <ip>`,
		`Invalid user .* from <ip>`,
		`banner exchange: Connection from <ip> port [0-9]*: invalid format`,
	}
	// nginxPrefix is the combined-format prefix up to the opening quote of
	// the request line: address, ident, user, [time].
	nginxPrefix  = `^<ip> \S+ \S+ \[[^\]]*\] "`
	nginxRegexes = []string{
		// WordPress login brute force and xmlrpc abuse.
		nginxPrefix + `(?:GET|POST|HEAD) /(?:wp-login|xmlrpc)\.php`,
		// Secrets scanners: /.env, /app/.env, /.git/config, ...
		nginxPrefix + `[A-Z]+ /(?:[^" ]*/)?\.(?:env|git/)`,
		// Admin tool and router exploit probes.
		nginxPrefix + `[A-Z]+ /(?:phpmyadmin|pma|myadmin|cgi-bin)/`,
		// Any request answered 401 (HTTP basic auth brute force).
		nginxPrefix + `[^"]*" 401 `,
	}
)

// SSHDRegexes returns the reference sshd filter regexes: exactly the four of
// upstream's README example. A new slice on each call.
func SSHDRegexes() []string { return slices.Clone(sshdRegexes) }

// NginxRegexes returns the reference nginx filter regexes (combined log
// format): WordPress login/xmlrpc, .env/.git scanners, admin tool probes
// and 401 responses. A new slice on each call.
func NginxRegexes() []string { return slices.Clone(nginxRegexes) }

// Generate writes the workload to w and returns its ground truth.
//
// For Mixed, sshd and nginx lines share one attacker pool and one clock, and
// Truth.Hits is the sum of the matches of both rule sets (SSHDRegexes and
// NginxRegexes, run as two filters over the whole stream): no generated
// line is matched by both sets, so each attack line counts exactly once,
// but an address may collect hits from both services. To reproduce it with
// reaction, use one filter per rule set on the same stream and add up.
//
// An error is returned for invalid Params or kind before anything is
// written, or when w fails.
func Generate(w io.Writer, kind Workload, p Params) (*Truth, error) {
	g, err := newGen(kind, p)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	for g.linesLeft > 0 {
		g.line = g.next(g.line[:0])
		if _, err := bw.Write(g.line); err != nil {
			return nil, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return g.truth(), nil
}

// Sample generates n lines of the workload with default Params and the
// given seed, and returns them in memory without their '\n' (all lines share
// one backing array; each has its capacity clipped, so appending to one
// never overwrites the next). It panics on an unknown kind or negative n.
func Sample(kind Workload, n int, seed uint64) [][]byte {
	if n < 0 {
		panic("workload.Sample: negative n")
	}
	var buf bytes.Buffer
	buf.Grow(n * 112)
	if _, err := Generate(&buf, kind, Params{Lines: n, Seed: seed}); err != nil {
		panic("workload.Sample: " + err.Error())
	}
	return splitLines(buf.Bytes())
}

// ReadFile reads a log file and returns its lines without the line
// terminator ("\n" or "\r\n"); a final line without a terminator is kept,
// no empty line is added after a final terminator.
func ReadFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return splitLines(data), nil
}

func splitLines(data []byte) [][]byte {
	lines := make([][]byte, 0, bytes.Count(data, []byte{'\n'})+1)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
		lines = append(lines, l[:len(l):len(l)])
	}
	return lines
}

// zipfS is the Zipf exponent of attacker picks: rank 0 gets about 38% of the
// Zipf draws, rank 9 about 1.2%, and ranks past a few hundred rarely more
// than one.
const zipfS = 1.5

type gen struct {
	kind   Workload
	style  Style
	r      *rand.Rand
	zipf   *rand.Zipf
	pool   pool
	hits   []int
	nLines int

	linesLeft, attackLeft int
	introLeft, nextIntro  int
	attackLines           int

	clk  clock
	line []byte
}

func newGen(kind Workload, p Params) (*gen, error) {
	switch kind {
	case SSHD, Nginx, Mixed:
	default:
		return nil, errors.New("workload: unknown workload kind " + strconv.Quote(string(kind)))
	}
	if p.Style == "" {
		p.Style = DefaultStyle
	}
	if p.Style != Syslog && p.Style != Journal {
		return nil, errors.New("workload: unknown style " + strconv.Quote(string(p.Style)))
	}
	if p.Lines < 0 {
		return nil, errors.New("workload: negative Lines")
	}
	if p.Attackers < 0 {
		return nil, errors.New("workload: negative Attackers")
	}
	if p.Attackers == 0 {
		p.Attackers = DefaultAttackers
	}
	af, err := fraction("AttackFraction", p.AttackFraction, DefaultAttackFraction)
	if err != nil {
		return nil, err
	}
	v6, err := fraction("IPv6Fraction", p.IPv6Fraction, DefaultIPv6Fraction)
	if err != nil {
		return nil, err
	}
	if p.Start.IsZero() {
		p.Start = DefaultStart
	}
	attack := int(math.Round(float64(p.Lines) * af))
	if attack > p.Lines {
		attack = p.Lines
	}
	r := rand.New(rand.NewPCG(p.Seed, 0x7265616374696f6e)) // "reaction"
	g := &gen{
		kind:       kind,
		style:      p.Style,
		r:          r,
		zipf:       rand.NewZipf(r, zipfS, 1, uint64(p.Attackers-1)),
		pool:       newPool(p.Attackers, v6, p.Seed),
		hits:       make([]int, p.Attackers),
		nLines:     p.Lines,
		linesLeft:  p.Lines,
		attackLeft: attack,
		introLeft:  min(p.Attackers, attack/2),
		clk:        newClock(p.Start),
		line:       make([]byte, 0, 512),
	}
	return g, nil
}

func fraction(name string, v, def float64) (float64, error) {
	switch {
	case math.IsNaN(v) || v > 1:
		return 0, errors.New("workload: " + name + " must be at most 1")
	case v < 0:
		return 0, nil
	case v == 0:
		return def, nil
	}
	return v, nil
}

func (g *gen) truth() *Truth {
	t := &Truth{Lines: g.nLines, AttackLines: g.attackLines, Hits: make(map[string]int)}
	for i, n := range g.hits {
		if n > 0 {
			t.Hits[g.pool.addr[i].String()] = n
		}
	}
	return t
}

// next appends the next line (with its '\n') to b.
func (g *gen) next(b []byte) []byte {
	attack := g.r.IntN(g.linesLeft) < g.attackLeft // selection sampling: exact count
	idx := -1
	if attack {
		idx = g.pickAttacker()
		g.attackLeft--
		g.hits[idx]++
		g.attackLines++
	}
	g.linesLeft--
	g.clk.advance(g.r.IntN(20_000_000))

	nginx := g.kind == Nginx || (g.kind == Mixed && g.r.Uint32()&1 == 0)
	if nginx {
		if attack {
			b = g.nginxAttack(b, idx)
		} else {
			b = g.nginxBenign(b)
		}
	} else {
		if attack {
			b = g.sshdAttack(b, idx)
		} else {
			b = g.sshdBenign(b)
		}
	}
	return append(b, '\n')
}

// pickAttacker chooses the attacker of the current attack line: either the
// next first appearance (introLeft of them spread uniformly over the attack
// lines) or a Zipf draw over the whole pool.
func (g *gen) pickAttacker() int {
	if g.introLeft > 0 && g.r.IntN(g.attackLeft) < g.introLeft {
		g.introLeft--
		g.nextIntro++
		return g.nextIntro - 1
	}
	return int(g.zipf.Uint64())
}

// anyAttacker is an attacker address used in a non-matching context.
func (g *gen) anyAttacker() int { return int(g.zipf.Uint64()) }

// pick returns one element of a small table.
func pick[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

func (g *gen) port(b []byte) []byte {
	return strconv.AppendInt(b, int64(1024+g.r.IntN(64512)), 10)
}

// appendAttacker writes an attacker address in one of its valid textual
// forms: IPv4 occasionally as IPv4-mapped IPv6 (::ffff:a.b.c.d), IPv6
// mostly canonical, sometimes uncompressed or zero-padded.
func (g *gen) appendAttacker(b []byte, idx int) []byte {
	a := g.pool.addr[idx]
	if a.Is4() {
		if g.r.IntN(20) == 0 {
			b = append(b, "::ffff:"...)
		}
		return a.AppendTo(b)
	}
	switch n := g.r.IntN(25); {
	case n < 2:
		return appendExpanded(b, a, true)
	case n < 5:
		return appendExpanded(b, a, false)
	}
	return a.AppendTo(b)
}

const hexDigits = "0123456789abcdef"

// appendExpanded writes all eight groups of an IPv6 address, without "::"
// compression, zero-padded to four digits or not.
func appendExpanded(b []byte, a netip.Addr, pad bool) []byte {
	s := a.As16()
	for i := 0; i < 8; i++ {
		if i > 0 {
			b = append(b, ':')
		}
		h := uint64(s[2*i])<<8 | uint64(s[2*i+1])
		if pad {
			b = append(b, hexDigits[h>>12], hexDigits[h>>8&15], hexDigits[h>>4&15], hexDigits[h&15])
		} else {
			b = strconv.AppendUint(b, h, 16)
		}
	}
	return b
}
