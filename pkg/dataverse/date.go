package dataverse

import (
	"strings"
	"time"
)

// Dates arrive as .NET DataContractJsonSerializer writes them: "\/Date(ms)\/" or
// "\/Date(ms+hhmm)\/" (the slashes escaped or not). They leave as ISO 8601 UTC to the second,
// "2017-09-26T00:04:07Z", the form the Web API and Power Automate use.
//
// Offsets. The serializer appends an offset when the DateTime it wrote was marked Local. In the
// public samples with a non-zero offset on OperationCreatedOn, the true UTC instant is the
// milliseconds plus the offset (the server marks a UTC clock reading as local, and the serializer
// then shifts it by the offset): "/Date(1506409448000-0700)/" is 2017-09-26T00:04:08Z, one second
// after the same event's modifiedon "/Date(1506384247000)/". No sample shows an attribute date
// with a non-zero offset; the same serializer and the same server clock produce both, so
// attribute dates get the same rule (UTC = ms + offset). Without an offset the milliseconds are
// UTC. Milliseconds are dropped (floor), as the Web API's second precision does.

// dateLimit keeps the arithmetic far from int64 overflow; .NET dates stop at year 9999
// (253402300799999 ms).
const dateLimit = 1e15

// parseDate parses the inside of a date string, s[j:] being just after "Date(". It returns the
// UTC milliseconds (offset applied) and the index just after the closing ')'.
func parseDate(s string, j int) (ms int64, end int, ok bool) {
	neg := false
	if j < len(s) && s[j] == '-' {
		neg = true
		j++
	}
	start := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		ms = ms*10 + int64(s[j]-'0')
		j++
		if ms > dateLimit {
			return 0, 0, false
		}
	}
	if j == start || j >= len(s) {
		return 0, 0, false
	}
	if neg {
		ms = -ms
	}
	if c := s[j]; c == '+' || c == '-' {
		if j+5 > len(s) {
			return 0, 0, false
		}
		var hh, mm int64
		for k := 1; k <= 4; k++ {
			if s[j+k] < '0' || s[j+k] > '9' {
				return 0, 0, false
			}
		}
		hh = int64(s[j+1]-'0')*10 + int64(s[j+2]-'0')
		mm = int64(s[j+3]-'0')*10 + int64(s[j+4]-'0')
		off := (hh*60 + mm) * 60000
		if c == '-' {
			off = -off
		}
		ms += off
		j += 5
	}
	if j >= len(s) || s[j] != ')' {
		return 0, 0, false
	}
	return ms, j + 1, true
}

// dateText parses a whole unescaped string "/Date(...)/".
func dateText(s string) (int64, bool) {
	if !strings.HasPrefix(s, "/Date(") {
		return 0, false
	}
	ms, end, ok := parseDate(s, len("/Date("))
	if !ok || s[end:] != "/" {
		return 0, false
	}
	return ms, true
}

// formatDate writes UTC milliseconds as "2006-01-02T15:04:05Z". It reports false for years
// outside 0001-9999, which ISO 8601 in four digits cannot carry: such a value is left as it came.
func formatDate(ms int64) (string, bool) {
	t := time.UnixMilli(ms).UTC()
	y, mo, dd := t.Date()
	if y < 1 || y > 9999 {
		return "", false
	}
	h, mi, se := t.Clock()
	var b [20]byte
	put := func(i, v, n int) {
		for k := n - 1; k >= 0; k-- {
			b[i+k] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, dd, 2)
	b[10] = 'T'
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, se, 2)
	b[19] = 'Z'
	return string(b[:]), true
}

// rawDate recognizes a date string at d.i straight from the body, escaped ("\/Date(") or not,
// without building the string first. It consumes the string only when it is a date that formats.
func (d *decoder) rawDate() (string, bool) {
	s, j := d.s, d.i+1
	switch {
	case strings.HasPrefix(s[j:], `\/Date(`):
		j += len(`\/Date(`)
	case strings.HasPrefix(s[j:], `/Date(`):
		j += len(`/Date(`)
	default:
		return "", false
	}
	ms, j, ok := parseDate(s, j)
	if !ok {
		return "", false
	}
	// The closing slash is usually escaped the same way as the opening one, but accept either.
	switch {
	case strings.HasPrefix(s[j:], `\/"`):
		j += 3
	case strings.HasPrefix(s[j:], `/"`):
		j += 2
	default:
		return "", false
	}
	iso, ok := d.date(ms)
	if !ok {
		return "", false
	}
	d.i = j
	return iso, true
}

// date is formatDate, reusing the string of the previous date when it is the same instant: an
// event repeats its dates (both images carry a column's value, and an Update's modifiedon is the
// operation's time), and each new string costs an allocation.
func (d *decoder) date(ms int64) (string, bool) {
	if d.lastDate != "" && ms == d.lastDateMS {
		return d.lastDate, true
	}
	iso, ok := formatDate(ms)
	if ok {
		d.lastDateMS, d.lastDate = ms, iso
	}
	return iso, ok
}
