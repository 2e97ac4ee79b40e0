package wdl

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// fnSpec describes a function: its display name, its arity (max -1: variadic), how to build
// its node from the compiled arguments, and checks of its literal arguments that can fail at
// compile time (a format, a locale, a time zone written in the expression).
type fnSpec struct {
	name     string
	min, max int
	build    func(name string, off int, args []node) node
	checks   map[int]func(value) error
}

// functions is keyed by lower-case name: function names are case-insensitive, as in the
// template language Logic Apps shares with Azure Resource Manager.
var functions = map[string]*fnSpec{}

// unavailable lists workflow functions that exist in Logic Apps but refer to things a dvrouter
// condition does not have (other actions, variables, parameters, loops, app settings), with
// the functions whose values dvrouter does not model (binary content, XML); the value says why.
var unavailable = map[string]string{}

func init() {
	for _, name := range []string{"actions", "action", "actionBody", "actionOutputs", "body", "outputs",
		"variables", "parameters", "items", "item", "iterationIndexes", "workflow", "result", "listCallbackUrl",
		"formDataValue", "formDataMultiValues", "multipartBody", "triggerFormDataValue",
		"triggerFormDataMultiValues", "triggerMultipartBody", "appsetting"} {
		unavailable[strings.ToLower(name)] = "only the trigger's data (triggerBody, triggerOutputs, trigger) is"
	}
	for _, name := range []string{"xml", "xpath"} {
		unavailable[name] = "XML values are not supported; read the row's columns instead"
	}
	for _, name := range []string{"binary", "base64ToBinary", "dataUriToBinary", "decodeDataUri", "uriComponentToBinary"} {
		unavailable[strings.ToLower(name)] = "binary content is not supported; use the ...ToString form (base64ToString, dataUriToString, uriComponentToString)"
	}
}

func register(name string, lo, hi int, build func(name string, off int, args []node) node) *fnSpec {
	spec := &fnSpec{name: name, min: lo, max: hi, build: build}
	functions[strings.ToLower(name)] = spec
	return spec
}

// check adds a compile-time check of argument i when it is a literal.
func (s *fnSpec) check(i int, f func(value) error) *fnSpec {
	if s.checks == nil {
		s.checks = map[int]func(value) error{}
	}
	s.checks[i] = f
	return s
}

// eager registers a function whose arguments (at most three) are all evaluated before it runs.
func eager(name string, lo, hi int, fn func(env *Env, a args3, n int) (value, error)) *fnSpec {
	return register(name, lo, hi, func(name string, off int, args []node) node {
		return fold(&callNode{name: name, off: off, args: args, fn: fn})
	})
}

// eager4 is eager for functions of up to four arguments.
func eager4(name string, lo, hi int, fn func(env *Env, a args4, n int) (value, error)) *fnSpec {
	return register(name, lo, hi, func(name string, off int, args []node) node {
		return &call4Node{name: name, off: off, args: args, fn: fn}
	})
}

// variadic registers a function of any number of arguments, all evaluated before it runs.
func variadic(name string, lo int, fn func(env *Env, a []value) (value, error)) *fnSpec {
	return register(name, lo, -1, func(name string, off int, args []node) node {
		return &varNode{name: name, off: off, args: args, fn: fn}
	})
}

// fold evaluates a call whose arguments are all literals once, at compile time: eager functions
// do not depend on the trigger when their arguments do not (utcNow is not eager), so
// ticks('2025-06-01T00:00:00Z') need not parse its timestamp for every event. A call that fails
// is kept, so that its error surfaces only if and when it is evaluated; arrays and objects are
// kept too, so that no two evaluations hand out the same value.
func fold(c *callNode) node {
	for _, a := range c.args {
		if _, ok := a.(*litNode); !ok {
			return c
		}
	}
	v, err := c.eval(&Env{})
	if err != nil || v.k == kArr || v.k == kObj {
		return c
	}
	return &litNode{v: v}
}

// Compile-time checks of literal arguments.

