package wdl

import (
	"fmt"
	"strings"
)

type litNode struct{ v value }

func (n *litNode) eval(*Env) (value, error) { return n.v, nil }

// args3 carries a fixed-arity call's arguments by value, so that calling through a function
// value does not move them to the heap.
type args3 [3]value

// args4 is args3 for the few functions of four arguments (addToTime and subtractFromTime with
// a format, convertTimeZone), kept apart so that the common calls copy three values, not four.
type args4 [4]value

// callNode is an eagerly evaluated function of up to three arguments.
type callNode struct {
	name string
	off  int
	args []node
	fn   func(env *Env, a args3, n int) (value, error)
}

func (c *callNode) eval(env *Env) (value, error) {
	var a args3
	for i, an := range c.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		a[i] = v
	}
	v, err := c.fn(env, a, len(c.args))
	if err != nil {
		return null, c.fail(err)
	}
	return v, nil
}

func (c *callNode) fail(err error) error {
	return &Error{Offset: c.off, Msg: c.name + " " + err.Error()}
}

func failf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// eqNode is equals(a, b, ...): true when every argument equals the first.
type eqNode struct {
	args []node
}

func (n *eqNode) eval(env *Env) (value, error) {
	first, err := n.args[0].eval(env)
	if err != nil {
		return null, err
	}
	for _, an := range n.args[1:] {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		if !equalValues(first, v, env) {
			return boolV(false), nil
		}
	}
	return boolV(true), nil
}

// andNode and orNode stop at the first deciding argument; every argument evaluated must be a
// boolean.
type andNode struct {
	name string
	off  int
	args []node
	or   bool
}

func (n *andNode) eval(env *Env) (value, error) {
	for _, an := range n.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		if v.k != kBool {
			return null, &Error{Offset: n.off, Msg: fmt.Sprintf("%s expects boolean parameters, got %s", n.name, v.typeName())}
		}
		if v.b == n.or {
			return v, nil
		}
	}
	return boolV(!n.or), nil
}

// ifNode evaluates only the branch it returns.
type ifNode struct {
	off           int
	cond, yes, no node
}

func (n *ifNode) eval(env *Env) (value, error) {
	c, err := n.cond.eval(env)
	if err != nil {
		return null, err
	}
	if c.k != kBool {
		return null, &Error{Offset: n.off, Msg: "if expects its first parameter to be a boolean, got " + c.typeName()}
	}
	if c.b {
		return n.yes.eval(env)
	}
	return n.no.eval(env)
}

// coalesceNode returns the first non-null argument, evaluating no further.
type coalesceNode struct{ args []node }

func (n *coalesceNode) eval(env *Env) (value, error) {
	for _, an := range n.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		if v.k != kNull {
			return v, nil
		}
	}
	return null, nil
}

// call4Node is callNode for functions of four arguments.
type call4Node struct {
	name string
	off  int
	args []node
	fn   func(env *Env, a args4, n int) (value, error)
}

func (c *call4Node) eval(env *Env) (value, error) {
	var a args4
	for i, an := range c.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		a[i] = v
	}
	v, err := c.fn(env, a, len(c.args))
	if err != nil {
		return null, &Error{Offset: c.off, Msg: c.name + " " + err.Error()}
	}
	return v, nil
}

// varNode is an eagerly evaluated function of any number of arguments (createArray, union, max).
type varNode struct {
	name string
	off  int
	args []node
	fn   func(env *Env, a []value) (value, error)
}

func (c *varNode) eval(env *Env) (value, error) {
	a := make([]value, len(c.args))
	for i, an := range c.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		a[i] = v
	}
	v, err := c.fn(env, a)
	if err != nil {
		return null, &Error{Offset: c.off, Msg: c.name + " " + err.Error()}
	}
	return v, nil
}

type concatNode struct{ args []node }

func (n *concatNode) eval(env *Env) (value, error) {
	var b strings.Builder
	for _, an := range n.args {
		v, err := an.eval(env)
		if err != nil {
			return null, err
		}
		b.WriteString(text(v, env))
	}
	return strV(b.String()), nil
}

// interpNode is an interpolated string: literal parts and "@{expr}" parts, always a string.
type interpNode struct{ parts []node }

func (n *interpNode) eval(env *Env) (value, error) {
	var b strings.Builder
	for _, part := range n.parts {
		v, err := part.eval(env)
		if err != nil {
			return null, err
		}
		b.WriteString(text(v, env))
	}
	return strV(b.String()), nil
}

type triggerBodyNode struct{}

func (triggerBodyNode) eval(env *Env) (value, error) { return bodyValue(env), nil }

type triggerOutputsNode struct{}

func (triggerOutputsNode) eval(*Env) (value, error) { return value{k: kOutputs}, nil }

type triggerNode struct{}

func (triggerNode) eval(*Env) (value, error) { return value{k: kTrigger}, nil }

