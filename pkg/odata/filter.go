// Package odata compiles Dataverse "filter rows" expressions (the OData v4 $filter subset that
// Power Automate's Dataverse trigger accepts) once, and matches rows against them.
//
// Dataverse evaluates a filter in SQL, so this package does too: string comparisons ignore case,
// a comparison with null is unknown, unknown is never a match, and contains/startswith/endswith
// take SQL LIKE wildcards. README.md lists every semantic decision with its evidence.
package odata

import (
	"fmt"
	"slices"
)

// maxDepth bounds parser recursion so that no input, however nested, can exhaust the stack.
const maxDepth = 100

// Error is a syntax or compile error in a filter expression.
type Error struct {
	Offset int // byte offset into the source expression
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("col %d: %s", e.Offset+1, e.Msg) }

// Filter is a compiled filter expression. It is immutable and safe for concurrent use.
type Filter struct {
	src     string
	root    node
	columns []string
	spans   map[node]span // for Explain
}

// Compile parses and compiles src. Errors are *Error values carrying the byte offset of the
// offending token.
func Compile(src string) (*Filter, error) {
	return compileRange(src, 0, len(src))
}

// compileRange compiles src[start:end] as a whole filter, with offsets into src.
func compileRange(src string, start, end int) (*Filter, error) {
	p := &parser{lx: lexer{src: src[:end], pos: start}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, &Error{Offset: start, Msg: "empty filter"}
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf(p.tok.off, "unexpected %s after the end of the expression", p.tok.describe())
	}
	if !root.st.boolish() {
		return nil, &Error{Offset: start, Msg: "a filter must be a boolean expression, for example name eq 'x'"}
	}
	return &Filter{src: src, root: root.n, columns: p.columns, spans: p.spans}, nil
}

// Match reports whether row satisfies the filter. A missing column is null; an expression that
// evaluates to null (unknown) does not match, as in Dataverse.
func (f *Filter) Match(row map[string]any) bool {
	return f.root.test(input{row: row}) == lTrue
}

// Columns returns the column names the filter references, in order of first use.
func (f *Filter) Columns() []string { return slices.Clone(f.columns) }

// String returns the source expression.
func (f *Filter) String() string { return f.src }
