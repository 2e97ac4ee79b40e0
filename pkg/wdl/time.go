package wdl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The engine is .NET: timestamps are DateTime values between 0001-01-01 and 9999-12-31, parsed
// leniently and printed with .NET format strings (en-US unless a locale is given). A DateTime
// has a kind: a timestamp written with Z or an offset is UTC (an offset is applied), one written
// without a zone has none and keeps none, so formatDateTime('03/15/2018') is
// 2018-03-15T00:00:00.0000000 with no Z (functions reference, formatDateTime).

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)
)

// stamp is a .NET DateTime: a wall clock (held in time.UTC) and whether it is UTC.
type stamp struct {
	t     time.Time
	zoned bool // DateTimeKind.Utc; false is DateTimeKind.Unspecified
}

func fnFormatDateTime(env *Env, a args3, n int) (value, error) {
	st, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	c, err := localeArg(a[2], n == 3, enUS)
	if err != nil {
		return null, err
	}
	return formattedIn(st, a[1], n >= 2, c)
}

// ticks counts 100-nanosecond intervals since 0001-01-01T00:00:00 (.NET DateTime.Ticks).
func fnTicks(env *Env, a args3, _ int) (value, error) {
	st, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	return intV(ticksOf(st.t)), nil
}

func ticksOf(t time.Time) int64 {
	return (t.Unix()+62135596800)*10_000_000 + int64(t.Nanosecond()/100)
}

// addTime adds a number of units to a timestamp (addDays, addHours, addMinutes, addSeconds).
func addTime(unitSeconds int64) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, n int) (value, error) {
		st, err := timeArg(a[0])
		if err != nil {
			return null, err
		}
		if st.t, err = addSeconds(st.t, a[1], unitSeconds, "second"); err != nil {
			return null, err
		}
		return formatted(st, a[2], n == 3)
	}
}

// addSeconds adds amount units of unitSeconds to t. It works in whole seconds plus nanoseconds
// because time.Duration cannot span the 10,000 years a .NET DateTime can.
func addSeconds(t time.Time, amount value, unitSeconds int64, what string) (time.Time, error) {
	const maxSpan = 320_000_000_000 // seconds: more than 0001-01-01 to 9999-12-31
	var secs, nanos int64
	switch amount.k {
	case kInt:
		if amount.i > maxSpan/unitSeconds || amount.i < -maxSpan/unitSeconds {
			return t, failf("the result is outside the range of dates")
		}
		secs = amount.i * unitSeconds
	case kFloat, kDec:
		total := amount.float() * float64(unitSeconds)
		if math.IsNaN(total) || total > maxSpan || total < -maxSpan {
			return t, failf("the result is outside the range of dates")
		}
		whole := math.Floor(total)
		secs, nanos = int64(whole), int64(math.Round((total-whole)*1e7))*100
	default:
		return t, failf("expects its %s parameter to be a number, got %s", what, amount.typeName())
	}
	t = time.Unix(t.Unix()+secs, int64(t.Nanosecond())+nanos).UTC()
	if t.Before(minTime) || t.After(maxTime) {
		return t, failf("the result is outside the range of dates")
	}
	return t, nil
}

// addUnits adds interval time units ("Second" ... "Year", as addToTime, subtractFromTime,
// getFutureTime and getPastTime take them) to t; sign is 1 or -1.
func addUnits(t time.Time, interval, unit value, sign int64) (time.Time, error) {
	if unit.k != kStr {
		return t, failf("expects its time unit to be a string, got %s", unit.typeName())
	}
	u, err := timeUnit(unit.s)
	if err != nil {
		return t, err
	}
	if sign < 0 {
		switch interval.k {
		case kInt:
			if interval.i == math.MinInt64 {
				return t, failf("the result is outside the range of dates")
			}
			interval = intV(-interval.i)
		case kFloat, kDec:
			interval = floatV(-interval.float())
		}
	}
	switch u {
	case "month", "year":
		if interval.k != kInt {
			return t, failf("expects its interval to be an integer, got %s", interval.typeName())
		}
		months := interval.i
		if u == "year" {
			if months > 10000 || months < -10000 {
				return t, failf("the result is outside the range of dates")
			}
			months *= 12
		}
		return addMonths(t, months)
	}
	return addSeconds(t, interval, unitSecondsOf[u], "interval")
}

