package wdl

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

type kind uint8

const (
	kNull kind = iota
	kBool
	kInt   // i
	kFloat // f
	kStr   // s
	kArr   // ref holds a []any
	kObj   // ref holds a map[string]any
	kBody  // ref holds Env.Body: an object whose case-insensitive lookups use Env's index
	// The trigger's output objects are never built: they are views of Env.Body, so that
	// triggerOutputs()?['body/x'] costs one map lookup and no allocation.
	kOutputs // triggerOutputs(): {"body": Body}
	kTrigger // trigger(): {"outputs": triggerOutputs()}
	kDec     // ref holds a *decimal: decimal()'s exact digits
)

// value is a value during evaluation. It is passed by value and refers to data that already
// exists (row values are kept in their original interface), so evaluation allocates only when a
// function builds a new string or array.
type value struct {
	k   kind
	b   bool
	i   int64
	f   float64
	s   string
	ref any
}

var null = value{}

func boolV(b bool) value     { return value{k: kBool, b: b} }
func intV(i int64) value     { return value{k: kInt, i: i} }
func floatV(f float64) value { return value{k: kFloat, f: f} }
func strV(s string) value    { return value{k: kStr, s: s} }

// fromAny converts a row value (nil, bool, string, json.Number, []any, map) to a value. A
// json.Number without a fraction or exponent that fits in 64 bits is an integer, as Newtonsoft
// (the engine's JSON reader) reads it; otherwise it is a float.
func fromAny(x any) value {
	switch v := x.(type) {
	case nil:
		return null
	case string:
		return strV(v)
	case json.Number:
		return numberV(string(v))
	case bool:
		return boolV(v)
	case map[string]any:
		if v == nil {
			return null
		}
		return value{k: kObj, ref: x}
	case []any:
		if v == nil {
			return null
		}
		return value{k: kArr, ref: x}
	case float64:
		return floatV(v)
	case int64:
		return intV(v)
	case int:
		return intV(int64(v))
	}
	return null
}

func numberV(s string) value {
	if i, ok := shortInt(s); ok {
		return intV(i)
	}
	return parseNumber(s)
}

// parseNumber is numberV for any JSON number text.
func parseNumber(s string) value {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return intV(i)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return null
	}
	return floatV(f)
}

// shortInt parses -?digits of at most 18 digits, which cannot overflow an int64: the common
// row number (80, 150000, a choice value), read without strconv's generality. Anything else is
// left to parseNumber, which gives the same result for these texts.
func shortInt(s string) (int64, bool) {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) < len(s) {
		n = -n
	}
	return n, true
}

func (v value) arr() []any          { a, _ := v.ref.([]any); return a }
func (v value) obj() map[string]any { m, _ := v.ref.(map[string]any); return m }
func (v value) isNum() bool         { return v.k == kInt || v.k == kFloat || v.k == kDec }
func (v value) typeName() string    { return typeNames[v.k] }
func (v value) toAny(env *Env) any  { return toAny(v, env) }

func (v value) isObjectLike() bool {
	return v.k == kObj || v.k == kBody || v.k == kOutputs || v.k == kTrigger
}

func bodyValue(env *Env) value {
	if env.Body == nil {
		return null
	}
	return value{k: kBody, ref: env.Body}
}

var typeNames = [...]string{kNull: "Null", kBool: "Boolean", kInt: "Integer", kFloat: "Float",
	kStr: "String", kArr: "Array", kObj: "Object", kBody: "Object", kOutputs: "Object", kTrigger: "Object", kDec: "Decimal"}

func toAny(v value, env *Env) any {
	switch v.k {
	case kBool:
		return v.b
	case kInt:
		return v.i
	case kFloat:
		return v.f
	case kDec:
		return v.float()
	case kStr:
		return v.s
	case kArr, kObj, kBody:
		return v.ref
	case kOutputs:
		return map[string]any{"body": anyBody(env)}
	case kTrigger:
		return map[string]any{"outputs": map[string]any{"body": anyBody(env)}}
	}
	return nil
}

func anyBody(env *Env) any {
	if env.Body == nil {
		return nil
	}
	return env.Body
}

// asMap returns an object-like value as a map, building the trigger views.
func (v value) asMap(env *Env) map[string]any {
	switch v.k {
	case kObj, kBody:
		return v.obj()
	case kOutputs, kTrigger:
		m, _ := toAny(v, env).(map[string]any)
		return m
	}
	return nil
}