// indexNode selects a property (objects) or an element (arrays): x[k], x?[k], x.k, x?.k. With ?
// a null receiver, a missing property or an index out of range gives null instead of an error.
// A property name with "/" that is not itself a property is a path: ['body/x'] is ['body']['x'],
// the form Power Automate writes for trigger outputs.
type indexNode struct {
	x, key   node
	lit      string // the key, when it is a string literal
	litLower string // lit in lower case
	hasLit   bool
	path     []string // lit split at "/", when it contains one
	nullSafe bool
	off      int
}

func newIndex(x, key node, nullSafe bool, off int) node {
	n := &indexNode{x: x, key: key, nullSafe: nullSafe, off: off}
	if l, ok := key.(*litNode); ok && l.v.k == kStr {
		n.setLit(l.v.s)
		// triggerOutputs()?['body/x'] is the form Power Automate writes for every column:
		// compile it as triggerBody()?['x'], which means the same (the outputs view has no
		// property named "body/x") and skips a step per evaluation.
		if _, ok := x.(triggerOutputsNode); ok && len(n.path) == 2 && strings.EqualFold(n.path[0], "body") {
			n.x = triggerBodyNode{}
			n.setLit(n.path[1])
		}
		if _, ok := n.x.(triggerBodyNode); ok {
			return &bodyColumnNode{name: n.lit, general: n}
		}
	}
	return n
}

// bodyColumnNode is triggerBody()?['x'] with a literal x (and so triggerOutputs()?['body/x'],
// which newIndex rewrites to it), the form every condition reads a column with. It does what
// indexNode does for it, in the same order, without the steps that cannot apply: a column under
// its exact name is one map lookup, then the case-insensitive fallback, then null or an error. No
// body and path keys ('a/b') are left to indexNode.
type bodyColumnNode struct {
	name    string
	general *indexNode
}

func (n *bodyColumnNode) eval(env *Env) (value, error) {
	if x, ok := env.Body[n.name]; ok {
		return fromAny(x), nil
	}
	g := n.general
	if env.Body == nil || g.path != nil {
		return g.eval(env)
	}
	if v, ok := bodyFold(env, n.name, g.litLower); ok {
		return v, nil
	}
	if g.nullSafe {
		return null, nil
	}
	return null, g.errorf("property '%s' doesn't exist", n.name)
}

func (n *indexNode) setLit(s string) {
	n.lit, n.hasLit = s, true
	n.litLower = strings.ToLower(s)
	n.path = nil
	if strings.Contains(s, "/") {
		n.path = strings.Split(s, "/")
	}
}

func (n *indexNode) eval(env *Env) (value, error) {
	base, err := n.x.eval(env)
	if err != nil {
		return null, err
	}
	var k value
	if n.hasLit {
		k = strV(n.lit)
	} else if k, err = n.key.eval(env); err != nil {
		return null, err
	}
	switch {
	case base.k == kNull:
		if n.nullSafe {
			return null, nil
		}
		return null, n.errorf("cannot select %s of a null value (write ?[...] to allow null)", describeKey(k))
	case base.isObjectLike():
		if k.k != kStr {
			return null, n.errorf("property names are strings, got %s", k.typeName())
		}
		lower := ""
		if n.hasLit {
			lower = n.litLower
		}
		if v, ok := member(base, env, k.s, lower); ok {
			return v, nil
		}
		path := n.path
		if !n.hasLit && strings.Contains(k.s, "/") {
			path = strings.Split(k.s, "/")
		}
		if path != nil {
			return n.walk(base, env, path)
		}
		if n.nullSafe {
			return null, nil
		}
		return null, n.errorf("property '%s' doesn't exist", k.s)
	case base.k == kArr:
		if k.k != kInt {
			return null, n.errorf("an array is indexed by an integer, got %s", k.typeName())
		}
		a := base.arr()
		if k.i >= 0 && k.i < int64(len(a)) {
			return fromAny(a[k.i]), nil
		}
		if n.nullSafe {
			return null, nil
		}
		return null, n.errorf("index %d is out of range for an array of length %d", k.i, len(a))
	}
	return null, n.errorf("cannot select %s of a %s value", describeKey(k), base.typeName())
}

func (n *indexNode) walk(v value, env *Env, path []string) (value, error) {
	for _, seg := range path {
		if v.k == kNull {
			if n.nullSafe {
				return null, nil
			}
			return null, n.errorf("cannot select property '%s' of a null value (write ?[...] to allow null)", seg)
		}
		if !v.isObjectLike() {
			return null, n.errorf("cannot select property '%s' of a %s value", seg, v.typeName())
		}
		next, ok := member(v, env, seg, "")
		if !ok {
			if n.nullSafe {
				return null, nil
			}
			return null, n.errorf("property '%s' doesn't exist", seg)
		}
		v = next
	}
	return v, nil
}

func (n *indexNode) errorf(format string, args ...any) error {
	return &Error{Offset: n.off, Msg: fmt.Sprintf(format, args...)}
}

func describeKey(k value) string {
	switch k.k {
	case kStr:
		return "property '" + k.s + "'"
	case kInt:
		return fmt.Sprintf("index %d", k.i)
	}
	return "a " + k.typeName() + " key"
}