var unitSecondsOf = map[string]int64{"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}

// timeUnit checks a time unit name; names ignore case.
func timeUnit(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if _, ok := unitSecondsOf[u]; ok || u == "month" || u == "year" {
		return u, nil
	}
	return "", failf("does not know the time unit '%s': use Second, Minute, Hour, Day, Week, Month or Year", s)
}

// addMonths is .NET's DateTime.AddMonths: the day is kept, or clamped to the last day of the
// resulting month (January 31 plus one month is February 28 or 29).
func addMonths(t time.Time, months int64) (time.Time, error) {
	if months > 120000 || months < -120000 {
		return t, failf("the result is outside the range of dates")
	}
	total := int64(t.Year())*12 + int64(t.Month()-1) + months
	y, m := int(total/12), time.Month(total%12+1)
	if y < 1 || y > 9999 {
		return t, failf("the result is outside the range of dates")
	}
	d := min(t.Day(), daysIn(y, m))
	return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC), nil
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// addToTime(ts, interval, unit, format?) and subtractFromTime(...).
func shiftTime(sign int64) func(env *Env, a args4, n int) (value, error) {
	return func(env *Env, a args4, n int) (value, error) {
		st, err := timeArg(a[0])
		if err != nil {
			return null, err
		}
		if st.t, err = addUnits(st.t, a[1], a[2], sign); err != nil {
			return null, err
		}
		return formatted(st, a[3], n == 4)
	}
}

// startOf truncates a timestamp to the start of its day, hour or month, keeping its kind.
func startOf(unit string) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, n int) (value, error) {
		st, err := timeArg(a[0])
		if err != nil {
			return null, err
		}
		t := st.t
		switch unit {
		case "day":
			t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		case "hour":
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, time.UTC)
		case "month":
			t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		st.t = t
		return formatted(st, a[1], n == 2)
	}
}

func dayOf(part func(time.Time) int) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, _ int) (value, error) {
		st, err := timeArg(a[0])
		if err != nil {
			return null, err
		}
		return intV(int64(part(st.t))), nil
	}
}

// fnDateDifference is endDate - startDate as a .NET TimeSpan in its "c" format,
// [-][d.]hh:mm:ss[.fffffff].
func fnDateDifference(env *Env, a args3, _ int) (value, error) {
	start, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	end, err := timeArg(a[1])
	if err != nil {
		return null, err
	}
	ticks := ticksOf(end.t) - ticksOf(start.t)
	var b strings.Builder
	if ticks < 0 {
		b.WriteByte('-')
		ticks = -ticks
	}
	const perSecond = 10_000_000
	secs, frac := ticks/perSecond, ticks%perSecond
	days, secs := secs/86400, secs%86400
	if days > 0 {
		b.WriteString(strconv.FormatInt(days, 10))
		b.WriteByte('.')
	}
	fmt.Fprintf(&b, "%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if frac > 0 {
		fmt.Fprintf(&b, ".%07d", frac)
	}
	return strV(b.String()), nil
}

// Time zones. A timestamp with a zone is an instant; one without is a wall clock in the source
// zone (convertToUtc, convertTimeZone) or in UTC (convertFromUtc). The result has a zone only
// when it is UTC, as .NET's TimeZoneInfo.ConvertTime gives it.

func zoneArg(v value, what string) (*time.Location, error) {
	if v.k != kStr {
		return nil, failf("expects its %s to be a string, got %s", what, v.typeName())
	}
	return lookupZone(v.s)
}

func inZone(st stamp, src *time.Location) time.Time {
	if st.zoned || src == nil {
		return st.t
	}
	t := st.t
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), src).UTC()
}

func toZone(instant time.Time, dst *time.Location) (stamp, error) {
	l := instant.In(dst)
	_, off := l.Zone()
	t := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
	if t.Before(minTime) || t.After(maxTime) {
		return stamp{}, failf("the result is outside the range of dates")
	}
	return stamp{t: t, zoned: off == 0 && isUTCZone(dst)}, nil
}

func isUTCZone(loc *time.Location) bool {
	switch loc.String() {
	case "UTC", "Etc/UTC", "Etc/GMT", "Etc/UCT", "Etc/Universal", "Etc/Zulu":
		return true
	}
	return false
}