// member looks up property k of an object-like value: the exact name first, then ignoring case
// (see README.md, "Property names"). lower is k in lower case, or "" to have it computed.
func member(v value, env *Env, k, lower string) (value, bool) {
	switch v.k {
	case kOutputs:
		if strings.EqualFold(k, "body") {
			return bodyValue(env), true
		}
		return null, false
	case kTrigger:
		if strings.EqualFold(k, "outputs") {
			return value{k: kOutputs}, true
		}
		return null, false
	case kBody:
		if x, ok := v.obj()[k]; ok {
			return fromAny(x), true
		}
		return bodyFold(env, k, lower)
	case kObj:
		m := v.obj()
		if x, ok := m[k]; ok {
			return fromAny(x), true
		}
		for mk, x := range m {
			if len(mk) == len(k) && strings.EqualFold(mk, k) {
				return fromAny(x), true
			}
		}
	}
	return null, false
}

// bodyFold looks property k up in Env.Body ignoring case, once the exact name has missed: the
// lower-case name, then Env's index of the body's mixed-case names. lower is as for member.
func bodyFold(env *Env, k, lower string) (value, bool) {
	if lower == "" {
		lower = strings.ToLower(k)
	}
	if lower != k {
		if x, ok := env.Body[lower]; ok {
			return fromAny(x), true
		}
	}
	if name, ok := env.foldedName(lower); ok {
		return fromAny(env.Body[name]), true
	}
	return null, false
}

// equalValues is equals(): numbers by value whatever their kind (1 equals 1.0), true equals 1
// and false 0, strings ordinally (case matters), arrays element by element in order, objects
// property by property; null equals null and, as Microsoft documents for comparisons, the empty
// string.
func equalValues(a, b value, env *Env) bool {
	if a.k == kNull || b.k == kNull {
		if a.k == b.k {
			return true
		}
		other := a
		if a.k == kNull {
			other = b
		}
		return other.k == kStr && other.s == ""
	}
	switch {
	case a.isNum() && b.isNum():
		return compareNumbers(a, b) == 0
	case a.k == kBool && b.k == kBool:
		return a.b == b.b
	case a.k == kBool && b.isNum():
		return compareNumbers(b, intV(boolInt(a.b))) == 0
	case a.isNum() && b.k == kBool:
		return compareNumbers(a, intV(boolInt(b.b))) == 0
	case a.k == kStr && b.k == kStr:
		return a.s == b.s
	case a.k == kArr && b.k == kArr:
		x, y := a.arr(), b.arr()
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(fromAny(x[i]), fromAny(y[i]), env) {
				return false
			}
		}
		return true
	case a.isObjectLike() && b.isObjectLike():
		x, y := a.asMap(env), b.asMap(env)
		if len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalValues(fromAny(xv), fromAny(yv), env) {
				return false
			}
		}
		return true
	}
	return false
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// compareNumbers orders two numbers exactly, including an int64 against a float64 (converting
// the integer to float64 would make 2^53+1 equal 2^53).
func compareNumbers(a, b value) int {
	switch {
	case a.k == kInt && b.k == kInt:
		return cmp3(a.i < b.i, a.i > b.i)
	case a.k == kFloat && b.k == kFloat:
		return cmp3(a.f < b.f, a.f > b.f)
	case a.k == kDec || b.k == kDec:
		if a.k == kFloat || b.k == kFloat {
			// a decimal meets a double as the nearest double, as .NET converts it
			return compareNumbers(floatV(a.float()), floatV(b.float()))
		}
		return exactRat(a).Cmp(exactRat(b))
	case a.k == kInt:
		return compareIntFloat(a.i, b.f)
	}
	return -compareIntFloat(b.i, a.f)
}

