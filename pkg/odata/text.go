package odata

import (
	"unicode"
	"unicode/utf8"
)

// foldRune maps a rune to the form used for case-insensitive comparison.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}
	return unicode.ToLower(unicode.ToUpper(r))
}

// compareFold orders two strings ignoring case, rune by rune.
func compareFold(a, b string) int {
	for len(a) > 0 && len(b) > 0 {
		var ra, rb rune
		if a[0] < utf8.RuneSelf {
			ra, a = rune(a[0]), a[1:]
		} else {
			r, n := utf8.DecodeRuneInString(a)
			ra, a = r, a[n:]
		}
		if b[0] < utf8.RuneSelf {
			rb, b = rune(b[0]), b[1:]
		} else {
			r, n := utf8.DecodeRuneInString(b)
			rb, b = r, b[n:]
		}
		if ra == rb {
			continue
		}
		fa, fb := foldRune(ra), foldRune(rb)
		if fa != fb {
			if fa < fb {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) == len(b):
		return 0
	case len(a) == 0:
		return -1
	}
	return 1
}

// like reports whether s matches the SQL LIKE pattern p, ignoring case. leadAny and trailAny put
// an implicit % before and after the pattern (contains is both, startswith trailAny, endswith
// leadAny). Wildcards: % any run, _ any one character, [abc] [a-z] [^a] one character of a set.
// A [ without a closing ] is literal. Matching backtracks only to the last %, so it is
// O(len(s)·len(p)) at worst and allocates nothing.
func like(s, p string, leadAny, trailAny bool) bool {
	si, pi := 0, 0
	starP, starS := -1, -1
	if leadAny {
		starP, starS = 0, 0
	}
	for {
		if pi < len(p) {
			if p[pi] == '%' {
				pi++
				starP, starS = pi, si
				continue
			}
			if si < len(s) {
				r, size := utf8.DecodeRuneInString(s[si:])
				if plen, ok := matchOne(p[pi:], r); ok {
					si += size
					pi += plen
					continue
				}
			}
		} else if si == len(s) || trailAny {
			return true
		}
		if starP < 0 || starS >= len(s) {
			return false
		}
		_, size := utf8.DecodeRuneInString(s[starS:])
		starS += size
		si, pi = starS, starP
	}
}

// matchOne matches r against the single-character pattern element at the start of p and returns
// the element's length in bytes.
func matchOne(p string, r rune) (int, bool) {
	switch p[0] {
	case '_':
		return 1, true
	case '[':
		if end, ok := matchSet(p, r); end > 0 {
			return end, ok
		}
		return 1, r == '['
	}
	pr, size := utf8.DecodeRuneInString(p)
	return size, pr == r || foldRune(pr) == foldRune(r)
}

// matchSet matches r against the set [..] at the start of p. end is the set's length including
// the brackets, or 0 when there is no closing bracket.
func matchSet(p string, r rune) (end int, ok bool) {
	i := 1
	negate := false
	if i < len(p) && p[i] == '^' {
		negate = true
		i++
	}
	fr := foldRune(r)
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return i + 1, ok != negate
		}
		first = false
		lo, n := utf8.DecodeRuneInString(p[i:])
		i += n
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi, n = utf8.DecodeRuneInString(p[i+1:])
			i += 1 + n
		}
		if (lo <= r && r <= hi) || (foldRune(lo) <= fr && fr <= foldRune(hi)) {
			ok = true
		}
	}
	return 0, false
}

// likePlainASCII is like for an ASCII text s and a lower-case ASCII pattern p without wildcards.
func likePlainASCII(s, p string, leadAny, trailAny bool) bool {
	switch {
	case leadAny && trailAny:
		for i := 0; i+len(p) <= len(s); i++ {
			if equalFoldASCII(s[i:i+len(p)], p) {
				return true
			}
		}
		return false
	case trailAny:
		return len(s) >= len(p) && equalFoldASCII(s[:len(p)], p)
	case leadAny:
		return len(s) >= len(p) && equalFoldASCII(s[len(s)-len(p):], p)
	}
	return len(s) == len(p) && equalFoldASCII(s, p)
}

// equalFoldASCII reports whether the ASCII text s equals the lower-case ASCII text lower
// ignoring case; the lengths must be equal.
func equalFoldASCII(s, lower string) bool {
	for i := 0; i < len(lower); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
