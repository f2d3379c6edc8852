package rx

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFinderIsBytesIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	alphabet := []string{"a", " ", ";", "f", "ro", "m", "\xff", "F", "x"}
	word := func(n int) []byte {
		var b []byte
		for range n {
			b = append(b, alphabet[r.IntN(len(alphabet))]...)
		}
		return b
	}
	lits := [][]byte{[]byte(" from "), []byte("authentication failure;"), []byte("F"), []byte(";;"), {}, []byte("x\xff")}
	for range 2000 {
		lits = append(lits, word(1+r.IntN(4)))
	}
	for _, lit := range lits {
		f := NewFinder(lit)
		for range 20 {
			s := word(r.IntN(300))
			if r.IntN(2) == 0 {
				at := r.IntN(len(s) + 1)
				s = append(s[:at:at], append(append([]byte{}, lit...), s[at:]...)...)
			}
			if got, want := f.Index(s), bytes.Index(s, lit); got != want {
				t.Fatalf("Index(%q) of %q = %d, want %d", s, lit, got, want)
			}
		}
	}
}

// A line made of the rare byte: the fallback keeps the search linear.
func TestFinderCrowdedLine(t *testing.T) {
	f := NewFinder([]byte("authentication failure;"))
	line := []byte(strings.Repeat(";", 10000) + "authentication failure;")
	if got := f.Index(line); got != 10000 {
		t.Fatalf("Index = %d, want 10000", got)
	}
}

func FuzzFinder(f *testing.F) {
	f.Add([]byte(" from "), []byte("Failed password for root from 1.2.3.4 port 22"))
	f.Fuzz(func(t *testing.T, lit, s []byte) {
		fd := NewFinder(lit)
		if got, want := fd.Index(s), bytes.Index(s, lit); got != want {
			t.Fatalf("Index(%q) of %q = %d, want %d", s, lit, got, want)
		}
	})
}

func BenchmarkFinder(b *testing.B) {
	line := []byte("Nov 21 13:40:01 host sshd[95323]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=81.247.75.65  user=root")
	for _, lit := range []string{"authentication failure;", "Failed password for ", " from ", "banner exchange: Connection from "} {
		f := NewFinder([]byte(lit))
		b.Run(strings.TrimSpace(lit)+"/bytes.Index", func(b *testing.B) {
			for b.Loop() {
				bytes.Index(line, f.lit)
			}
		})
		b.Run(strings.TrimSpace(lit)+"/Finder", func(b *testing.B) {
			for b.Loop() {
				f.Index(line)
			}
		})
	}
}