func fnConvertFromUtc(env *Env, a args3, n int) (value, error) {
	st, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	dst, err := zoneArg(a[1], "destination time zone")
	if err != nil {
		return null, err
	}
	out, err := toZone(st.t, dst)
	if err != nil {
		return null, err
	}
	return formatted(out, a[2], n == 3)
}

func fnConvertToUtc(env *Env, a args3, n int) (value, error) {
	st, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	src, err := zoneArg(a[1], "source time zone")
	if err != nil {
		return null, err
	}
	return formatted(stamp{t: inZone(st, src), zoned: true}, a[2], n == 3)
}

func fnConvertTimeZone(env *Env, a args4, n int) (value, error) {
	st, err := timeArg(a[0])
	if err != nil {
		return null, err
	}
	src, err := zoneArg(a[1], "source time zone")
	if err != nil {
		return null, err
	}
	dst, err := zoneArg(a[2], "destination time zone")
	if err != nil {
		return null, err
	}
	out, err := toZone(inZone(st, src), dst)
	if err != nil {
		return null, err
	}
	return formatted(out, a[3], n == 4)
}

// nowNode is utcNow(format?), getFutureTime(interval, unit, format?) and getPastTime(...): they
// read the clock, so they are never folded at compile time.
type nowNode struct {
	name string
	off  int
	sign int64 // 0: utcNow; 1: getFutureTime; -1: getPastTime
	args []node
}

func (n *nowNode) eval(env *Env) (value, error) {
	var a [3]value
	for i, an := range n.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		a[i] = v
	}
	now := time.Now
	if env.Now != nil {
		now = env.Now
	}
	st := stamp{t: now().UTC(), zoned: true}
	format, present := a[0], len(n.args) == 1
	if n.sign != 0 {
		var err error
		if st.t, err = addUnits(st.t, a[0], a[1], n.sign); err != nil {
			return null, &Error{Offset: n.off, Msg: n.name + " " + err.Error()}
		}
		format, present = a[2], len(n.args) == 3
	}
	v, err := formatted(st, format, present)
	if err != nil {
		return null, &Error{Offset: n.off, Msg: n.name + " " + err.Error()}
	}
	return v, nil
}

// fnParseDateTime is parseDateTime(timestamp, locale?, format?): the timestamp read in the
// locale (en-US by default), with the format when one is given, returned in the "o" format.
func fnParseDateTime(env *Env, a args3, n int) (value, error) {
	if a[0].k != kStr {
		return null, failf("expects a timestamp string, got %s", a[0].typeName())
	}
	c, err := localeArg(a[1], n >= 2, enUS)
	if err != nil {
		return null, err
	}
	var st stamp
	if n == 3 {
		if a[2].k != kStr {
			return null, failf("expects its format to be a string, got %s", a[2].typeName())
		}
		if st, err = parseExact(a[0].s, a[2].s, c); err != nil {
			return null, err
		}
	} else {
		var ok bool
		if st, ok = parseTimestamp(a[0].s, c); !ok {
			return null, failf("cannot parse '%s' as a timestamp in the locale '%s'", a[0].s, c.name)
		}
	}
	return formatted(st, null, false)
}

// formatted is st as a string in the optional format argument (present says whether it was
// given; without it, the ISO 8601 "o" format), in en-US.
func formatted(st stamp, format value, present bool) (value, error) {
	return formattedIn(st, format, present, enUS)
}

func formattedIn(st stamp, format value, present bool, c *culture) (value, error) {
	f := ""
	if present {
		if format.k != kStr {
			return null, failf("expects its format to be a string, got %s", format.typeName())
		}
		f = format.s
	}
	s, err := formatTime(st, f, c)
	if err != nil {
		return null, err
	}
	return strV(s), nil
}

func timeArg(v value) (stamp, error) {
	if v.k != kStr {
		return stamp{}, failf("expects a timestamp string, got %s", v.typeName())
	}
	st, ok := parseTimestamp(v.s, enUS)
	if !ok {
		return stamp{}, failf("cannot parse '%s' as a timestamp", v.s)
	}
	return st, nil
}

