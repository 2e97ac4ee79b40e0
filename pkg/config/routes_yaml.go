package config

// Generic access to yaml.v3 nodes for the route file loader: mappings with merge keys and
// duplicate checks, typed scalars, positions.

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// deref follows aliases to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		case "!!str":
			return "a string"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
	}
	return "nothing"
}

type field struct {
	key, val *yaml.Node
}

// fields returns a mapping's keys in order. Duplicate keys are errors; `<<` merge keys (YAML's
// way to share a block, e.g. one retry policy for several consumers) add the merged mapping's
// keys that the mapping does not set itself.
func (l *loader) fields(n *yaml.Node, what string) ([]field, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		if n != nil {
			l.errorf(n, "%s: want a mapping, got %s", what, describe(n))
		}
		return nil, false
	}
	var out []field
	var merges []*yaml.Node
	at := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errorf(k, "%s: keys must be plain strings, got %s", what, describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := at[k.Value]; dup {
			l.errorf(k, "duplicate key %q (first at %d:%d)", k.Value, first.Line, first.Column)
			continue
		}
		at[k.Value] = k
		out = append(out, field{k, v})
	}
	for _, m := range merges {
		m = deref(m)
		var srcs []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case yaml.SequenceNode:
			srcs = m.Content
		default:
			l.errorf(m, "<<: want a mapping or a list of mappings to merge, got %s", describe(m))
		}
		for _, s := range srcs {
			l.budget++
			if l.budget > 10000 {
				l.errorf(m, "<<: too many merges")
				return out, true
			}
			sub, ok := l.fields(s, "<<")
			if !ok {
				continue
			}
			for _, f := range sub {
				if _, set := at[f.key.Value]; !set {
					at[f.key.Value] = f.key
					out = append(out, f)
				}
			}
		}
	}
	return out, true
}

// str reads a scalar as text. Numbers are accepted as their text (`name: 2024`); booleans and
// null are not, since `true` or an empty value in place of a name is a mistake.
func (l *loader) str(f field) (string, bool) {
	v := deref(f.val)
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!str", "!!int", "!!float":
			return v.Value, true
		}
	}
	l.errorf(v, "%s: want a string, got %s", f.key.Value, describe(v))
	return "", false
}

func (l *loader) integer(f field, min, max int64) (int64, bool) {
	v := deref(f.val)
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		l.errorf(v, "%s: want a whole number, got %s", f.key.Value, describe(v))
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil || n < min || n > max {
		l.errorf(v, "%s: want a whole number from %d to %d, got %s", f.key.Value, min, max, v.Value)
		return 0, false
	}
	return n, true
}

func (l *loader) duration(f field, min time.Duration) (time.Duration, bool) {
	v := deref(f.val)
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		l.errorf(v, "%s: want a duration such as \"10s\" or \"1m30s\", got %s", f.key.Value, describe(v))
		return 0, false
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		l.errorf(v, "%s: %q is not a duration such as \"10s\" or \"1m30s\"", f.key.Value, v.Value)
		return 0, false
	}
	if d < min || d > 24*time.Hour {
		l.errorf(v, "%s: want a duration from %s to 24h, got %s", f.key.Value, min, v.Value)
		return 0, false
	}
	return d, true
}

// strs reads a list of strings, returning each item's node too, for positions.
func (l *loader) strs(f field) ([]string, []*yaml.Node, bool) {
	v := deref(f.val)
	if v.Kind != yaml.SequenceNode {
		l.errorf(v, "%s: want a list such as [a, b], got %s", f.key.Value, describe(v))
		return nil, nil, false
	}
	var out []string
	var nodes []*yaml.Node
	ok := true
	for i, it := range v.Content {
		it = deref(it)
		if it.Kind != yaml.ScalarNode || (it.ShortTag() != "!!str" && it.ShortTag() != "!!int") {
			l.errorf(it, "%s[%d]: want a string, got %s", f.key.Value, i, describe(it))
			ok = false
			continue
		}
		out = append(out, it.Value)
		nodes = append(nodes, it)
	}
	return out, nodes, ok
}

// checkKeys reports keys not in allowed. misplaced names the keys that belong elsewhere, with
// where they belong.
func (l *loader) checkKeys(fs []field, allowed []string, misplaced map[string]string) {
	for _, f := range fs {
		if contains(allowed, f.key.Value) {
			continue
		}
		if where, ok := misplaced[f.key.Value]; ok {
			l.errorf(f.key, "%s", where)
			continue
		}
		if s := suggest(f.key.Value, allowed); s != "" {
			l.errorf(f.key, "unknown key %q (did you mean %q?)", f.key.Value, s)
		} else {
			l.errorf(f.key, "unknown key %q (known: %s)", f.key.Value, strings.Join(allowed, ", "))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the entry of known closest to s when it is close enough to be a typo.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(k, s) {
			return k
		}
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD && d <= max(1, len(k)/4) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance counts the edits (insert, delete, substitute, swap two neighbours) from a to b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// exprPos is where an expression's first character sits in the file: after the opening quote
// of a quoted scalar, and for a block scalar (`|` or `>`) on the line after the indicator, at
// the indentation of the block's first non-blank line.
func (l *loader) exprPos(n *yaml.Node) Pos {
	p := nodePos(n)
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		p.Col++
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The value starts on the line after the indicator (leading blank lines are part of
		// it, and At counts them); its indentation is that of the first non-blank line. The
		// lines are read from the indicator on, not by splitting the whole file for every
		// expression.
		rest := l.src[l.lineStart(n.Line):] // n.Line is 1-based: this is the line after it
		p = Pos{Line: n.Line + 1, Col: 1}
		for len(rest) > 0 {
			text, after, _ := bytes.Cut(rest, []byte("\n"))
			text = bytes.TrimRight(text, "\r")
			if indent := len(text) - len(bytes.TrimLeft(text, " ")); indent < len(text) {
				p.Col = indent + 1
				break
			}
			rest = after
		}
	}
	return p
}

// lineStart returns the byte offset at which 0-based line i of the file starts (len(src) past
// the end), indexing the file's lines once.
func (l *loader) lineStart(i int) int {
	if l.lines == nil {
		l.lines = []int{0}
		for j, c := range l.src {
			if c == '\n' {
				l.lines = append(l.lines, j+1)
			}
		}
	}
	if i < 0 || i >= len(l.lines) {
		return len(l.src)
	}
	return l.lines[i]
}
