package dvdest

// The dataverse kind in the route file: its keys, their checks and its settings.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// Spec is a dataverse consumer's own settings.
type Spec struct {
	Environment string   // the environment URL, https://contoso.crm4.dynamics.com
	Table       string   // the target table's logical name
	Key         []string // the target's alternate key columns, in the key's order
	Columns     []Column // what is written, in file order
	Mode        string   // "upsert" (default), "update" (If-Match: *) or "create" (If-None-Match: *)
}

// Column is one target column and where its value comes from: an event column (From), a
// constant (Const, Value) or a lookup written as <Target>@odata.bind (Lookup).
type Column struct {
	Target string // a logical name; for a lookup, the navigation property (its case kept)
	From   string
	Const  bool
	Value  any // string, bool, json.Number or nil
	Lookup *Lookup
}

// Lookup names the row a lookup column points at by that table's own alternate key, each key
// column's value taken from an event column.
type Lookup struct {
	Table string
	Key   []KeyFrom
}

// KeyFrom is one alternate key column and the event column its value comes from.
type KeyFrom struct {
	Column, From string
}

// Kind is the dataverse consumer kind.
var Kind = dest.Kind{
	Config: config.Kind{Name: "dataverse", Article: "a", Keys: []string{"environment", "table", "key", "columns", "mode"}, Decode: decode},
	New:    New,
}

var (
	logicalNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)
	// An event column: a logical name, or a lookup's Web API name _x_value.
	eventColumnRE = regexp.MustCompile(`^_?[a-z][a-z0-9_]{0,99}$`)
	// A navigation property keeps its schema name's case: parentcustomerid_account, new_ProjectId.
	navigationRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)
)

// maxKeyColumns bounds an alternate key; Dataverse allows 16 columns in one.
const maxKeyColumns = 16

func decode(d *config.Decoder) any {
	s := Spec{Mode: "upsert"}
	for _, f := range d.Fields() {
		switch f.Key.Value {
		case "environment":
			s.Environment = environment(d, f)
		case "table":
			if v, ok := d.Str(f); ok {
				if logicalName(d, f.Value, "table", v) {
					s.Table = v
				}
			}
		case "key":
			vs, nodes, ok := d.Strs(f)
			if ok && len(vs) == 0 {
				d.Errorf(f.Value, "key: empty: list the columns of the target table's alternate key")
			}
			if len(vs) > maxKeyColumns {
				d.Errorf(f.Value, "key: %d columns; an alternate key has at most %d", len(vs), maxKeyColumns)
			}
			for i, v := range vs {
				if logicalName(d, nodes[i], "key", v) && !config.Contains(s.Key, v) {
					s.Key = append(s.Key, v)
				}
			}
		case "columns":
			s.Columns = columns(d, f)
		case "mode":
			if v, ok := d.Str(f); ok {
				switch strings.ToLower(v) {
				case "upsert", "update", "create":
					s.Mode = strings.ToLower(v)
				default:
					d.Errorf(f.Value, "mode: %q: want upsert (create or update), update (never create) or create (never update)", v)
				}
			}
		}
	}
	for _, req := range []string{"environment", "table", "key"} {
		if d.Get(req) == nil {
			hint := map[string]string{
				"environment": "a name from " + config.EnvDataverseEnvs + " or the environment's URL",
				"table":       "the target table's logical name",
				"key":         "the columns of the target's alternate key",
			}[req]
			d.Errorf(d.Node(), "consumer %q: %s is required for a dataverse consumer (%s)", d.Name(), req, hint)
		}
	}
	for _, c := range s.Columns {
		if c.Lookup != nil && config.Contains(s.Key, strings.ToLower(c.Target)) {
			d.Errorf(d.Get("columns").Value, "columns.%s: a key column takes a value, not a lookup", c.Target)
		}
	}
	return s
}

func logicalName(d *config.Decoder, n *yaml.Node, where, v string) bool {
	switch {
	case logicalNameRE.MatchString(v):
		return true
	case logicalNameRE.MatchString(strings.ToLower(v)):
		d.Errorf(n, "%s: %q: logical names are lower case: write %q", where, v, strings.ToLower(v))
	default:
		d.Errorf(n, "%s: %q is not a logical name (lower-case letters, digits and '_', starting with a letter)", where, v)
	}
	return false
}

// environment reads `environment:`: an environment URL (it may hold %SETTING%), or a name the
// DVROUTER_DATAVERSE_ENVIRONMENTS setting gives a URL.
func environment(d *config.Decoder, f config.Field) string {
	raw, ok := d.Str(f)
	if !ok {
		return ""
	}
	if strings.Contains(raw, "://") || config.HasSettingRef(raw) {
		v, ok := d.Resolve(f, raw)
		if !ok || d.OnlyInSetting(raw) {
			return ""
		}
		u, err := webapi.ParseEnvironmentURL(v)
		if err != nil {
			d.Errorf(f.Value, "environment: %v", err)
			return ""
		}
		return u
	}
	if d.Unresolved() {
		return "" // the setting is not at hand
	}
	envs, err := d.DataverseEnvironments()
	if err != nil {
		d.Errorf(f.Value, "environment: setting %s: %v", config.EnvDataverseEnvs, err)
		return ""
	}
	if u, ok := envs[strings.ToLower(raw)]; ok {
		return u
	}
	if len(envs) == 0 {
		d.Errorf(f.Value, "environment: %q: setting %s is not set; give the environment's URL (https://contoso.crm4.dynamics.com) or name it there (%s=contoso=https://...)", raw, config.EnvDataverseEnvs, config.EnvDataverseEnvs)
		return ""
	}
	names := make([]string, 0, len(envs))
	for k := range envs {
		names = append(names, k)
	}
	sort.Strings(names)
	d.Errorf(f.Value, "environment: %q is not named in setting %s (it names %s)", raw, config.EnvDataverseEnvs, strings.Join(names, ", "))
	return ""
}

