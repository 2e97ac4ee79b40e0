package httpdest

// The http kind in the route file: its keys, their checks and its settings.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// Spec is an http consumer's own settings.
type Spec struct {
	URL           string
	Method        string            // default POST
	Headers       map[string]string // `%SETTING%` values already resolved
	SigningSecret string            // resolved; empty means unsigned; config.SigningKeys reads it
}

// Kind is the http consumer kind.
var Kind = dest.Kind{
	Config: config.Kind{Name: "http", Article: "an", Keys: []string{"url", "method", "headers", "signingSecret"}, Decode: decode},
	New:    func(c config.Consumer, d dest.Deps) (dest.Publisher, error) { return New(c, d.HTTPClient) },
}

func decode(d *config.Decoder) any {
	s := Spec{Method: http.MethodPost}
	for _, f := range d.Fields() {
		switch f.Key.Value {
		case "url":
			consumerURL(d, f, &s)
		case "method":
			if v, ok := d.Str(f); ok {
				if !config.IsToken(v) {
					d.Errorf(f.Value, "method: %q is not an HTTP method", v)
				} else if up := strings.ToUpper(v); config.Contains(standardMethods, up) {
					s.Method = up
				} else {
					s.Method = v
				}
			}
		case "headers":
			headers(d, f, &s)
		case "signingSecret":
			if v, ok := d.SecretRef(f, "a Standard Webhooks signing secret", "ERP_SIGNING_SECRET"); ok {
				if _, err := config.SigningKeys(v); err != nil {
					d.Errorf(f.Value, "signingSecret: setting %s: %v", config.RefName(f.Value.Value), err)
				} else {
					s.SigningSecret = v
				}
			}
		}
	}
	if d.Get("url") == nil {
		d.Errorf(d.Node(), "consumer %q: url is required for an http consumer", d.Name())
	}
	return s
}

var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// secretQueryParams are query parameters that carry credentials (an Azure Functions key travels
// as ?code=...): their values must come from settings.
var secretQueryParams = []string{"code", "key", "apikey", "api-key", "api_key", "token", "access_token", "sig", "secret", "password"}

func consumerURL(d *config.Decoder, f config.Field, s *Spec) {
	raw, ok := d.Str(f)
	if !ok {
		return
	}
	// Credentials may only come from settings, so check the text as written, before resolving.
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil && !config.HasSettingRef(u.User.String()) {
			d.Errorf(f.Value, "url: holds a literal user name or password; name an app setting instead, like https://%%ERP_CREDENTIALS%%@host/")
			return
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if config.Contains(secretQueryParams, strings.ToLower(k)) && v != "" && !config.HasSettingRef(v) {
					d.Errorf(f.Value, "url: query parameter %s holds a literal value; secrets never go in the route file: use %s=%%%s%%", k, k, "ERP_FUNCTION_KEY")
					return
				}
			}
		}
	}
	v, ok := d.Resolve(f, raw)
	if !ok || d.OnlyInSetting(raw) {
		return
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.Contains(raw, "%") {
			d.Errorf(f.Value, "url: want an absolute http or https URL (after resolving settings)")
		} else {
			d.Errorf(f.Value, "url: %q is not an absolute http or https URL", raw)
		}
		return
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		d.Warnf(f.Value, "url: plain http to %s: events carry personal data; use https", u.Hostname())
	}
	s.URL = v
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

func headers(d *config.Decoder, f config.Field, s *Spec) {
	fs, ok := d.Mapping(f.Value, "headers")
	if !ok {
		return
	}
	s.Headers = map[string]string{}
	for _, h := range fs {
		name := h.Key.Value
		lower := strings.ToLower(name)
		switch {
		case !config.IsToken(name):
			d.Errorf(h.Key, "headers: %q is not a valid header name", name)
			continue
		case config.Contains(reservedHeaders, lower):
			d.Errorf(h.Key, "headers: %s is set by dvrouter", name)
			continue
		}
		named := config.Field{Key: &yaml.Node{Value: "headers." + name}, Value: h.Value}
		v, ok := d.Str(named)
		if !ok {
			continue
		}
		if config.Contains(credentialHeaders, lower) && !config.HasSettingRef(v) {
			d.Errorf(h.Value, "headers.%s: holds a literal value; secrets never go in the route file: name an app setting, like \"Bearer %%ERP_TOKEN%%\"", name)
			continue
		}
		resolved, ok := d.Resolve(named, v)
		if !ok {
			continue
		}
		if strings.ContainsAny(resolved, "\r\n\x00") {
			d.Errorf(h.Value, "headers.%s: the value holds a line break or NUL (after resolving settings)", name)
			continue
		}
		s.Headers[name] = resolved
	}
}

// spec is c's http settings; a consumer built by hand (tests) may leave them out.
func spec(c config.Consumer) (Spec, error) {
	switch s := c.Spec.(type) {
	case Spec:
		return s, nil
	case *Spec:
		return *s, nil
	}
	return Spec{}, fmt.Errorf("consumer %s: not an http consumer (settings %T)", c.Name, c.Spec)
}
