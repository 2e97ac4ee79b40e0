package route

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

func importFile(t *testing.T, name string, opts FlowOptions) (string, []string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	y, notes, err := ImportFlow(f, opts)
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
	return y, notes
}

// loadImported puts the imported route in a route file with its consumer and compiles it.
func loadImported(t *testing.T, y string) *Set {
	t.Helper()
	src := "consumers:\n  - {name: erp, type: http, url: \"https://erp.example.com/hook\"}\n" + y
	rf, err := config.LoadRoutesBytes("imported.yaml", []byte(src), nil)
	if err != nil {
		t.Fatalf("the imported route does not load: %v\n%s", err, src)
	}
	s, err := Compile(rf, Options{})
	if err != nil {
		t.Fatalf("the imported route does not compile: %v\n%s", err, src)
	}
	return s
}

func TestImportFlow_PackageDefinition(t *testing.T) {
	y, notes := importFile(t, "flow-package-definition.json", FlowOptions{Consumer: "erp"})
	want := `# Imported by dvrouter import-flow from the Power Automate flow Notify ERP when an opportunity is won or lost (trigger When_a_row_is_added,_modified_or_deleted).
# Power Automate runs a flow after the change is saved (stage 40, asynchronous): register
# the Dataverse step that sends events to dvrouter the same way, or add stage and mode here.
# Not carried over (see also stderr):
#   - the flow's 1 actions are not imported: the consumer "erp" receives the event and does their work
routes:
  - name: notify-erp-when-an-opportunity-is-won-or-lost
    table: opportunity
    messages: [Update]
    filteringAttributes: [statecode, stepname]
    filter: "statecode eq 1 or statecode eq 2"
    conditions:
      - "@or(equals(triggerOutputs()?['body/stepname'], 'Won'), equals(triggerOutputs()?['body/stepname'], 'Lost'))"
    fetch: missing # the flow saw the whole row: read the columns the event lacks from the Web API
    consumers: [erp]
`
	if y != want {
		t.Errorf("route:\n%s\nwant:\n%s", y, want)
	}
	if len(notes) != 1 {
		t.Errorf("notes %q, want only the one about actions", notes)
	}
}

func TestImportFlow_ImportedRouteDecidesAsTheFlowWould(t *testing.T) {
	y, _ := importFile(t, "flow-package-definition.json", FlowOptions{Consumer: "erp", Name: "won-lost"})
	s := loadImported(t, y)
	ev := func(stepname string, state string, target ...string) *dataverse.Event {
		return &dataverse.Event{Message: "Update", Table: "opportunity", ChangedColumns: target,
			Row: dataverse.Row{"SdkMessage": "Update", "stepname": stepname, "statecode": num(state)}}
	}
	cases := []struct {
		name string
		ev   *dataverse.Event
		want bool
	}{
		{"won", ev("Won", "1", "statecode"), true},
		{"lost", ev("Lost", "2", "stepname"), true},
		{"open row", ev("Won", "0", "statecode"), false},
		{"other step name", ev("Negotiate", "1", "statecode"), false},
		{"no selected column in the update", ev("Won", "1", "description"), false},
	}
	for _, tc := range cases {
		if got := len(s.Match(tc.ev)) == 1; got != tc.want {
			t.Errorf("%s: matched %v, want %v (%s)", tc.name, got, tc.want, s.Explain(tc.ev)[0].Reason)
		}
	}
}

func TestImportFlow_ReportsWhatHasNoEquivalent(t *testing.T) {
	y, notes := importFile(t, "flow-solution-workflow.json", FlowOptions{Consumer: "erp"})
	all := strings.Join(notes, "\n")
	for _, want := range []string{
		"scope 3 (Parent: child business units) has no equivalent",
		"run as (subscriptionRequest/runas 3) has no equivalent",
		"delay until (subscriptionRequest/postponeuntil \"@addMinutes(utcNow(), 5)\") has no equivalent",
		`trigger setting "runtimeConfiguration" has no equivalent`,
		`flow parameter "Region (new_Region)" is not imported`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}
	for _, n := range notes {
		if !strings.Contains(y, oneLine(n)) {
			t.Errorf("note %q is not in the YAML's comments", n)
		}
	}
	if !strings.Contains(y, "    messages: [Create, Update, Delete]\n") || !strings.Contains(y, "  - name: when-a-contact-changes\n") {
		t.Errorf("route:\n%s", y)
	}
	if strings.Contains(y, "filteringAttributes") {
		t.Errorf("an empty filteringattributes must not become a key:\n%s", y)
	}
	loadImported(t, y)
}

func TestImportFlow_LogicAppsShapeAndUserScope(t *testing.T) {
	y, notes := importFile(t, "flow-logicapps-shape.json", FlowOptions{Consumer: "erp"})
	if !strings.Contains(y, "    messages: [Create, Update]\n    filteringAttributes: [emailaddress1, telephone1]\n") {
		t.Errorf("route:\n%s", y)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "scope 1 (User)") {
		t.Errorf("notes %q, want the one about scope 1", notes)
	}
	loadImported(t, y)
}

