package config

// Loading and checking the consumers of the route file.

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var consumerCommonKeys = []string{"name", "type", "format", "timeout", "retry", "breaker", "maxConcurrency", "cloudevent"}

// consumer loads the i-th consumer with its defaults filled in: the shared keys here, the keys
// of its type by that kind's Decode (see kinds.go). The boolean says whether it has a name, so
// that routes can refer to it even when other keys are wrong.
func (l *loader) consumer(n *yaml.Node, i int) (Consumer, bool) {
	c := Consumer{
		Format:         "row",
		Timeout:        10 * time.Second,
		Retry:          Retry{Attempts: 4, InitialDelay: time.Second, MaxDelay: 30 * time.Second},
		Breaker:        Breaker{FailureRatio: 0.5, MinRequests: 20, OpenFor: 30 * time.Second, HalfOpenRequests: 1, Window: 30 * time.Second},
		MaxConcurrency: 16,
		CloudEvent:     CloudEvent{Mode: "structured", TypePrefix: DefaultCloudEventTypePrefix},
		Pos:            nodePos(deref(n)),
	}
	fs, ok := l.fields(n, fmt.Sprintf("consumers[%d]", i))
	if !ok {
		return c, false
	}
	get := func(key string) *field {
		for j := range fs {
			if fs[j].key.Value == key {
				return &fs[j]
			}
		}
		return nil
	}
	if f := get("name"); f == nil {
		l.errorf(deref(n), "consumers[%d]: name is required", i)
	} else if s, ok := l.str(*f); ok {
		if !nameRE.MatchString(s) {
			l.errorf(deref(f.val), "name: %q must be 1 to 64 letters, digits or '-', starting with a letter or digit", s)
		}
		c.Name = s
	}

	// Without a known type every kind's keys are allowed: the type is the mistake to report.
	allowed := append([]string{}, consumerCommonKeys...)
	misplaced := map[string]string{}
	var kind *Kind
	if f := get("type"); f == nil {
		l.errorf(deref(n), "consumers[%d]: type is required: %s", i, kindNames())
	} else if s, ok := l.str(*f); ok {
		if k, known := kindByName(strings.ToLower(s)); known {
			kind = &k
			c.Type = k.Name
		} else {
			l.errorf(deref(f.val), "type: %q is not a consumer type: want %s", s, kindNames())
		}
	}
	if kind == nil {
		for _, k := range kinds {
			allowed = append(allowed, k.Keys...)
		}
	} else {
		allowed = append(allowed, kind.Keys...)
		for _, other := range kinds {
			for _, key := range other.Keys {
				if other.Name != kind.Name && !contains(kind.Keys, key) && misplaced[key] == "" {
					misplaced[key] = fmt.Sprintf("%s: belongs to %s %s consumer, not %s %s one", key, other.Article, other.Name, kind.Article, kind.Name)
				}
			}
		}
	}
	l.checkKeys(fs, allowed, misplaced)

	var own []Field
	for _, f := range fs {
		switch f.key.Value {
		case "format":
			if s, ok := l.str(f); ok {
				switch strings.ToLower(s) {
				case "row", "raw", "cloudevent":
					c.Format = strings.ToLower(s)
				default:
					l.errorf(deref(f.val), "format: %q is not a payload format: want row, raw or cloudevent", s)
				}
			}
		case "timeout":
			if d, ok := l.duration(f, time.Millisecond); ok {
				c.Timeout = d
			}
		case "maxConcurrency":
			if v, ok := l.integer(f, 1, 10000); ok {
				c.MaxConcurrency = int(v)
			}
		case "retry":
			l.retry(f, &c.Retry)
		case "breaker":
			l.breaker(f, &c.Breaker)
		case "cloudevent":
			l.cloudEvent(f, &c.CloudEvent)
		case "name", "type":
		default:
			if kind != nil && contains(kind.Keys, f.key.Value) {
				own = append(own, Field{Key: f.key, Value: f.val})
			}
		}
	}
	if kind != nil && kind.Decode != nil {
		c.Spec = kind.Decode(&Decoder{l: l, node: n, name: c.Name, fields: own})
	}

	if f := get("cloudevent"); f != nil && c.Format != "cloudevent" {
		l.errorf(f.key, "cloudevent: applies to format cloudevent only (this consumer's format is %s)", c.Format)
	}
	if c.Retry.MaxDelay < c.Retry.InitialDelay {
		l.errorf(deref(n), "consumer %q: retry.maxDelay (%s) is below retry.initialDelay (%s)", c.Name, c.Retry.MaxDelay, c.Retry.InitialDelay)
	}
	return c, c.Name != ""
}

func (l *loader) retry(f field, r *Retry) {
	fs, ok := l.fields(f.val, "retry")
	if !ok {
		return
	}
	l.checkKeys(fs, []string{"attempts", "initialDelay", "maxDelay"}, nil)
	for _, g := range fs {
		switch g.key.Value {
		case "attempts":
			if v, ok := l.integer(g, 1, 100); ok {
				r.Attempts = int(v)
			}
		case "initialDelay":
			if d, ok := l.duration(g, 0); ok {
				r.InitialDelay = d
			}
		case "maxDelay":
			if d, ok := l.duration(g, 0); ok {
				r.MaxDelay = d
			}
		}
	}
}