func checkTimestamp(v value) error { _, err := timeArg(v); return err }

func checkDateFormat(v value) error {
	if v.k != kStr {
		return failf("expects its format to be a string, got %s", v.typeName())
	}
	_, err := formatTime(stamp{t: minTime}, v.s, enUS)
	return err
}

func checkLocale(v value) error {
	if v.k != kStr {
		return failf("expects its locale to be a string, got %s", v.typeName())
	}
	_, err := lookupCulture(v.s)
	return err
}

func checkUnit(v value) error {
	if v.k != kStr {
		return failf("expects its time unit to be a string, got %s", v.typeName())
	}
	_, err := timeUnit(v.s)
	return err
}

func checkZone(v value) error { _, err := zoneArg(v, "time zone"); return err }

func init() {
	// Logical and comparison.
	register("and", 1, -1, func(name string, off int, args []node) node {
		return &andNode{name: name, off: off, args: args}
	})
	register("or", 1, -1, func(name string, off int, args []node) node {
		return &andNode{name: name, off: off, args: args, or: true}
	})
	eager("not", 1, 1, func(env *Env, a args3, _ int) (value, error) {
		if a[0].k != kBool {
			return null, failf("expects a boolean parameter, got %s", a[0].typeName())
		}
		return boolV(!a[0].b), nil
	})
	register("if", 3, 3, func(_ string, off int, args []node) node {
		return &ifNode{off: off, cond: args[0], yes: args[1], no: args[2]}
	})
	register("equals", 2, -1, func(_ string, _ int, args []node) node { return &eqNode{args: args} })
	order := func(name string, holds func(int) bool) {
		eager(name, 2, 2, func(env *Env, a args3, _ int) (value, error) {
			c, err := orderValues(a[0], a[1])
			if err != nil {
				return null, err
			}
			return boolV(holds(c)), nil
		})
	}
	order("greater", func(c int) bool { return c > 0 })
	order("greaterOrEquals", func(c int) bool { return c >= 0 })
	order("less", func(c int) bool { return c < 0 })
	order("lessOrEquals", func(c int) bool { return c <= 0 })
	register("coalesce", 1, -1, func(_ string, _ int, args []node) node { return &coalesceNode{args: args} })
	eager("isInt", 1, 1, fnIsInt)
	eager("isFloat", 1, 2, fnIsFloat).check(1, checkLocale)

	// Collections.
	eager("empty", 1, 1, fnEmpty)
	eager("contains", 2, 2, fnContains)
	eager("length", 1, 1, fnLength)
	eager("first", 1, 1, fnFirst)
	eager("last", 1, 1, fnLast)
	eager("take", 2, 2, fnTake)
	eager("skip", 2, 2, fnSkip)
	eager("join", 2, 2, fnJoin)
	eager("reverse", 1, 1, fnReverse)
	eager("sort", 1, 2, fnSort)
	eager("chunk", 2, 2, fnChunk)
	variadic("union", 1, fnUnion)
	variadic("intersection", 1, fnIntersection)
	variadic("createArray", 0, func(env *Env, a []value) (value, error) {
		out := make([]any, len(a))
		for i, v := range a {
			out[i] = toAny(v, env)
		}
		return value{k: kArr, ref: out}, nil
	})
	eager("array", 1, 1, func(env *Env, a args3, _ int) (value, error) {
		return value{k: kArr, ref: []any{toAny(a[0], env)}}, nil
	})
	eager("range", 2, 2, fnRange)

	// Objects.
	eager("addProperty", 3, 3, propertyFn("add"))
	eager("setProperty", 3, 3, propertyFn("set"))
	eager("removeProperty", 2, 2, propertyFn("remove"))
	eager("json", 1, 1, fnJSON)

	// Strings.
	eager("startsWith", 2, 2, func(env *Env, a args3, _ int) (value, error) {
		s, p, err := twoStrings(a)
		if err != nil {
			return null, err
		}
		_, ok := hasPrefixFold(s, p)
		return boolV(ok), nil
	})
	eager("endsWith", 2, 2, func(env *Env, a args3, _ int) (value, error) {
		s, p, err := twoStrings(a)
		if err != nil {
			return null, err
		}
		return boolV(hasSuffixFold(s, p)), nil
	})
	eager("indexOf", 2, 2, fnIndexOf)
	eager("lastIndexOf", 2, 2, fnLastIndexOf)
	eager("nthIndexOf", 3, 3, fnNthIndexOf)
	eager("toLower", 1, 1, stringFn(strings.ToLower))
	eager("toUpper", 1, 1, stringFn(strings.ToUpper))
	eager("trim", 1, 1, stringFn(func(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }))
	register("concat", 1, -1, func(_ string, _ int, args []node) node { return &concatNode{args: args} })
	eager("substring", 2, 3, fnSubstring)
	eager("slice", 2, 3, fnSlice)
	eager("replace", 3, 3, fnReplace)
	eager("split", 2, 2, fnSplit)
	eager("formatNumber", 2, 3, fnFormatNumber).check(2, checkLocale)
	register("guid", 0, 1, func(name string, off int, args []node) node {
		return &varNode{name: name, off: off, args: args, fn: fnGuid}
	}).check(0, func(v value) error { _, err := guidFormat(v); return err })

	// Conversions and encodings.
	eager("int", 1, 1, fnInt)
	eager("float", 1, 2, fnFloat).check(1, checkLocale)
	eager("decimal", 1, 1, fnDecimal)
	eager("string", 1, 1, func(env *Env, a args3, _ int) (value, error) {
		return strV(text(a[0], env)), nil
	})
	eager("bool", 1, 1, fnBool)
	eager("base64", 1, 1, fnBase64)
	eager("base64ToString", 1, 1, fnBase64ToString)
	eager("decodeBase64", 1, 1, fnBase64ToString)
	eager("dataUri", 1, 1, fnDataURI)
	eager("dataUriToString", 1, 1, fnDataURIToString)
	eager("uriComponent", 1, 1, fnURIComponent)
	eager("encodeUriComponent", 1, 1, fnURIComponent)
	eager("uriComponentToString", 1, 1, fnURIComponentToString)
	eager("decodeUriComponent", 1, 1, fnURIComponentToString)

	// URIs.
	eager("uriHost", 1, 1, uriPart("host"))
	eager("uriPath", 1, 1, uriPart("path"))
	eager("uriPathAndQuery", 1, 1, uriPart("pathAndQuery"))
	eager("uriPort", 1, 1, uriPart("port"))
	eager("uriQuery", 1, 1, uriPart("query"))
	eager("uriScheme", 1, 1, uriPart("scheme"))

	// Math.
	eager("add", 2, 2, arith('+'))
	eager("sub", 2, 2, arith('-'))
	eager("mul", 2, 2, arith('*'))
	eager("div", 2, 2, arith('/'))
	eager("mod", 2, 2, arith('%'))
	variadic("max", 1, extreme("max", 1))
	variadic("min", 1, extreme("min", -1))
	register("rand", 2, 2, func(name string, off int, args []node) node {
		return &varNode{name: name, off: off, args: args, fn: fnRand}
	})

	// Dates and times.
	now := func(name string, sign int64, lo, hi int) *fnSpec {
		return register(name, lo, hi, func(name string, off int, args []node) node {
			return &nowNode{name: name, off: off, sign: sign, args: args}
		})
	}
	now("utcNow", 0, 0, 1).check(0, checkDateFormat)
	now("getFutureTime", 1, 2, 3).check(1, checkUnit).check(2, checkDateFormat)
	now("getPastTime", -1, 2, 3).check(1, checkUnit).check(2, checkDateFormat)
	for _, f := range []struct {
		name string
		unit int64
	}{{"addDays", 86400}, {"addHours", 3600}, {"addMinutes", 60}, {"addSeconds", 1}} {
		eager(f.name, 2, 3, addTime(f.unit)).check(0, checkTimestamp).check(2, checkDateFormat)
	}
	eager4("addToTime", 3, 4, shiftTime(1)).check(0, checkTimestamp).check(2, checkUnit).check(3, checkDateFormat)
	eager4("subtractFromTime", 3, 4, shiftTime(-1)).check(0, checkTimestamp).check(2, checkUnit).check(3, checkDateFormat)
	eager("startOfDay", 1, 2, startOf("day")).check(0, checkTimestamp).check(1, checkDateFormat)
	eager("startOfHour", 1, 2, startOf("hour")).check(0, checkTimestamp).check(1, checkDateFormat)
	eager("startOfMonth", 1, 2, startOf("month")).check(0, checkTimestamp).check(1, checkDateFormat)
	eager("dayOfMonth", 1, 1, dayOf(func(t time.Time) int { return t.Day() })).check(0, checkTimestamp)
	eager("dayOfWeek", 1, 1, dayOf(func(t time.Time) int { return int(t.Weekday()) })).check(0, checkTimestamp)
	eager("dayOfYear", 1, 1, dayOf(func(t time.Time) int { return t.YearDay() })).check(0, checkTimestamp)
	eager("dateDifference", 2, 2, fnDateDifference).check(0, checkTimestamp).check(1, checkTimestamp)
	eager("formatDateTime", 1, 3, fnFormatDateTime).check(0, checkTimestamp).check(1, checkDateFormat).check(2, checkLocale)
	eager("parseDateTime", 1, 3, fnParseDateTime).check(1, checkLocale)
	eager("ticks", 1, 1, fnTicks).check(0, checkTimestamp)
	eager("convertFromUtc", 2, 3, fnConvertFromUtc).check(0, checkTimestamp).check(1, checkZone).check(2, checkDateFormat)
	eager("convertToUtc", 2, 3, fnConvertToUtc).check(0, checkTimestamp).check(1, checkZone).check(2, checkDateFormat)
	eager4("convertTimeZone", 3, 4, fnConvertTimeZone).check(0, checkTimestamp).check(1, checkZone).check(2, checkZone).check(3, checkDateFormat)

	// The trigger.
	register("triggerBody", 0, 0, func(string, int, []node) node { return triggerBodyNode{} })
	register("triggerOutputs", 0, 0, func(string, int, []node) node { return triggerOutputsNode{} })
	register("trigger", 0, 0, func(string, int, []node) node { return triggerNode{} })
}

