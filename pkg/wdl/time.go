package wdl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The engine is .NET: timestamps are DateTime values between 0001-01-01 and 9999-12-31, parsed
// leniently and printed with .NET format strings in the en-US culture. Every timestamp is
// handled in UTC: inputs with an offset are converted, inputs without one are taken as UTC.

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)
)

func fnFormatDateTime(env *Env, a args3, n int) (value, error) {
	t, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	return formatted(t, a[1], n == 2)
}

// ticks counts 100-nanosecond intervals since 0001-01-01T00:00:00Z (.NET DateTime.Ticks).
func fnTicks(env *Env, a args3, _ int) (value, error) {
	t, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	return intV((t.Unix()+62135596800)*10_000_000 + int64(t.Nanosecond()/100)), nil
}

// addTime adds a number of units to a timestamp. It works in whole seconds plus nanoseconds
// because time.Duration cannot span the 10,000 years a .NET DateTime can.
func addTime(unitSeconds int64) func(env *Env, a args3, n int) (value, error) {
	const maxSpan = 320_000_000_000 // seconds: more than 0001-01-01 to 9999-12-31
	return func(env *Env, a args3, n int) (value, error) {
		t, err := timeArg(a[0])
		if err != nil {
			return null, err
		}
		var secs, nanos int64
		switch a[1].k {
		case kInt:
			if a[1].i > maxSpan/unitSeconds || a[1].i < -maxSpan/unitSeconds {
				return null, failf("the result is outside the range of dates")
			}
			secs = a[1].i * unitSeconds
		case kFloat:
			total := a[1].f * float64(unitSeconds)
			if math.IsNaN(total) || total > maxSpan || total < -maxSpan {
				return null, failf("the result is outside the range of dates")
			}
			whole := math.Floor(total)
			secs, nanos = int64(whole), int64((total-whole)*1e9)
		default:
			return null, failf("expects its second parameter to be a number, got %s", a[1].typeName())
		}
		t = time.Unix(t.Unix()+secs, int64(t.Nanosecond())+nanos).UTC()
		if t.Before(minTime) || t.After(maxTime) {
			return null, failf("the result is outside the range of dates")
		}
		return formatted(t, a[2], n == 3)
	}
}

// formatted is t as a string in the optional format argument (present says whether it was
// given; without it, the ISO 8601 "o" format).
func formatted(t time.Time, format value, present bool) (value, error) {
	f := ""
	if present {
		if format.k != kStr {
			return null, failf("expects its format to be a string, got %s", format.typeName())
		}
		f = format.s
	}
	s, err := formatTime(t, f)
	if err != nil {
		return null, err
	}
	return strV(s), nil
}

func timeArg(v value) (time.Time, error) {
	if v.k != kStr {
		return time.Time{}, failf("expects a timestamp string, got %s", v.typeName())
	}
	t, ok := parseTimestamp(v.s)
	if !ok {
		return time.Time{}, failf("cannot parse '%s' as a timestamp", v.s)
	}
	return t, nil
}

// parseTimestamp reads the forms .NET's DateTime.Parse reads from Dataverse and flows: ISO 8601
// (date, or date and time with "T" or a space, optional seconds and fraction, optional Z or
// offset) and the en-US M/d/yyyy [h:mm[:ss]] [AM|PM].
func parseTimestamp(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, ok := parseISO(s); ok {
		return t, true
	}
	return parseUS(s)
}

type scan struct {
	s string
	i int
}

func (c *scan) num(minDigits, maxDigits int) (int, bool) {
	start := c.i
	n := 0
	for c.i < len(c.s) && c.i-start < maxDigits && isDigit(c.s[c.i]) {
		n = n*10 + int(c.s[c.i]-'0')
		c.i++
	}
	return n, c.i-start >= minDigits
}

func (c *scan) lit(b byte) bool {
	if c.i < len(c.s) && c.s[c.i] == b {
		c.i++
		return true
	}
	return false
}

