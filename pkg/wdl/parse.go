package wdl

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

type node interface {
	eval(env *Env) (value, error)
}

// compileValue compiles a whole JSON string value: an expression, an interpolated string or a
// literal (see Compile).
func compileValue(src string, c *compiling) (node, error) {
	switch {
	case strings.HasPrefix(src, "@@"):
		return &litNode{v: strV(src[1:])}, nil
	case strings.HasPrefix(src, "@{"):
		return compileTemplate(src, c)
	case strings.HasPrefix(src, "@"):
		p := &parser{src: src, pos: 1, c: c}
		n, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos < len(src) {
			return nil, p.errorf(p.pos, "unexpected %q after the end of the expression", src[p.pos:p.pos+1])
		}
		return n, nil
	case strings.Contains(src, "@{"):
		return compileTemplate(src, c)
	}
	return &litNode{v: strV(src)}, nil
}

// compileTemplate compiles a string with "@{expr}" parts; "@@{" stands for a literal "@{".
func compileTemplate(src string, c *compiling) (node, error) {
	var parts []node
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, &litNode{v: strV(lit.String())})
			lit.Reset()
		}
	}
	for i := 0; i < len(src); {
		if strings.HasPrefix(src[i:], "@@{") {
			lit.WriteString("@{")
			i += 3
			continue
		}
		if strings.HasPrefix(src[i:], "@{") {
			flush()
			p := &parser{src: src, pos: i + 2, c: c}
			n, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.pos >= len(src) || src[p.pos] != '}' {
				return nil, p.errorf(p.pos, "expected \"}\" to close the \"@{\" at col %d", i+1)
			}
			parts = append(parts, n)
			i = p.pos + 1
			continue
		}
		lit.WriteByte(src[i])
		i++
	}
	flush()
	if len(parts) > maxNodes {
		return nil, &Error{Offset: 0, Msg: "interpolated string has too many parts"}
	}
	return &interpNode{parts: parts}, nil
}

type parser struct {
	src   string
	pos   int
	depth int
	nodes int
	c     *compiling
}

// compiling is what the parsers of one expression share.
type compiling struct {
	// spans holds each compiled node's source text, for Expr.Explain.
	spans map[node]string
	// recover, for Check, makes a function call whose argument does not parse record the error
	// in errs and go on with its next argument, so that one pass finds every error.
	recover bool
	errs    []*Error
	// columns collects the row columns the expression reads by a literal name
	// (triggerBody()?['x'], triggerOutputs()?['body/x']), for Expr.Columns.
	columns []string
}

func (p *parser) errorf(off int, format string, args ...any) *Error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) count(off int) error {
	p.nodes++
	if p.nodes > maxNodes {
		return p.errorf(off, "expression has more than %d operations", maxNodes)
	}
	return nil
}

func (p *parser) parseExpr() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	p.skipSpace()
	start := p.pos
	if p.depth > maxDepth {
		return nil, p.errorf(start, "expression nested deeper than %d levels", maxDepth)
	}
	if err := p.count(start); err != nil {
		return nil, err
	}
	if start >= len(p.src) {
		return nil, p.errorf(start, "expression expected")
	}
	var n node
	var err error
	c := p.src[start]
	switch {
	case c == '\'':
		var s string
		if s, err = p.stringLit(); err == nil {
			n = &litNode{v: strV(s)}
		}
	case isDigit(c) || c == '-' || c == '+' || c == '.':
		n, err = p.numberLit()
	case isIdentStart(c):
		name := p.ident()
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == '(' {
			n, err = p.call(name, start)
			break
		}
		switch strings.ToLower(name) {
		case "true":
			n = &litNode{v: boolV(true)}
		case "false":
			n = &litNode{v: boolV(false)}
		case "null":
			n = &litNode{v: null}
		default:
			err = p.errorf(start, "unknown name %q: functions are called with parentheses, text is quoted 'like this'", name)
		}
	case c == '[':
		err = p.errorf(start, "array literals are not supported")
	case c == '"':
		err = p.errorf(start, "strings are written in single quotes: 'text'")
	default:
		err = p.errorf(start, "unexpected %q where an expression is expected", string(rune(c)))
	}
	if err != nil {
		return nil, err
	}
	n, err = p.postfix(n)
	if err == nil && p.c != nil && p.c.spans != nil && reflect.TypeOf(n).Comparable() {
		if _, seen := p.c.spans[n]; !seen {
			p.c.spans[n] = strings.TrimSpace(p.src[start:p.pos])
		}
	}
	return n, err
}

// postfix parses property and index selections: [k], ?[k], .name, ?.name.
func (p *parser) postfix(n node) (node, error) {
	added := 0
	defer func() { p.depth -= added }()
	for {
		save := p.pos
		p.skipSpace()
		if p.pos >= len(p.src) {
			p.pos = save
			return n, nil
		}
		off := p.pos
		nullSafe := false
		if p.src[p.pos] == '?' {
			nullSafe = true
			p.pos++
			p.skipSpace()
			if p.pos >= len(p.src) || (p.src[p.pos] != '[' && p.src[p.pos] != '.') {
				return nil, p.errorf(off, "? must be followed by [ or .")
			}
		}
		var key node
		switch p.src[p.pos] {
		case '[':
			p.pos++
			k, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.pos >= len(p.src) || p.src[p.pos] != ']' {
				return nil, p.errorf(p.pos, "expected \"]\" to close the \"[\" at col %d", off+1)
			}
			p.pos++
			key = k
		case '.':
			p.pos++
			nameOff := p.pos
			name := p.ident()
			if name == "" {
				return nil, p.errorf(nameOff, "property name expected after \".\"")
			}
			key = &litNode{v: strV(name)}
		default:
			p.pos = save
			return n, nil
		}
		p.depth++
		added++
		if p.depth > maxDepth {
			return nil, p.errorf(off, "expression nested deeper than %d levels", maxDepth)
		}
		if err := p.count(off); err != nil {
			return nil, err
		}
		n = newIndex(n, key, nullSafe, off)
		if col, ok := n.(*bodyColumnNode); ok && p.c != nil {
			p.c.columns = append(p.c.columns, col.name)
		}
	}
}

