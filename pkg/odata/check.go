package odata

import (
	"errors"
	"sort"
	"strings"
)

// Check returns every error in src, in source order, where Compile stops at the first: after
// Compile's error, each operand of the top-level and/or is compiled on its own, so that
// "a eq and b eq 'x" reports both operands. It returns nil when src compiles.
func Check(src string) []*Error {
	_, err := Compile(src)
	if err == nil {
		return nil
	}
	var first *Error
	if !errors.As(err, &first) {
		first = &Error{Msg: err.Error()}
	}
	errs := []*Error{first}
	if ops, ok := topLevelOperands(src); ok && len(ops) > 1 {
		for _, op := range ops {
			if _, err := compileRange(src, op[0], op[1]); err != nil {
				var e *Error
				if errors.As(err, &e) {
					errs = append(errs, e)
				}
			}
		}
	}
	// Sorted by position; at one position, the first reported (Compile's) is kept.
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

// topLevelOperands splits src at the and/or keywords outside parentheses, returning each
// operand's byte range; ok is false when src does not even lex.
func topLevelOperands(src string) (ops [][2]int, ok bool) {
	lx := lexer{src: src}
	depth, start := 0, 0
	for {
		t, err := lx.next()
		if err != nil {
			return nil, false
		}
		switch {
		case t.kind == tEOF:
			return append(ops, [2]int{start, len(src)}), true
		case t.kind == tLParen:
			depth++
		case t.kind == tRParen:
			depth--
		case t.kind == tIdent && depth == 0 && (strings.EqualFold(t.text, "and") || strings.EqualFold(t.text, "or")):
			ops = append(ops, [2]int{start, t.off})
			start = lx.pos
		}
	}
}
