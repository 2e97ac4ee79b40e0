package wdl

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
)

// Numbers as the engine's .NET reads and prints them: float() and isFloat() parse with
// NumberStyles that allow thousands separators and a trailing sign (which is why the reference
// lists '12345,6,78,-' among float's "unexpectedly valid inputs"), decimal() keeps the
// digits a System.Decimal keeps, formatNumber() takes .NET numeric format strings.

// netNumber is a number text split by parseNetNumber: its sign, its digits and the position of
// the decimal point among them (value = 0.digits × 10^point).
type netNumber struct {
	neg    bool
	digits string // without leading zeros; "" is zero
	point  int
}

// parseNetNumber reads s as .NET's Number.TryParse does with NumberStyles.Number |
// NumberStyles.AllowExponent in culture c: white space around, a leading or a trailing sign,
// group separators anywhere after the first digit of the integer part, a decimal separator,
// an exponent.
func parseNetNumber(s string, c *culture) (netNumber, bool) {
	var n netNumber
	s = strings.TrimFunc(s, unicode.IsSpace)
	signs := 0
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		n.neg = s[0] == '-'
		s = s[1:]
		signs++
	}
	var digits strings.Builder
	sawDigit, sawPoint := false, false
	point := 0
	for len(s) > 0 {
		ch := s[0]
		switch {
		case isDigit(ch):
			if ch != '0' || digits.Len() > 0 {
				digits.WriteByte(ch)
			} else if sawPoint {
				point-- // a zero right after the point, before any significant digit
			}
			if !sawPoint && (ch != '0' || digits.Len() > 0) {
				point++
			}
			sawDigit = true
			s = s[1:]
			continue
		case !sawPoint && strings.HasPrefix(s, c.decimal):
			sawPoint = true
			s = s[len(c.decimal):]
			continue
		case !sawPoint && sawDigit && c.group != "" && strings.HasPrefix(s, c.group):
			s = s[len(c.group):]
			continue
		case !sawPoint && sawDigit && ch == ' ' && (c.group == "\u00a0" || c.group == "\u202f"):
			// .NET takes a plain space for a no-break-space group separator (fr-FR)
			s = s[1:]
			continue
		}
		break
	}
	if !sawDigit {
		return n, false
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		rest := s[1:]
		esign := 1
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			if rest[0] == '-' {
				esign = -1
			}
			rest = rest[1:]
		}
		j := 0
		exp := 0
		for j < len(rest) && isDigit(rest[j]) {
			if exp < 100000 {
				exp = exp*10 + int(rest[j]-'0')
			}
			j++
		}
		if j > 0 {
			point += esign * exp
			s = rest[j:]
		}
	}
	if signs == 0 && (strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+")) {
		n.neg = s[0] == '-'
		s = s[1:]
	}
	if strings.TrimFunc(s, unicode.IsSpace) != "" {
		return n, false
	}
	n.digits = digits.String() // trailing zeros kept: decimal('1.50') keeps its scale
	n.point = point
	if strings.Trim(n.digits, "0") == "" {
		n.digits, n.point = "", 0
	}
	return n, true
}

