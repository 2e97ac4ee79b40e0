package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/odata"
	"github.com/dvrouter/dvrouter/pkg/wdl"
)

const consumersYAML = `consumers:
  - name: erp
    type: http
    url: https://erp.example.com/hook
routes:
`

// compile loads routes (YAML list items under routes:) and compiles them.
func compile(t testing.TB, routes string, opts Options) *Set {
	t.Helper()
	rf, err := config.LoadRoutesBytes("r.yaml", []byte(consumersYAML+routes), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	s, err := Compile(rf, opts)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

// one compiles a single route from its keys (name, table and consumers are filled in).
func one(t testing.TB, keys string) *Set {
	t.Helper()
	return compile(t, "  - name: r\n    consumers: [erp]\n"+indent(keys), Options{})
}

func indent(keys string) string {
	if !strings.Contains(keys, "table:") {
		keys = "table: '*'\n" + keys
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(keys, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func num(s string) json.Number { return json.Number(s) }

// update is an Update event on contact: row is the Target merged over the post-image, target
// names the Target's columns.
func update(row dataverse.Row, target ...string) *dataverse.Event {
	if row == nil {
		row = dataverse.Row{}
	}
	row["SdkMessage"] = "Update"
	return &dataverse.Event{ID: "ev1", Message: "Update", Table: "contact", Stage: 40, Mode: "async",
		Row: row, ChangedColumns: target}
}

func withPre(ev *dataverse.Event, pre dataverse.Row) *dataverse.Event {
	ev.PreImage, ev.HasPreImage = pre, true
	return ev
}

func matches(s *Set, ev *dataverse.Event) bool { return len(s.Match(ev)) == 1 }

type matchCase struct {
	name  string
	route string
	ev    *dataverse.Event
	want  bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := one(t, tc.route)
			if got := matches(s, tc.ev); got != tc.want {
				t.Errorf("matched = %v, want %v (%s)", got, tc.want, s.Explain(tc.ev)[0].Reason)
			}
		})
	}
}

func TestMatch_Table(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"star matches any table", "table: '*'", update(nil), true},
		{"same table", "table: contact", update(nil), true},
		{"case-insensitive", "table: Contact", &dataverse.Event{Message: "Update", Table: "CONTACT"}, true},
		{"other table", "table: account", update(nil), false},
	})
}

func TestMatch_Messages(t *testing.T) {
	custom := &dataverse.Event{Message: "new_Approve", Table: "contact"}
	runMatchCases(t, []matchCase{
		{"absent matches any message", "", &dataverse.Event{Message: "Delete", Table: "contact"}, true},
		{"listed", "messages: [Create, Update]", update(nil), true},
		{"not listed", "messages: [Create, Delete]", update(nil), false},
		{"custom message", "messages: [new_approve]", custom, true},
		{"custom message not listed", "messages: [Update]", custom, false},
	})
}

func TestMatch_StageAndMode(t *testing.T) {
	sync20 := &dataverse.Event{Message: "Update", Table: "contact", Stage: 20, Mode: "sync"}
	runMatchCases(t, []matchCase{
		{"stage by number", "stage: 20", sync20, true},
		{"stage by name", "stage: preoperation", sync20, true},
		{"other stage", "stage: 40", sync20, false},
		{"mode", "mode: sync", sync20, true},
		{"other mode", "mode: async", sync20, false},
		{"absent matches any", "", sync20, true},
	})
}

func TestMatch_FilteringAttributes(t *testing.T) {
	create := &dataverse.Event{Message: "Create", Table: "contact", Row: dataverse.Row{"firstname": "Ada"}}
	runMatchCases(t, []matchCase{
		{"one of them in the Target", "filteringAttributes: [lastname, emailaddress1]", update(nil, "emailaddress1", "firstname"), true},
		{"none in the Target", "filteringAttributes: [lastname]", update(nil, "firstname"), false},
		{"fires even when the value did not change", "filteringAttributes: [lastname]",
			withPre(update(dataverse.Row{"lastname": "X"}, "lastname"), dataverse.Row{"lastname": "X"}), true},
		{"cleared column is in the Target", "filteringAttributes: [telephone1]", update(dataverse.Row{"telephone1": nil}, "telephone1"), true},
		{"lookup by logical name", "filteringAttributes: [parentcustomerid]", update(nil, "parentcustomerid"), true},
		{"lookup by Web API name", "filteringAttributes: [_parentcustomerid_value]", update(nil, "parentcustomerid"), true},
		{"modifiedon is on every update", "filteringAttributes: [modifiedon]", update(nil, "firstname"), true},
		{"does not apply to Create", "filteringAttributes: [lastname]", create, true},
	})
}

