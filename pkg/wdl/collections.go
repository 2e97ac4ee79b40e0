package wdl

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Collection and object functions. Results are new arrays and objects: nothing here changes a
// value of the row.

func arrayOrString(v value, what string) error {
	if v.k != kArr && v.k != kStr {
		return failf("expects %s to be an array or a string, got %s", what, v.typeName())
	}
	return nil
}

func fnFirst(env *Env, a args3, _ int) (value, error) {
	if err := arrayOrString(a[0], "its parameter"); err != nil {
		return null, err
	}
	if a[0].k == kStr {
		// the first character, a whole one even outside the Basic Multilingual Plane
		for _, r := range a[0].s {
			return strV(string(r)), nil
		}
		return null, nil
	}
	arr := a[0].arr()
	if len(arr) == 0 {
		return null, nil
	}
	return fromAny(arr[0]), nil
}

func fnLast(env *Env, a args3, _ int) (value, error) {
	if err := arrayOrString(a[0], "its parameter"); err != nil {
		return null, err
	}
	if a[0].k == kStr {
		if a[0].s == "" {
			return null, nil
		}
		r, _ := utf8.DecodeLastRuneInString(a[0].s)
		return strV(string(r)), nil
	}
	arr := a[0].arr()
	if len(arr) == 0 {
		return null, nil
	}
	return fromAny(arr[len(arr)-1]), nil
}

func countArg(v value) (int, error) {
	n, err := intArg(v, "its count")
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, failf("expects its count to be zero or more, got %d", n)
	}
	return n, nil
}

// fnTake is take(collection, count): the first count items (all of them when there are fewer).
func fnTake(env *Env, a args3, _ int) (value, error) {
	if err := arrayOrString(a[0], "its first parameter"); err != nil {
		return null, err
	}
	n, err := countArg(a[1])
	if err != nil {
		return null, err
	}
	if a[0].k == kStr {
		return strV(substring16(a[0].s, 0, min(n, len16(a[0].s)))), nil
	}
	arr := a[0].arr()
	return value{k: kArr, ref: slices.Clone(arr[:min(n, len(arr))])}, nil
}

// fnSkip is skip(collection, count): every item after the first count.
func fnSkip(env *Env, a args3, _ int) (value, error) {
	if err := arrayOrString(a[0], "its first parameter"); err != nil {
		return null, err
	}
	n, err := countArg(a[1])
	if err != nil {
		return null, err
	}
	if a[0].k == kStr {
		total := len16(a[0].s)
		n = min(n, total)
		return strV(substring16(a[0].s, n, total-n)), nil
	}
	arr := a[0].arr()
	return value{k: kArr, ref: slices.Clone(arr[min(n, len(arr)):])}, nil
}

// fnJoin is join(array, delimiter); items print as string() prints them.
func fnJoin(env *Env, a args3, _ int) (value, error) {
	if a[0].k != kArr {
		return null, failf("expects its first parameter to be an array, got %s", a[0].typeName())
	}
	if a[1].k != kStr {
		return null, failf("expects its delimiter to be a string, got %s", a[1].typeName())
	}
	var b strings.Builder
	for i, x := range a[0].arr() {
		if i > 0 {
			b.WriteString(a[1].s)
		}
		b.WriteString(text(fromAny(x), env))
	}
	return strV(b.String()), nil
}

func fnReverse(env *Env, a args3, _ int) (value, error) {
	if a[0].k != kArr {
		return null, failf("expects its parameter to be an array, got %s", a[0].typeName())
	}
	out := slices.Clone(a[0].arr())
	slices.Reverse(out)
	return value{k: kArr, ref: out}, nil
}

