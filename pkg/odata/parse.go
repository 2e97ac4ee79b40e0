package odata

import (
	"fmt"
	"slices"
	"strings"
)

// static is what the parser knows about an operand's type before any row is seen.
type static uint8

const (
	sAny    static = iota // a column: its type is only known per row
	sBool                 // a logical or comparison expression, or true/false
	sNull                 // the null literal
	sString               // a string literal or string function
	sNumber
	sTime
	sGUID
)

// boolish reports whether an operand may stand where a boolean is expected. A bare column may:
// it is a Yes/No column, or it evaluates to unknown.
func (s static) boolish() bool { return s == sAny || s == sBool }

// typed is a compiled operand together with its static type.
type typed struct {
	n  node
	st static
}

type parser struct {
	lx      lexer
	tok     token
	depth   int
	columns []string

	// For Filter.Explain: end is where the last consumed token ends; refs every column
	// reference so far, in order; spans the source text of each comparison.
	end   int
	refs  []string
	spans map[node]span
}

func (p *parser) advance() error {
	p.end = p.lx.pos
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errorf(off int, format string, args ...any) *Error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// keyword reports whether the current token is the keyword k (given in lower case). Keywords,
// operators, literals and function names are case-insensitive: the OData ABNF writes them as
// quoted strings, which RFC 5234 (section 2.3) defines as case-insensitive, and the OASIS test
// cases accept "Name EQ 'Milk' AND Price LT 2.55" and "tRUe". Column names stay exact.
func (p *parser) keyword(k string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, k)
}