// float64 is the nearest double, as double.Parse rounds.
func (n netNumber) float64() (float64, bool) {
	if n.digits == "" {
		if n.neg {
			return math.Copysign(0, -1), true
		}
		return 0, true
	}
	text := "0." + n.digits + "e" + strconv.Itoa(n.point)
	if n.neg {
		text = "-" + text
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// fnFloat is float(value, locale?): text in the locale's number format (en-US by default), or
// a number.
func fnFloat(env *Env, a args3, n int) (value, error) {
	v := a[0]
	c, err := localeArg(a[1], n == 2, enUS)
	if err != nil {
		return null, err
	}
	switch v.k {
	case kFloat:
		return v, nil
	case kInt:
		return floatV(float64(v.i)), nil
	case kDec:
		return floatV(v.float()), nil
	case kStr:
		num, ok := parseNetNumber(v.s, c)
		if !ok {
			return null, failf("cannot convert '%s' to a float", v.s)
		}
		f, ok := num.float64()
		if !ok {
			return null, failf("cannot convert '%s' to a float: it is outside the range of a float", v.s)
		}
		return floatV(f), nil
	}
	return null, failf("expects a string or a number, got %s", v.typeName())
}

// fnIsFloat is isFloat(text, locale?): whether float() would read it. The reference says the
// default is the invariant culture, whose separators are en-US's.
func fnIsFloat(env *Env, a args3, n int) (value, error) {
	if a[0].k != kStr {
		return null, failf("expects its first parameter to be a string, got %s", a[0].typeName())
	}
	c, err := localeArg(a[1], n == 2, invariantCulture)
	if err != nil {
		return null, err
	}
	num, ok := parseNetNumber(a[0].s, c)
	if ok {
		_, ok = num.float64()
	}
	return boolV(ok), nil
}

// fnIsInt is isInt(text): whether int() would read it.
func fnIsInt(env *Env, a args3, _ int) (value, error) {
	if a[0].k != kStr {
		return null, failf("expects its parameter to be a string, got %s", a[0].typeName())
	}
	_, err := strconv.ParseInt(strings.TrimFunc(a[0].s, unicode.IsSpace), 10, 64)
	return boolV(err == nil), nil
}

// decimal is a System.Decimal: an integer of at most 96 bits scaled by 10^-scale, scale 0 to
// 28. Trailing zeros are kept (decimal('1.50') prints 1.50), as .NET keeps them.
type decimal struct {
	m     big.Int
	scale int
}

var (
	maxDecimalMantissa = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 96), big.NewInt(1))
	bigTen             = big.NewInt(10)
)

const maxDecimalScale = 28

func decV(d *decimal) value { return value{k: kDec, ref: d} }

func (v value) dec() *decimal { d, _ := v.ref.(*decimal); return d }

// float is a number as a float64 (for a decimal, the nearest double).
func (v value) float() float64 {
	switch v.k {
	case kInt:
		return float64(v.i)
	case kFloat:
		return v.f
	case kDec:
		f, _ := strconv.ParseFloat(v.dec().String(), 64)
		return f
	}
	return math.NaN()
}

func (d *decimal) String() string {
	s := new(big.Int).Abs(&d.m).String()
	if d.scale > 0 {
		if len(s) <= d.scale {
			s = strings.Repeat("0", d.scale-len(s)+1) + s
		}
		s = s[:len(s)-d.scale] + "." + s[len(s)-d.scale:]
	}
	if d.m.Sign() < 0 {
		s = "-" + s
	}
	return s
}

func (d *decimal) rat() *big.Rat {
	return new(big.Rat).SetFrac(&d.m, new(big.Int).Exp(bigTen, big.NewInt(int64(d.scale)), nil))
}

// normalize rounds away digits (half away from zero, as System.Decimal does) until the
// mantissa fits in 96 bits and the scale in 28; it fails when the integer part itself is too
// large.
func (d *decimal) normalize() bool {
	for d.scale > maxDecimalScale || new(big.Int).Abs(&d.m).Cmp(maxDecimalMantissa) > 0 {
		if d.scale == 0 {
			return false
		}
		q, r := new(big.Int).QuoRem(&d.m, bigTen, new(big.Int))
		if r.CmpAbs(big.NewInt(5)) >= 0 {
			if d.m.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
		d.m.Set(q)
		d.scale--
	}
	return true
}

// decimalFromNumber builds a decimal from parsed digits.
func decimalFromNumber(n netNumber) (*decimal, bool) {
	d := &decimal{}
	if n.digits == "" {
		return d, true
	}
	if n.point > 29 {
		return nil, false
	}
	scale := len(n.digits) - n.point
	if scale > maxDecimalScale+len(n.digits) {
		return d, true // rounds to zero
	}
	digits := n.digits
	if scale < 0 {
		digits += strings.Repeat("0", -scale)
		scale = 0
	}
	d.m.SetString(digits, 10)
	if n.neg {
		d.m.Neg(&d.m)
	}
	d.scale = scale
	return d, d.normalize()
}

func decimalFromValue(v value) (*decimal, bool) {
	switch v.k {
	case kDec:
		return v.dec(), true
	case kInt:
		d := &decimal{}
		d.m.SetInt64(v.i)
		return d, true
	case kFloat:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			return nil, false
		}
		n, ok := parseNetNumber(strconv.FormatFloat(v.f, 'g', 15, 64), invariantCulture)
		if !ok {
			return nil, false
		}
		return decimalFromNumber(n)
	}
	return nil, false
}

