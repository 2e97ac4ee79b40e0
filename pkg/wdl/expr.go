// Package wdl compiles Workflow Definition Language expressions (the language of Power Automate
// and Logic Apps trigger conditions) once, and evaluates them against a row.
//
// Only the trigger's own data exists here: triggerBody(), triggerOutputs() and trigger() see the
// row, and functions about other actions, variables or parameters are rejected at compile time.
// Where the public documentation leaves a behaviour open, this package decides as the real engine
// does where evidence exists; README.md lists every decision with its evidence.
package wdl

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Limits that keep any input, however hostile, from exhausting the stack or memory.
const (
	maxDepth = 100   // nesting of calls and indexes
	maxNodes = 10000 // operations in one expression
)

// Error is a syntax or compile error, or an error raised while evaluating.
type Error struct {
	Offset int // byte offset into the source expression
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("col %d: %s", e.Offset+1, e.Msg) }

// Env is what an expression can see when evaluated.
type Env struct {
	// Body is the trigger body, the row in Web API shape: triggerBody()?['x'] and
	// triggerOutputs()?['body/x'] read Body["x"].
	Body map[string]any
	// Now returns the current time for utcNow(); nil means time.Now.
	Now func() time.Time

	// fold indexes Body's mixed-case property names by their lower-case form, built on the first
	// lookup that misses, so that the case-insensitive fallback does not scan the row for every
	// missing column. It is checked against Body's identity, so reusing an Env for another row
	// is safe; building it is race-free, so one Env may serve concurrent evaluations.
	fold atomic.Pointer[foldIndex]
}

type foldIndex struct {
	body  uintptr           // identity of the Body map the index was built from
	names map[string]string // lower-case name -> name, for names that are not lower case
}

// foldedName returns the Body property whose name equals lower ignoring case, for names that
// are not already lower case.
func (env *Env) foldedName(lower string) (string, bool) {
	id := reflect.ValueOf(env.Body).Pointer()
	idx := env.fold.Load()
	if idx == nil || idx.body != id {
		idx = &foldIndex{body: id}
		for k := range env.Body {
			if l := strings.ToLower(k); l != k {
				if idx.names == nil {
					idx.names = make(map[string]string)
				}
				idx.names[l] = k
			}
		}
		env.fold.Store(idx)
	}
	name, ok := idx.names[lower]
	return name, ok
}

// Expr is a compiled expression. It is immutable and safe for concurrent use.
type Expr struct {
	src   string
	root  node
	spans map[node]string // each node's source, for Explain
	// columns are the row columns read by a literal name, lower case, in order of first use.
	columns []string
}

// Compile parses and compiles src, a JSON string value as it appears in a workflow definition:
// "@expr" is an expression, "text @{expr} text" an interpolated string, "@@..." a literal string
// starting with @, anything else a literal string. Errors are *Error values.
func Compile(src string) (*Expr, error) {
	c := &compiling{spans: map[node]string{}}
	root, err := compileValue(src, c)
	if err != nil {
		return nil, err
	}
	e := &Expr{src: src, root: root, spans: c.spans}
	for _, col := range c.columns {
		if col = strings.ToLower(col); !slices.Contains(e.columns, col) {
			e.columns = append(e.columns, col)
		}
	}
	return e, nil
}

// Columns returns the row columns the expression reads by a literal name
// (triggerBody()?['x'], triggerOutputs()?['body/x']), in lower case and in order of first use.
// A column read by a computed name is not listed.
func (e *Expr) Columns() []string { return slices.Clone(e.columns) }

// Check returns every syntax and compile error in src, in source order, where Compile stops at
// the first: a function argument that does not parse is recorded and skipped, and the next one
// is parsed. It returns nil when src compiles.
func Check(src string) []*Error {
	if _, err := Compile(src); err == nil {
		return nil
	}
	c := &compiling{recover: true}
	_, err := compileValue(src, c)
	errs := c.errs
	if e, ok := err.(*Error); ok {
		errs = append(errs, e)
	} else if err != nil {
		errs = append(errs, &Error{Msg: err.Error()})
	}
	if len(errs) == 0 {
		// Only the recovering pass accepted it (a skipped argument hid the error): report
		// what Compile says.
		_, err := Compile(src)
		if e, ok := err.(*Error); ok {
			return []*Error{e}
		}
		return []*Error{{Msg: err.Error()}}
	}
	return dedupeErrors(errs)
}

// dedupeErrors sorts errs by position and drops repeats at one position (an unclosed call is
// reported by it and by each call around it).
func dedupeErrors(errs []*Error) []*Error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Offset < errs[j].Offset })
	out := errs[:0]
	for _, e := range errs {
		if len(out) > 0 && out[len(out)-1].Offset == e.Offset {
			continue
		}
		out = append(out, e)
	}
	return out
}

// String returns the source expression.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression. Results are nil, bool, int64, float64, string, []any or
// map[string]any (row values are returned as they are in the row).
func (e *Expr) Eval(env *Env) (any, error) {
	if env == nil {
		env = &Env{}
	}
	v, err := e.root.eval(env)
	if err != nil {
		return nil, err
	}
	return v.toAny(env), nil
}

// Bool evaluates the expression as a condition. The result must be a boolean (or the text
// "true"/"false" in any case, which is what an interpolated "@{...}" condition yields); anything
// else, and any run-time error, is returned as an error, which callers treat as "not matched".
func (e *Expr) Bool(env *Env) (bool, error) {
	if env == nil {
		env = &Env{}
	}
	v, err := e.root.eval(env)
	if err != nil {
		return false, err
	}
	switch v.k {
	case kBool:
		return v.b, nil
	case kStr:
		switch {
		case strings.EqualFold(v.s, "true"):
			return true, nil
		case strings.EqualFold(v.s, "false"):
			return false, nil
		}
	}
	msg := fmt.Sprintf("the condition evaluated to a value of type %s, not a boolean", v.typeName())
	if v.k == kStr && !strings.HasPrefix(e.src, "@") {
		msg += " (an expression starts with @)"
	}
	return false, &Error{Offset: 0, Msg: msg}
}
