package config

import (
	"reflect"
	"strings"
	"testing"
)

const oneRoute = `routes:
  - {name: a, table: contact, consumers: [erp]}
`

func TestLoadRoutes_LookupsAreReadPerTable(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+oneRoute+`lookups:
  contact: [new_projectid, parentcustomerid]
  new_invoice: [new_contractid]
  account: []
`)
	want := map[string][]string{
		"contact":     {"new_projectid", "parentcustomerid"},
		"new_invoice": {"new_contractid"},
	}
	if !reflect.DeepEqual(rf.Lookups, want) {
		t.Errorf("lookups = %#v, want %#v", rf.Lookups, want)
	}
}

func TestLoadRoutes_LookupsInJSON(t *testing.T) {
	rf := mustLoad(t, `{"consumers": [{"name": "erp", "type": "http", "url": "https://erp.example.com/hook"}],
 "routes": [{"name": "a", "table": "contact", "consumers": ["erp"]}],
 "lookups": {"contact": ["new_projectid"]}}`)
	if want := map[string][]string{"contact": {"new_projectid"}}; !reflect.DeepEqual(rf.Lookups, want) {
		t.Errorf("lookups = %#v, want %#v", rf.Lookups, want)
	}
}

func TestLoadRoutes_NoLookupsIsNil(t *testing.T) {
	for _, src := range []string{minimalConsumer + oneRoute, minimalConsumer + oneRoute + "lookups:\n", minimalConsumer + oneRoute + "lookups: {}\n"} {
		if rf := mustLoad(t, src); rf.Lookups != nil {
			t.Errorf("lookups = %#v, want nil for:\n%s", rf.Lookups, src)
		}
	}
}

func TestLoadRoutes_LookupsErrors(t *testing.T) {
	// minimalConsumer and oneRoute take lines 1 to 6; lookups: is line 7.
	for _, tc := range []struct {
		name, lookups, want string
	}{
		{"not a mapping", "lookups: [new_projectid]\n",
			`r.yaml:7:10: lookups: want a mapping, got a list`},
		{"columns not a list", "lookups:\n  contact: new_projectid\n",
			`r.yaml:8:12: lookups.contact: want a list such as [a, b], got a string`},
		{"column not a string", "lookups:\n  contact: [new_projectid, {a: b}]\n",
			`r.yaml:8:28: lookups.contact[1]: want a string, got a mapping`},
		{"table in upper case", "lookups:\n  Contact: [new_projectid]\n",
			`r.yaml:8:3: lookups: table "Contact": logical names are lower case: write "contact"`},
		{"table not a logical name", "lookups:\n  \"con tact\": [new_projectid]\n",
			`r.yaml:8:3: lookups: table "con tact" is not a logical name (lower-case letters, digits and '_', starting with a letter)`},
		{"table wildcard", "lookups:\n  \"*\": [new_projectid]\n",
			`r.yaml:8:3: lookups: table "*" is not a logical name (lower-case letters, digits and '_', starting with a letter)`},
		{"column in upper case", "lookups:\n  contact: [firstname, New_ProjectId]\n",
			`r.yaml:8:24: lookups.contact: column "New_ProjectId": logical names are lower case: write "new_projectid"`},
		{"column as its Web API key", "lookups:\n  contact:\n    - _new_projectid_value\n",
			`r.yaml:9:7: lookups.contact: column "_new_projectid_value": write the column's logical name "new_projectid", not its Web API key`},
		{"column not a logical name", "lookups:\n  contact: [new-projectid]\n",
			`r.yaml:8:13: lookups.contact: column "new-projectid" is not a logical name (lower-case letters, digits and '_', starting with a letter)`},
		{"duplicate table", "lookups:\n  contact: [a]\n  contact: [b]\n",
			`r.yaml:9:3: duplicate key "contact" (first at 8:3)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErr(t, minimalConsumer+oneRoute+tc.lookups)
			if !contains(got, tc.want) {
				t.Errorf("problems:\n  %s\nwant among them:\n  %s", strings.Join(got, "\n  "), tc.want)
			}
		})
	}
}

func TestLoadRoutes_LookupsListedTwiceIsAWarning(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+oneRoute+"lookups:\n  contact: [new_projectid, new_projectid]\n")
	if want := `r.yaml:8:28: warning: lookups.contact: "new_projectid" is listed twice`; !contains(rf.Warnings, want) {
		t.Errorf("warnings:\n  %s\nwant among them:\n  %s", strings.Join(rf.Warnings, "\n  "), want)
	}
	if want := map[string][]string{"contact": {"new_projectid"}}; !reflect.DeepEqual(rf.Lookups, want) {
		t.Errorf("lookups = %#v, want %#v", rf.Lookups, want)
	}
}