func fnEmpty(env *Env, a args3, _ int) (value, error) {
	v := a[0]
	switch v.k {
	case kNull:
		return boolV(true), nil
	case kStr:
		return boolV(v.s == ""), nil
	case kArr:
		return boolV(len(v.arr()) == 0), nil
	case kObj, kBody:
		return boolV(len(v.obj()) == 0), nil
	case kOutputs, kTrigger:
		return boolV(false), nil
	}
	return null, failf("expects an object, an array or a string, got %s", v.typeName())
}

func fnContains(env *Env, a args3, _ int) (value, error) {
	c, x := a[0], a[1]
	switch c.k {
	case kStr:
		if x.k != kStr {
			return null, failf("expects its second parameter to be a string when the first is a string, got %s", x.typeName())
		}
		return boolV(strings.Contains(c.s, x.s)), nil
	case kArr:
		for _, e := range c.arr() {
			if equalValues(fromAny(e), x, env) {
				return boolV(true), nil
			}
		}
		return boolV(false), nil
	case kObj, kBody, kOutputs, kTrigger:
		if x.k != kStr {
			return null, failf("expects its second parameter to be a property name when the first is an object, got %s", x.typeName())
		}
		_, ok := member(c, env, x.s, "")
		return boolV(ok), nil
	}
	return null, failf("expects its first parameter to be an object, an array or a string, got %s", c.typeName())
}

