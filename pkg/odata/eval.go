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
	kNum  // s holds the decimal text, compared exactly
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
}

var unknown = val{}

func boolVal(b bool) val { return val{k: kBool, b: b} }

// fromRow converts a row value (dataverse.Row: nil, bool, string, json.Number, []any, map) to a
// val.
func fromRow(x any) val {
	switch v := x.(type) {
	case string:
		return val{k: kStr, s: v}
	case json.Number:
		return val{k: kNum, s: string(v)}
	case bool:
		return val{k: kBool, b: v}
	case float64:
		return val{k: kNum, s: strconv.FormatFloat(v, 'g', -1, 64)}
	case int:
		return val{k: kNum, s: strconv.Itoa(v)}
	case int64:
		return val{k: kNum, s: strconv.FormatInt(v, 10)}
	case nil:
		return unknown
	}
	return val{k: kOther}
}

type node interface {
	eval(row map[string]any) val
}

type litNode struct{ v val }

func (n *litNode) eval(map[string]any) val { return n.v }

// colNode reads a column; a missing column is null, as a column absent from the event is.
type colNode struct{ name string }

func (n *colNode) eval(row map[string]any) val {
	x, ok := row[n.name]
	if !ok {
		return unknown
	}
	return fromRow(x)
}

// The logical operators use SQL's three-valued logic: unknown and false is false, unknown or
// true is true, not unknown is unknown. A non-boolean operand (a text column used as a
// condition) is unknown.

type andNode struct{ l, r node }

func (n *andNode) eval(row map[string]any) val {
	l := n.l.eval(row)
	if l.k == kBool && !l.b {
		return l
	}
	r := n.r.eval(row)
	if r.k == kBool && !r.b {
		return r
	}
	if l.k == kBool && r.k == kBool {
		return boolVal(true)
	}
	return unknown
}

type orNode struct{ l, r node }

func (n *orNode) eval(row map[string]any) val {
	l := n.l.eval(row)
	if l.k == kBool && l.b {
		return l
	}
	r := n.r.eval(row)
	if r.k == kBool && r.b {
		return r
	}
	if l.k == kBool && r.k == kBool {
		return boolVal(false)
	}
	return unknown
}

type notNode struct{ x node }

func (n *notNode) eval(row map[string]any) val {
	v := n.x.eval(row)
	if v.k != kBool {
		return unknown
	}
	return boolVal(!v.b)
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
	return &cmpNode{op: op, l: l.n, r: r.n}
}

// nullTestNode is "x eq null" or "x ne null": the only comparisons with null that are not
// unknown (SQL IS NULL / IS NOT NULL). Ordering against null is unknown.
type nullTestNode struct {
	x  node
	op cmpOp
}

func (n *nullTestNode) eval(row map[string]any) val {
	isNull := n.x.eval(row).k == kNull
	switch n.op {
	case opEq:
		return boolVal(isNull)
	case opNe:
		return boolVal(!isNull)
	}
	return unknown
}

type cmpNode struct {
	op   cmpOp
	l, r node
}

func (n *cmpNode) eval(row map[string]any) val {
	l := n.l.eval(row)
	if l.k == kNull {
		return unknown
	}
	r := n.r.eval(row)
	if r.k == kNull {
		return unknown
	}
	c, ok := compare(l, r)
	if !ok {
		return unknown
	}
	return boolVal(n.op.holds(c))
}

// inNode is "x in (a, b, ...)": true when x equals an item, unknown when x is null or when no
// item matches but one could not be compared, false otherwise (SQL IN).
type inNode struct {
	x     node
	items []val
}

func (n *inNode) eval(row map[string]any) val {
	v := n.x.eval(row)
	if v.k == kNull {
		return unknown
	}
	sawUnknown := false
	for i := range n.items {
		it := n.items[i]
		if it.k == kNull {
			sawUnknown = true
			continue
		}
		c, ok := compare(v, it)
		if !ok {
			sawUnknown = true
			continue
		}
		if c == 0 {
			return boolVal(true)
		}
	}
	if sawUnknown {
		return unknown
	}
	return boolVal(false)
}

// likeNode is contains, startswith or endswith: Dataverse turns them into SQL LIKE with the
// argument as the pattern, so %, _ and [..] in the argument are wildcards.
type likeNode struct {
	s, p              node
	leadAny, trailAny bool
}

func (n *likeNode) eval(row map[string]any) val {
	s := n.s.eval(row)
	if s.k != kStr {
		return unknown
	}
	p := n.p.eval(row)
	if p.k != kStr {
		return unknown
	}
	return boolVal(like(s.s, p.s, n.leadAny, n.trailAny))
}

// caseNode is tolower or toupper (see parseCall for why the text passes through unchanged).
type caseNode struct{ x node }

func (n *caseNode) eval(row map[string]any) val {
	v := n.x.eval(row)
	if v.k != kStr {
		return unknown
	}
	return v
}

// compare orders two non-null values. ok is false when the values cannot be compared (their
// types do not meet), which makes the comparison unknown.
func compare(a, b val) (int, bool) {
	if a.k == b.k {
		switch a.k {
		case kStr:
			return compareText(a.s, b.s), true
		case kNum:
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