// fnSort is sort(array, key?): numbers by value, strings ordinally, booleans false first; with
// a key, objects by that property. Items of different kinds cannot be sorted together.
func fnSort(env *Env, a args3, n int) (value, error) {
	if a[0].k != kArr {
		return null, failf("expects its first parameter to be an array, got %s", a[0].typeName())
	}
	key := ""
	if n == 2 {
		if a[1].k != kStr {
			return null, failf("expects its sort key to be a string, got %s", a[1].typeName())
		}
		key = a[1].s
	}
	items := slices.Clone(a[0].arr())
	keys := make([]value, len(items))
	for i, x := range items {
		v := fromAny(x)
		if n == 2 {
			if !v.isObjectLike() {
				return null, failf("expects the items to be objects when a sort key is given, got %s", v.typeName())
			}
			kv, ok := member(v, env, key, "")
			if !ok {
				return null, failf("found an item without the property '%s'", key)
			}
			v = kv
		}
		switch {
		case v.isNum() || v.k == kStr || v.k == kBool || v.k == kNull:
		default:
			return null, failf("can sort integers, floats, strings and booleans, got %s", v.typeName())
		}
		keys[i] = v
	}
	var sortErr error
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(x, y int) int {
		c, err := sortOrder(keys[x], keys[y])
		if err != nil && sortErr == nil {
			sortErr = err
		}
		return c
	})
	if sortErr != nil {
		return null, sortErr
	}
	out := make([]any, len(items))
	for i, j := range idx {
		out[i] = items[j]
	}
	return value{k: kArr, ref: out}, nil
}

func sortOrder(a, b value) (int, error) {
	switch {
	case a.isNum() && b.isNum():
		return compareNumbers(a, b), nil
	case a.k == kStr && b.k == kStr:
		return strings.Compare(a.s, b.s), nil
	case a.k == kBool && b.k == kBool:
		return cmp3(!a.b && b.b, a.b && !b.b), nil
	case a.k == kNull && b.k == kNull:
		return 0, nil
	}
	return 0, failf("cannot sort a %s and a %s together", a.typeName(), b.typeName())
}

// fnChunk is chunk(collection, length): the collection cut into pieces of length items.
func fnChunk(env *Env, a args3, _ int) (value, error) {
	if err := arrayOrString(a[0], "its first parameter"); err != nil {
		return null, err
	}
	size, err := intArg(a[1], "its length")
	if err != nil {
		return null, err
	}
	if size < 1 {
		return null, failf("expects its length to be a positive integer, got %d", size)
	}
	var out []any
	if a[0].k == kStr {
		units := utf16.Encode([]rune(a[0].s))
		for i := 0; i < len(units); i += size {
			out = append(out, string(utf16.Decode(units[i:min(i+size, len(units))])))
		}
	} else {
		arr := a[0].arr()
		for i := 0; i < len(arr); i += size {
			out = append(out, slices.Clone(arr[i:min(i+size, len(arr))]))
		}
	}
	if out == nil {
		out = []any{}
	}
	return value{k: kArr, ref: out}, nil
}

