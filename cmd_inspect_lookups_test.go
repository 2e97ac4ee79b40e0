package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// clearsProject is an Update whose Target clears the custom lookup new_projectid of a contact,
// with no image that shows it is a lookup.
const clearsProject = `{"MessageName":"Update","PrimaryEntityName":"contact","PrimaryEntityId":"11111111-2222-4333-8444-555555555555",` +
	`"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",` +
	`"Attributes":[{"key":"new_projectid","value":null}],"FormattedValues":[],` +
	`"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}]}`

const projectLookupRoutes = `consumers:
  - {name: erp, type: http, url: "https://erp.example.com/hook"}
routes:
  - {name: contacts, table: contact, consumers: [erp]}
lookups:
  contact: [new_projectid]
`

func inspectedRow(t *testing.T, out string) map[string]any {
	t.Helper()
	var ev struct {
		Row map[string]any `json:"row"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	return ev.Row
}

func TestInspect_RoutesFileLookupHintsShapeTheClearedLookup(t *testing.T) {
	code, out, errOut := inspect(t, clearsProject, "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if row := inspectedRow(t, out); row["new_projectid"] != nil || !hasKey(row, "new_projectid") || hasKey(row, "_new_projectid_value") {
		t.Errorf("without --routes: row = %v, want new_projectid: null as the context has it", row)
	}

	code, out, errOut = inspect(t, clearsProject, "--routes", writeRoutes(t, projectLookupRoutes), "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if row := inspectedRow(t, out); !hasKey(row, "_new_projectid_value") || row["_new_projectid_value"] != nil || hasKey(row, "new_projectid") {
		t.Errorf("with --routes: row = %v, want _new_projectid_value: null and no new_projectid", row)
	}
}

func TestInspect_InvalidRoutesFileIsReportedWithItsPosition(t *testing.T) {
	path := writeRoutes(t, strings.Replace(projectLookupRoutes, "contact: [new_projectid]", "Contact: [new_projectid]", 1))
	code, out, errOut := inspect(t, clearsProject, "--routes", path, "-")
	if want := path + `:6:3: lookups: table "Contact": logical names are lower case: write "contact"`; code != 1 || out != "" || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}