// fnDecimal is decimal(text): the text as a System.Decimal. A string() of it gives its digits
// back exactly; used as a number it is the nearest double.
func fnDecimal(env *Env, a args3, _ int) (value, error) {
	v := a[0]
	switch v.k {
	case kDec:
		return v, nil
	case kStr:
		n, ok := parseNetNumber(v.s, invariantCulture)
		if !ok {
			return null, failf("cannot convert '%s' to a decimal", v.s)
		}
		d, ok := decimalFromNumber(n)
		if !ok {
			return null, failf("cannot convert '%s' to a decimal: it is outside the range of a decimal", v.s)
		}
		return decV(d), nil
	case kInt, kFloat:
		d, ok := decimalFromValue(v)
		if !ok {
			return null, failf("cannot convert %s to a decimal", text(v, nil))
		}
		return decV(d), nil
	}
	return null, failf("expects a string or a number, got %s", v.typeName())
}

func alignScales(a, b *decimal) (x, y *big.Int, scale int) {
	x, y = new(big.Int).Set(&a.m), new(big.Int).Set(&b.m)
	scale = max(a.scale, b.scale)
	if a.scale < scale {
		x.Mul(x, new(big.Int).Exp(bigTen, big.NewInt(int64(scale-a.scale)), nil))
	}
	if b.scale < scale {
		y.Mul(y, new(big.Int).Exp(bigTen, big.NewInt(int64(scale-b.scale)), nil))
	}
	return x, y, scale
}

// decimalArith computes a op b in System.Decimal arithmetic.
func decimalArith(op byte, a, b *decimal) (*decimal, error) {
	r := &decimal{}
	switch op {
	case '+', '-':
		x, y, scale := alignScales(a, b)
		if op == '+' {
			r.m.Add(x, y)
		} else {
			r.m.Sub(x, y)
		}
		r.scale = scale
	case '*':
		r.m.Mul(&a.m, &b.m)
		r.scale = a.scale + b.scale
	case '/', '%':
		if b.m.Sign() == 0 {
			return nil, failf("cannot divide by zero")
		}
		if op == '%' {
			x, y, scale := alignScales(a, b)
			r.m.Rem(x, y)
			r.scale = scale
			break
		}
		// System.Decimal division keeps as many digits as fit, without trailing zeros.
		q := new(big.Rat).Quo(a.rat(), b.rat())
		scaled := new(big.Rat).Mul(q, new(big.Rat).SetInt(new(big.Int).Exp(bigTen, big.NewInt(maxDecimalScale), nil)))
		num, den := scaled.Num(), scaled.Denom()
		quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
		if new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2)).Cmp(den) >= 0 {
			if num.Sign() < 0 {
				quo.Sub(quo, big.NewInt(1))
			} else {
				quo.Add(quo, big.NewInt(1))
			}
		}
		r.m.Set(quo)
		r.scale = maxDecimalScale
		for r.scale > 0 {
			qq, rr := new(big.Int).QuoRem(&r.m, bigTen, new(big.Int))
			if rr.Sign() != 0 {
				break
			}
			r.m.Set(qq)
			r.scale--
		}
	}
	if !r.normalize() {
		return nil, failf("the result is outside the range of a decimal")
	}
	return r, nil
}

// Number formatting (formatNumber): .NET standard and custom numeric format strings.

var (
	currencyPosPatterns = [...]string{"$n", "n$", "$ n", "n $"}
	currencyNegPatterns = [...]string{"($n)", "-$n", "$-n", "$n-", "(n$)", "-n$", "n-$", "n$-", "-n $", "-$ n",
		"n $-", "$ n-", "$ -n", "n- $", "($ n)", "(n $)", "$- n"}
	percentPosPatterns = [...]string{"n %", "n%", "%n", "% n"}
	percentNegPatterns = [...]string{"-n %", "-n%", "-%n", "%-n", "%n-", "n-%", "n%-", "-% n", "n %-", "% n-", "% -n", "n- %"}
)

