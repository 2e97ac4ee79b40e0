package config

import (
	"slices"
	"strings"
	"testing"
)

func TestLoadRoutes_SourceAndReconcile(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+`routes:
  - {name: a, table: account, source: changes, consumers: [erp]}
  - {name: b, table: contact, source: Both, reconcile: true, consumers: [erp]}
  - {name: c, table: lead, consumers: [erp]}
`)
	got := []string{rf.Routes[0].Source, rf.Routes[1].Source, rf.Routes[2].Source}
	if !slices.Equal(got, []string{"changes", "both", ""}) || !rf.Routes[1].Reconcile {
		t.Fatalf("sources %q, reconcile %v", got, rf.Routes[1].Reconcile)
	}
	if !rf.Routes[0].TakesChanges() || rf.Routes[0].TakesPlugin() || !rf.Routes[1].TakesPlugin() || rf.Routes[2].TakesChanges() {
		t.Fatal("TakesChanges/TakesPlugin disagree with the sources")
	}
	if tables := rf.ChangeTables(); !slices.Equal(tables, []string{"account", "contact"}) {
		t.Fatalf("ChangeTables = %q", tables)
	}
}

func TestLoadRoutes_SourceErrors(t *testing.T) {
	cases := []struct{ name, route, want string }{
		{"unknown source", `{name: a, table: account, source: poll, consumers: [erp]}`,
			`r.yaml:6:39: source: "poll": want plugin (the default: the Dataverse step's webhook or queue), changes (change tracking) or both`},
		{"reconcile without both", `{name: a, table: account, source: changes, reconcile: true, consumers: [erp]}`,
			`r.yaml:6:48: reconcile: applies to a route with source: both (the plugin step and change tracking)`},
		{"any table", `{name: a, table: "*", source: changes, consumers: [erp]}`,
			`r.yaml:6:15: table: "*" cannot be read by change tracking: name the table (source: changes)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := loadErr(t, minimalConsumer+"routes:\n  - "+tc.route+"\n")
			if !slices.Contains(errs, tc.want) {
				t.Errorf("errors:\n  %s\nwant among them:\n  %s", strings.Join(errs, "\n  "), tc.want)
			}
		})
	}
}

func TestLoadRoutes_WarnsAboutWhatChangeTrackingCannotGive(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+`routes:
  - name: a
    table: account
    source: changes
    messages: [Create]
    filteringAttributes: [name]
    changed: [name]
    stage: 40
    conditions: ["@equals(triggerBody()?['UserId'], 'x')"]
    consumers: [erp]
`)
	for _, want := range []string{
		"change tracking does not tell Create from Update",
		"filteringAttributes: change tracking gives no list of changed columns",
		"changed: change tracking gives no pre-image",
		"stage and mode: apply to plugin events only",
		"conditions[0]: reads UserId",
	} {
		found := false
		for _, w := range rf.Warnings {
			found = found || strings.Contains(w, want)
		}
		if !found {
			t.Errorf("warnings:\n  %s\nwant one saying %q", strings.Join(rf.Warnings, "\n  "), want)
		}
	}
}
