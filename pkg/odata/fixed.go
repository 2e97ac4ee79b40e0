package odata

import "math/bits"

// fixed is a number short enough to compare with integer arithmetic: m × 10^-scale. Almost every
// number a row or a filter holds has this form (80, 150000, 1.0000000000, -12.5), so comparing
// two of them skips the digit-by-digit decimal comparison. Numbers with an exponent or more than
// 19 digits have no fixed form and take the exact decimal path (compareDecimalText).
type fixed struct {
	m     uint64
	scale uint8
	neg   bool
	ok    bool // false: s did not have the short form; compare as decimal text
}

// maxFixedDigits keeps m below 10^19, which fits in a uint64 and in pow10.
const maxFixedDigits = 19

var pow10 = [maxFixedDigits + 1]uint64{
	1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// parseFixed parses [+-]digits[.digits] with at most maxFixedDigits digits in all. It accepts
// exactly the exponent-free texts parseDecimal accepts ("1.", ".5" included), so that a number
// with a fixed form means the same in both.
func parseFixed(s string) fixed {
	var f fixed
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		f.neg = s[i] == '-'
		i++
	}
	digits, point := 0, -1
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			digits++
			if digits > maxFixedDigits {
				return fixed{}
			}
			f.m = f.m*10 + uint64(c-'0')
		case c == '.' && point < 0:
			point = digits
		default:
			return fixed{}
		}
	}
	if digits == 0 {
		return fixed{}
	}
	if point >= 0 {
		f.scale = uint8(digits - point)
	}
	f.ok = true
	return f
}

func (f fixed) sign() int {
	switch {
	case f.m == 0:
		return 0
	case f.neg:
		return -1
	}
	return 1
}

// compareFixed orders two numbers that both have a fixed form. It is exact: the mantissa with
// the smaller scale is multiplied up to the other's scale in 128 bits.
func compareFixed(a, b fixed) int {
	sa, sb := a.sign(), b.sign()
	if sa != sb {
		return cmpInt(sa, sb)
	}
	if sa == 0 {
		return 0
	}
	return sa * compareMagnitudeFixed(a, b)
}

func compareMagnitudeFixed(a, b fixed) int {
	switch {
	case a.scale < b.scale:
		hi, lo := bits.Mul64(a.m, pow10[b.scale-a.scale])
		if hi != 0 {
			return 1 // a scaled up exceeds 64 bits, so it exceeds b.m
		}
		return cmpUint(lo, b.m)
	case a.scale > b.scale:
		return -compareMagnitudeFixed(b, a)
	}
	return cmpUint(a.m, b.m)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
