package odata

import "time"

// parseDateTime parses an ISO 8601 date (YYYY-MM-DD, taken as midnight UTC) or date-time
// (YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|±HH:MM], no zone meaning UTC) into an instant: seconds
// since the Unix epoch and nanoseconds. It is hand-written because time.Parse allocates for
// numeric offsets, and this runs for every date comparison.
func parseDateTime(s string) (sec int64, nsec int32, ok bool) {
	if len(s) < 10 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' || !digits(s[8:10]) {
		return 0, 0, false
	}
	year, month, day := atoi(s[0:4]), atoi(s[5:7]), atoi(s[8:10])
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return 0, 0, false
	}
	var hour, minute, second, frac int
	i := 10
	offset := 0
	if i < len(s) {
		if s[i] != 'T' && s[i] != 't' && s[i] != ' ' {
			return 0, 0, false
		}
		i++
		if len(s) < i+5 || !digits(s[i:i+2]) || s[i+2] != ':' || !digits(s[i+3:i+5]) {
			return 0, 0, false
		}
		hour, minute = atoi(s[i:i+2]), atoi(s[i+3:i+5])
		i += 5
		if i < len(s) && s[i] == ':' {
			if len(s) < i+3 || !digits(s[i+1:i+3]) {
				return 0, 0, false
			}
			second = atoi(s[i+1 : i+3])
			i += 3
			if i < len(s) && s[i] == '.' {
				i++
				fs := i
				scale := 100000000
				for i < len(s) && isDigit(s[i]) {
					frac += int(s[i]-'0') * scale
					scale /= 10
					i++
				}
				if i == fs {
					return 0, 0, false
				}
			}
		}
		if hour > 23 || minute > 59 || second > 59 {
			return 0, 0, false
		}
		if i < len(s) {
			switch s[i] {
			case 'Z', 'z':
				i++
			case '+', '-':
				if len(s) != i+6 || !digits(s[i+1:i+3]) || s[i+3] != ':' || !digits(s[i+4:i+6]) {
					return 0, 0, false
				}
				oh, om := atoi(s[i+1:i+3]), atoi(s[i+4:i+6])
				if oh > 23 || om > 59 {
					return 0, 0, false
				}
				offset = oh*3600 + om*60
				if s[i] == '-' {
					offset = -offset
				}
				i += 6
			}
		}
		if i != len(s) {
			return 0, 0, false
		}
	}
	days := daysFromCivil(year, month, day)
	sec = days*86400 + int64(hour*3600+minute*60+second-offset)
	return sec, int32(frac), true
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// daysIn is the number of days in month m of year y (proleptic Gregorian): day 0 of the next
// month is the last of this one.
func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// daysFromCivil counts days from 1970-01-01 to y-m-d (proleptic Gregorian).
func daysFromCivil(y, m, d int) int64 {
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}