func TestMatch_Changed(t *testing.T) {
	create := &dataverse.Event{Message: "Create", Table: "contact", Row: dataverse.Row{"firstname": "Ada"}}
	runMatchCases(t, []matchCase{
		{"value differs", "changed: [lastname]",
			withPre(update(dataverse.Row{"lastname": "Byron"}, "lastname"), dataverse.Row{"lastname": "King"}), true},
		{"same value", "changed: [lastname]",
			withPre(update(dataverse.Row{"lastname": "King"}, "lastname"), dataverse.Row{"lastname": "King"}), false},
		{"strings compare exactly", "changed: [lastname]",
			withPre(update(dataverse.Row{"lastname": "king"}, "lastname"), dataverse.Row{"lastname": "King"}), true},
		{"numbers compare by value", "changed: [creditlimit]",
			withPre(update(dataverse.Row{"creditlimit": num("100")}, "creditlimit"), dataverse.Row{"creditlimit": num("100.0000")}), false},
		{"numbers that differ", "changed: [creditlimit]",
			withPre(update(dataverse.Row{"creditlimit": num("100.5")}, "creditlimit"), dataverse.Row{"creditlimit": num("100")}), true},
		{"big whole numbers keep precision", "changed: [new_big]",
			withPre(update(dataverse.Row{"new_big": num("9007199254740993")}, "new_big"), dataverse.Row{"new_big": num("9007199254740992")}), true},
		{"number and string differ", "changed: [statuscode]",
			withPre(update(dataverse.Row{"statuscode": num("1")}, "statuscode"), dataverse.Row{"statuscode": "1"}), true},
		{"set where the pre-image had null (absent)", "changed: [telephone1]",
			withPre(update(dataverse.Row{"telephone1": "555"}, "telephone1"), dataverse.Row{}), true},
		{"cleared where the pre-image had a value", "changed: [telephone1]",
			withPre(update(dataverse.Row{"telephone1": nil}, "telephone1"), dataverse.Row{"telephone1": "555"}), true},
		{"cleared where the pre-image had null (absent)", "changed: [telephone1]",
			withPre(update(dataverse.Row{"telephone1": nil}, "telephone1"), dataverse.Row{}), false},
		{"column not in the Target", "changed: [lastname]",
			withPre(update(dataverse.Row{"lastname": "Byron"}, "firstname"), dataverse.Row{"lastname": "King"}), false},
		{"no pre-image: a Target column counts as changed", "changed: [lastname]",
			update(dataverse.Row{"lastname": "King"}, "lastname"), true},
		{"no pre-image: a column outside the Target did not change", "changed: [lastname]",
			update(dataverse.Row{"lastname": "King"}, "firstname"), false},
		{"lookup compared by id", "changed: [parentcustomerid]",
			withPre(update(dataverse.Row{"_parentcustomerid_value": "b"}, "parentcustomerid"), dataverse.Row{"_parentcustomerid_value": "a"}), true},
		{"lookup with the same id", "changed: [_parentcustomerid_value]",
			withPre(update(dataverse.Row{"_parentcustomerid_value": "a"}, "parentcustomerid"), dataverse.Row{"_parentcustomerid_value": "a"}), false},
		{"any of several", "changed: [firstname, lastname]",
			withPre(update(dataverse.Row{"firstname": "A", "lastname": "B"}, "firstname", "lastname"), dataverse.Row{"firstname": "A", "lastname": "C"}), true},
		{"does not apply to Create", "changed: [lastname]", create, true},
	})
}

func TestMatch_Filter(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"true", "filter: statecode eq 0", update(dataverse.Row{"statecode": num("0")}), true},
		{"false", "filter: statecode eq 1", update(dataverse.Row{"statecode": num("0")}), false},
		{"missing column is null", "filter: telephone1 eq null", update(nil), true},
		{"comparing null is never true", "filter: telephone1 ne '555'", update(nil), false},
		{"sees SdkMessage", "filter: SdkMessage eq 'Update'", update(nil), true},
	})
}

