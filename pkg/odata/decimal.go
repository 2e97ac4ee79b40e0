package odata

// decimal is a parsed view of a decimal number's text, used to compare numbers exactly without
// converting to float64 (which cannot tell 9007199254740993 from 9007199254740992) and without
// allocating. The value is 0.d1d2d3... × 10^point, where d1 is the first significant digit.
type decimal struct {
	neg      bool
	zero     bool
	intPart  string // digits before the point, as written
	fracPart string // digits after the point, as written
	skip     int    // leading zeros to skip across intPart+fracPart
	n        int    // significant digits after skip
	point    int
}

// maxExponent bounds exponents so that arithmetic on them cannot overflow; anything larger is
// far beyond any Dataverse number and is rejected.
const maxExponent = 1 << 20

// parseDecimal parses -?digits[.digits][e[+-]digits] (a JSON number, or an OData literal).
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	d.intPart = s[start:i]
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		d.fracPart = s[fs:i]
	}
	if len(d.intPart) == 0 && len(d.fracPart) == 0 {
		return decimal{}, false
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			if exp > maxExponent {
				return decimal{}, false
			}
			exp = exp*10 + int(s[i]-'0')
			i++
		}
		if i == es {
			return decimal{}, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return decimal{}, false
	}
	z := 0
	for z < len(d.intPart) && d.intPart[z] == '0' {
		z++
	}
	if z < len(d.intPart) {
		d.skip = z
		d.point = len(d.intPart) - z + exp
	} else {
		fz := 0
		for fz < len(d.fracPart) && d.fracPart[fz] == '0' {
			fz++
		}
		d.skip = len(d.intPart) + fz
		d.point = -fz + exp
	}
	d.n = len(d.intPart) + len(d.fracPart) - d.skip
	d.zero = true
	for k := 0; k < d.n; k++ {
		if d.digit(k) != '0' {
			d.zero = false
			break
		}
	}
	return d, true
}

// digit returns the i-th significant digit, '0' past the end.
func (d *decimal) digit(i int) byte {
	j := d.skip + i
	if j < len(d.intPart) {
		return d.intPart[j]
	}
	j -= len(d.intPart)
	if j < len(d.fracPart) {
		return d.fracPart[j]
	}
	return '0'
}

func (d *decimal) sign() int {
	switch {
	case d.zero:
		return 0
	case d.neg:
		return -1
	}
	return 1
}

func compareDecimal(a, b *decimal) int {
	sa, sb := a.sign(), b.sign()
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	if sa == 0 {
		return 0
	}
	return sa * compareMagnitude(a, b)
}

func compareMagnitude(a, b *decimal) int {
	if a.point != b.point {
		if a.point < b.point {
			return -1
		}
		return 1
	}
	n := max(a.n, b.n)
	for i := 0; i < n; i++ {
		da, db := a.digit(i), b.digit(i)
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}
