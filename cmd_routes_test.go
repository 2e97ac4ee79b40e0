package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeRoutes(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func validate(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runValidate(args, &out, &errOut, getenv)
	return code, out.String(), errOut.String()
}

const accountRoutes = `consumers:
  - name: erp
    type: http
    url: https://erp.example.com/hook
    headers: {Authorization: "Bearer %ERP_TOKEN%"}
routes:
  - name: account-phone
    table: account
    messages: [Update]
    filteringAttributes: [telephone1]
    consumers: [erp]
  - name: account-revenue-up
    table: account
    changed: [revenue]
    filter: "revenue gt 1000000"
    consumers: [erp]
  - name: big-contacts
    table: contact
    consumers: [erp]
`

func TestValidate_ValidFileExitsZeroWithWarningsOnStderr(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	code, out, errOut := validate(t, envOf(map[string]string{"ERP_TOKEN": "x"}), "--routes", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := path + ": valid: 1 consumer, 3 routes\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if want := path + ":14:5: warning: changed: needs a pre-image"; !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr %q, want it to start %q", errOut, want)
	}
}

func TestValidate_InvalidFilePrintsEveryProblemAndExitsOne(t *testing.T) {
	path := writeRoutes(t, `consumers:
  - name: erp
    type: http
    url: https://erp.example.com/hook
routes:
  - name: a
    tabel: account
    consumers: [erp]
  - name: b
    table: account
    filter: "revenue gt"
    consumers: [crm]
`)
	code, out, errOut := validate(t, envOf(nil), "--routes", path)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	var got []string
	for _, l := range lines {
		got = append(got, strings.SplitN(strings.TrimPrefix(l, path+":"), ": ", 2)[0])
	}
	// The missing table, the unknown key, the filter's syntax error (inside the expression, past
	// column 14 where its text starts), the unknown consumer, then the count.
	if len(lines) != 5 || got[0] != "6:5" || got[1] != "7:5" || !strings.HasPrefix(got[2], "11:") || got[3] != "12:17" {
		t.Fatalf("stderr:\n%s", errOut)
	}
	if !strings.Contains(lines[2], ": filter: ") || lines[2] <= path+":11:14" {
		t.Errorf("filter error %q must point into the expression", lines[2])
	}
	if lines[4] != path+": 4 errors" {
		t.Errorf("last line %q", lines[4])
	}
}

func TestValidate_MissingSettingIsAnError(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	code, _, errOut := validate(t, envOf(nil), "--routes", path)
	if code != 1 || !strings.Contains(errOut, path+":5:30: headers.Authorization: setting ERP_TOKEN is not set\n") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, "Bearer") {
		t.Errorf("stderr shows the header value: %q", errOut)
	}
}

