package config

// The route file's `lookups:` key: which columns of a table are lookups, for the lookups that
// nothing in an event shows to be one.

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// logicalNameRE is a table or column logical name as Dataverse stores it: lower case, starting
// with a letter (a publisher prefix such as new_ included).
var logicalNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)

// lookups reads `lookups:`, a mapping from table to the columns of that table that are lookups:
// `lookups: {contact: [new_projectid]}`. Logical names are matched exactly against the context,
// which carries them in lower case, so anything else is refused rather than silently never
// matching.
func (l *loader) lookups(f field) map[string][]string {
	v := deref(f.val)
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		return nil // `lookups:` with nothing under it
	}
	fs, ok := l.fields(v, "lookups")
	if !ok {
		return nil
	}
	out := map[string][]string{}
	for _, tf := range fs {
		table := tf.key.Value
		if !l.logicalName(tf.key, "lookups", "table", table) {
			continue
		}
		// strs names the list by its key in messages: lookups.contact, not just contact.
		key := *tf.key
		key.Value = "lookups." + table
		cols, nodes, _ := l.strs(field{key: &key, val: tf.val})
		seen := map[string]bool{}
		for i, col := range cols {
			if !l.logicalName(nodes[i], "lookups."+table, "column", col) {
				continue
			}
			if seen[col] {
				l.warnf(nodes[i], "lookups.%s: %q is listed twice", table, col)
				continue
			}
			seen[col] = true
			out[table] = append(out[table], col)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// logicalName reports whether s is a logical name, and says why not when it is not.
func (l *loader) logicalName(n *yaml.Node, where, what, s string) bool {
	switch {
	case logicalNameRE.MatchString(s):
		return true
	case logicalNameRE.MatchString(strings.ToLower(s)):
		l.errorf(n, "%s: %s %q: logical names are lower case: write %q", where, what, s, strings.ToLower(s))
	case what == "column" && strings.HasPrefix(s, "_") && strings.HasSuffix(s, "_value") && logicalNameRE.MatchString(s[1:len(s)-len("_value")]):
		l.errorf(n, "%s: column %q: write the column's logical name %q, not its Web API key", where, s, s[1:len(s)-len("_value")])
	default:
		l.errorf(n, "%s: %s %q is not a logical name (lower-case letters, digits and '_', starting with a letter)", where, what, s)
	}
	return false
}