func TestMatch_ConditionsMustAllHold(t *testing.T) {
	row := func() dataverse.Row { return dataverse.Row{"statecode": num("1"), "stepname": "Won"} }
	runMatchCases(t, []matchCase{
		{"all true", `conditions:
  - "@equals(triggerOutputs()?['body/statecode'], 1)"
  - "@equals(triggerBody()?['stepname'], 'Won')"`, update(row()), true},
		{"second false", `conditions:
  - "@equals(triggerOutputs()?['body/statecode'], 1)"
  - "@equals(triggerBody()?['stepname'], 'Lost')"`, update(row()), false},
	})
}

func TestMatch_ConditionErrorIsNotAMatchAndIsLogged(t *testing.T) {
	var logs bytes.Buffer
	s := compile(t, `  - name: broken
    table: contact
    conditions: ["@greater(int(triggerBody()?['lastname']), 1)"]
    consumers: [erp]
  - name: fine
    table: contact
    consumers: [erp]
`, Options{Logger: zerolog.New(&logs)})
	got := s.Match(update(dataverse.Row{"lastname": "King"}))
	if len(got) != 1 || got[0].Name != "fine" {
		t.Fatalf("matched %v, want only fine", routeNames(got))
	}
	var entry map[string]any
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if entry["level"] != "warn" || entry["route"] != "broken" || entry["error"] == nil || entry["eventId"] != "ev1" {
		t.Errorf("log entry %v: want level warn, route broken, an error and the event id", entry)
	}
}

func TestMatch_ReturnsRoutesInFileOrder(t *testing.T) {
	s := compile(t, `  - {name: c, table: contact, consumers: [erp]}
  - {name: a, table: account, consumers: [erp]}
  - {name: b, table: '*', consumers: [erp], select: [fullname], exclude: [birthdate]}
`, Options{})
	got := s.Match(update(nil))
	if names := routeNames(got); !reflect.DeepEqual(names, []string{"c", "b"}) {
		t.Fatalf("matched %v, want [c b]", names)
	}
	b := got[1]
	if !reflect.DeepEqual(b.Consumers, []string{"erp"}) || !reflect.DeepEqual(b.Select, []string{"fullname"}) || !reflect.DeepEqual(b.Exclude, []string{"birthdate"}) {
		t.Errorf("route b = %+v", b)
	}
	if s.Len() != 3 || s.Route("a") == nil || s.Route("zz") != nil {
		t.Errorf("Len/Route lookups wrong")
	}
}

func routeNames(rs []*Route) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestExplain_SaysWhichTestFailed(t *testing.T) {
	ev := withPre(update(dataverse.Row{"name": "x", "statecode": num("0"), "lastname": "King"}, "lastname"), dataverse.Row{"lastname": "King"})
	cases := []struct {
		route, want string
	}{
		{"table: opportunity", "table: contact is not opportunity"},
		{"messages: [Create, Delete]", "messages: Update is not in [Create, Delete]"},
		{"stage: 20", "stage: 40 is not 20"},
		{"mode: sync", "mode: async is not sync"},
		{"filteringAttributes: [name]", "filteringAttributes: none of [name] in Target"},
		{"changed: [lastname]", "changed: none of [lastname] differs from the pre-image"},
		{"filter: statecode eq 1", "filter: false: statecode eq 1: statecode is 0"},
		{"filter: statecode eq 0 and name eq 'y'", "filter: false: name eq 'y': name is 'x'"},
		{"conditions: ['@true', '@false']", "conditions[1]: false"},
		{`conditions: ["@equals(triggerBody()?['lastname'], 'Queen')"]`, "conditions[0]: false: equals(triggerBody()?['lastname'], 'Queen'): triggerBody()?['lastname'] is 'King'"},
		{`conditions: ["@greater(int(triggerBody()?['name']), 1)"]`, "conditions[0]: error: "},
		{"filter: statecode eq 0", "matched"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			d := one(t, tc.route).Explain(ev)
			if len(d) != 1 || d[0].Name != "r" {
				t.Fatalf("decisions %+v", d)
			}
			exact := !strings.HasSuffix(tc.want, ": ") // an error's text is the wdl package's
			if (exact && d[0].Reason != tc.want) || !strings.HasPrefix(d[0].Reason, tc.want) || d[0].Matched != (tc.want == "matched") {
				t.Errorf("decision %+v, want reason %q", d[0], tc.want)
			}
		})
	}
}

