package odata

import (
	"encoding/json"
	"strconv"
	"strings"
)

// kind is the run-time type of a value. kNull doubles as SQL's "unknown" for logical results.
type kind uint8

const (
	kNull kind = iota
	kBool
	kStr
	kNum  // s holds the decimal text, compared exactly; num its fixed form, when it has one
	kTime // sec, nsec: an instant
	kGUID // g: a GUID literal
	// kOther is a value that exists but cannot be compared: a collection or a nested row. It is
	// not null, and every comparison with it is unknown.
	kOther
)

// val is a value during evaluation. It is passed by value and holds only references to data that
// already exists (row strings, compiled literals), so evaluating allocates nothing.
type val struct {
	k    kind
	b    bool
	s    string
	sec  int64
	nsec int32
	g    *[16]byte
	num  fixed
}

var unknown = val{}

func boolVal(b bool) val { return val{k: kBool, b: b} }

func numVal(s string) val { return val{k: kNum, s: s, num: parseFixed(s)} }

// fromRow converts a row value (dataverse.Row: nil, bool, string, json.Number, []any, map) to a
// val.
func fromRow(x any) val {
	switch v := x.(type) {
	case string:
		return val{k: kStr, s: v}
	case json.Number:
		return numVal(string(v))
	case bool:
		return val{k: kBool, b: v}
	case float64:
		return numVal(strconv.FormatFloat(v, 'g', -1, 64))
	case int:
		return numVal(strconv.Itoa(v))
	case int64:
		return numVal(strconv.FormatInt(v, 10))
	case nil:
		return unknown
	}
	return val{k: kOther}
}

// logic is a value seen as a condition, in SQL's three-valued logic.
type logic uint8

const (
	lUnknown logic = iota
	lFalse
	lTrue
)

func logicOf(b bool) logic {
	if b {
		return lTrue
	}
	return lFalse
}

// asLogic is v as a condition: a non-boolean value (a text column standing alone) is unknown.
func asLogic(v val) logic {
	if v.k != kBool {
		return lUnknown
	}
	return logicOf(v.b)
}

func (l logic) val() val {
	if l == lUnknown {
		return unknown
	}
	return boolVal(l == lTrue)
}

// node is a compiled expression. eval gives its value, test the same value as a condition.
// Comparisons and the logical operators compute test and derive eval from it; operands compute
// eval and derive test. A condition so passes one byte up the tree rather than a whole val,
// which matters when a route file's fifty filters run on every event.
type node interface {
	eval(in input) val
	test(in input) logic
}

type litNode struct{ v val }

func (n *litNode) eval(input) val   { return n.v }
func (n *litNode) test(input) logic { return asLogic(n.v) }

// colNode reads a column; a Yes/No column may stand alone as a condition.
type colNode struct{ col column }

func (n *colNode) eval(in input) val   { return in.read(n.col) }
func (n *colNode) test(in input) logic { return asLogic(in.read(n.col)) }

// The logical operators use SQL's three-valued logic: unknown and false is false, unknown or
// true is true, not unknown is unknown. A non-boolean operand (a text column used as a
// condition) is unknown.

type andNode struct{ l, r node }

func (n *andNode) eval(in input) val { return n.test(in).val() }

func (n *andNode) test(in input) logic {
	l := n.l.test(in)
	if l == lFalse {
		return lFalse
	}
	r := n.r.test(in)
	if r == lFalse {
		return lFalse
	}
	if l == lTrue && r == lTrue {
		return lTrue
	}
	return lUnknown
}

type orNode struct{ l, r node }

func (n *orNode) eval(in input) val { return n.test(in).val() }

func (n *orNode) test(in input) logic {
	l := n.l.test(in)
	if l == lTrue {
		return lTrue
	}
	r := n.r.test(in)
	if r == lTrue {
		return lTrue
	}
	if l == lFalse && r == lFalse {
		return lFalse
	}
	return lUnknown
}

type notNode struct{ x node }

func (n *notNode) eval(in input) val { return n.test(in).val() }

func (n *notNode) test(in input) logic {
	switch n.x.test(in) {
	case lTrue:
		return lFalse
	case lFalse:
		return lTrue
	}
	return lUnknown
}

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opGt
	opGe
	opLt
	opLe
)

