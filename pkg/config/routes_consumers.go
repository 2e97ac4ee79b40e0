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

var (
	consumerCommonKeys = []string{"name", "type", "format", "timeout", "retry", "breaker", "maxConcurrency", "cloudevent"}
	consumerHTTPKeys   = []string{"url", "method", "headers", "signingSecret"}
	consumerSBKeys     = []string{"namespace", "connection", "queue", "topic", "sessionKey"}
)

// consumer loads the i-th consumer with its defaults filled in. The boolean says whether it has a
// name, so that routes can refer to it even when other keys are wrong.
func (l *loader) consumer(n *yaml.Node, i int) (Consumer, bool) {
	c := Consumer{
		Format:         "row",
		Timeout:        10 * time.Second,
		Retry:          Retry{Attempts: 4, InitialDelay: time.Second, MaxDelay: 30 * time.Second},
		Breaker:        Breaker{FailureRatio: 0.5, MinRequests: 20, OpenFor: 30 * time.Second, HalfOpenRequests: 1, Window: 30 * time.Second},
		MaxConcurrency: 16,
		CloudEvent:     CloudEvent{Mode: "structured", TypePrefix: DefaultCloudEventTypePrefix},
		Method:         "POST",
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

	allowed := append([]string{}, consumerCommonKeys...)
	misplaced := map[string]string{}
	if f := get("type"); f == nil {
		l.errorf(deref(n), "consumers[%d]: type is required: http or servicebus", i)
		allowed = append(append(allowed, consumerHTTPKeys...), consumerSBKeys...)
	} else if s, ok := l.str(*f); ok {
		switch strings.ToLower(s) {
		case "http":
			c.Type = "http"
			allowed = append(allowed, consumerHTTPKeys...)
			for _, k := range consumerSBKeys {
				misplaced[k] = fmt.Sprintf("%s: belongs to a servicebus consumer, not an http one", k)
			}
		case "servicebus":
			c.Type = "servicebus"
			allowed = append(allowed, consumerSBKeys...)
			for _, k := range consumerHTTPKeys {
				misplaced[k] = fmt.Sprintf("%s: belongs to an http consumer, not a servicebus one", k)
			}
		default:
			l.errorf(deref(f.val), "type: %q is not a consumer type: want http or servicebus", s)
			allowed = append(append(allowed, consumerHTTPKeys...), consumerSBKeys...)
		}
	} else {
		allowed = append(append(allowed, consumerHTTPKeys...), consumerSBKeys...)
	}
	l.checkKeys(fs, allowed, misplaced)

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
		case "url":
			l.consumerURL(f, &c)
		case "method":
			if s, ok := l.str(f); ok {
				if !isToken(s) {
					l.errorf(deref(f.val), "method: %q is not an HTTP method", s)
				} else if up := strings.ToUpper(s); contains(standardMethods, up) {
					c.Method = up
				} else {
					c.Method = s
				}
			}
		case "headers":
			l.headers(f, &c)
		case "signingSecret":
			if v, ok := l.secretRef(f, "a Standard Webhooks signing secret"); ok {
				if _, err := SigningKeys(v); err != nil {
					l.errorf(deref(f.val), "signingSecret: setting %s: %v", refName(deref(f.val).Value), err)
				} else {
					c.SigningSecret = v
				}
			}
		case "namespace":
			l.namespace(f, &c)
		case "connection":
			if v, ok := l.secretRef(f, "a Service Bus connection string"); ok {
				if !strings.Contains(strings.ToLower(v), "endpoint=") {
					l.errorf(deref(f.val), "connection: setting %s does not hold a Service Bus connection string (Endpoint=sb://...;...)", refName(deref(f.val).Value))
				} else {
					c.Connection = v
				}
			}
		case "queue", "topic":
			if s, ok := l.str(f); ok {
				if !entityRE.MatchString(s) {
					l.errorf(deref(f.val), "%s: %q is not a Service Bus entity name (letters, digits, '.', '-', '_', '/', '~')", f.key.Value, s)
				} else if f.key.Value == "queue" {
					c.Queue = s
				} else {
					c.Topic = s
				}
			}
		case "sessionKey":
			if s, ok := l.str(f); ok {
				switch {
				case s == "":
				case strings.EqualFold(s, "recordId"):
					c.SessionKey = "recordId"
				default:
					l.errorf(deref(f.val), "sessionKey: %q: want recordId (or leave it out)", s)
				}
			}
		}
	}

	switch c.Type {
	case "http":
		if get("url") == nil {
			l.errorf(deref(n), "consumer %q: url is required for an http consumer", c.Name)
		}
	case "servicebus":
		ns, conn := get("namespace"), get("connection")
		switch {
		case ns == nil && conn == nil:
			l.errorf(deref(n), "consumer %q: set namespace (managed identity) or connection (a %%SETTING%% with a connection string)", c.Name)
		case ns != nil && conn != nil:
			l.errorf(conn.key, "connection: set namespace or connection, not both")
		}
		q, t := get("queue"), get("topic")
		switch {
		case q == nil && t == nil:
			l.errorf(deref(n), "consumer %q: set queue or topic", c.Name)
		case q != nil && t != nil:
			l.errorf(t.key, "topic: set queue or topic, not both")
		}
	}
	if f := get("cloudevent"); f != nil && c.Format != "cloudevent" {
		l.errorf(f.key, "cloudevent: applies to format cloudevent only (this consumer's format is %s)", c.Format)
	}
	if c.Retry.MaxDelay < c.Retry.InitialDelay {
		l.errorf(deref(n), "consumer %q: retry.maxDelay (%s) is below retry.initialDelay (%s)", c.Name, c.Retry.MaxDelay, c.Retry.InitialDelay)
	}
	return c, c.Name != ""
}