func (p *parser) ident() string {
	start := p.pos
	if p.pos < len(p.src) && isIdentStart(p.src[p.pos]) {
		p.pos++
		for p.pos < len(p.src) && (isIdentStart(p.src[p.pos]) || isDigit(p.src[p.pos])) {
			p.pos++
		}
	}
	return p.src[start:p.pos]
}

func (p *parser) stringLit() (string, error) {
	start := p.pos
	i := start + 1
	var b strings.Builder
	plain := true
	for i < len(p.src) {
		if p.src[i] == '\'' {
			if i+1 < len(p.src) && p.src[i+1] == '\'' {
				if plain {
					plain = false
					b.WriteString(p.src[start+1 : i])
				}
				b.WriteByte('\'')
				i += 2
				continue
			}
			p.pos = i + 1
			if plain {
				return p.src[start+1 : i], nil
			}
			return b.String(), nil
		}
		if !plain {
			b.WriteByte(p.src[i])
		}
		i++
	}
	return "", p.errorf(start, "unterminated string literal (a quote inside a string is written '')")
}

func (p *parser) numberLit() (node, error) {
	s := p.src
	start := p.pos
	i := start
	if s[i] == '-' || s[i] == '+' {
		// "+7" is the integer 7, as the designer's scanner reads it (Azure/LogicAppsUX,
		// libs/logic-apps-shared/src/parsers/lib/expression/scanner.ts)
		i++
	}
	intStart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	sawDigits := i > intStart
	isFloat := false
	if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		isFloat = true
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		sawDigits = true
	}
	if !sawDigits {
		return nil, p.errorf(start, "malformed number")
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			i = j
			isFloat = true
		}
	}
	if i < len(s) && (isIdentStart(s[i]) || isDigit(s[i])) {
		return nil, p.errorf(start, "malformed number %q", s[start:i+1])
	}
	p.pos = i
	lit := s[start:i]
	if !isFloat {
		v, err := strconv.ParseInt(lit, 10, 64)
		if err != nil {
			return nil, p.errorf(start, "integer %s is out of the 64-bit range", lit)
		}
		return &litNode{v: intV(v)}, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, p.errorf(start, "number %s is out of range", lit)
	}
	return &litNode{v: floatV(f)}, nil
}

// call parses the arguments of a function call; the current character is "(".
func (p *parser) call(name string, off int) (node, error) {
	lower := strings.ToLower(name)
	spec, ok := functions[lower]
	if !ok {
		if why, ok := unavailable[lower]; ok {
			return nil, p.errorf(off, "%s() is not available in a dvrouter condition: %s", name, why)
		}
		return nil, p.errorf(off, "unknown or unsupported function %s(); see pkg/wdl/README.md for the supported list", name)
	}
	p.pos++ // (
	var args []node
	var offs []int
	for {
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == ')' && len(args) == 0 {
			p.pos++
			break
		}
		offs = append(offs, p.pos)
		a, err := p.parseExpr()
		if err != nil {
			e, ok := err.(*Error)
			if p.c == nil || !p.c.recover || !ok {
				return nil, err
			}
			p.c.errs = append(p.c.errs, e)
			p.skipArgument()
			a = badNode{}
		}
		args = append(args, a)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf(p.pos, "expected \",\" or \")\" in the arguments of %s(), found the end", spec.name)
		}
		if p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.src[p.pos] == ')' {
			p.pos++
			break
		}
		return nil, p.errorf(p.pos, "expected \",\" or \")\" in the arguments of %s(), found %q", spec.name, p.src[p.pos:p.pos+1])
	}
	if len(args) < spec.min || (spec.max >= 0 && len(args) > spec.max) {
		return nil, p.errorf(off, "%s() takes %s, found %d", spec.name, arityText(spec.min, spec.max), len(args))
	}
	for i := range args {
		check := spec.checks[i]
		if check == nil {
			continue
		}
		if lit, ok := args[i].(*litNode); ok {
			if err := check(lit.v); err != nil {
				return nil, p.errorf(offs[i], "%s %s", spec.name, err.Error())
			}
		}
	}
	return spec.build(spec.name, off, args), nil
}

// skipArgument moves past the rest of a function argument that did not parse: to the "," or
// ")" that ends it, skipping quoted text and bracketed parts.
func (p *parser) skipArgument() {
	depth := 0
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case '\'':
			for p.pos++; p.pos < len(p.src) && p.src[p.pos] != '\''; p.pos++ {
			}
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth == 0 {
				return
			}
			depth--
		case ',':
			if depth == 0 {
				return
			}
		}
		p.pos++
	}
}

// badNode stands for an argument that did not parse, while Check looks for more errors.
type badNode struct{}

func (badNode) eval(*Env) (value, error) { return null, &Error{Msg: "invalid expression"} }

func arityText(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("at least %d argument(s)", lo)
	case lo == hi:
		return fmt.Sprintf("%d argument(s)", lo)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