func (op cmpOp) holds(c int) bool {
	switch op {
	case opEq:
		return c == 0
	case opNe:
		return c != 0
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	case opLt:
		return c < 0
	}
	return c <= 0
}

func newCmp(op cmpOp, l, r typed) node {
	switch {
	case l.st == sNull && r.st == sNull:
		return &litNode{v: boolVal(op == opEq || op == opGe || op == opLe)}
	case r.st == sNull:
		return &nullTestNode{x: l.n, op: op}
	case l.st == sNull:
		return &nullTestNode{x: r.n, op: op}
	}
	if col, ok := l.n.(*colNode); ok {
		if lit, ok := r.n.(*litNode); ok {
			return &colCmpNode{col: col.col, op: op, lit: lit.v}
		}
	}
	if lit, ok := l.n.(*litNode); ok {
		if col, ok := r.n.(*colNode); ok {
			return &colCmpNode{col: col.col, op: op, lit: lit.v, litLeft: true}
		}
	}
	return &cmpNode{op: op, l: l.n, r: r.n}
}

// nullTestNode is "x eq null" or "x ne null": the only comparisons with null that are not
// unknown (SQL IS NULL / IS NOT NULL). Ordering against null is unknown.
type nullTestNode struct {
	x  node
	op cmpOp
}

func (n *nullTestNode) eval(in input) val { return n.test(in).val() }

func (n *nullTestNode) test(in input) logic {
	isNull := n.x.eval(in).k == kNull
	switch n.op {
	case opEq:
		return logicOf(isNull)
	case opNe:
		return logicOf(!isNull)
	}
	return lUnknown
}

type cmpNode struct {
	op   cmpOp
	l, r node
}

func (n *cmpNode) eval(in input) val { return n.test(in).val() }

func (n *cmpNode) test(in input) logic {
	l := n.l.eval(in)
	if l.k == kNull {
		return lUnknown
	}
	r := n.r.eval(in)
	if r.k == kNull {
		return lUnknown
	}
	c, ok := compare(&l, &r)
	if !ok {
		return lUnknown
	}
	return logicOf(n.op.holds(c))
}

// colCmpNode is "column op literal" (or "literal op column"), the shape nearly every filter is
// made of. It is cmpNode with the column read and the literal inlined: one node call instead of
// three, the column's value compared where the cache holds it, and the literal's number form
// parsed once, at compile time. The literal is never null (newCmp makes those nullTestNode).
type colCmpNode struct {
	col     column
	op      cmpOp
	lit     val
	litLeft bool // the literal is the left operand
}

func (n *colCmpNode) eval(in input) val { return n.test(in).val() }

func (n *colCmpNode) test(in input) logic {
	var buf val
	v := in.column(n.col, &buf)
	if v.k == kNull {
		return lUnknown
	}
	var c int
	var ok bool
	if n.litLeft {
		c, ok = compare(&n.lit, v)
	} else {
		c, ok = compare(v, &n.lit)
	}
	if !ok {
		return lUnknown
	}
	return logicOf(n.op.holds(c))
}

// inNode is "x in (a, b, ...)": true when x equals an item, unknown when x is null or when no
// item matches but one could not be compared, false otherwise (SQL IN).
type inNode struct {
	x     node
	items []val
}

func (n *inNode) eval(in input) val { return n.test(in).val() }

func (n *inNode) test(in input) logic {
	v := n.x.eval(in)
	if v.k == kNull {
		return lUnknown
	}
	sawUnknown := false
	for i := range n.items {
		it := &n.items[i]
		if it.k == kNull {
			sawUnknown = true
			continue
		}
		c, ok := compare(&v, it)
		if !ok {
			sawUnknown = true
			continue
		}
		if c == 0 {
			return lTrue
		}
	}
	if sawUnknown {
		return lUnknown
	}
	return lFalse
}

// likeNode is contains, startswith or endswith: Dataverse turns them into SQL LIKE with the
// argument as the pattern, so %, _ and [..] in the argument are wildcards.
type likeNode struct {
	s, p              node
	leadAny, trailAny bool
	// plain is the pattern in lower case when it is an ASCII literal without wildcards, the
	// usual contains(name, 'widgets'): against ASCII text it is then a plain substring, prefix or
	// suffix test, with no pattern to interpret.
	plain    string
	hasPlain bool
}

