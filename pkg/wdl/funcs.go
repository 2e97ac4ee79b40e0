package wdl

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// fnSpec describes a function: its display name, its arity (max -1: variadic) and how to build
// its node from the compiled arguments.
type fnSpec struct {
	name     string
	min, max int
	build    func(name string, off int, args []node) node
}

// functions is keyed by lower-case name: function names are case-insensitive, as in the
// template language Logic Apps shares with Azure Resource Manager.
var functions = map[string]fnSpec{}

// unavailable lists workflow functions that exist in Logic Apps but refer to things a dvrouter
// condition does not have (other actions, variables, parameters, loops).
var unavailable = map[string]bool{
	"actions": true, "action": true, "actionbody": true, "actionoutputs": true, "body": true,
	"outputs": true, "variables": true, "parameters": true, "items": true, "item": true,
	"iterationindexes": true, "workflow": true, "result": true, "listcallbackurl": true,
	"formdatavalue": true, "formdatamultivalues": true, "multipartbody": true,
	"triggerformdatavalue": true, "triggerformdatamultivalues": true, "triggermultipartbody": true,
}

func register(name string, lo, hi int, build func(name string, off int, args []node) node) {
	functions[strings.ToLower(name)] = fnSpec{name: name, min: lo, max: hi, build: build}
}

// eager registers a function whose arguments are all evaluated before it runs.
func eager(name string, lo, hi int, fn func(env *Env, a args3, n int) (value, error)) {
	register(name, lo, hi, func(name string, off int, args []node) node {
		return fold(&callNode{name: name, off: off, args: args, fn: fn})
	})
}

// fold evaluates a call whose arguments are all literals once, at compile time: eager functions
// do not depend on the trigger when their arguments do not (utcNow is not eager), so
// ticks('2025-06-01T00:00:00Z') need not parse its timestamp for every event. A call that fails
// is kept, so that its error surfaces only if and when it is evaluated; arrays are kept too, so
// that no two evaluations hand out the same slice.
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

	// Collections.
	eager("empty", 1, 1, fnEmpty)
	eager("contains", 2, 2, fnContains)
	eager("length", 1, 1, fnLength)

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
	eager("toLower", 1, 1, stringFn(strings.ToLower))
	eager("toUpper", 1, 1, stringFn(strings.ToUpper))
	eager("trim", 1, 1, stringFn(func(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }))
	register("concat", 1, -1, func(_ string, _ int, args []node) node { return &concatNode{args: args} })
	eager("substring", 2, 3, fnSubstring)
	eager("replace", 3, 3, fnReplace)
	eager("split", 2, 2, fnSplit)

	// Conversions.
	eager("int", 1, 1, fnInt)
	eager("float", 1, 1, fnFloat)
	eager("string", 1, 1, func(env *Env, a args3, _ int) (value, error) {
		return strV(text(a[0], env)), nil
	})
	eager("bool", 1, 1, fnBool)

	// Dates and times.
	register("utcNow", 0, 1, func(_ string, off int, args []node) node {
		n := &utcNowNode{off: off}
		if len(args) == 1 {
			n.format = args[0]
		}
		return n
	})
	eager("addDays", 2, 3, addTime(24*3600))
	eager("addHours", 2, 3, addTime(3600))
	eager("addMinutes", 2, 3, addTime(60))
	eager("formatDateTime", 1, 2, fnFormatDateTime)
	eager("ticks", 1, 1, fnTicks)

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

func fnFloat(env *Env, a args3, _ int) (value, error) {
	v := a[0]
	switch v.k {
	case kFloat:
		return v, nil
	case kInt:
		return floatV(float64(v.i)), nil
	case kStr:
		s := strings.TrimFunc(v.s, unicode.IsSpace)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !plainNumber(s) {
			return null, failf("cannot convert '%s' to a float", v.s)
		}
		return floatV(f), nil
	}
	return null, failf("expects a string or a number, got %s", v.typeName())
}

// plainNumber rejects the forms strconv accepts that a JSON number cannot hold (Inf, NaN, hex).
func plainNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
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