// exactRat is a number's exact value (NaN as zero: a decimal never meets one in practice).
func exactRat(v value) *big.Rat {
	switch v.k {
	case kDec:
		return v.dec().rat()
	case kInt:
		return new(big.Rat).SetInt64(v.i)
	}
	if math.IsInf(v.f, 0) {
		return new(big.Rat).SetFloat64(math.Copysign(math.MaxFloat64, v.f))
	}
	if r := new(big.Rat).SetFloat64(v.f); r != nil {
		return r
	}
	return new(big.Rat)
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func compareIntFloat(i int64, f float64) int {
	switch {
	case math.IsNaN(f):
		return -1
	case f >= 9223372036854775808.0: // 2^63: above every int64
		return -1
	case f < -9223372036854775808.0:
		return 1
	}
	t := math.Trunc(f)
	ti := int64(t)
	if i != ti {
		return cmp3(i < ti, i > ti)
	}
	frac := f - t
	return cmp3(frac > 0, frac < 0)
}

// orderValues implements greater, less and friends: numbers by value, strings ignoring case
// (OrdinalIgnoreCase), null as the empty string; anything else is an error, as in the engine.
func orderValues(a, b value) (int, error) {
	if a.k == kNull && b.k == kStr {
		a = strV("")
	}
	if b.k == kNull && a.k == kStr {
		b = strV("")
	}
	switch {
	case a.isNum() && b.isNum():
		return compareNumbers(a, b), nil
	case a.k == kStr && b.k == kStr:
		return compareFold(a.s, b.s), nil
	case (a.isNum() || a.k == kStr) && (b.isNum() || b.k == kStr):
		return 0, failf("expects two parameters of matching types, got %s and %s", a.typeName(), b.typeName())
	}
	bad := a
	if a.isNum() || a.k == kStr {
		bad = b
	}
	return 0, failf("expects integer, float or string parameters, got %s", bad.typeName())
}

// upperRune is the per-character mapping of .NET's OrdinalIgnoreCase.
func upperRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - ('a' - 'A')
		}
		return r
	}
	return unicode.ToUpper(r)
}

func compareFold(a, b string) int {
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		a, b = a[na:], b[nb:]
		if ra == rb {
			continue
		}
		ua, ub := upperRune(ra), upperRune(rb)
		if ua != ub {
			return cmp3(ua < ub, ua > ub)
		}
	}
	return cmp3(len(a) < len(b), len(a) > len(b))
}

// hasPrefixFold reports whether s starts with p ignoring case, and returns the byte length of the
// matched part of s.
func hasPrefixFold(s, p string) (int, bool) {
	n := 0
	for len(p) > 0 {
		if len(s) == 0 {
			return 0, false
		}
		rs, ns := utf8.DecodeRuneInString(s)
		rp, np := utf8.DecodeRuneInString(p)
		if rs != rp && upperRune(rs) != upperRune(rp) {
			return 0, false
		}
		s, p = s[ns:], p[np:]
		n += ns
	}
	return n, true
}

func hasSuffixFold(s, p string) bool {
	for len(p) > 0 {
		if len(s) == 0 {
			return false
		}
		rs, ns := utf8.DecodeLastRuneInString(s)
		rp, np := utf8.DecodeLastRuneInString(p)
		if rs != rp && upperRune(rs) != upperRune(rp) {
			return false
		}
		s, p = s[:len(s)-ns], p[:len(p)-np]
	}
	return true
}

// len16 is a string's length in UTF-16 code units, the unit of .NET string lengths and indexes.
func len16(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// substring16 returns the UTF-16 code units [start, start+n) of s.
func substring16(s string, start, n int) string {
	if isASCII(s) {
		return s[start : start+n]
	}
	return string(utf16.Decode(utf16.Encode([]rune(s))[start : start+n]))
}

// text converts a value to a string as string(), concat() and "@{...}" do: null is "", numbers
// in invariant culture, booleans as .NET prints them ("True"), arrays and objects as JSON.
func text(v value, env *Env) string {
	switch v.k {
	case kNull:
		return ""
	case kStr:
		return v.s
	case kInt:
		return strconv.FormatInt(v.i, 10)
	case kFloat:
		return formatFloat(v.f)
	case kDec:
		return v.dec().String()
	case kBool:
		if v.b {
			return "True"
		}
		return "False"
	}
	b, err := json.Marshal(toAny(v, env))
	if err != nil {
		return ""
	}
	return string(b)
}

// formatFloat prints a float64 as .NET's double.ToString() does: the shortest round-tripping
// digits, in exponent form ("1E+15", "1E-05") outside [1e-4, 1e15).
func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	if f == 0 {
		return "0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	at := strings.LastIndexByte(e, 'e')
	exp, _ := strconv.Atoi(e[at+1:])
	if exp >= 15 || exp < -4 {
		mant, sign, digits := e[:at], e[at+1], e[at+2:]
		if len(digits) < 2 {
			digits = "0" + digits
		}
		return mant + "E" + string(sign) + digits
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