// fnFormatNumber is formatNumber(number, format, locale?).
func fnFormatNumber(env *Env, a args3, n int) (value, error) {
	num := a[0]
	if !num.isNum() {
		return null, failf("expects its first parameter to be a number, got %s", num.typeName())
	}
	if a[1].k != kStr {
		return null, failf("expects its format to be a string, got %s", a[1].typeName())
	}
	c, err := localeArg(a[2], n == 3, enUS)
	if err != nil {
		return null, err
	}
	s, err := formatNumber(num, a[1].s, c)
	if err != nil {
		return null, err
	}
	return strV(s), nil
}

// exactDigits returns |v| rounded half away from zero to frac decimals, as "int.frac" digits.
func exactDigits(v value, frac int) string {
	var r *big.Rat
	switch v.k {
	case kInt:
		r = new(big.Rat).SetInt64(v.i)
	case kDec:
		r = v.dec().rat()
	default:
		r = new(big.Rat)
		if _, ok := r.SetString(strconv.FormatFloat(v.f, 'g', 17, 64)); !ok {
			r.SetFloat64(v.f)
		}
		// A double prints with its shortest round-tripping digits in .NET Core 3.0 and later,
		// so 17.35 formats as 17.35, not as the binary value's 17.3499999...
		if short, ok := new(big.Rat).SetString(strconv.FormatFloat(v.f, 'g', -1, 64)); ok {
			r = short
		}
	}
	r.Abs(r)
	scale := new(big.Int).Exp(bigTen, big.NewInt(int64(frac)), nil)
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	q, rem := new(big.Int).QuoRem(scaled.Num(), scaled.Denom(), new(big.Int))
	if new(big.Int).Mul(rem, big.NewInt(2)).Cmp(scaled.Denom()) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	s := q.String()
	if frac == 0 {
		return s
	}
	if len(s) <= frac {
		s = strings.Repeat("0", frac-len(s)+1) + s
	}
	return s[:len(s)-frac] + "." + s[len(s)-frac:]
}

func isNegative(v value) bool {
	switch v.k {
	case kInt:
		return v.i < 0
	case kDec:
		return v.dec().m.Sign() < 0
	}
	return v.f < 0 || (v.f == 0 && math.Signbit(v.f))
}

func group(intPart string, sep string) string {
	if len(intPart) <= 3 {
		return intPart
	}
	var b strings.Builder
	head := len(intPart) % 3
	if head > 0 {
		b.WriteString(intPart[:head])
	}
	for i := head; i < len(intPart); i += 3 {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(intPart[i : i+3])
	}
	return b.String()
}

// fixed formats |v| with frac decimals, grouped or not, in culture c.
func fixed(v value, frac int, grouped bool, c *culture) string {
	s := exactDigits(v, frac)
	intPart, fracPart, _ := strings.Cut(s, ".")
	if grouped {
		intPart = group(intPart, c.group)
	}
	if fracPart != "" {
		return intPart + c.decimal + fracPart
	}
	return intPart
}

func allZero(s string) bool { return strings.Trim(s, "0.") == "" }

func formatNumber(v value, format string, c *culture) (string, error) {
	if v.k == kFloat && (math.IsNaN(v.f) || math.IsInf(v.f, 0)) {
		switch {
		case math.IsNaN(v.f):
			return "NaN", nil
		case v.f > 0:
			return "∞", nil
		}
		return "-∞", nil
	}
	if f, prec, ok := standardNumberFormat(format); ok {
		return formatStandardNumber(v, f, prec, c)
	}
	return formatCustomNumber(v, format, c)
}

// standardNumberFormat recognises a standard numeric format: a letter and up to three digits.
func standardNumberFormat(format string) (byte, int, bool) {
	if format == "" {
		return 'G', -1, true
	}
	f := format[0]
	if !(f|0x20 >= 'a' && f|0x20 <= 'z') {
		return 0, 0, false
	}
	if len(format) == 1 {
		return f, -1, true
	}
	if len(format) > 4 {
		return 0, 0, false
	}
	p, err := strconv.Atoi(format[1:])
	if err != nil || p < 0 || format[1] == '+' || format[1] == '-' {
		return 0, 0, false
	}
	return f, p, true
}

