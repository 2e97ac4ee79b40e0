package dataverse

import (
	"math/bits"
	"strings"
	"testing"
)

// TestWordStops_LowestFlagExact checks the string scanner's word tests against a byte loop: the
// lowest byte stops8 flags is the first '"', '\\' or control character, and the lowest byte
// stopsOrHigh8 flags is the first of those or of the bytes of 0x80 or more, for every byte value
// at every position, with stops and high bytes above it (their borrows must not reach down).
func TestWordStops_LowestFlagExact(t *testing.T) {
	first := func(w [8]byte, high bool) int {
		for i, c := range w {
			if c == '"' || c == '\\' || c < 0x20 || (high && c >= 0x80) {
				return i
			}
		}
		return 8
	}
	lowest := func(m uint64) int { return bits.TrailingZeros64(m) >> 3 }
	for at := 0; at < 8; at++ {
		for c := 0; c < 256; c++ {
			for _, fill := range []byte{'a', 0x01, '"', '\\', 0x80, 0xff} {
				w := [8]byte{'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'}
				w[at] = byte(c)
				for k := at + 1; k < 8; k += 2 {
					w[k] = fill
				}
				s := string(w[:])
				if got, want := lowest(stops8(load8(s, 0))), first(w, false); got != want {
					t.Fatalf("stops8(%q): lowest flag at %d, want %d", s, got, want)
				}
				if got, want := lowest(stopsOrHigh8(load8(s, 0))), first(w, true); got != want {
					t.Fatalf("stopsOrHigh8(%q): lowest flag at %d, want %d", s, got, want)
				}
			}
		}
	}
}

// TestTypeName_MatchesByteLoop checks typeName's word scan against the byte-at-a-time reading it
// replaced: a __type value of every length up to 24 with every byte value at every position,
// then a colon and the contracts namespace, gives the same name, error and position.
func TestTypeName_MatchesByteLoop(t *testing.T) {
	ref := func(s string) (string, bool) {
		for j := 1; j < len(s); j++ {
			switch c := s[j]; {
			case c == ':' || c == '"':
				return s[1:j], true
			case c == '\\' || c < 0x20:
				return "", false // the string reader's answer, not compared here
			}
		}
		return "", false
	}
	for n := 0; n <= 24; n++ {
		for at := 0; at < n; at++ {
			for c := 0; c < 256; c++ {
				name := []byte(strings.Repeat("E", n))
				name[at] = byte(c)
				s := `"` + string(name) + contractsPlain
				want, ok := ref(s)
				if !ok {
					continue
				}
				d := &decoder{s: s}
				got, err := d.typeName()
				if err != nil || got != want {
					t.Fatalf("typeName(%q) = %q, %v; want %q", s, got, err, want)
				}
			}
		}
	}
}