func TestValidate_ReadsTheRouteFileSetting(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	code, out, errOut := validate(t, envOf(map[string]string{"DVROUTER_ROUTES": path, "ERP_TOKEN": "x"}))
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestValidate_Usage(t *testing.T) {
	for _, args := range [][]string{{}, {"--routes"}, {"--routes", "a.yaml", "extra"}, {"--nope"}} {
		if code, _, _ := validate(t, envOf(nil), args...); code != 2 {
			t.Errorf("validate %q: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := validate(t, envOf(nil), "--routes", filepath.Join(t.TempDir(), "none.yaml")); code != 1 || !strings.Contains(errOut, "none.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

func match(t *testing.T, stdin string, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMatch(args, strings.NewReader(stdin), &out, &errOut, getenv)
	return code, out.String(), errOut.String()
}

func TestMatch_PrintsWhichRoutesMatchAndWhy(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	event := filepath.Join("testdata", "events", "update-account-async-images.json")
	// Flags after the event work too.
	code, out, errOut := match(t, "", envOf(map[string]string{"ERP_TOKEN": "x"}), event, "--routes", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got struct {
		Matched []string `json:"matched"`
		Routes  []struct {
			Name    string `json:"name"`
			Matched bool   `json:"matched"`
			Reason  string `json:"reason"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if want := []string{"account-phone", "account-revenue-up"}; !reflect.DeepEqual(got.Matched, want) {
		t.Errorf("matched %v, want %v", got.Matched, want)
	}
	if len(got.Routes) != 3 || got.Routes[2].Name != "big-contacts" || got.Routes[2].Matched || got.Routes[2].Reason != "table: account is not contact" {
		t.Errorf("routes %+v", got.Routes)
	}
}

func TestMatch_ReadsTheEventFromStdin(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	raw, err := os.ReadFile(filepath.Join("testdata", "events", "create-contact-sync.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := match(t, string(raw), envOf(map[string]string{"ERP_TOKEN": "x"}), "--routes", path, "-")
	if code != 0 || !strings.Contains(out, `"matched": [
    "big-contacts"
  ]`) {
		t.Fatalf("exit %d, stdout %s, stderr %q", code, out, errOut)
	}
}

func TestMatch_NothingMatchedPrintsAnEmptyList(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	code, out, _ := match(t, `{"MessageName":"Create","PrimaryEntityName":"lead","InputParameters":[]}`, envOf(map[string]string{"ERP_TOKEN": "x"}), "--routes", path, "-")
	if code != 0 || !strings.Contains(out, `"matched": []`) {
		t.Fatalf("exit %d, stdout %s", code, out)
	}
}

func TestMatch_InvalidEventOrRoutesExitOne(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	if code, _, errOut := match(t, `{"MessageName":`, envOf(map[string]string{"ERP_TOKEN": "x"}), "--routes", path, "-"); code != 1 || errOut == "" {
		t.Errorf("malformed event: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := match(t, `{}`, envOf(nil), "--routes", path, "-"); code != 1 || !strings.Contains(errOut, "ERP_TOKEN") {
		t.Errorf("missing setting: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := match(t, ``, envOf(nil), "--routes", path); code != 2 {
		t.Errorf("no event argument: exit %d, want 2", code)
	}
}

func TestImportFlow_PrintsTheRouteAndNotes(t *testing.T) {
	var out, errOut bytes.Buffer
	flow := filepath.Join("pkg", "route", "testdata", "flow-solution-workflow.json")
	code := runImportFlow([]string{flow, "--consumer", "erp", "--name", "contacts"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if !strings.Contains(out.String(), "routes:\n  - name: contacts\n    table: contact\n") || !strings.HasSuffix(out.String(), "    consumers: [erp]\n") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "note: scope 3 (Parent: child business units) has no equivalent") {
		t.Errorf("stderr %q", errOut.String())
	}
	// The printed route, under a consumer, is a valid route file.
	path := writeRoutes(t, "consumers:\n  - {name: erp, type: http, url: \"https://erp.example.com/hook\"}\n"+out.String())
	if code, _, errOut := validate(t, envOf(nil), "--routes", path); code != 0 {
		t.Errorf("the imported route does not validate: %s", errOut)
	}
}

func TestImportFlow_Usage(t *testing.T) {
	flow := filepath.Join("pkg", "route", "testdata", "flow-package-definition.json")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{flow}, 2}, // --consumer is required
		{[]string{"--consumer", "erp"}, 2},
		{[]string{"--consumer", "erp", filepath.Join("pkg", "route", "testdata", "flow-recurrence.json")}, 1},
		{[]string{"--consumer", "erp", "missing.json"}, 1},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		if code := runImportFlow(tc.args, &out, &errOut); code != tc.code {
			t.Errorf("import-flow %q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errOut.String())
		}
	}
}

func TestValidate_NoResolveChecksTheFileWithoutTheSettings(t *testing.T) {
	path := writeRoutes(t, accountRoutes)
	code, out, errOut := validate(t, envOf(nil), "--routes", path)
	if code != 1 || !strings.Contains(errOut, "setting ERP_TOKEN is not set") {
		t.Fatalf("without --no-resolve: exit %d, stderr %q; want 1 naming ERP_TOKEN", code, errOut)
	}
	code, out, errOut = validate(t, envOf(nil), "--no-resolve", "--routes", path)
	if code != 0 {
		t.Fatalf("--no-resolve: exit %d, stderr %q", code, errOut)
	}
	if want := path + ": valid: 1 consumer, 3 routes\n"; out != want {
		t.Fatalf("stdout %q, want %q", out, want)
	}

	bad := writeRoutes(t, strings.Replace(accountRoutes, `filter: "revenue gt 1000000"`, `filter: "revenue gt"`, 1))
	code, _, errOut = validate(t, envOf(nil), "--no-resolve", "--routes", bad)
	if code != 1 || !strings.Contains(errOut, "filter:") || strings.Contains(errOut, "not set") {
		t.Fatalf("--no-resolve on a bad filter: exit %d, stderr %q; want 1 with the filter error only", code, errOut)
	}
}

func TestImportFlow_SaysWhichTriggerItRead(t *testing.T) {
	var out, errOut bytes.Buffer
	flow := filepath.Join("pkg", "route", "testdata", "flow-package-definition.json")
	if code := runImportFlow([]string{"--consumer", "erp", flow}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	first, _, _ := strings.Cut(errOut.String(), "\n")
	if !strings.HasPrefix(first, "read trigger When_a_row_is_added,_modified_or_deleted (type OpenApiConnectionWebhook, operation SubscribeWebhookTrigger on ") ||
		!strings.Contains(first, "shared_commondataserviceforapps") {
		t.Errorf("stderr's first line %q: want the trigger read", first)
	}
}

func TestMatch_ShowsTheValuesAFailedFilterOrConditionCompared(t *testing.T) {
	path := writeRoutes(t, `consumers:
  - {name: erp, type: http, url: "https://erp.example.com/hook"}
routes:
  - name: big
    table: account
    filter: "revenue gt 2000000 or name eq 'Contoso'"
    consumers: [erp]
  - name: named
    table: account
    conditions: ["@equals(triggerBody()?['name'], 'Contoso')"]
    consumers: [erp]
`)
	code, out, errOut := match(t, "", envOf(nil), "--routes", path, filepath.Join("testdata", "events", "update-account-async-images.json"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got matchOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"filter: false: revenue gt 2000000: revenue is 1250000; name eq 'Contoso': name is 'Fabrikam'",
		"conditions[0]: false: equals(triggerBody()?['name'], 'Contoso'): triggerBody()?['name'] is 'Fabrikam'",
	}
	for i, d := range got.Routes {
		if d.Reason != want[i] {
			t.Errorf("%s: reason %q, want %q", d.Name, d.Reason, want[i])
		}
	}
}

func TestValidate_ReportsEveryErrorInAnExpression(t *testing.T) {
	path := writeRoutes(t, `consumers:
  - {name: erp, type: http, url: "https://erp.example.com/hook"}
routes:
  - name: r
    table: account
    filter: "statecode eq and frobnicate(name)"
    conditions:
      - "@and(frobnicate(1), greater(triggerBody()?['x']))"
    consumers: [erp]
`)
	code, _, errOut := validate(t, envOf(nil), "--routes", path)
	if code != 1 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := path + `:6:27: filter: expected a value, found the operator "and"
` + path + `:6:31: filter: unknown or unsupported function frobnicate; supported: contains, startswith, endswith, tolower, toupper
` + path + `:8:15: conditions[0]: unknown or unsupported function frobnicate(); see pkg/wdl/README.md for the supported list
` + path + `:8:30: conditions[0]: greater() takes 2 argument(s), found 1
` + path + `: 4 errors
`
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
}