func formatStandardNumber(v value, f byte, prec int, c *culture) (string, error) {
	neg := isNegative(v)
	withSign := func(s string) string {
		if neg && !allZero(s) {
			return "-" + s
		}
		return s
	}
	switch f | 0x20 {
	case 'c':
		if prec < 0 {
			prec = c.currencyDigits
		}
		s := fixed(v, prec, true, c)
		pattern := currencyPosPatterns[c.currencyPos]
		if neg && !allZero(exactDigits(v, prec)) {
			pattern = currencyNegPatterns[c.currencyNeg]
		}
		return strings.NewReplacer("$", c.currency, "n", s).Replace(pattern), nil
	case 'd':
		if v.k != kInt {
			return "", failf("the format '%c' applies to integers only", f)
		}
		s := strconv.FormatUint(absInt(v.i), 10)
		for len(s) < prec {
			s = "0" + s
		}
		return withSign(s), nil
	case 'e':
		if prec < 0 {
			prec = 6
		}
		return withSign(exponential(v, prec, f == 'E', "+", 3, c)), nil
	case 'f':
		if prec < 0 {
			prec = 2
		}
		return withSign(fixed(v, prec, false, c)), nil
	case 'n':
		if prec < 0 {
			prec = 2
		}
		return withSign(fixed(v, prec, true, c)), nil
	case 'p':
		if prec < 0 {
			prec = 2
		}
		scaled := scale100(v)
		s := fixed(scaled, prec, true, c)
		pattern := percentPosPatterns[c.percentPos]
		if neg && !allZero(exactDigits(scaled, prec)) {
			pattern = percentNegPatterns[c.percentNeg]
		}
		return strings.NewReplacer("%", "%", "n", s, "-", "-").Replace(pattern), nil
	case 'g', 'r':
		if prec <= 0 || f|0x20 == 'r' {
			return localized(text(v, nil), c), nil
		}
		if v.k == kInt && prec >= len(strconv.FormatUint(absInt(v.i), 10)) {
			return localized(text(v, nil), c), nil
		}
		g := strconv.FormatFloat(v.float(), 'g', prec, 64)
		if e := strings.IndexByte(g, 'e'); e >= 0 {
			// .NET writes at least two exponent digits: 1.2E+15
			mant, exp := g[:e], g[e+1:]
			sign := exp[0]
			digits := strings.TrimLeft(exp[1:], "0")
			for len(digits) < 2 {
				digits = "0" + digits
			}
			g = mant + "E" + string(sign) + digits
			if f == 'g' {
				g = strings.Replace(g, "E", "e", 1)
			}
		}
		return localized(g, c), nil
	case 'x':
		if v.k != kInt {
			return "", failf("the format '%c' applies to integers only", f)
		}
		s := strconv.FormatUint(uint64(v.i), 16)
		if f == 'X' {
			s = strings.ToUpper(s)
		}
		for len(s) < prec {
			s = "0" + s
		}
		return s, nil
	}
	return "", failf("does not know the number format '%c'", f)
}

func absInt(i int64) uint64 {
	if i < 0 {
		return uint64(-(i + 1)) + 1
	}
	return uint64(i)
}

// localized swaps the invariant decimal point for the culture's.
func localized(s string, c *culture) string {
	if c.decimal == "." {
		return s
	}
	return strings.Replace(s, ".", c.decimal, 1)
}

func scale100(v value) value {
	switch v.k {
	case kInt:
		if v.i < math.MaxInt64/100 && v.i > math.MinInt64/100 {
			return intV(v.i * 100)
		}
		return floatV(float64(v.i) * 100)
	case kDec:
		d := &decimal{scale: v.dec().scale}
		d.m.Mul(&v.dec().m, big.NewInt(100))
		return decV(d)
	}
	return floatV(v.f * 100)
}

// exponential writes |v| as d.ddd…E+xxx with prec decimals and at least minExp exponent digits,
// rounding half away from zero on the shortest digits of the number, as .NET does.
func exponential(v value, prec int, upper bool, plus string, minExp int, c *culture) string {
	digits, exp := sigDigits(v, prec+1)
	mant := digits[:1]
	if prec > 0 {
		mant += c.decimal + digits[1:]
	}
	sign := plus
	if exp < 0 {
		sign, exp = "-", -exp
	}
	e := strconv.Itoa(exp)
	for len(e) < minExp {
		e = "0" + e
	}
	letter := "e"
	if upper {
		letter = "E"
	}
	return mant + letter + sign + e
}

