package sbdest

// The servicebus kind in the route file: its keys, their checks and its settings.

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// Spec is a servicebus consumer's own settings.
type Spec struct {
	Namespace  string // fully qualified namespace, managed identity
	Connection string // resolved connection string
	Queue      string
	Topic      string
	SessionKey string // "" or "recordId"
}

// Kind is the servicebus consumer kind.
var Kind = dest.Kind{
	Config: config.Kind{Name: "servicebus", Article: "a", Keys: []string{"namespace", "connection", "queue", "topic", "sessionKey"}, Decode: decode},
	New:    func(c config.Consumer, d dest.Deps) (dest.Publisher, error) { return New(c, d.Credential) },
}

var (
	entityRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/~-]{0,259}$`)
	hostRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
)

func decode(d *config.Decoder) any {
	var s Spec
	for _, f := range d.Fields() {
		switch f.Key.Value {
		case "namespace":
			namespace(d, f, &s)
		case "connection":
			if v, ok := d.SecretRef(f, "a Service Bus connection string", "ERP_SERVICEBUS_CONNECTION"); ok {
				if !strings.Contains(strings.ToLower(v), "endpoint=") {
					d.Errorf(f.Value, "connection: setting %s does not hold a Service Bus connection string (Endpoint=sb://...;...)", config.RefName(f.Value.Value))
				} else {
					s.Connection = v
				}
			}
		case "queue", "topic":
			if v, ok := d.Str(f); ok {
				if !entityRE.MatchString(v) {
					d.Errorf(f.Value, "%s: %q is not a Service Bus entity name (letters, digits, '.', '-', '_', '/', '~')", f.Key.Value, v)
				} else if f.Key.Value == "queue" {
					s.Queue = v
				} else {
					s.Topic = v
				}
			}
		case "sessionKey":
			if v, ok := d.Str(f); ok {
				switch {
				case v == "":
				case strings.EqualFold(v, "recordId"):
					s.SessionKey = "recordId"
				default:
					d.Errorf(f.Value, "sessionKey: %q: want recordId (or leave it out)", v)
				}
			}
		}
	}
	ns, conn := d.Get("namespace"), d.Get("connection")
	switch {
	case ns == nil && conn == nil:
		d.Errorf(d.Node(), "consumer %q: set namespace (managed identity) or connection (a %%SETTING%% with a connection string)", d.Name())
	case ns != nil && conn != nil:
		d.Errorf(conn.Key, "connection: set namespace or connection, not both")
	}
	q, t := d.Get("queue"), d.Get("topic")
	switch {
	case q == nil && t == nil:
		d.Errorf(d.Node(), "consumer %q: set queue or topic", d.Name())
	case q != nil && t != nil:
		d.Errorf(t.Key, "topic: set queue or topic, not both")
	}
	return s
}

func namespace(d *config.Decoder, f config.Field, s *Spec) {
	raw, ok := d.Str(f)
	if !ok {
		return
	}
	v, ok := d.Resolve(f, raw)
	if !ok || d.OnlyInSetting(raw) {
		return
	}
	if strings.Contains(v, "://") || strings.Contains(v, "/") {
		d.Errorf(f.Value, "namespace: want the fully qualified host name only, like erp.servicebus.windows.net")
		return
	}
	if !hostRE.MatchString(v) {
		d.Errorf(f.Value, "namespace: want a fully qualified namespace like erp.servicebus.windows.net")
		return
	}
	s.Namespace = v
}

// spec is c's servicebus settings.
func spec(c config.Consumer) (Spec, error) {
	switch s := c.Spec.(type) {
	case Spec:
		return s, nil
	case *Spec:
		return *s, nil
	}
	return Spec{}, fmt.Errorf("consumer %s: not a servicebus consumer (settings %T)", c.Name, c.Spec)
}