func fnLength(env *Env, a args3, _ int) (value, error) {
	switch a[0].k {
	case kStr:
		return intV(int64(len16(a[0].s))), nil
	case kArr:
		return intV(int64(len(a[0].arr()))), nil
	}
	return null, failf("expects its parameter to be an array or a string, got %s", a[0].typeName())
}

func twoStrings(a args3) (string, string, error) {
	if a[0].k != kStr {
		return "", "", failf("expects its first parameter to be a string, got %s", a[0].typeName())
	}
	if a[1].k != kStr {
		return "", "", failf("expects its second parameter to be a string, got %s", a[1].typeName())
	}
	return a[0].s, a[1].s, nil
}

func stringFn(f func(string) string) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, _ int) (value, error) {
		if a[0].k != kStr {
			return null, failf("expects its parameter to be a string, got %s", a[0].typeName())
		}
		return strV(f(a[0].s)), nil
	}
}

// fnIndexOf ignores case, as documented, and counts in UTF-16 code units as .NET does.
func fnIndexOf(env *Env, a args3, _ int) (value, error) {
	s, p, err := twoStrings(a)
	if err != nil {
		return null, err
	}
	idx := 0
	for i := 0; ; {
		if _, ok := hasPrefixFold(s[i:], p); ok {
			return intV(int64(idx)), nil
		}
		if i >= len(s) {
			return intV(-1), nil
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		idx++
		if r >= 0x10000 {
			idx++
		}
		i += size
	}
}

// matchesFold returns the UTF-16 positions where p occurs in s ignoring case, as .NET's
// OrdinalIgnoreCase search finds them (overlapping occurrences included).
func matchesFold(s, p string, limit int) []int {
	var at []int
	idx := 0
	for i := 0; ; {
		if _, ok := hasPrefixFold(s[i:], p); ok {
			at = append(at, idx)
			if limit > 0 && len(at) == limit {
				return at
			}
		}
		if i >= len(s) {
			return at
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		idx++
		if r >= 0x10000 {
			idx++
		}
		i += size
	}
}

// fnLastIndexOf ignores case, as documented; an empty search text is found at the last
// character (length - 1), or at 0 in an empty text, as the reference specifies.
func fnLastIndexOf(env *Env, a args3, _ int) (value, error) {
	s, p, err := twoStrings(a)
	if err != nil {
		return null, err
	}
	switch {
	case s == "" && p == "":
		return intV(0), nil
	case s == "":
		return intV(-1), nil
	case p == "":
		return intV(int64(len16(s) - 1)), nil
	}
	at := matchesFold(s, p, 0)
	if len(at) == 0 {
		return intV(-1), nil
	}
	return intV(int64(at[len(at)-1])), nil
}

// fnNthIndexOf is nthIndexOf(text, search, n): where the nth occurrence starts, counting from
// the end when n is negative; -1 when there are fewer. Case is ignored as by indexOf.
func fnNthIndexOf(env *Env, a args3, _ int) (value, error) {
	s, p, err := twoStrings(a)
	if err != nil {
		return null, err
	}
	n, err := intArg(a[2], "its occurrence")
	if err != nil {
		return null, err
	}
	if n == 0 {
		return null, failf("expects its occurrence to be a positive or negative integer, got 0")
	}
	limit := n
	if n < 0 {
		limit = 0
	}
	at := matchesFold(s, p, limit)
	if n > 0 {
		if len(at) < n {
			return intV(-1), nil
		}
		return intV(int64(at[n-1])), nil
	}
	if len(at) < -n {
		return intV(-1), nil
	}
	return intV(int64(at[len(at)+n])), nil
}

// fnSlice is slice(text, start, end?): negative positions count from the end, positions past
// the end are the end, and an end at or before the start gives "".
func fnSlice(env *Env, a args3, n int) (value, error) {
	if a[0].k != kStr {
		return null, failf("expects its first parameter to be a string, got %s", a[0].typeName())
	}
	total := len16(a[0].s)
	pos := func(v value, what string) (int, error) {
		i, err := intArg(v, what)
		if err != nil {
			return 0, err
		}
		if i < 0 {
			i = max(total+i, 0)
		}
		return min(i, total), nil
	}
	start, err := pos(a[1], "its start index")
	if err != nil {
		return null, err
	}
	end := total
	if n == 3 {
		if end, err = pos(a[2], "its end index"); err != nil {
			return null, err
		}
	}
	if end <= start {
		return strV(""), nil
	}
	return strV(substring16(a[0].s, start, end-start)), nil
}

func intArg(v value, what string) (int, error) {
	if v.k != kInt {
		return 0, failf("expects %s to be an integer, got %s", what, v.typeName())
	}
	if v.i > 1<<31-1 || v.i < -(1<<31) {
		return 0, failf("expects %s to fit in 32 bits, got %d", what, v.i)
	}
	return int(v.i), nil
}

func fnSubstring(env *Env, a args3, n int) (value, error) {
	if a[0].k != kStr {
		return null, failf("expects its first parameter to be a string, got %s", a[0].typeName())
	}
	s := a[0].s
	total := len16(s)
	start, err := intArg(a[1], "the start index")
	if err != nil {
		return null, err
	}
	if start < 0 || start > total {
		return null, failf("start index %d is outside the string of length %d", start, total)
	}
	length := total - start
	if n == 3 {
		if length, err = intArg(a[2], "the length"); err != nil {
			return null, err
		}
		if length < 0 || start+length > total {
			return null, failf("start index %d plus length %d exceeds the string length %d", start, length, total)
		}
	}
	return strV(substring16(s, start, length)), nil
}

func fnReplace(env *Env, a args3, _ int) (value, error) {
	if a[0].k != kStr || a[1].k != kStr {
		bad := a[0]
		if a[0].k == kStr {
			bad = a[1]
		}
		return null, failf("expects string parameters, got %s", bad.typeName())
	}
	if a[1].s == "" {
		return null, failf("expects a non-empty string to replace")
	}
	with := ""
	switch a[2].k {
	case kStr:
		with = a[2].s
	case kNull:
	default:
		return null, failf("expects its third parameter to be a string, got %s", a[2].typeName())
	}
	return strV(strings.ReplaceAll(a[0].s, a[1].s, with)), nil
}

func fnSplit(env *Env, a args3, _ int) (value, error) {
	s, sep, err := twoStrings(a)
	if err != nil {
		return null, err
	}
	var parts []string
	if sep == "" {
		parts = []string{s}
	} else {
		parts = strings.Split(s, sep)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return value{k: kArr, ref: out}, nil
}

func fnInt(env *Env, a args3, _ int) (value, error) {
	v := a[0]
	switch v.k {
	case kInt:
		return v, nil
	case kFloat:
		if v.f == float64(int64(v.f)) {
			return intV(int64(v.f)), nil
		}
		return null, failf("cannot convert %s to an integer", formatFloat(v.f))
	case kDec:
		d := v.dec()
		if r := d.rat(); r.IsInt() && r.Num().IsInt64() {
			return intV(r.Num().Int64()), nil
		}
		return null, failf("cannot convert %s to an integer", d)
	case kStr:
		s := strings.TrimFunc(v.s, unicode.IsSpace)
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return null, failf("cannot convert '%s' to an integer", v.s)
		}
		return intV(i), nil
	}
	return null, failf("expects a string or a number, got %s", v.typeName())
}

func fnBool(env *Env, a args3, _ int) (value, error) {
	v := a[0]
	switch v.k {
	case kBool:
		return v, nil
	case kInt:
		return boolV(v.i != 0), nil
	case kFloat:
		return boolV(v.f != 0), nil
	case kDec:
		return boolV(v.dec().m.Sign() != 0), nil
	case kStr:
		s := strings.TrimFunc(v.s, unicode.IsSpace)
		switch {
		case strings.EqualFold(s, "true"):
			return boolV(true), nil
		case strings.EqualFold(s, "false"):
			return boolV(false), nil
		}
		return null, failf("cannot convert '%s' to a boolean", v.s)
	}
	return null, failf("cannot convert a %s to a boolean", v.typeName())
}
