package stages

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// compactIPv4 reports whether v must take 6 bytes in a key: the values
// that netip parses as an IPv4 address and formats back unchanged.
func compactIPv4(v string) bool {
	a, err := netip.ParseAddr(v)
	return err == nil && a.Is4() && a.String() == v
}

// encodedCompact reports whether a key of the value v alone holds it in 6
// bytes.
func encodedCompact(v string) bool {
	k := encodeKey([]string{v})
	return len(k) == 6 && k[:2] == keyIPv4
}

// An address in dotted decimals takes 6 bytes in a key; any other value,
// however close to an address, keeps its text; every tuple comes back
// whole and no two tuples share a key.
func TestKeyEncodingIPv4(t *testing.T) {
	for _, v := range []string{"0.0.0.0", "1.2.3.4", "10.0.0.1", "192.0.2.255", "255.255.255.255", "100.64.9.99"} {
		k := encodeKey([]string{v})
		if len(k) != 6 || k[:2] != keyIPv4 {
			t.Errorf("%q encodes as %q, want 6 bytes", v, k)
		}
		if got := decodeKey(k, 1); !slices.Equal(got, []string{v}) {
			t.Errorf("%q comes back as %q", v, got)
		}
	}
	for _, v := range []string{"", "1.2.3", "01.2.3.4", "1.2.3.04", "1.02.3.4", "00.0.0.0", "256.1.1.1", "1.2.3.256",
		"1.2.3.4.", ".1.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1..2.3", "1.2..3.4", "1.2.3.4.5", "1234.1.1.1", "1.2.3.1000",
		"::ffff:1.2.3.4", "1.2.3.a", "a.b.c.d", "1.2.3.-4", "+1.2.3.4", "1,2,3,4", "\x80\x00\x01\x02\x03\x04"} {
		k := encodeKey([]string{v})
		if k[:min(len(k), 2)] == keyIPv4 {
			t.Errorf("%q encoded as an address: %q", v, k)
		}
		if got := decodeKey(k, 1); !slices.Equal(got, []string{v}) {
			t.Errorf("%q comes back as %q", v, got)
		}
	}
}

// Random tuples of addresses, near-addresses and bytes: exactly the
// canonical IPv4 addresses are compact, and the encoding is a bijection on
// what it was given.
func TestKeyEncodingRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	value := func() string {
		switch r.IntN(4) {
		case 0:
			return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}).String()
		case 1: // an address with a byte changed, dropped or doubled
			b := []byte(fmt.Sprintf("%d.%d.%d.%d", r.IntN(300), r.IntN(300), r.IntN(256), r.IntN(256)))
			i := r.IntN(len(b))
			switch r.IntN(3) {
			case 0:
				b[i] = "0123456789.x "[r.IntN(13)]
			case 1:
				b = slices.Delete(b, i, i+1)
			default:
				b = slices.Insert(b, i, b[i])
			}
			return string(b)
		case 2:
			b := make([]byte, r.IntN(20))
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			return string(b)
		default:
			return fmt.Sprint(r.IntN(1000))
		}
	}
	seen := map[string][]string{}
	for range 200_000 {
		values := make([]string, 1+r.IntN(3))
		for i := range values {
			values[i] = value()
			if got, want := encodedCompact(values[i]), compactIPv4(values[i]); got != want {
				t.Fatalf("%q held in 6 bytes: %v, want %v", values[i], got, want)
			}
		}
		k := encodeKey(values)
		if got := decodeKey(k, len(values)); !slices.Equal(got, values) {
			t.Fatalf("decode(encode(%q)) = %q", values, got)
		}
		b := []byte(k)
		got := decodeKeyCopy(bytesString(b), len(values))
		clear(b)
		if !slices.Equal(got, values) {
			t.Fatalf("decodeKeyCopy(encode(%q)) = %q, or aliases the key", values, got)
		}
		if prev, ok := seen[k]; ok && !slices.Equal(prev, values) {
			t.Fatalf("%q and %q share the key %q", prev, values, k)
		}
		seen[k] = values
	}
}

func FuzzKeyEncoding(f *testing.F) {
	f.Add("1.2.3.4", "01.2.3.4")
	f.Add("\x80\x00abcd", "")
	f.Add("255.255.255.255", "256.0.0.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, v := range []string{a, b} {
			if got, want := encodedCompact(v), compactIPv4(v); got != want {
				t.Fatalf("%q held in 6 bytes: %v, want %v", v, got, want)
			}
		}
		values := []string{a, b}
		if got := decodeKey(encodeKey(values), 2); !slices.Equal(got, values) {
			t.Fatalf("decode(encode(%q)) = %q", values, got)
		}
		if a != b && encodeKey([]string{a}) == encodeKey([]string{b}) {
			t.Fatalf("%q and %q share a key", a, b)
		}
	})
}
