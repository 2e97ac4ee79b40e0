package config

// Consumer kinds: each kind of consumer (http, servicebus, ...) is a folder that owns its keys
// in the route file, their checks and its settings type. This file is what the loader offers
// them: the registry and a Decoder over one consumer's keys, with the same positioned problems
// as the rest of the file.

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Kind is a consumer type as the route file loader sees it.
type Kind struct {
	Name    string   // the value of `type:`, lower case
	Article string   // "a" or "an", for messages ("belongs to an http consumer")
	Keys    []string // the keys its consumers set beside the shared ones
	// Decode reads the kind's keys of one consumer (unknown keys are already reported) and
	// checks them together (required keys, keys that exclude each other), reporting every
	// problem through d. It returns the settings as far as they could be read; they become
	// Consumer.Spec.
	Decode func(d *Decoder) any
}

var kinds []Kind

// RegisterKind makes k known to the loader; a kind registered again under the same name
// replaces the first. Package deliver registers every kind it can deliver to, so a program
// that loads route files imports it (a test can import the kind's folder alone).
func RegisterKind(k Kind) {
	for i := range kinds {
		if kinds[i].Name == k.Name {
			kinds[i] = k
			return
		}
	}
	kinds = append(kinds, k)
}

func kindByName(name string) (Kind, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// kindNames lists the registered kinds for messages: "http, servicebus or dataverse".
func kindNames() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	switch len(names) {
	case 0:
		return "(no consumer kinds are registered: the program must import package deliver)"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Field is one `key: value` of a mapping in the route file, for a kind's Decode.
type Field struct {
	Key, Value *yaml.Node
}

func (f Field) internal() field { return field{key: f.Key, val: f.Value} }

// Decoder reads one consumer's kind-specific keys. Its methods report problems at the line and
// column of the node at fault, as the rest of the loader does, and return false when the value
// could not be used.
type Decoder struct {
	l      *loader
	node   *yaml.Node
	name   string
	fields []Field
}

// Name is the consumer's name ("" when it has none).
func (d *Decoder) Name() string { return d.name }

// Node is the consumer's mapping, for problems about the consumer as a whole.
func (d *Decoder) Node() *yaml.Node { return deref(d.node) }

// Fields are the consumer's keys that belong to the kind, in file order.
func (d *Decoder) Fields() []Field { return d.fields }

// Get returns the kind's key named key, or nil when the consumer does not set it.
func (d *Decoder) Get(key string) *Field {
	for i := range d.fields {
		if d.fields[i].Key.Value == key {
			return &d.fields[i]
		}
	}
	return nil
}

// Unresolved reports whether the file is loaded without settings (LoadRoutesUnresolved): every
// `%SETTING%` then counts as set, and what only its value shows cannot be checked.
func (d *Decoder) Unresolved() bool { return d.l.noResolve }

// Errorf reports a problem at n (aliases followed).
func (d *Decoder) Errorf(n *yaml.Node, format string, args ...any) {
	d.l.errorf(deref(n), format, args...)
}

// Warnf reports a warning at n; the message gets the "warning: " prefix.
func (d *Decoder) Warnf(n *yaml.Node, format string, args ...any) {
	d.l.warnf(deref(n), format, args...)
}

// Str reads f's value as text (numbers as their text; booleans, null and collections refused).
func (d *Decoder) Str(f Field) (string, bool) { return d.l.str(f.internal()) }

// Strs reads f's value as a list of strings, with each item's node.
func (d *Decoder) Strs(f Field) ([]string, []*yaml.Node, bool) { return d.l.strs(f.internal()) }

// Integer reads f's value as a whole number from min to max.
func (d *Decoder) Integer(f Field, min, max int64) (int64, bool) {
	return d.l.integer(f.internal(), min, max)
}

// Duration reads f's value as a Go duration from min to 24h.
func (d *Decoder) Duration(f Field, min time.Duration) (time.Duration, bool) {
	return d.l.duration(f.internal(), min)
}

// Mapping reads n as a mapping (merge keys applied, duplicate keys reported); what names it
// in messages.
func (d *Decoder) Mapping(n *yaml.Node, what string) ([]Field, bool) {
	fs, ok := d.l.fields(n, what)
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field{Key: f.key, Value: f.val}
	}
	return out, ok
}

// CheckKeys reports every field whose key is not in allowed, suggesting the closest.
func (d *Decoder) CheckKeys(fs []Field, allowed []string) {
	in := make([]field, len(fs))
	for i, f := range fs {
		in[i] = f.internal()
	}
	d.l.checkKeys(in, allowed, nil)
}

// Resolve replaces every `%SETTING%` in raw (the text of f) with the setting's value, reporting
// settings that are not set. Loading unresolved, it puts a placeholder in their place.
func (d *Decoder) Resolve(f Field, raw string) (string, bool) { return d.l.resolve(f.internal(), raw) }

// SecretRef reads f's value, which must be exactly one `%SETTING%` (example names a setting
// for the message), and resolves it. Loading unresolved it returns false: the value's form is
// only known with the setting.
func (d *Decoder) SecretRef(f Field, what, example string) (string, bool) {
	return d.l.secretRef(f.internal(), what, example)
}

// OnlyInSetting reports whether, loading unresolved, the whole of raw is one `%SETTING%`, so
// that its form cannot be checked.
func (d *Decoder) OnlyInSetting(raw string) bool { return d.l.onlyInSetting(raw) }

// Setting returns the app setting name, for settings a kind reads by name (not through a
// `%SETTING%` in the file). Loading unresolved, it is never set.
func (d *Decoder) Setting(name string) (string, bool) {
	if d.l.noResolve {
		return "", false
	}
	return d.l.getenv(name)
}

// DataverseEnvironments is DVROUTER_DATAVERSE_ENVIRONMENTS read by ParseDataverseEnvironments,
// as LoadSettings reads it, once per route file: what an `environment:` name may refer to.
// Loading unresolved, it names none.
func (d *Decoder) DataverseEnvironments() (map[string]string, error) {
	if d.l.noResolve {
		return map[string]string{}, nil
	}
	if !d.l.dataverseRead {
		v, _ := d.l.getenv(EnvDataverseEnvs)
		d.l.dataverse, d.l.dataverseErr = ParseDataverseEnvironments(v)
		d.l.dataverseRead = true
	}
	return d.l.dataverse, d.l.dataverseErr
}

// HasSettingRef reports whether s holds a `%SETTING%` reference.
func HasSettingRef(s string) bool { return settingRef.MatchString(s) }

// RefName is the setting a `%SETTING%` value names (s itself when it names none).
func RefName(s string) string { return refName(s) }

// IsToken reports whether s is an RFC 9110 token (header names and methods are tokens).
func IsToken(s string) bool { return isToken(s) }

// Contains reports whether list holds s.
func Contains(list []string, s string) bool { return contains(list, s) }
