package config

// This file loads a route's `source` and `reconcile` keys: whether the route takes the plugin
// step's events (webhook or queue), the change-tracking reader's (pkg/changes), or both, and
// warns about what a change-tracking event cannot carry.

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Route sources.
const (
	SourcePlugin  = "plugin"
	SourceChanges = "changes"
	SourceBoth    = "both"
)

// TakesChanges reports whether the route takes change-tracking events.
func (r Route) TakesChanges() bool { return r.Source == SourceChanges || r.Source == SourceBoth }

// TakesPlugin reports whether the route takes the plugin step's events.
func (r Route) TakesPlugin() bool {
	return r.Source == "" || r.Source == SourcePlugin || r.Source == SourceBoth
}

// ChangeTables lists the tables that some route reads by change tracking, in file order.
func (f *RouteFile) ChangeTables() []string {
	var out []string
	for _, r := range f.Routes {
		if r.TakesChanges() && r.Table != "*" && !contains(out, r.Table) {
			out = append(out, r.Table)
		}
	}
	return out
}

func (l *loader) routeSource(f field, r *Route) {
	v := deref(f.val)
	switch f.key.Value {
	case "source":
		if s, ok := l.str(f); ok {
			switch strings.ToLower(s) {
			case SourcePlugin, SourceChanges, SourceBoth:
				r.Source = strings.ToLower(s)
			default:
				l.errorf(v, "source: %q: want plugin (the default: the Dataverse step's webhook or queue), changes (change tracking) or both", s)
			}
		}
	case "reconcile":
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
			l.errorf(v, "reconcile: want true or false, got %s", describe(v))
			return
		}
		r.Reconcile = v.Value == "true"
	}
}

// checkSource reports what a change-tracking route asks for that change tracking cannot give:
// it reads rows as they are now, with no pre-image, no list of changed columns, no user or
// stage, and without telling a create from an update.
func (l *loader) checkSource(r *Route, have map[string]*yaml.Node, consumers map[string]*Consumer) {
	switch {
	case r.Reconcile && r.Source != SourceBoth:
		l.errorf(have["reconcile"], "reconcile: applies to a route with source: both (the plugin step and change tracking)")
	case r.Reconcile:
		l.warnf(have["reconcile"], "reconcile: needs the plugin step's post-image to hold versionnumber; a plugin event without it does not count, and its change is sent again by change tracking")
	}
	if !r.TakesChanges() {
		return
	}
	src := have["source"]
	if r.Table == "*" {
		l.errorf(have["table"], "table: \"*\" cannot be read by change tracking: name the table (source: %s)", r.Source)
	}
	if len(r.Messages) > 0 {
		create, update := contains(r.Messages, "Create"), contains(r.Messages, "Update")
		if create != update {
			l.warnf(have["messages"], "messages: change tracking does not tell Create from Update: every changed row comes as Upsert and matches this route (source: %s)", r.Source)
		}
	}
	if len(r.FilteringAttributes) > 0 {
		l.warnf(have["filteringAttributes"], "filteringAttributes: change tracking gives no list of changed columns: a changed row matches whatever columns changed (source: %s)", r.Source)
	}
	if len(r.Changed) > 0 {
		l.warnf(have["changed"], "changed: change tracking gives no pre-image: a changed row counts as changed in every listed column (source: %s)", r.Source)
	}
	if r.Stage != 0 || r.Mode != "" {
		key := have["stage"]
		if key == nil {
			key = have["mode"]
		}
		l.warnf(key, "stage and mode: apply to plugin events only; change tracking events have neither and are not held to them (source: %s)", r.Source)
	}
	for i, c := range r.Conditions {
		for _, ctx := range []string{"UserId", "InitiatingUserId", "SdkMessage", "Stage", "Depth"} {
			if strings.Contains(c, "'"+ctx+"'") || strings.Contains(c, "."+ctx) {
				l.warnf(src, "conditions[%d]: reads %s, which change tracking events do not carry (source: %s)", i, ctx, r.Source)
			}
		}
	}
	for _, name := range r.Consumers {
		if c := consumers[name]; c != nil && c.Format == "raw" {
			l.warnf(src, "consumer %q takes format raw: for a change-tracking event that is the row as the Web API returned it, not a RemoteExecutionContext", name)
		}
	}
}