func TestImportFlow_ChangeTypes(t *testing.T) {
	want := map[string][]string{
		"1": {"Create"}, "2": {"Delete"}, "3": {"Update"}, "4": {"Create", "Update"},
		"5": {"Create", "Delete"}, "6": {"Update", "Delete"}, "7": {"Create", "Update", "Delete"},
	}
	for code, msgs := range want {
		flow := `{"definition": {"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {
			"host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps", "operationId": "SubscribeWebhookTrigger"},
			"parameters": {"subscriptionRequest/message": ` + code + `, "subscriptionRequest/entityname": "account", "subscriptionRequest/scope": 4}}}}}}`
		y, notes, err := ImportFlow(strings.NewReader(flow), FlowOptions{Consumer: "erp"})
		if err != nil {
			t.Fatalf("message %s: %v", code, err)
		}
		s := loadImported(t, y)
		if got := s.Routes()[0].Config.Messages; !reflect.DeepEqual(got, msgs) {
			t.Errorf("message %s: messages %v, want %v", code, got, msgs)
		}
		if len(notes) != 0 {
			t.Errorf("message %s: notes %q, want none", code, notes)
		}
	}
}

func TestImportFlow_Errors(t *testing.T) {
	hostOK := `"host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps", "operationId": "SubscribeWebhookTrigger"}`
	cases := []struct {
		name, flow, consumer, want string
	}{
		{"not JSON", "<xml/>", "erp", "not a JSON object"},
		{"no definition", `{"hello": 1}`, "erp", "no flow definition found"},
		{"another trigger", `{"definition": {"triggers": {"Recurrence": {"type": "Recurrence"}}}}`, "erp", `no Dataverse "When a row is added, modified or deleted" trigger`},
		{"unknown change type", `{"definition": {"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {` + hostOK + `,
			"parameters": {"subscriptionRequest/message": 9, "subscriptionRequest/entityname": "account"}}}}}}`, "erp", "subscriptionRequest/message 9 is not a change type"},
		{"no table", `{"definition": {"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {` + hostOK + `,
			"parameters": {"subscriptionRequest/message": 1}}}}}}`, "erp", "the trigger has no table"},
		{"table from an expression", `{"definition": {"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {` + hostOK + `,
			"parameters": {"subscriptionRequest/message": 1, "subscriptionRequest/entityname": "@parameters('table')"}}}}}}`, "erp", "entityname is an expression"},
		{"no consumer", `{}`, "", "consumer \"\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ImportFlow(strings.NewReader(tc.flow), FlowOptions{Consumer: tc.consumer})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	f, err := os.Open(filepath.Join("testdata", "flow-recurrence.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := ImportFlow(f, FlowOptions{Consumer: "erp"}); err == nil || !strings.Contains(err.Error(), "Recurrence (Recurrence )") {
		t.Errorf("recurrence flow: error %v, want one naming its trigger", err)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Sync won deals → ERP":     "sync-won-deals-erp",
		"  --Contacts (EMEA)-- ":   "contacts-emea",
		"When_a_row_is_added":      "when-a-row-is-added",
		strings.Repeat("abc ", 30): "abc-abc-abc-abc-abc-abc-abc-abc-abc-abc-abc-abc-abc-abc-abc-abc",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// The trigger is told by its connector and operation, whatever type the export gives it.
func TestImportFlow_TriggerToldByConnectionAndOperationWhateverItsType(t *testing.T) {
	hosts := map[string]string{
		"connectionName": `{"connectionName": "shared_commondataserviceforapps", "operationId": "SubscribeWebhookTrigger"}`,
		"apiId":          `{"apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps", "operationId": "SubscribeWebhookTrigger"}`,
		"local key":      `{"connectionName": "shared_commondataserviceforapps_1", "operationId": "SubscribeWebhookTrigger"}`,
		"logic apps":     `{"connection": {"name": "@parameters('$connections')['shared_commondataserviceforapps']['connectionId']"}, "operationId": "SubscribeWebhookTrigger"}`,
	}
	for _, typ := range []string{"OpenApiConnectionWebhook", "OpenApiConnectionTrigger", "ApiConnectionWebhook"} {
		for hostName, host := range hosts {
			flow := `{"definition": {"triggers": {"When_a_row_is_added": {"type": "` + typ + `", "inputs": {"host": ` + host + `,
				"parameters": {"subscriptionRequest/message": 1, "subscriptionRequest/entityname": "account", "subscriptionRequest/scope": 4}}}}}}`
			im, err := ImportFlowTrigger(strings.NewReader(flow), FlowOptions{Consumer: "erp"})
			if err != nil {
				t.Errorf("%s, %s: %v", typ, hostName, err)
				continue
			}
			if im.Trigger.Name != "When_a_row_is_added" || im.Trigger.Type != typ || im.Trigger.Operation != "SubscribeWebhookTrigger" ||
				!strings.Contains(im.Trigger.Connection, "shared_commondataserviceforapps") {
				t.Errorf("%s, %s: trigger %+v", typ, hostName, im.Trigger)
			}
			if len(im.Notes) != 0 {
				t.Errorf("%s, %s: notes %q, want none", typ, hostName, im.Notes)
			}
			if got := loadImported(t, im.YAML).Routes()[0].Config.Messages; !reflect.DeepEqual(got, []string{"Create"}) {
				t.Errorf("%s, %s: messages %v", typ, hostName, got)
			}
		}
	}
	// Another connector's webhook, or another Dataverse operation, is not the trigger.
	for name, host := range map[string]string{
		"another connector": `{"connectionName": "shared_sharepointonline", "operationId": "SubscribeWebhookTrigger"}`,
		"another operation": `{"connectionName": "shared_commondataserviceforapps", "operationId": "SubscribeWebhookTriggerForActions"}`,
	} {
		flow := `{"definition": {"triggers": {"t": {"type": "OpenApiConnectionTrigger", "inputs": {"host": ` + host + `}}}}}`
		if _, err := ImportFlowTrigger(strings.NewReader(flow), FlowOptions{Consumer: "erp"}); err == nil || !strings.Contains(err.Error(), "no Dataverse") {
			t.Errorf("%s: error %v, want no Dataverse trigger", name, err)
		}
	}
}