var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

var entityRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/~-]{0,259}$`)

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
func (l *loader) secretRef(f field, what string) (string, bool) {
	s, ok := l.str(f)
	if !ok {
		return "", false
	}
	m := settingRef.FindStringIndex(s)
	if m == nil || m[0] != 0 || m[1] != len(s) {
		l.errorf(deref(f.val), "%s: must name an app setting holding %s, like %%%s%%; secrets never go in the route file", f.key.Value, what, suggestSetting(f.key.Value))
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

func suggestSetting(key string) string {
	switch key {
	case "signingSecret":
		return "ERP_SIGNING_SECRET"
	case "connection":
		return "ERP_SERVICEBUS_CONNECTION"
	}
	return "ERP_API_KEY"
}

// secretQueryParams are query parameters that carry credentials (an Azure Functions key travels
// as ?code=...): their values must come from settings.
var secretQueryParams = []string{"code", "key", "apikey", "api-key", "api_key", "token", "access_token", "sig", "secret", "password"}

func (l *loader) consumerURL(f field, c *Consumer) {
	raw, ok := l.str(f)
	if !ok {
		return
	}
	// Credentials may only come from settings, so check the text as written, before resolving.
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil && !settingRef.MatchString(u.User.String()) {
			l.errorf(deref(f.val), "url: holds a literal user name or password; name an app setting instead, like https://%%ERP_CREDENTIALS%%@host/")
			return
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if contains(secretQueryParams, strings.ToLower(k)) && v != "" && !settingRef.MatchString(v) {
					l.errorf(deref(f.val), "url: query parameter %s holds a literal value; secrets never go in the route file: use %s=%%%s%%", k, k, "ERP_FUNCTION_KEY")
					return
				}
			}
		}
	}
	s, ok := l.resolve(f, raw)
	if !ok || l.onlyInSetting(raw) {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.Contains(raw, "%") {
			l.errorf(deref(f.val), "url: want an absolute http or https URL (after resolving settings)")
		} else {
			l.errorf(deref(f.val), "url: %q is not an absolute http or https URL", raw)
		}
		return
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		l.warnf(deref(f.val), "url: plain http to %s: events carry personal data; use https", u.Hostname())
	}
	c.URL = s
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// credentialHeaders hold secrets by convention; a literal value there is a secret in the file.
var credentialHeaders = []string{"authorization", "proxy-authorization", "x-api-key", "api-key", "apikey", "x-functions-key", "ocp-apim-subscription-key", "cookie"}

// reservedHeaders are set by dvrouter itself on every request.
var reservedHeaders = []string{"host", "content-length", "content-type", "transfer-encoding", "connection",
	"idempotency-key", "x-dvrouter-route", "x-dvrouter-attempt", "webhook-id", "webhook-timestamp", "webhook-signature",
	"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time"}

func (l *loader) headers(f field, c *Consumer) {
	fs, ok := l.fields(f.val, "headers")
	if !ok {
		return
	}
	c.Headers = map[string]string{}
	for _, h := range fs {
		name := h.key.Value
		lower := strings.ToLower(name)
		switch {
		case !isToken(name):
			l.errorf(h.key, "headers: %q is not a valid header name", name)
			continue
		case contains(reservedHeaders, lower):
			l.errorf(h.key, "headers: %s is set by dvrouter", name)
			continue
		}
		v, ok := l.str(field{key: &yaml.Node{Value: "headers." + name}, val: h.val})
		if !ok {
			continue
		}
		if contains(credentialHeaders, lower) && !settingRef.MatchString(v) {
			l.errorf(deref(h.val), "headers.%s: holds a literal value; secrets never go in the route file: name an app setting, like \"Bearer %%ERP_TOKEN%%\"", name)
			continue
		}
		resolved, ok := l.resolve(field{key: &yaml.Node{Value: "headers." + name}, val: h.val}, v)
		if !ok {
			continue
		}
		if strings.ContainsAny(resolved, "\r\n\x00") {
			l.errorf(deref(h.val), "headers.%s: the value holds a line break or NUL (after resolving settings)", name)
			continue
		}
		c.Headers[name] = resolved
	}
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)

func (l *loader) namespace(f field, c *Consumer) {
	raw, ok := l.str(f)
	if !ok {
		return
	}
	s, ok := l.resolve(f, raw)
	if !ok || l.onlyInSetting(raw) {
		return
	}
	if strings.Contains(s, "://") || strings.Contains(s, "/") {
		l.errorf(deref(f.val), "namespace: want the fully qualified host name only, like erp.servicebus.windows.net")
		return
	}
	if !hostRE.MatchString(s) {
		l.errorf(deref(f.val), "namespace: want a fully qualified namespace like erp.servicebus.windows.net")
		return
	}
	c.Namespace = s
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