func TestCompile_ExpressionErrorsPointIntoTheExpression(t *testing.T) {
	filter := "statecode eq 'open"
	cond0 := "@equals(triggerBody()?['x'], 1"
	cond1 := "@and(\n  equals(1, 1),\n  frobnicate(2))\n"
	rf, err := config.LoadRoutesBytes("r.yaml", []byte(consumersYAML+`  - name: a
    table: contact
    filter: "`+filter+`"
    conditions:
      - "`+cond0+`"
      - |
        @and(
          equals(1, 1),
          frobnicate(2))
    consumers: [erp]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(rf, Options{})
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *config.ValidationError", err)
	}
	if len(ve.Problems) != 3 {
		t.Fatalf("problems %v, want 3", ve.Problems)
	}
	// Where each expression's error is, by the expression packages' own offsets: the filter's
	// text starts at 8:14, the first condition's at 10:10, the block's first line is line 12,
	// indented to column 9.
	off := func(err error) int {
		var oe *odata.Error
		var we *wdl.Error
		switch {
		case errors.As(err, &oe):
			return oe.Offset
		case errors.As(err, &we):
			return we.Offset
		}
		t.Fatalf("error %v carries no offset", err)
		return 0
	}
	_, e0 := odata.Compile(filter)
	_, e1 := wdl.Compile(cond0)
	_, e2 := wdl.Compile(cond1)
	line2 := strings.LastIndexByte(cond1[:off(e2)], '\n') + 1
	wantPos := []config.Pos{{Line: 8, Col: 14 + off(e0)}, {Line: 10, Col: 10 + off(e1)},
		{Line: 12 + strings.Count(cond1[:off(e2)], "\n"), Col: 9 + off(e2) - line2}}
	if wantPos[2].Line != 14 || wantPos[2].Col != 11 {
		t.Fatalf("wdl places the error in %q at offset %d, expected at frobnicate", cond1, off(e2))
	}
	wantPrefix := []string{"filter: ", "conditions[0]: ", "conditions[1]: "}
	for i, p := range ve.Problems {
		if p.Pos != wantPos[i] || !strings.HasPrefix(p.Msg, wantPrefix[i]) || p.File != "r.yaml" {
			t.Errorf("problem %d = %s, want at %d:%d starting %q", i, p, wantPos[i].Line, wantPos[i].Col, wantPrefix[i])
		}
	}
}

func TestCompile_NilFileIsEmpty(t *testing.T) {
	s, err := Compile(nil, Options{})
	if err != nil || s.Len() != 0 || len(s.Match(update(nil))) != 0 {
		t.Fatalf("Compile(nil) = %v, %v", s, err)
	}
}

// TestPowerAutomateCompatibility holds expressions as a flow on the Dataverse trigger would carry
// them (filter rows, trigger conditions), with the decision the flow makes for each row.
func TestPowerAutomateCompatibility(t *testing.T) {
	account := func() dataverse.Row {
		return dataverse.Row{
			"SdkMessage": "Update", "accountid": "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d",
			"name": "Contoso Ltd", "statecode": num("0"), "statuscode": num("1"),
			"revenue": num("2500000.0000"), "numberofemployees": num("120"),
			"_primarycontactid_value": "3c8a1f52-6d4b-ef11-8409-000d3a1b2c3d",
			"_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname":  "contact",
			"_primarycontactid_value@OData.Community.Display.V1.FormattedValue": "Ada Lovelace",
			"industrycode": num("7"), "industrycode@OData.Community.Display.V1.FormattedValue": "Consulting",
			"createdon": "2024-07-25T10:00:00Z", "telephone1": nil,
		}
	}
	cases := []struct {
		name   string
		filter string
		conds  []string
		want   bool
	}{
		{"filter: choice equals", "statecode eq 0", nil, true},
		{"filter: money greater than", "revenue gt 1000000", nil, true},
		{"filter: and/or with parentheses", "(statecode eq 1 or revenue gt 1000000) and numberofemployees lt 500", nil, true},
		{"filter: contains ignores case as Dataverse does", "contains(name, 'contoso')", nil, true},
		{"filter: startswith", "startswith(name, 'Fabrikam')", nil, false},
		{"filter: lookup by unquoted GUID", "_primarycontactid_value eq 3c8a1f52-6d4b-ef11-8409-000d3a1b2c3d", nil, true},
		{"filter: date-time compared as an instant", "createdon ge 2024-07-25T00:00:00Z", nil, true},
		{"filter: null column equals null", "telephone1 eq null", nil, true},
		{"filter: missing column ne null is false", "fax ne null", nil, false},
		{"filter: in list", "industrycode in (3, 7, 9)", nil, true},
		{"condition: choice equals", "", []string{"@equals(triggerOutputs()?['body/statecode'], 0)"}, true},
		{"condition: SdkMessage", "", []string{"@equals(triggerOutputs()?['body/SdkMessage'], 'Update')"}, true},
		{"condition: or over text", "", []string{"@or(equals(triggerOutputs()?['body/name'], 'Fabrikam'), equals(triggerOutputs()?['body/name'], 'Contoso Ltd'))"}, true},
		{"condition: greater on money", "", []string{"@greater(triggerBody()?['revenue'], 5000000)"}, false},
		{"condition: formatted value", "", []string{"@equals(triggerOutputs()?['body/industrycode@OData.Community.Display.V1.FormattedValue'], 'Consulting')"}, true},
		{"condition: empty on null", "", []string{"@empty(triggerOutputs()?['body/telephone1'])"}, true},
		{"condition: not equals null on a lookup", "", []string{"@not(equals(triggerOutputs()?['body/_primarycontactid_value'], null))"}, true},
		{"condition: missing column is null", "", []string{"@equals(triggerOutputs()?['body/fax'], null)"}, true},
		{"conditions are ANDed", "", []string{"@equals(triggerBody()?['statecode'], 0)", "@greater(triggerBody()?['numberofemployees'], 500)"}, false},
		{"filter and condition together", "statecode eq 0", []string{"@contains(triggerBody()?['name'], 'Ltd')"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys := "table: account\n"
			if tc.filter != "" {
				b, _ := json.Marshal(tc.filter)
				keys += "filter: " + string(b) + "\n"
			}
			if len(tc.conds) > 0 {
				keys += "conditions:\n"
				for _, c := range tc.conds {
					b, _ := json.Marshal(c)
					keys += "  - " + string(b) + "\n"
				}
			}
			s := one(t, keys)
			ev := &dataverse.Event{Message: "Update", Table: "account", Row: account(), ChangedColumns: []string{"name"}}
			if got := matches(s, ev); got != tc.want {
				t.Errorf("decision %v, want %v (%s)", got, tc.want, s.Explain(ev)[0].Reason)
			}
		})
	}
}

func TestMatch_DecodedEvent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		t.Skipf("test event not available: %v", err)
	}
	ev, err := dataverse.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := compile(t, `  - name: stage-moved
    table: opportunity
    messages: [Update]
    changed: [stepname]
    filter: "estimatedvalue gt 100000"
    consumers: [erp]
  - name: owner-changed
    table: opportunity
    changed: [customerid]
    consumers: [erp]
  - name: exchange-rate-touched
    table: opportunity
    filteringAttributes: [exchangerate]
    consumers: [erp]
`, Options{Now: func() time.Time { return time.Date(2025, 1, 16, 0, 0, 0, 0, time.UTC) }})
	var got []string
	for _, d := range s.Explain(ev) {
		got = append(got, d.Name+": "+d.Reason)
	}
	want := []string{
		"stage-moved: matched",
		"owner-changed: changed: none of [customerid] differs from the pre-image",
		"exchange-rate-touched: filteringAttributes: none of [exchangerate] in Target",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decisions\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestExamples_LoadAndCompile(t *testing.T) {
	settings := map[string]string{
		"ERP_API_KEY":                 "k",
		"ERP_SIGNING_SECRET":          "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"AUDIT_SERVICEBUS_CONNECTION": "Endpoint=sb://audit.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
	}
	for _, name := range []string{"routes.yaml", "routes-full.yaml"} {
		t.Run(name, func(t *testing.T) {
			rf, err := config.LoadRoutes(filepath.Join("..", "..", "examples", name), func(k string) (string, bool) {
				v, ok := settings[k]
				return v, ok
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Compile(rf, Options{}); err != nil {
				t.Fatal(err)
			}
			if name == "routes.yaml" && len(rf.Warnings) > 0 {
				t.Errorf("the make run example warns: %q", rf.Warnings)
			}
		})
	}
}

func TestMatch_IsSafeForConcurrentUse(t *testing.T) {
	s := one(t, "filter: statecode eq 0\nconditions: [\"@equals(triggerBody()?['Name'], 'x')\"]\nchanged: [name]")
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for i := 0; i < 200; i++ {
				ev := withPre(update(dataverse.Row{"statecode": num("0"), "name": "x"}, "name"), dataverse.Row{"name": "y"})
				ok = ok && len(s.Match(ev)) == 1
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("a concurrent match gave the wrong answer")
		}
	}
}