func (c *scan) done() bool { return c.i == len(c.s) }

func parseISO(s string) (time.Time, bool) {
	c := scan{s: s}
	y, ok1 := c.num(4, 4)
	ok2 := c.lit('-')
	mo, ok3 := c.num(2, 2)
	ok4 := c.lit('-')
	d, ok5 := c.num(2, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return time.Time{}, false
	}
	var h, mi, sec, nsec int
	offset := 0
	if !c.done() {
		if !c.lit('T') && !c.lit('t') && !c.lit(' ') {
			return time.Time{}, false
		}
		var ok bool
		if h, ok = c.num(2, 2); !ok || !c.lit(':') {
			return time.Time{}, false
		}
		if mi, ok = c.num(2, 2); !ok {
			return time.Time{}, false
		}
		if c.lit(':') {
			if sec, ok = c.num(2, 2); !ok {
				return time.Time{}, false
			}
			if c.lit('.') {
				start := c.i
				scale := 100_000_000
				for c.i < len(c.s) && isDigit(c.s[c.i]) {
					nsec += int(c.s[c.i]-'0') * scale
					scale /= 10
					c.i++
				}
				if c.i == start {
					return time.Time{}, false
				}
			}
		}
		switch {
		case c.lit('Z') || c.lit('z'):
		case !c.done() && (c.s[c.i] == '+' || c.s[c.i] == '-'):
			sign := 1
			if c.s[c.i] == '-' {
				sign = -1
			}
			c.i++
			oh, ok := c.num(2, 2)
			if !ok {
				return time.Time{}, false
			}
			om := 0
			if c.lit(':') {
				if om, ok = c.num(2, 2); !ok {
					return time.Time{}, false
				}
			} else if !c.done() {
				if om, ok = c.num(2, 2); !ok {
					return time.Time{}, false
				}
			}
			if oh > 14 || om > 59 {
				return time.Time{}, false
			}
			offset = sign * (oh*3600 + om*60)
		}
	}
	if !c.done() {
		return time.Time{}, false
	}
	return civil(y, mo, d, h, mi, sec, nsec, offset)
}

func parseUS(s string) (time.Time, bool) {
	c := scan{s: s}
	mo, ok1 := c.num(1, 2)
	ok2 := c.lit('/')
	d, ok3 := c.num(1, 2)
	ok4 := c.lit('/')
	y, ok5 := c.num(4, 4)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return time.Time{}, false
	}
	var h, mi, sec int
	if c.lit(' ') {
		var ok bool
		if h, ok = c.num(1, 2); !ok || !c.lit(':') {
			return time.Time{}, false
		}
		if mi, ok = c.num(2, 2); !ok {
			return time.Time{}, false
		}
		if c.lit(':') {
			if sec, ok = c.num(2, 2); !ok {
				return time.Time{}, false
			}
		}
		if c.lit(' ') {
			switch strings.ToUpper(c.s[c.i:]) {
			case "AM":
				if h < 1 || h > 12 {
					return time.Time{}, false
				}
				h %= 12
			case "PM":
				if h < 1 || h > 12 {
					return time.Time{}, false
				}
				h = h%12 + 12
			default:
				return time.Time{}, false
			}
			c.i = len(c.s)
		}
	}
	if !c.done() {
		return time.Time{}, false
	}
	return civil(y, mo, d, h, mi, sec, 0, 0)
}

// civil validates the fields (time.Date would normalise 2024-02-30 into March) and builds the
// UTC instant.
func civil(y, mo, d, h, mi, sec, nsec, offset int) (time.Time, bool) {
	if y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	if d > time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, false
	}
	return t, true
}