func newLike(s, p node, leadAny, trailAny bool) *likeNode {
	n := &likeNode{s: s, p: p, leadAny: leadAny, trailAny: trailAny}
	if lit, ok := p.(*litNode); ok && lit.v.k == kStr && isASCII(lit.v.s) && !strings.ContainsAny(lit.v.s, "%_[") {
		n.plain, n.hasPlain = strings.ToLower(lit.v.s), true
	}
	return n
}

func (n *likeNode) eval(in input) val { return n.test(in).val() }

func (n *likeNode) test(in input) logic {
	s := n.s.eval(in)
	if s.k != kStr {
		return lUnknown
	}
	// Non-ASCII text takes the general path even against a plain pattern: some non-ASCII
	// letters fold to ASCII ones (the Kelvin sign to k).
	if n.hasPlain && isASCII(s.s) {
		return logicOf(likePlainASCII(s.s, n.plain, n.leadAny, n.trailAny))
	}
	p := n.p.eval(in)
	if p.k != kStr {
		return lUnknown
	}
	return logicOf(like(s.s, p.s, n.leadAny, n.trailAny))
}

// caseNode is tolower or toupper (see parseCall for why the text passes through unchanged).
type caseNode struct{ x node }

func (n *caseNode) eval(in input) val {
	v := n.x.eval(in)
	if v.k != kStr {
		return unknown
	}
	return v
}

func (n *caseNode) test(in input) logic { return asLogic(n.eval(in)) }

// compare orders two non-null values. ok is false when the values cannot be compared (their
// types do not meet), which makes the comparison unknown. It takes pointers because a val is
// large and comparisons run for every filter on every event.
func compare(a, b *val) (int, bool) {
	if a.k == b.k {
		switch a.k {
		case kStr:
			return compareText(a.s, b.s), true
		case kNum:
			if a.num.ok && b.num.ok {
				return compareFixed(a.num, b.num), true
			}
			return compareDecimalText(a.s, b.s)
		case kBool:
			return compareBool(a.b, b.b), true
		case kTime:
			return compareInstant(a.sec, a.nsec, b.sec, b.nsec), true
		case kGUID:
			return compareGUID(a.g, b.g), true
		}
		return 0, false
	}
	if a.k == kStr {
		c, ok := compare(b, a)
		return -c, ok
	}
	// b is the text side from here on when kinds differ and one of them is text.
	switch {
	case a.k == kTime && b.k == kStr:
		sec, nsec, ok := parseDateTime(b.s)
		if !ok {
			return 0, false
		}
		return compareInstant(a.sec, a.nsec, sec, nsec), true
	case a.k == kGUID && b.k == kStr:
		g, ok := parseGUID(b.s)
		if !ok {
			return 0, false
		}
		return compareGUID(a.g, &g), true
	case a.k == kNum && b.k == kStr:
		return compareDecimalText(a.s, strings.TrimSpace(b.s))
	case a.k == kNum && b.k == kBool:
		return compareDecimalText(a.s, boolDigit(b.b))
	case a.k == kBool && b.k == kNum:
		return compareDecimalText(boolDigit(a.b), b.s)
	}
	return 0, false
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

func compareDecimalText(a, b string) (int, bool) {
	da, ok := parseDecimal(a)
	if !ok {
		return 0, false
	}
	db, ok := parseDecimal(b)
	if !ok {
		return 0, false
	}
	return compareDecimal(&da, &db), true
}

func compareInstant(as int64, an int32, bs int64, bn int32) int {
	switch {
	case as < bs:
		return -1
	case as > bs:
		return 1
	case an < bn:
		return -1
	case an > bn:
		return 1
	}
	return 0
}

// compareText compares two strings the way Dataverse's SQL collation does as far as this package
// models it: ignoring case, and ignoring trailing spaces (SQL pads the shorter string). Two
// date-time texts (two date columns compared with each other) compare as instants.
func compareText(a, b string) int {
	if len(a) >= 10 && len(b) >= 10 && isDigit(a[0]) && isDigit(b[0]) {
		if as, an, ok := parseDateTime(a); ok {
			if bs, bn, ok := parseDateTime(b); ok {
				return compareInstant(as, an, bs, bn)
			}
		}
	}
	return compareFold(strings.TrimRight(a, " "), strings.TrimRight(b, " "))
}