// fnRange is range(start, count): count integers from start. The reference limits count to
// 100,000 and start + count to 2,147,483,647.
func fnRange(env *Env, a args3, _ int) (value, error) {
	if a[0].k != kInt || a[1].k != kInt {
		bad := a[0]
		if a[0].k == kInt {
			bad = a[1]
		}
		return null, failf("expects integer parameters, got %s", bad.typeName())
	}
	start, count := a[0].i, a[1].i
	if count < 0 || count > 100000 {
		return null, failf("expects its count to be between 0 and 100000, got %d", count)
	}
	if start+count > 2147483647 || start < -2147483648 {
		return null, failf("expects start plus count to be at most 2147483647")
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return value{k: kArr, ref: out}, nil
}

// collections checks union's and intersection's arguments: all arrays or all objects.
func collections(env *Env, a []value) (arrays bool, err error) {
	for i, v := range a {
		switch {
		case v.k == kArr:
		case v.isObjectLike():
		default:
			return false, failf("expects arrays or objects, got %s", v.typeName())
		}
		if i > 0 && (v.k == kArr) != (a[0].k == kArr) {
			return false, failf("expects all its parameters to be arrays or all to be objects")
		}
	}
	return a[0].k == kArr, nil
}

// fnUnion is union(collection, ...): every item once, in first-seen order; for objects every
// property, the last value of a name winning.
func fnUnion(env *Env, a []value) (value, error) {
	arrays, err := collections(env, a)
	if err != nil {
		return null, err
	}
	if !arrays {
		out := map[string]any{}
		for _, v := range a {
			maps.Copy(out, v.asMap(env))
		}
		return value{k: kObj, ref: out}, nil
	}
	out := []any{}
	for _, v := range a {
		for _, x := range v.arr() {
			if !containsValue(out, fromAny(x), env) {
				out = append(out, x)
			}
		}
	}
	return value{k: kArr, ref: out}, nil
}

// fnIntersection is intersection(collection, ...): the items found in every collection, once,
// in the first collection's order; for objects the properties every object has with equal
// values.
func fnIntersection(env *Env, a []value) (value, error) {
	arrays, err := collections(env, a)
	if err != nil {
		return null, err
	}
	if !arrays {
		out := map[string]any{}
		for k, x := range a[0].asMap(env) {
			keep := true
			for _, v := range a[1:] {
				y, ok := v.asMap(env)[k]
				if !ok || !equalValues(fromAny(x), fromAny(y), env) {
					keep = false
					break
				}
			}
			if keep {
				out[k] = a[len(a)-1].asMap(env)[k]
			}
		}
		return value{k: kObj, ref: out}, nil
	}
	out := []any{}
	for _, x := range a[0].arr() {
		xv := fromAny(x)
		if containsValue(out, xv, env) {
			continue
		}
		keep := true
		for _, v := range a[1:] {
			if !containsValue(v.arr(), xv, env) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return value{k: kArr, ref: out}, nil
}

func containsValue(arr []any, v value, env *Env) bool {
	for _, x := range arr {
		if equalValues(fromAny(x), v, env) {
			return true
		}
	}
	return false
}

// propertyFn is addProperty (fails when the property exists), setProperty (adds or replaces)
// and removeProperty (a missing property leaves the object as it was). Each returns a copy.
func propertyFn(op string) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, _ int) (value, error) {
		if !a[0].isObjectLike() {
			return null, failf("expects its first parameter to be an object, got %s", a[0].typeName())
		}
		if a[1].k != kStr {
			return null, failf("expects its property name to be a string, got %s", a[1].typeName())
		}
		name := a[1].s
		out := maps.Clone(a[0].asMap(env))
		if out == nil {
			out = map[string]any{}
		}
		existing := ""
		for k := range out {
			if strings.EqualFold(k, name) {
				existing = k
				break
			}
		}
		switch op {
		case "add":
			if existing != "" {
				return null, failf("cannot add the property '%s': the object already has it", name)
			}
			out[name] = toAny(a[2], env)
		case "set":
			if existing != "" {
				delete(out, existing)
			}
			out[name] = toAny(a[2], env)
		case "remove":
			if existing != "" {
				delete(out, existing)
			}
		}
		return value{k: kObj, ref: out}, nil
	}
}

// fnJSON is json(text): the JSON value the text holds (numbers as the row's are read); the
// reference says json(null) is an empty object.
func fnJSON(env *Env, a args3, _ int) (value, error) {
	switch a[0].k {
	case kNull:
		return value{k: kObj, ref: map[string]any{}}, nil
	case kStr:
	case kArr, kObj, kBody, kOutputs, kTrigger:
		return a[0], nil
	default:
		return null, failf("expects a string, got %s", a[0].typeName())
	}
	dec := json.NewDecoder(strings.NewReader(a[0].s))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return null, failf("cannot parse the text as JSON: %v", err)
	}
	if dec.More() {
		return null, failf("cannot parse the text as JSON: it has more after the first value")
	}
	if s, ok := x.(json.Number); ok {
		return numberV(string(s)), nil
	}
	return fromAny(x), nil
}