func (p *parser) enter(off int) error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf(off, "expression nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// Precedence follows the OData reference parser (Microsoft.OData.UriParser), which Dataverse
// uses: or < and < comparison (eq ne gt ge lt le in) < unary not < primary.

func (p *parser) parseOr() (typed, error) {
	l, err := p.parseAnd()
	if err != nil {
		return typed{}, err
	}
	for p.keyword("or") {
		off := p.tok.off
		if err := p.advance(); err != nil {
			return typed{}, err
		}
		r, err := p.parseAnd()
		if err != nil {
			return typed{}, err
		}
		if err := p.needBool(l, off, "or"); err != nil {
			return typed{}, err
		}
		if err := p.needBool(r, off, "or"); err != nil {
			return typed{}, err
		}
		l = typed{n: &orNode{l: l.n, r: r.n}, st: sBool}
	}
	return l, nil
}

func (p *parser) parseAnd() (typed, error) {
	l, err := p.parseComparison()
	if err != nil {
		return typed{}, err
	}
	for p.keyword("and") {
		off := p.tok.off
		if err := p.advance(); err != nil {
			return typed{}, err
		}
		r, err := p.parseComparison()
		if err != nil {
			return typed{}, err
		}
		if err := p.needBool(l, off, "and"); err != nil {
			return typed{}, err
		}
		if err := p.needBool(r, off, "and"); err != nil {
			return typed{}, err
		}
		l = typed{n: &andNode{l: l.n, r: r.n}, st: sBool}
	}
	return l, nil
}

func (p *parser) needBool(t typed, off int, op string) error {
	if t.st.boolish() {
		return nil
	}
	return p.errorf(off, "%q needs boolean operands on both sides, for example (a eq 1) %s (b eq 2)", op, op)
}

var comparisonOps = map[string]cmpOp{"eq": opEq, "ne": opNe, "gt": opGt, "ge": opGe, "lt": opLt, "le": opLe}

// parseComparison records the source of what it parsed, for Filter.Explain.
func (p *parser) parseComparison() (typed, error) {
	start, refs := p.tok.off, len(p.refs)
	t, err := p.parseComparisonOps()
	if err == nil && p.end > start {
		if p.spans == nil {
			p.spans = map[node]span{}
		}
		if _, seen := p.spans[t.n]; !seen {
			p.spans[t.n] = span{src: p.lx.src[start:p.end], cols: slices.Compact(slices.Clone(p.refs[refs:]))}
		}
	}
	return t, err
}

func (p *parser) parseComparisonOps() (typed, error) {
	l, err := p.parseUnary()
	if err != nil {
		return typed{}, err
	}
	for p.tok.kind == tIdent {
		if p.keyword("in") {
			if l, err = p.parseIn(l); err != nil {
				return typed{}, err
			}
			continue
		}
		op, ok := comparisonOps[strings.ToLower(p.tok.text)]
		if !ok {
			break
		}
		if err := p.advance(); err != nil {
			return typed{}, err
		}
		r, err := p.parseUnary()
		if err != nil {
			return typed{}, err
		}
		l = typed{n: newCmp(op, l, r), st: sBool}
	}
	return l, nil
}

func (p *parser) parseIn(l typed) (typed, error) {
	inOff := p.tok.off
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	if p.tok.kind != tLParen {
		return typed{}, p.errorf(p.tok.off, "expected \"(\" after in, found %s", p.tok.describe())
	}
	open := p.tok.off
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	if l.st == sNull {
		return typed{}, p.errorf(inOff, "null in (...) is always unknown; test with eq null")
	}
	if p.tok.kind == tRParen { // an empty list (OData 4.01): nothing is in it
		return typed{n: &inNode{x: l.n}, st: sBool}, p.advance()
	}
	if _, isLit, err := p.literal(); err != nil {
		return typed{}, err
	} else if !isLit {
		// Not a list but a parenthesized expression, x in (y): the ABNF's inExpr takes a
		// commonExpr as well as a listExpr, and a single value is x eq y.
		r, err := p.parseOr()
		if err != nil {
			return typed{}, err
		}
		switch p.tok.kind {
		case tRParen:
		case tComma:
			return typed{}, p.errorf(p.tok.off, "a list after in holds literals only; a column or function may only stand alone, x in (y)")
		default:
			return typed{}, p.errorf(p.tok.off, "expected \")\" to close the \"(\" at col %d, found %s", open+1, p.tok.describe())
		}
		return typed{n: newCmp(opEq, l, r), st: sBool}, p.advance()
	}
	var items []val
	for {
		v, ok, err := p.literal()
		if err != nil {
			return typed{}, err
		}
		if !ok {
			return typed{}, p.errorf(p.tok.off, "the list after in holds literals only, found %s", p.tok.describe())
		}
		items = append(items, v)
		if err := p.advance(); err != nil {
			return typed{}, err
		}
		if p.tok.kind == tComma {
			if err := p.advance(); err != nil {
				return typed{}, err
			}
			continue
		}
		if p.tok.kind == tRParen {
			break
		}
		return typed{}, p.errorf(p.tok.off, "expected \",\" or \")\" in the in list, found %s", p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	return typed{n: &inNode{x: l.n, items: items}, st: sBool}, nil
}

func (p *parser) parseUnary() (typed, error) {
	if !p.keyword("not") {
		return p.parsePrimary()
	}
	off := p.tok.off
	if err := p.enter(off); err != nil {
		return typed{}, err
	}
	defer p.leave()
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	x, err := p.parseUnary()
	if err != nil {
		return typed{}, err
	}
	if !x.st.boolish() {
		return typed{}, p.errorf(off, "not needs a boolean operand; to negate a comparison write not (a eq b)")
	}
	return typed{n: &notNode{x: x.n}, st: sBool}, nil
}

func (p *parser) parsePrimary() (typed, error) {
	t := p.tok
	switch t.kind {
	case tLParen:
		if err := p.enter(t.off); err != nil {
			return typed{}, err
		}
		defer p.leave()
		if err := p.advance(); err != nil {
			return typed{}, err
		}
		x, err := p.parseOr()
		if err != nil {
			return typed{}, err
		}
		if p.tok.kind != tRParen {
			return typed{}, p.errorf(p.tok.off, "expected \")\" to close the \"(\" at col %d, found %s", t.off+1, p.tok.describe())
		}
		return x, p.advance()
	case tIdent:
		return p.parseIdent()
	case tEOF:
		return typed{}, p.errorf(t.off, "expression ends where a value is expected")
	}
	v, ok, err := p.literal()
	if err != nil {
		return typed{}, err
	}
	if !ok {
		return typed{}, p.errorf(t.off, "expected a value, found %s", t.describe())
	}
	return typed{n: &litNode{v: v}, st: staticOf(v)}, p.advance()
}

// literal converts the current token to a value if it is a literal; it does not advance.
func (p *parser) literal() (val, bool, error) {
	t := p.tok
	switch t.kind {
	case tString:
		return val{k: kStr, s: t.text}, true, nil
	case tNumber:
		if _, ok := parseDecimal(t.text); !ok {
			return val{}, false, p.errorf(t.off, "malformed number %s", t.text)
		}
		return numVal(t.text), true, nil
	case tGUID:
		g, _ := parseGUID(t.text)
		return val{k: kGUID, g: &g}, true, nil
	case tDateTime, tDate:
		sec, nsec, _ := parseDateTime(t.text)
		return val{k: kTime, sec: sec, nsec: nsec}, true, nil
	case tIdent:
		switch strings.ToLower(t.text) {
		case "null":
			return val{k: kNull}, true, nil
		case "true":
			return val{k: kBool, b: true}, true, nil
		case "false":
			return val{k: kBool, b: false}, true, nil
		}
	}
	return val{}, false, nil
}

func staticOf(v val) static {
	switch v.k {
	case kNull:
		return sNull
	case kBool:
		return sBool
	case kStr:
		return sString
	case kNum:
		return sNumber
	case kTime:
		return sTime
	case kGUID:
		return sGUID
	}
	return sAny
}

func (p *parser) parseIdent() (typed, error) {
	t := p.tok
	if v, ok, _ := p.literal(); ok {
		return typed{n: &litNode{v: v}, st: staticOf(v)}, p.advance()
	}
	switch strings.ToLower(t.text) {
	case "and", "or", "eq", "ne", "gt", "ge", "lt", "le", "in", "not":
		return typed{}, p.errorf(t.off, "expected a value, found the operator %q", t.text)
	}
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	if p.tok.kind == tLParen {
		return p.parseCall(t)
	}
	if strings.Contains(t.text, ".") {
		return typed{}, p.errorf(t.off, "%q is not a column name", t.text)
	}
	if !slices.Contains(p.columns, t.text) {
		p.columns = append(p.columns, t.text)
	}
	p.refs = append(p.refs, t.text)
	return typed{n: &colNode{col: newColumn(t.text)}, st: sAny}, nil
}

// parseCall parses a function call; name is the identifier token, the current token is "(".
func (p *parser) parseCall(name token) (typed, error) {
	if err := p.enter(name.off); err != nil {
		return typed{}, err
	}
	defer p.leave()
	fn := strings.ToLower(name.text)
	var arity int
	switch fn {
	case "contains", "startswith", "endswith":
		arity = 2
	case "tolower", "toupper":
		arity = 1
	default:
		if strings.HasPrefix(fn, "microsoft.dynamics.crm.") {
			return typed{}, p.errorf(name.off, "the Dataverse query function %s is not supported; use eq/ne/gt/ge/lt/le, in, contains, startswith or endswith", name.text[len("Microsoft.Dynamics.CRM."):])
		}
		return typed{}, p.errorf(name.off, "unknown or unsupported function %s; supported: contains, startswith, endswith, tolower, toupper", name.text)
	}
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	var args []typed
	for p.tok.kind != tRParen {
		if len(args) > 0 {
			if p.tok.kind != tComma {
				return typed{}, p.errorf(p.tok.off, "expected \",\" or \")\" in the arguments of %s, found %s", fn, p.tok.describe())
			}
			if err := p.advance(); err != nil {
				return typed{}, err
			}
		}
		a, err := p.parseOr()
		if err != nil {
			return typed{}, err
		}
		args = append(args, a)
	}
	if err := p.advance(); err != nil {
		return typed{}, err
	}
	if len(args) != arity {
		return typed{}, p.errorf(name.off, "%s takes %d argument(s), found %d", fn, arity, len(args))
	}
	for _, a := range args {
		if a.st != sAny && a.st != sString && a.st != sNull {
			return typed{}, p.errorf(name.off, "%s takes text arguments", fn)
		}
	}
	switch fn {
	case "contains":
		return typed{n: newLike(args[0].n, args[1].n, true, true), st: sBool}, nil
	case "startswith":
		return typed{n: newLike(args[0].n, args[1].n, false, true), st: sBool}, nil
	case "endswith":
		return typed{n: newLike(args[0].n, args[1].n, true, false), st: sBool}, nil
	}
	// tolower and toupper: every comparison and pattern match here ignores case, as Dataverse's
	// collation does, so changing case cannot change any result. Passing the text through
	// unchanged keeps evaluation free of allocations.
	return typed{n: &caseNode{x: args[0].n}, st: sString}, nil
}
