package odata

import (
	"encoding/json"
	"fmt"
	"strings"
)

// span is the source text of a compiled comparison and the columns it reads.
type span struct {
	src  string
	cols []string
}

// Explain says why row does not match the filter: each comparison that decided it, with the
// values of the columns it read, as in "statuscode eq 2: statuscode is 1". Of an and, the first
// operand that is not true; of an or, every operand. It is for people (`dvrouter match`), and
// returns "" when the row matches.
func (f *Filter) Explain(row map[string]any) string {
	in := input{row: row}
	if f.root.test(in) == lTrue {
		return ""
	}
	var parts []string
	f.explain(f.root, in, &parts)
	return strings.Join(parts, "; ")
}

func (f *Filter) explain(n node, in input, parts *[]string) {
	switch x := n.(type) {
	case *andNode:
		if x.l.test(in) != lTrue {
			f.explain(x.l, in, parts)
		} else {
			f.explain(x.r, in, parts)
		}
		return
	case *orNode:
		f.explain(x.l, in, parts)
		f.explain(x.r, in, parts)
		return
	}
	sp, ok := f.spans[n]
	if !ok {
		sp = span{src: f.src, cols: f.columns}
	}
	text := sp.src
	if n.test(in) == lUnknown {
		text += " is unknown"
	}
	var vals []string
	for _, c := range sp.cols {
		vals = append(vals, c+" is "+describeValue(in.row, c))
	}
	if len(vals) > 0 {
		text += ": " + strings.Join(vals, ", ")
	}
	*parts = append(*parts, text)
}

// describeValue is a row column's value as an OData literal would write it.
func describeValue(row map[string]any, col string) string {
	v, ok := row[col]
	if !ok {
		return "null (not in the event)"
	}
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case json.Number:
		return string(x)
	case bool:
		return fmt.Sprint(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