func (l *loader) breaker(f field, b *Breaker) {
	fs, ok := l.fields(f.val, "breaker")
	if !ok {
		return
	}
	l.checkKeys(fs, []string{"failureRatio", "minRequests", "openFor", "halfOpenRequests", "window"}, nil)
	for _, g := range fs {
		switch g.key.Value {
		case "failureRatio":
			v := deref(g.val)
			x, err := strconv.ParseFloat(v.Value, 64)
			if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!float" && v.ShortTag() != "!!int") || err != nil || !(x > 0 && x <= 1) {
				l.errorf(v, "failureRatio: want a number above 0 and at most 1, got %s", describeValue(v))
				continue
			}
			b.FailureRatio = x
		case "minRequests":
			if v, ok := l.integer(g, 1, 1<<31); ok {
				b.MinRequests = uint32(v)
			}
		case "openFor":
			if d, ok := l.duration(g, time.Millisecond); ok {
				b.OpenFor = d
			}
		case "halfOpenRequests":
			if v, ok := l.integer(g, 1, 1<<31); ok {
				b.HalfOpenRequests = uint32(v)
			}
		case "window":
			// At least a second: the window is cut into buckets that age out one by one.
			if d, ok := l.duration(g, time.Second); ok {
				b.Window = d
			}
		}
	}
}

// typePrefixRE is a reverse-DNS name: dot-separated labels of letters, digits, '-' and '_'.
var typePrefixRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)+$`)

func (l *loader) cloudEvent(f field, ce *CloudEvent) {
	fs, ok := l.fields(f.val, "cloudevent")
	if !ok {
		return
	}
	l.checkKeys(fs, []string{"mode", "typePrefix", "source"}, nil)
	for _, g := range fs {
		s, ok := l.str(g)
		if !ok {
			continue
		}
		switch g.key.Value {
		case "mode":
			switch strings.ToLower(s) {
			case "structured", "binary":
				ce.Mode = strings.ToLower(s)
			default:
				l.errorf(deref(g.val), "mode: %q is not a CloudEvents content mode: want structured or binary", s)
			}
		case "typePrefix":
			if !typePrefixRE.MatchString(s) {
				l.errorf(deref(g.val), "typePrefix: %q is not a reverse-DNS name like com.contoso.crm", s)
			} else {
				ce.TypePrefix = s
			}
		case "source":
			// CloudEvents 1.0 allows a URI-reference; an absolute URI names the environment
			// unambiguously wherever the event travels, so that is what is accepted here.
			if u, err := url.Parse(s); err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") || strings.ContainsAny(s, " \t\r\n\"") {
				l.errorf(deref(g.val), "source: %q is not an absolute URI like https://contoso.crm.dynamics.com/ or urn:contoso:crm", s)
			} else {
				ce.Source = s
			}
		}
	}
}

func describeValue(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" {
		return v.Value
	}
	return describe(v)
}

// settingRef matches `%NAME%`, the Azure Functions way to name an app setting. Names may hold
// `__` and `:` (nested settings) and `.` and `-`.
var settingRef = regexp.MustCompile(`%([A-Za-z_][A-Za-z0-9_.:-]*)%`)

func refName(s string) string {
	if m := settingRef.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return s
}

// resolve replaces every `%NAME%` in s with the setting's value. Missing or empty settings are
// errors that name the setting; values are never echoed, they may be secrets.
func (l *loader) resolve(f field, s string) (string, bool) {
	if l.noResolve {
		// A stand-in that keeps a URL or header built around the reference well formed.
		return settingRef.ReplaceAllString(s, "setting"), true
	}
	ok := true
	out := settingRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[1 : len(ref)-1]
		v, set := l.getenv(name)
		if !set || v == "" {
			l.errorf(deref(f.val), "%s: setting %s is not set", f.key.Value, name)
			ok = false
		}
		return v
	})
	return out, ok
}

// secretRef reads a value that must be exactly one `%SETTING%` reference, and resolves it.
func (l *loader) secretRef(f field, what, example string) (string, bool) {
	s, ok := l.str(f)
	if !ok {
		return "", false
	}
	m := settingRef.FindStringIndex(s)
	if m == nil || m[0] != 0 || m[1] != len(s) {
		l.errorf(deref(f.val), "%s: must name an app setting holding %s, like %%%s%%; secrets never go in the route file", f.key.Value, what, example)
		return "", false
	}
	if l.noResolve {
		return "", false // the value's form is only known with the setting
	}
	return l.resolve(f, s)
}

// onlyInSetting reports whether, loading without settings, the whole of raw is one reference,
// so that its form cannot be checked.
func (l *loader) onlyInSetting(raw string) bool {
	if !l.noResolve {
		return false
	}
	m := settingRef.FindStringIndex(raw)
	return m != nil && m[0] == 0 && m[1] == len(raw)
}

// isToken reports whether s is an RFC 9110 token (header names and methods are tokens).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
