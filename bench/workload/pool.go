package workload

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// pool is the attacker pool: index i is Zipf rank i. Addresses are distinct
// by construction (a bijective 32-bit mix of a counter), public-looking, and
// never in the ranges used for benign clients and decoys (10/8, 100.64/10,
// 127/8, 192.0.2/24, 192.168/16, 198.51.100/24, 2001:db8::/32, fc00::/7,
// fe80::/10). The pool depends on the seed, the size and the IPv6 share
// only, not on the number of lines.
type pool struct {
	addr     []netip.Addr
	behavior []uint8 // what kind of attack the address mostly does
}

const (
	bruteRoot  = iota // sshd: root password guessing / nginx: wp-login, 401
	dictionary        // sshd: invalid users / nginx: .env, .git, admin tools
	scanner           // sshd: banner exchange / nginx: a bit of everything
	nBehaviors
)

func newPool(n int, v6frac float64, seed uint64) pool {
	r := rand.New(rand.NewPCG(seed, 0x706f6f6c)) // "pool"
	p := pool{addr: make([]netip.Addr, n), behavior: make([]uint8, n)}
	v6left := int(math.Round(float64(n) * v6frac))
	salt4, salt6 := r.Uint32(), r.Uint32()
	var c4, c6 uint32
	for i := 0; i < n; i++ {
		if r.IntN(n-i) < v6left { // selection sampling: exactly v6left IPv6
			v6left--
			p.addr[i] = attackerV6(c6+salt6, r)
			c6++
		} else {
			var a netip.Addr
			for {
				a = attackerV4(mix32(c4 + salt4))
				c4++
				if a.IsValid() {
					break
				}
			}
			p.addr[i] = a
		}
		p.behavior[i] = uint8(r.IntN(nBehaviors))
	}
	return p
}

// mix32 is a bijection of uint32 (xorshift-multiply), so distinct counters
// give distinct addresses.
func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// attackerV4 returns v as an address, or the zero Addr when v is in a
// special-purpose, private or benign range.
func attackerV4(v uint32) netip.Addr {
	a, b := byte(v>>24), byte(v>>16)
	switch {
	case a == 0, a == 10, a == 127, a >= 224,
		a == 100 && b&0xc0 == 64, // 100.64.0.0/10 (benign web clients)
		a == 169 && b == 254,
		a == 172 && b&0xf0 == 16,
		a == 192 && b == 168,
		a == 192 && b == 0 && byte(v>>8) <= 2, // 192.0.0/24, 192.0.2/24
		a == 198 && b&0xfe == 18,
		a == 198 && b == 51 && byte(v>>8) == 100,
		a == 203 && b == 0 && byte(v>>8) == 113:
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte{a, b, byte(v >> 8), byte(v)})
}

// attackerV6 returns a global unicast address: a random /32 from 2001::
// to 2c00:: (never 2001:db8::/32), the counter mixed into bits 32..63 so
// addresses are distinct, and an interface id that is either small (a
// server-style ::1 .. ::ff, compressed) or random (privacy address).
func attackerV6(c uint32, r *rand.Rand) netip.Addr {
	var s [16]byte
	h0 := 0x2001 + r.IntN(0x2c00-0x2001)
	h1 := r.IntN(0x10000)
	if h0 == 0x2001 && h1 == 0x0db8 {
		h1 = 0x0db9
	}
	s[0], s[1], s[2], s[3] = byte(h0>>8), byte(h0), byte(h1>>8), byte(h1)
	m := mix32(c)
	s[4], s[5], s[6], s[7] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
	if r.IntN(2) == 0 {
		s[15] = byte(1 + r.IntN(255))
	} else {
		iid := r.Uint64()
		for i := 8; i < 16; i++ {
			s[i] = byte(iid >> (8 * (15 - i)))
		}
	}
	return netip.AddrFrom16(s)
}