// columns reads `columns:`, a mapping of target column to its source: an event column's name,
// {value: constant}, or {table: t, key: {column: event column, ...}} for a lookup.
func columns(d *config.Decoder, f config.Field) []Column {
	fs, ok := d.Mapping(f.Value, "columns")
	if !ok {
		return nil
	}
	var out []Column
	for _, cf := range fs {
		target := cf.Key.Value
		v := cf.Value
		for v != nil && v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		where := "columns." + target
		if v != nil && v.Kind == yaml.MappingNode {
			c, ok := columnSource(d, where, target, v)
			if ok {
				out = append(out, c)
			}
			continue
		}
		if !logicalName(d, cf.Key, "columns", target) {
			continue
		}
		from, ok := d.Str(config.Field{Key: &yaml.Node{Value: where}, Value: cf.Value})
		if !ok {
			continue
		}
		if !eventColumnRE.MatchString(strings.ToLower(from)) {
			d.Errorf(cf.Value, "%s: %q is not an event column (a logical name, or _x_value for a lookup's id); a constant is written {value: ...}", where, from)
			continue
		}
		out = append(out, Column{Target: target, From: strings.ToLower(from)})
	}
	return out
}

func columnSource(d *config.Decoder, where, target string, n *yaml.Node) (Column, bool) {
	fs, ok := d.Mapping(n, where)
	if !ok {
		return Column{}, false
	}
	has := map[string]config.Field{}
	for _, f := range fs {
		has[f.Key.Value] = f
	}
	if vf, ok := has["value"]; ok {
		d.CheckKeys(fs, []string{"value"})
		if !logicalName(d, n, where, target) {
			return Column{}, false
		}
		v, ok := constant(d, where, vf.Value)
		return Column{Target: target, Const: true, Value: v}, ok
	}
	d.CheckKeys(fs, []string{"table", "key"})
	if !navigationRE.MatchString(target) {
		d.Errorf(n, "%s: %q is not a navigation property name (the lookup's single-valued navigation property, such as parentcustomerid_account)", where, target)
		return Column{}, false
	}
	tf, okT := has["table"]
	kf, okK := has["key"]
	if !okT || !okK {
		d.Errorf(n, "%s: want an event column, {value: constant}, or a lookup {table: <table>, key: {<key column>: <event column>}}", where)
		return Column{}, false
	}
	l := &Lookup{}
	if v, ok := d.Str(config.Field{Key: &yaml.Node{Value: where + ".table"}, Value: tf.Value}); ok && logicalName(d, tf.Value, where+".table", v) {
		l.Table = v
	}
	kfs, ok := d.Mapping(kf.Value, where+".key")
	if ok && len(kfs) == 0 {
		d.Errorf(kf.Value, "%s.key: empty: name the columns of %s's alternate key and the event columns they take", where, l.Table)
	}
	if len(kfs) > maxKeyColumns {
		d.Errorf(kf.Value, "%s.key: %d columns; an alternate key has at most %d", where, len(kfs), maxKeyColumns)
	}
	for _, k := range kfs {
		if !logicalName(d, k.Key, where+".key", k.Key.Value) {
			continue
		}
		from, ok := d.Str(config.Field{Key: &yaml.Node{Value: where + ".key." + k.Key.Value}, Value: k.Value})
		if !ok {
			continue
		}
		if !eventColumnRE.MatchString(strings.ToLower(from)) {
			d.Errorf(k.Value, "%s.key.%s: %q is not an event column", where, k.Key.Value, from)
			continue
		}
		l.Key = append(l.Key, KeyFrom{Column: k.Key.Value, From: strings.ToLower(from)})
	}
	return Column{Target: target, Lookup: l}, l.Table != "" && len(l.Key) > 0
}

// constant reads a {value: ...} as the JSON value it writes.
func constant(d *config.Decoder, where string, n *yaml.Node) (any, bool) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.ScalarNode {
		d.Errorf(n, "%s.value: want a text, a number, true/false or null", where)
		return nil, false
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, true
	case "!!bool":
		return strings.EqualFold(n.Value, "true"), true
	case "!!int", "!!float":
		// JSON numbers only: YAML's 0x1F or .inf have no JSON form.
		if !jsonNumberRE.MatchString(n.Value) {
			d.Errorf(n, "%s.value: %s is not a decimal number; quote it to write it as text", where, n.Value)
			return nil, false
		}
		return json.Number(n.Value), true
	}
	return n.Value, true
}

var jsonNumberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// spec is c's dataverse settings.
func spec(c config.Consumer) (Spec, error) {
	switch s := c.Spec.(type) {
	case Spec:
		return s, nil
	case *Spec:
		return *s, nil
	}
	return Spec{}, fmt.Errorf("consumer %s: not a dataverse consumer (settings %T)", c.Name, c.Spec)
}