// sigDigits returns n significant digits of |v| (rounded half away from zero) and the decimal
// exponent of the first one.
func sigDigits(v value, n int) (string, int) {
	var s string
	switch v.k {
	case kInt:
		s = strconv.FormatUint(absInt(v.i), 10) + "e0"
		s = s[:1] + "." + s[1:len(s)-2] + "e" + strconv.Itoa(len(s)-3)
	case kDec:
		f, _ := strconv.ParseFloat(v.dec().String(), 64)
		s = strconv.FormatFloat(math.Abs(f), 'e', -1, 64)
	default:
		s = strconv.FormatFloat(math.Abs(v.f), 'e', -1, 64)
	}
	mant, expText, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)
	if strings.Trim(digits, "0") == "" {
		return strings.Repeat("0", n), 0
	}
	if len(digits) <= n {
		return digits + strings.Repeat("0", n-len(digits)), exp
	}
	round := digits[n] >= '5'
	b := []byte(digits[:n])
	for i := n - 1; round && i >= 0; i-- {
		if b[i] == '9' {
			b[i] = '0'
			continue
		}
		b[i]++
		round = false
	}
	if round {
		return "1" + string(b[:n-1]), exp + 1
	}
	return string(b), exp
}

// formatCustomNumber applies a custom numeric format ("#,##0.00", "0.0%", "000"): up to three
// sections for positive;negative;zero, digit placeholders 0 and #, the decimal point, group
// separators, a trailing comma scaling by 1000, % and ‰, exponents, quoted literals and \ escapes.
func formatCustomNumber(v value, format string, c *culture) (string, error) {
	sections := splitSections(format)
	neg := isNegative(v)
	sec := sections[0]
	explicitNeg := false
	if neg && len(sections) > 1 && sections[1] != "" {
		sec, explicitNeg = sections[1], true
	}
	out, zero, err := customSection(v, sec, c)
	if err != nil {
		return "", err
	}
	if zero && len(sections) > 2 && sections[2] != "" {
		out, _, err = customSection(v, sections[2], c)
		return out, err
	}
	if neg && !explicitNeg && !zero {
		out = "-" + out
	}
	return out, nil
}

func splitSections(format string) []string {
	var sections []string
	start := 0
	for i := 0; i < len(format); i++ {
		switch format[i] {
		case '\\':
			i++
		case '\'', '"':
			if end := strings.IndexByte(format[i+1:], format[i]); end >= 0 {
				i += end + 1
			} else {
				i = len(format)
			}
		case ';':
			sections = append(sections, format[start:i])
			start = i + 1
		}
	}
	return append(sections, format[start:])
}

