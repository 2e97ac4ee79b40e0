package dvdest_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver/dvdest"
)

var settings = map[string]string{"DVROUTER_DATAVERSE_ENVIRONMENTS": "contoso=https://contoso.crm4.dynamics.com; https://fabrikam.crm.dynamics.com", "ERP_ENV": "https://erp.crm4.dynamics.com"}

func load(src string) (*config.RouteFile, error) {
	return config.LoadRoutesBytes("r.yaml", []byte(src+"routes:\n  - {name: r, table: contact, consumers: [m]}\n"), func(k string) (string, bool) {
		v, ok := settings[k]
		return v, ok
	})
}

func TestConfig_ReadsEveryKey(t *testing.T) {
	rf, err := load(`consumers:
  - name: m
    type: dataverse
    environment: Contoso
    table: new_contactmirror
    key: [new_sourceid, new_system]
    mode: Create
    columns:
      new_sourceid: contactid
      new_name: FullName
      new_system: {value: crm}
      new_rank: {value: 3}
      new_Account: {table: account, key: {accountnumber: new_accountnumber}}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := dvdest.Spec{
		Environment: "https://contoso.crm4.dynamics.com", Table: "new_contactmirror", Key: []string{"new_sourceid", "new_system"}, Mode: "create",
		Columns: []dvdest.Column{
			{Target: "new_sourceid", From: "contactid"},
			{Target: "new_name", From: "fullname"},
			{Target: "new_system", Const: true, Value: "crm"},
			{Target: "new_rank", Const: true, Value: json.Number("3")},
			{Target: "new_Account", Lookup: &dvdest.Lookup{Table: "account", Key: []dvdest.KeyFrom{{Column: "accountnumber", From: "new_accountnumber"}}}},
		},
	}
	if got := rf.Consumers[0].Spec; !reflect.DeepEqual(got, want) {
		t.Errorf("spec =\n%#v\nwant\n%#v", got, want)
	}
}

func TestConfig_EnvironmentByURLSettingOrHost(t *testing.T) {
	for env, want := range map[string]string{
		`"%ERP_ENV%"`:                    "https://erp.crm4.dynamics.com",
		"https://Other.crm.dynamics.com": "https://other.crm.dynamics.com",
		"fabrikam.crm.dynamics.com":      "https://fabrikam.crm.dynamics.com",
	} {
		rf, err := load("consumers:\n  - {name: m, type: dataverse, table: t, key: [k], environment: " + env + "}\n")
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if got := rf.Consumers[0].Spec.(dvdest.Spec).Environment; got != want {
			t.Errorf("%s: environment %q, want %q", env, got, want)
		}
	}
}

func TestConfig_ErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct{ name, consumer, want string }{
		{"missing keys", "  - {name: m, type: dataverse}\n", `r.yaml:2:5: consumer "m": table is required for a dataverse consumer (the target table's logical name)`},
		{"unknown environment", "  - {name: m, type: dataverse, environment: nope, table: t, key: [k]}\n", `r.yaml:2:45: environment: "nope" is not named in setting DVROUTER_DATAVERSE_ENVIRONMENTS (it names contoso, fabrikam.crm.dynamics.com)`},
		{"http environment", "  - {name: m, type: dataverse, environment: \"http://x.example.com\", table: t, key: [k]}\n", `r.yaml:2:45: environment: "http://x.example.com" must be an https URL`},
		{"table in capitals", "  - {name: m, type: dataverse, environment: contoso, table: Contact, key: [k]}\n", `r.yaml:2:61: table: "Contact": logical names are lower case: write "contact"`},
		{"empty key", "  - {name: m, type: dataverse, environment: contoso, table: t, key: []}\n", `r.yaml:2:69: key: empty: list the columns of the target table's alternate key`},
		{"bad mode", "  - {name: m, type: dataverse, environment: contoso, table: t, key: [k], mode: merge}\n", `r.yaml:2:80: mode: "merge": want upsert (create or update), update (never create) or create (never update)`},
		{"lookup without key", "  - {name: m, type: dataverse, environment: contoso, table: t, key: [k], columns: {new_A: {table: account}}}\n", `r.yaml:2:91: columns.new_A: want an event column, {value: constant}, or a lookup {table: <table>, key: {<key column>: <event column>}}`},
		{"bad source", "  - {name: m, type: dataverse, environment: contoso, table: t, key: [k], columns: {a: 'x y'}}\n", `r.yaml:2:87: columns.a: "x y" is not an event column (a logical name, or _x_value for a lookup's id); a constant is written {value: ...}`},
		{"http key on a dataverse consumer", "  - {name: m, type: dataverse, environment: contoso, table: t, key: [k], url: 'https://x'}\n", `r.yaml:2:74: url: belongs to an http consumer, not a dataverse one`},
		{"dataverse key on an http consumer", "  - {name: m, type: http, url: 'https://x.example.com', table: t}\n", `r.yaml:2:57: table: belongs to a dataverse consumer, not an http one`},
		{"unknown type lists the kinds", "  - {name: m, type: ftp}\n", `r.yaml:2:21: type: "ftp" is not a consumer type: want http, servicebus or dataverse`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load("consumers:\n" + tc.consumer)
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.String() == tc.want {
					return
				}
			}
			t.Errorf("problems:\n  %s\nwant among them:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "), tc.want)
		})
	}
}