// parseTimestamp reads a timestamp as .NET's DateTime.Parse does in culture c: ISO 8601 (date,
// or date and time with "T" or a space, optional seconds and fraction, optional Z or offset),
// or the culture's own forms: numbers in its day/month/year order ("3/15/2018 1:05 PM" in
// en-US, "20/10/2014" in fr-FR), month and day names ("20 octobre 2010",
// "martes 20 octubre 2020", "Thu, 15 Mar 2018 13:27:36 GMT"). A date without a year is refused
// (.NET would take the current year, which no condition should depend on).
func parseTimestamp(s string, c *culture) (stamp, bool) {
	s = strings.TrimSpace(s)
	if st, ok := parseISO(s); ok {
		return st, true
	}
	return parseLoose(s, c)
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

// fraction reads the digits after a decimal point as nanoseconds (beyond 7 digits they are
// dropped, as .NET keeps 100 ns ticks).
func (c *scan) fraction() (int, bool) {
	start := c.i
	nsec, scale := 0, 100_000_000
	for c.i < len(c.s) && isDigit(c.s[c.i]) {
		if c.i-start < 7 {
			nsec += int(c.s[c.i]-'0') * scale
			scale /= 10
		}
		c.i++
	}
	return nsec, c.i > start
}

// offset reads ±hh[:mm] or ±hhmm.
func (c *scan) offset() (int, bool) {
	sign := 1
	if c.s[c.i] == '-' {
		sign = -1
	}
	c.i++
	oh, ok := c.num(2, 2)
	if !ok {
		return 0, false
	}
	om := 0
	if c.lit(':') {
		if om, ok = c.num(2, 2); !ok {
			return 0, false
		}
	} else if !c.done() && isDigit(c.s[c.i]) {
		if om, ok = c.num(2, 2); !ok {
			return 0, false
		}
	}
	if oh > 14 || om > 59 {
		return 0, false
	}
	return sign * (oh*3600 + om*60), true
}

func parseISO(s string) (stamp, bool) {
	c := scan{s: s}
	y, ok1 := c.num(4, 4)
	ok2 := c.lit('-')
	mo, ok3 := c.num(2, 2)
	ok4 := c.lit('-')
	d, ok5 := c.num(2, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return stamp{}, false
	}
	var h, mi, sec, nsec, offset int
	zoned := false
	if !c.done() {
		if !c.lit('T') && !c.lit('t') && !c.lit(' ') {
			return stamp{}, false
		}
		var ok bool
		if h, ok = c.num(2, 2); !ok || !c.lit(':') {
			return stamp{}, false
		}
		if mi, ok = c.num(2, 2); !ok {
			return stamp{}, false
		}
		if c.lit(':') {
			if sec, ok = c.num(2, 2); !ok {
				return stamp{}, false
			}
			if c.lit('.') {
				if nsec, ok = c.fraction(); !ok {
					return stamp{}, false
				}
			}
		}
		switch {
		case c.lit('Z') || c.lit('z'):
			zoned = true
		case !c.done() && (c.s[c.i] == '+' || c.s[c.i] == '-'):
			if offset, ok = c.offset(); !ok {
				return stamp{}, false
			}
			zoned = true
		}
	}
	if !c.done() {
		return stamp{}, false
	}
	t, ok := civil(y, mo, d, h, mi, sec, nsec, offset)
	return stamp{t: t, zoned: zoned}, ok
}

// civil validates the fields (time.Date would normalise 2024-02-30 into March) and builds the
// wall clock, less offset seconds.
func civil(y, mo, d, h, mi, sec, nsec, offset int) (time.Time, bool) {
	if y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	if d > daysIn(y, time.Month(mo)) {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, false
	}
	return t, true
}

// dateNum is a number read where a date part is expected, with its digit count (a year is
// told from a day by having more than two digits).
type dateNum struct{ v, digits int }

// parseLoose is DateTime.Parse for the forms that are not ISO 8601: numbers, names and a time,
// in any order the culture writes them.
func parseLoose(s string, c *culture) (stamp, bool) {
	var nums []dateNum
	month, weekday := 0, -1
	h, mi, sec, nsec, offset := 0, 0, 0, 0, 0
	sawTime, pm, am, zoned := false, false, false, false
	sc := scan{s: s}
	for !sc.done() {
		ch := sc.s[sc.i]
		switch {
		case ch == ' ' || ch == ',' || ch == '\t':
			sc.i++
		case isDigit(ch):
			start := sc.i
			v, _ := sc.num(1, 9)
			digits := sc.i - start
			if !sc.done() && sc.s[sc.i] == ':' && !sawTime && digits <= 2 {
				sc.i++
				var ok bool
				h = v
				if mi, ok = sc.num(2, 2); !ok {
					return stamp{}, false
				}
				if sc.lit(':') {
					if sec, ok = sc.num(2, 2); !ok {
						return stamp{}, false
					}
					if sc.lit('.') || sc.lit(',') {
						if nsec, ok = sc.fraction(); !ok {
							return stamp{}, false
						}
					}
				}
				sawTime = true
				continue
			}
			nums = append(nums, dateNum{v, digits})
			// one date separator may follow a number
			for _, sep := range []string{c.dateSep, "/", "-", "."} {
				if strings.HasPrefix(sc.s[sc.i:], sep) {
					sc.i += len(sep)
					break
				}
			}
		case (ch == '+' || ch == '-') && sawTime:
			var ok bool
			if offset, ok = sc.offset(); !ok {
				return stamp{}, false
			}
			zoned = true
		default:
			start := sc.i
			for !sc.done() {
				r, size := utf8.DecodeRuneInString(sc.s[sc.i:])
				if !unicode.IsLetter(r) && r != '.' {
					break
				}
				sc.i += size
			}
			if sc.i == start {
				return stamp{}, false
			}
			word := sc.s[start:sc.i]
			switch w := strings.TrimSuffix(word, "."); {
			case (w == "T" || w == "t") && len(nums) > 0 && !sawTime:
			case strings.EqualFold(w, "Z") || strings.EqualFold(w, "GMT") || strings.EqualFold(w, "UTC"):
				zoned = true
			case strings.EqualFold(word, c.am) || strings.EqualFold(w, "AM"):
				am = true
			case strings.EqualFold(word, c.pm) || strings.EqualFold(w, "PM"):
				pm = true
			default:
				if m := nameIndex(word, c.months[:], c.monthsAbbr[:]); m >= 0 {
					if month != 0 {
						return stamp{}, false
					}
					month = m + 1
				} else if d := nameIndex(word, c.days[:], c.daysAbbr[:]); d >= 0 {
					weekday = d
				} else if !isFiller(w, c) {
					return stamp{}, false
				}
			}
		}
	}
	if am || pm {
		if !sawTime || h < 1 || h > 12 || (am && pm) {
			return stamp{}, false
		}
		h %= 12
		if pm {
			h += 12
		}
	}
	y, mo, d, ok := assembleDate(nums, month, c)
	if !ok {
		return stamp{}, false
	}
	t, ok := civil(y, mo, d, h, mi, sec, nsec, offset)
	if !ok || (weekday >= 0 && int(t.Add(time.Duration(offset)*time.Second).Weekday()) != weekday) {
		return stamp{}, false
	}
	return stamp{t: t, zoned: zoned}, true
}

func assembleDate(nums []dateNum, month int, c *culture) (y, mo, d int, ok bool) {
	isYear := func(n dateNum) bool { return n.digits > 2 || n.v > 31 }
	year := func(n dateNum) int {
		if n.digits <= 2 {
			// .NET's Gregorian calendar TwoDigitYearMax, 2049
			if n.v <= 49 {
				return 2000 + n.v
			}
			return 1900 + n.v
		}
		return n.v
	}
	switch {
	case month > 0 && len(nums) == 2:
		if isYear(nums[0]) && !isYear(nums[1]) {
			return year(nums[0]), month, nums[1].v, true
		}
		return year(nums[1]), month, nums[0].v, true
	case month == 0 && len(nums) == 3:
		if isYear(nums[0]) {
			return year(nums[0]), nums[1].v, nums[2].v, true
		}
		if c.order == "DMY" {
			return year(nums[2]), nums[1].v, nums[0].v, true
		}
		return year(nums[2]), nums[0].v, nums[1].v, true
	}
	return 0, 0, 0, false
}

func nameIndex(word string, full, abbr []string) int {
	for i, n := range full {
		if strings.EqualFold(word, n) {
			return i
		}
	}
	for i, n := range abbr {
		if strings.EqualFold(word, n) || strings.EqualFold(word, strings.TrimSuffix(n, ".")) ||
			strings.EqualFold(strings.TrimSuffix(word, "."), strings.TrimSuffix(n, ".")) {
			return i
		}
	}
	return -1
}

func isFiller(w string, c *culture) bool {
	for _, f := range c.fillers {
		if strings.EqualFold(w, strings.TrimSuffix(f, ".")) {
			return true
		}
	}
	return false
}

// standardPattern expands a .NET standard date and time format (one letter) in culture c.
// o, r, s and u are culture-invariant and reported as such.
func standardPattern(f byte, c *culture) (pattern string, invariant bool, ok bool) {
	switch f {
	case 'd':
		return c.shortDate, false, true
	case 'D':
		return c.longDate, false, true
	case 'f':
		return c.longDate + " " + c.shortTime, false, true
	case 'F', 'U':
		return c.longDate + " " + c.longTime, false, true
	case 'g':
		return c.shortDate + " " + c.shortTime, false, true
	case 'G':
		return c.shortDate + " " + c.longTime, false, true
	case 'm', 'M':
		return c.monthDay, false, true
	case 't':
		return c.shortTime, false, true
	case 'T':
		return c.longTime, false, true
	case 'y', 'Y':
		return c.yearMonth, false, true
	case 'o', 'O':
		return "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK", true, true
	case 'r', 'R':
		return "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'", true, true
	case 's':
		return "yyyy'-'MM'-'dd'T'HH':'mm':'ss", true, true
	case 'u':
		return "yyyy'-'MM'-'dd HH':'mm':'ss'Z'", true, true
	}
	return "", false, false
}

// formatTime prints st with a .NET standard or custom format string in culture c; "" means "o".
func formatTime(st stamp, format string, c *culture) (string, error) {
	if format == "" {
		format = "o"
	}
	if len(format) == 1 {
		std, inv, ok := standardPattern(format[0], c)
		if !ok {
			return "", failf("does not know the format '%s'", format)
		}
		if inv {
			c = invariantCulture
		}
		format = std
	}
	t := st.t
	var b strings.Builder
	f := format
	for i := 0; i < len(f); {
		ch := f[i]
		n := 1
		for i+n < len(f) && f[i+n] == ch {
			n++
		}
		switch ch {
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
				b.WriteString(c.monthsAbbr[t.Month()-1])
			default:
				b.WriteString(c.months[t.Month()-1])
			}
		case 'd':
			switch {
			case n <= 2:
				pad(&b, t.Day(), n)
			case n == 3:
				b.WriteString(c.daysAbbr[t.Weekday()])
			default:
				b.WriteString(c.days[t.Weekday()])
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
			if ch == 'F' {
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
			ampm := c.am
			if t.Hour() >= 12 {
				ampm = c.pm
			}
			if n == 1 && ampm != "" {
				r, _ := utf8.DecodeRuneInString(ampm)
				ampm = string(r)
			}
			b.WriteString(ampm)
		case 'K':
			if st.zoned {
				b.WriteByte('Z')
			}
			n = 1
		case 'z':
			// A timestamp without a zone prints the host's offset in .NET; the engine's hosts
			// run in UTC.
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
		case '/':
			b.WriteString(c.dateSep)
			n = 1
		case ':':
			b.WriteString(c.timeSep)
			n = 1
		case '\'', '"':
			end := strings.IndexByte(f[i+1:], ch)
			if end < 0 {
				return "", failf("has an unterminated quote in '%s'", format)
			}
			b.WriteString(f[i+1 : i+1+end])
			n = end + 2
		case '\\':
			if i+1 >= len(f) {
				return "", failf("ends with an escape character in '%s'", format)
			}
			_, size := utf8.DecodeRuneInString(f[i+1:])
			b.WriteString(f[i+1 : i+1+size])
			n = 1 + size
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

// parseExact is DateTime.ParseExact: s must match the format exactly, in culture c.
func parseExact(s, format string, c *culture) (stamp, error) {
	fail := func() (stamp, error) {
		return stamp{}, failf("cannot parse '%s' with the format '%s'", s, format)
	}
	if len(format) == 1 {
		std, inv, ok := standardPattern(format[0], c)
		if !ok {
			return stamp{}, failf("does not know the format '%s'", format)
		}
		if inv {
			c = invariantCulture
		}
		format = std
	}
	y, mo, d, h, mi, sec, nsec, offset := 1, 1, 1, 0, 0, 0, 0, 0
	hour12, pm, sawAMPM, zoned := false, false, false, false
	sc := scan{s: s}
	matchText := func(lit string) bool {
		if strings.HasPrefix(sc.s[sc.i:], lit) {
			sc.i += len(lit)
			return true
		}
		return false
	}
	matchName := func(names []string) int {
		best, at := -1, 0
		for i, nm := range names {
			if len(nm) > at && len(sc.s)-sc.i >= len(nm) && strings.EqualFold(sc.s[sc.i:sc.i+len(nm)], nm) {
				best, at = i, len(nm)
			}
		}
		sc.i += at
		return best
	}
	f := format
	for i := 0; i < len(f); {
		ch := f[i]
		n := 1
		for i+n < len(f) && f[i+n] == ch {
			n++
		}
		var ok bool
		switch ch {
		case 'y':
			switch {
			case n <= 2:
				var v int
				if v, ok = sc.num(n, 2); ok {
					y = 2000 + v
					if v > 49 {
						y = 1900 + v
					}
				}
			default:
				y, ok = sc.num(n, max(n, 4))
			}
		case 'M':
			switch {
			case n <= 2:
				mo, ok = sc.num(n, 2)
			case n == 3:
				mo, ok = matchName(c.monthsAbbr[:])+1, true
				ok = mo > 0
			default:
				mo, ok = matchName(c.months[:])+1, true
				ok = mo > 0
			}
		case 'd':
			switch {
			case n <= 2:
				d, ok = sc.num(n, 2)
			case n == 3:
				ok = matchName(c.daysAbbr[:]) >= 0
			default:
				ok = matchName(c.days[:]) >= 0
			}
		case 'h':
			h, ok = sc.num(min(n, 2), 2)
			hour12 = true
		case 'H':
			h, ok = sc.num(min(n, 2), 2)
		case 'm':
			mi, ok = sc.num(min(n, 2), 2)
		case 's':
			sec, ok = sc.num(min(n, 2), 2)
		case 'f', 'F':
			if n > 7 {
				return stamp{}, failf("has more than 7 fraction digits in '%s'", format)
			}
			start := sc.i
			var v int
			if v, ok = sc.num(0, n); ok && (ch == 'F' || sc.i-start == n) {
				for k := sc.i - start; k < 9; k++ {
					v *= 10
				}
				nsec = v
			} else {
				ok = false
			}
		case 't':
			switch {
			case matchText(c.pm) && c.pm != "":
				pm, ok = true, true
			case matchText(c.am) && c.am != "":
				ok = true
			}
			sawAMPM = true
		case 'K', 'z':
			switch {
			case sc.lit('Z'):
				ok, zoned = true, true
			case !sc.done() && (sc.s[sc.i] == '+' || sc.s[sc.i] == '-'):
				offset, ok = sc.offset()
				zoned = ok
			default:
				ok = ch == 'K' // K may be empty: no zone
			}
		case '/':
			ok, n = matchText(c.dateSep), 1
		case ':':
			ok, n = matchText(c.timeSep), 1
		case '\'', '"':
			end := strings.IndexByte(f[i+1:], ch)
			if end < 0 {
				return stamp{}, failf("has an unterminated quote in '%s'", format)
			}
			ok, n = matchText(f[i+1:i+1+end]), end+2
		case '\\':
			if i+1 >= len(f) {
				return stamp{}, failf("ends with an escape character in '%s'", format)
			}
			_, size := utf8.DecodeRuneInString(f[i+1:])
			ok, n = matchText(f[i+1:i+1+size]), 1+size
		case '%':
			ok, n = true, 1
		default:
			ok = matchText(f[i : i+n])
		}
		if !ok {
			return fail()
		}
		i += n
	}
	if !sc.done() {
		return fail()
	}
	if hour12 {
		if h < 1 || h > 12 {
			return fail()
		}
		h %= 12
		if pm {
			h += 12
		}
	} else if sawAMPM && pm && h < 12 {
		h += 12
	}
	t, ok := civil(y, mo, d, h, mi, sec, nsec, offset)
	if !ok {
		return fail()
	}
	return stamp{t: t, zoned: zoned}, nil
}