// customSection formats |v| with one section; zero reports that the rounded value is zero.
func customSection(v value, sec string, c *culture) (string, bool, error) {
	// First pass: the shape of the placeholders.
	intPlaces, minInt, fracPlaces, minFrac := 0, 0, 0, 0
	sawPoint, grouping, sawZero := false, false, false
	scaleThousands, percent, permille := 0, 0, 0
	expAt := -1
	for i := 0; i < len(sec); i++ {
		ch := sec[i]
		switch ch {
		case '0', '#':
			if sawPoint {
				fracPlaces++
				if ch == '0' {
					minFrac = fracPlaces
				}
			} else {
				intPlaces++
				if ch == '0' || sawZero {
					sawZero = true
					minInt++
				}
			}
		case '.':
			sawPoint = true
		case ',':
			// a comma between placeholders groups; commas right before the point (or the end of
			// the placeholders) scale by 1000 each
			j := i
			for j < len(sec) && sec[j] == ',' {
				j++
			}
			if !sawPoint && intPlaces > 0 && j < len(sec) && (sec[j] == '0' || sec[j] == '#') {
				grouping = true
			} else if !sawPoint && intPlaces > 0 {
				scaleThousands += j - i
			}
			i = j - 1
		case '%':
			percent++
		case 'E', 'e':
			if expAt < 0 && i+1 < len(sec) && (sec[i+1] == '0' || ((sec[i+1] == '+' || sec[i+1] == '-') && i+2 < len(sec) && sec[i+2] == '0')) {
				expAt = i
				for i+1 < len(sec) && (sec[i+1] == '0' || sec[i+1] == '+' || sec[i+1] == '-') {
					i++
				}
			}
		case '\\':
			i++
		case '\'', '"':
			if end := strings.IndexByte(sec[i+1:], ch); end >= 0 {
				i += end + 1
			} else {
				return "", false, failf("has an unterminated quote in the format '%s'", sec)
			}
		}
	}
	permille = strings.Count(sec, "\u2030")
	x := v
	for range percent {
		x = scale100(x)
	}
	for range permille {
		x = scaleFloat(x, 1000)
	}
	for range scaleThousands {
		x = scaleFloat(x, 0.001)
	}
	var intDigits, fracDigits, expText string
	if expAt >= 0 {
		// d.ddd with as many integer digits as placeholders before the point
		f := math.Abs(x.float())
		exp := 0
		if f != 0 {
			exp = int(math.Floor(math.Log10(f))) - (max(intPlaces, 1) - 1)
		}
		mant := f / math.Pow(10, float64(exp))
		ds := exactDigits(floatV(mant), fracPlaces)
		if len(strings.SplitN(ds, ".", 2)[0]) > max(intPlaces, 1) {
			exp++
			ds = exactDigits(floatV(f/math.Pow(10, float64(exp))), fracPlaces)
		}
		intDigits, fracDigits, _ = strings.Cut(ds, ".")
		j := expAt + 1
		sign := ""
		if sec[j] == '+' || sec[j] == '-' {
			if sec[j] == '+' && exp >= 0 {
				sign = "+"
			}
			j++
		}
		if exp < 0 {
			sign = "-"
		}
		minExp := 0
		for j < len(sec) && sec[j] == '0' {
			minExp++
			j++
		}
		e := strconv.Itoa(absIntInt(exp))
		for len(e) < minExp {
			e = "0" + e
		}
		expText = string(sec[expAt]) + sign + e
	} else {
		ds := exactDigits(x, fracPlaces)
		intDigits, fracDigits, _ = strings.Cut(ds, ".")
	}
	zero := allZero(intDigits + fracDigits)
	intDigits = strings.TrimLeft(intDigits, "0")
	for len(intDigits) < minInt {
		intDigits = "0" + intDigits
	}
	fracDigits = strings.TrimRight(fracDigits, "0")
	for len(fracDigits) < minFrac {
		fracDigits += "0"
	}
	// Second pass: write the section, digits in place of the placeholders.
	var b strings.Builder
	intSeen, fracSeen := 0, 0
	pointDone := false
	lead := len(intDigits) - intPlaces // digits beyond the placeholders go at the first one
	writeInt := func(digit string, pos int) {
		// pos: index of this digit counted from the left of intDigits
		b.WriteString(digit)
		fromRight := len(intDigits) - pos - 1
		if grouping && fromRight > 0 && fromRight%3 == 0 {
			b.WriteString(c.group)
		}
	}
	for i := 0; i < len(sec); i++ {
		ch := sec[i]
		switch {
		case (ch == '0' || ch == '#') && !pointDone:
			if intSeen == 0 && lead > 0 {
				for k := 0; k < lead; k++ {
					writeInt(intDigits[k:k+1], k)
				}
			}
			idx := intSeen + lead
			if idx >= 0 && idx < len(intDigits) {
				writeInt(intDigits[idx:idx+1], idx)
			}
			intSeen++
		case (ch == '0' || ch == '#') && pointDone:
			if fracSeen < len(fracDigits) {
				b.WriteByte(fracDigits[fracSeen])
			}
			fracSeen++
		case ch == '.':
			if !pointDone {
				pointDone = true
				if intSeen == 0 && len(intDigits) > 0 {
					for k := 0; k < len(intDigits); k++ {
						writeInt(intDigits[k:k+1], k)
					}
				}
				if len(fracDigits) > 0 {
					b.WriteString(c.decimal)
				}
			}
		case ch == ',':
		case ch == '%':
			b.WriteString("%")
		case i == expAt:
			b.WriteString(expText)
			for i+1 < len(sec) && (sec[i+1] == '0' || sec[i+1] == '+' || sec[i+1] == '-') {
				i++
			}
		case ch == '\\':
			if i+1 < len(sec) {
				b.WriteByte(sec[i+1])
				i++
			}
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(sec[i+1:], ch)
			b.WriteString(sec[i+1 : i+1+end])
			i += end + 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), zero, nil
}

func absIntInt(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

func scaleFloat(v value, by float64) value { return floatV(v.float() * by) }