// Benign sshd users, each with the address they log in from. The 10.9.8.7
// jump host is also the favourite decoy address.
var benignUsers = []struct {
	name, addr, fp string
}{
	{"alice", "198.51.100.23", "SHA256:q3Ykzb0mC1x7gQ9hS2vT8rWf4LpN6aJdKeU5oXyZiBs"},
	{"bob", "198.51.100.77", "SHA256:Hf8sD2kP0wQz5xVb3nM7cR1tL9yG4jUaE6oIiKlZpNo"},
	{"carol", "2001:db8:1::23", "SHA256:Zr5tYh2nB8vCx1mQ4wEa7sDf0gJk3lPo9iUyTjHgFeR"},
	{"deploy", "10.9.8.7", "SHA256:Mn3bV6cX9zL2kJ5hG8fD1sA4qW7eR0tYuIoPaSdFgHj"},
	{"git", "192.0.2.44", "SHA256:Pq9wE2rT5yU8iO1pA4sD7fG0hJ3kL6zX9cV2bN5mQwE"},
	{"backup", "10.0.0.5", "SHA256:Lk4jH7gF0dS3aP6oI9uY2tR5eW8qZ1xC4vB7nM0lKjH"},
	{"ansible", "10.9.8.7", "SHA256:Xc7vB0nM3lK6jH9gF2dS5aP8oI1uY4tR7eW0qZ3xC6v"},
	{"monitor", "192.0.2.10", "SHA256:Ty6uI9oP2aS5dF8gH1jK4lZ7xC0vB3nM6qW9eR2tY5u"},
}

// Decoy addresses written inside user names; none is ever an attacker.
var decoyAddrs = []string{
	"10.9.8.7", "10.0.0.1", "192.168.1.1", "127.0.0.1", "192.0.2.1",
	"fd00::1", "fd12:3456:789a::7", "::1",
}

// Attacked user names; "" is a real case (sshd then writes two spaces).
var attackUsers = []string{
	"admin", "test", "user", "oracle", "postgres", "ubuntu", "guest",
	"ftpuser", "pi", "support", "nagios", "hadoop", "mysql", "tomcat",
	"jenkins", "minecraft", "steam", "administrator", "sa", "dev", "1234",
	"123456", "admin1", "test1", "usuario", "ts3", "ftp", "demo", "",
}

// appendBenignWeb writes the address of one of 4096 recurring benign web
// clients: 100.64.0.0/10 (CGNAT) or, for one in eight, 2001:db8:ffff::/48.
func appendBenignWeb(b []byte, i uint32) []byte {
	m := mix32(i + 0x9e3779b9)
	if i&7 == 0 {
		b = append(b, "2001:db8:ffff:"...)
		b = strconv.AppendUint(b, uint64(m>>16), 16)
		b = append(b, "::"...)
		return strconv.AppendUint(b, uint64(m&0xffff|1), 16)
	}
	b = append(b, "100."...)
	b = strconv.AppendUint(b, uint64(64+(m>>24)&63), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(m>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(m&0xff), 10)
}

// clock keeps the current time and the formatted timestamps of its second.
type clock struct {
	loc                  *time.Location
	ns                   int64 // unix nanoseconds
	sec                  int64 // second of the cached strings
	syslog, iso, nginxTS []byte
}

func newClock(start time.Time) clock {
	c := clock{loc: start.Location(), ns: start.UnixNano(), sec: math.MinInt64}
	c.refresh()
	return c
}

func (c *clock) advance(ns int) {
	c.ns += int64(ns)
	if c.ns/1e9 != c.sec {
		c.refresh()
	}
}

func (c *clock) refresh() {
	c.sec = c.ns / 1e9
	t := time.Unix(c.sec, 0).In(c.loc)
	c.syslog = t.AppendFormat(c.syslog[:0], time.Stamp)
	c.iso = t.AppendFormat(c.iso[:0], "2006-01-02T15:04:05-07:00")
	c.nginxTS = t.AppendFormat(c.nginxTS[:0], "02/Jan/2006:15:04:05 -0700")
}