// standardFormats expands .NET's single-letter date and time formats (en-US culture).
var standardFormats = map[byte]string{
	'd': "M/d/yyyy",
	'D': "dddd, MMMM d, yyyy",
	'f': "dddd, MMMM d, yyyy h:mm tt",
	'F': "dddd, MMMM d, yyyy h:mm:ss tt",
	'g': "M/d/yyyy h:mm tt",
	'G': "M/d/yyyy h:mm:ss tt",
	'm': "MMMM d",
	'M': "MMMM d",
	'o': "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
	'O': "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
	'r': "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
	'R': "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
	's': "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
	't': "h:mm tt",
	'T': "h:mm:ss tt",
	'u': "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
	'U': "dddd, MMMM d, yyyy h:mm:ss tt",
	'y': "MMMM yyyy",
	'Y': "MMMM yyyy",
}

var (
	monthNames = [...]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
	dayNames = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
)

// formatTime prints t (UTC) with a .NET standard or custom format string; "" means "o".
func formatTime(t time.Time, format string) (string, error) {
	if format == "" {
		format = "o"
	}
	if len(format) == 1 {
		std, ok := standardFormats[format[0]]
		if !ok {
			return "", failf("does not know the format '%s'", format)
		}
		format = std
	}
	var b strings.Builder
	f := format
	for i := 0; i < len(f); {
		c := f[i]
		n := 1
		for i+n < len(f) && f[i+n] == c {
			n++
		}
		switch c {
		case 'y':
			y := t.Year()
			switch {
			case n == 1:
				b.WriteString(strconv.Itoa(y % 100))
			case n == 2:
				pad(&b, y%100, 2)
			default:
				pad(&b, y, n)
			}
		case 'M':
			switch {
			case n <= 2:
				pad(&b, int(t.Month()), n)
			case n == 3:
				b.WriteString(monthNames[t.Month()-1][:3])
			default:
				b.WriteString(monthNames[t.Month()-1])
			}
		case 'd':
			switch {
			case n <= 2:
				pad(&b, t.Day(), n)
			case n == 3:
				b.WriteString(dayNames[t.Weekday()][:3])
			default:
				b.WriteString(dayNames[t.Weekday()])
			}
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			pad(&b, h, min(n, 2))
		case 'H':
			pad(&b, t.Hour(), min(n, 2))
		case 'm':
			pad(&b, t.Minute(), min(n, 2))
		case 's':
			pad(&b, t.Second(), min(n, 2))
		case 'f', 'F':
			if n > 7 {
				return "", failf("has more than 7 fraction digits in '%s'", format)
			}
			digits := fmt.Sprintf("%07d", t.Nanosecond()/100)[:n]
			if c == 'F' {
				digits = strings.TrimRight(digits, "0")
				if digits == "" {
					// .NET drops the separator too when an F fraction prints nothing.
					s := b.String()
					if strings.HasSuffix(s, ".") {
						b.Reset()
						b.WriteString(s[:len(s)-1])
					}
				}
			}
			b.WriteString(digits)
		case 't':
			ampm := "AM"
			if t.Hour() >= 12 {
				ampm = "PM"
			}
			if n == 1 {
				ampm = ampm[:1]
			}
			b.WriteString(ampm)
		case 'K':
			b.WriteString(strings.Repeat("Z", n))
		case 'z':
			switch n {
			case 1:
				b.WriteString("+0")
			case 2:
				b.WriteString("+00")
			default:
				b.WriteString("+00:00")
			}
		case 'g':
			b.WriteString("A.D.")
		case '\'', '"':
			end := strings.IndexByte(f[i+1:], c)
			if end < 0 {
				return "", failf("has an unterminated quote in '%s'", format)
			}
			b.WriteString(f[i+1 : i+1+end])
			n = end + 2
		case '\\':
			if i+1 >= len(f) {
				return "", failf("ends with an escape character in '%s'", format)
			}
			b.WriteByte(f[i+1])
			n = 2
		case '%':
			n = 1 // "%d" is the custom specifier d on its own
		default:
			b.WriteString(f[i : i+n])
		}
		i += n
	}
	return b.String(), nil
}

func pad(b *strings.Builder, v, width int) {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b.WriteByte('0')
	}
	b.WriteString(s)
}
