package dataverse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const ns = `:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts"`

// ctxWith returns a small Create context for table "contact" whose Target has the given
// Attributes and FormattedValues (JSON array bodies, without the brackets).
func ctxWith(attrs, formatted string) string {
	return `{"MessageName":"Create","PrimaryEntityName":"contact","Mode":0,"Stage":40,"Depth":1,` +
		`"PrimaryEntityId":"11111111-2222-4333-8444-555555555555",` +
		`"OperationCreatedOn":"\/Date(1735725600000)\/",` +
		`"InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns + `,` +
		`"Attributes":[` + attrs + `],"FormattedValues":[` + formatted + `],` +
		`"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}]}`
}

func mustDecode(t *testing.T, body string) *Event {
	t.Helper()
	ev, err := Decode([]byte(body))
	if err != nil {
		t.Fatalf("Decode: %v\nbody: %s", err, body)
	}
	return ev
}

// TestDecode_ColumnForms checks each column form of the RemoteExecutionContext against its Web API shape.
func TestDecode_ColumnForms(t *testing.T) {
	ref := func(ln, id, name string) string {
		return `{"__type":"EntityReference` + ns + `,"Id":"` + id + `","KeyAttributes":[],"LogicalName":"` +
			ln + `","Name":` + name + `,"RowVersion":null}`
	}
	osv := func(n string) string { return `{"__type":"OptionSetValue` + ns + `,"Value":` + n + `}` }
	tests := []struct {
		name      string
		attrs     string
		formatted string
		want      Row // the columns to find in the row (others may be there too)
		absent    []string
	}{
		{
			name:  "plain string keeps its logical name",
			attrs: `{"key":"firstname","value":"Ada"}`,
			want:  Row{"firstname": "Ada"},
		},
		{
			name:  "lookup becomes _x_value and its logical name annotation",
			attrs: `{"key":"parentcustomerid","value":` + ref("account", "aaaaaaaa-0000-4000-8000-000000000001", "null") + `}`,
			want: Row{
				"_parentcustomerid_value": "aaaaaaaa-0000-4000-8000-000000000001",
				"_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
			},
			absent: []string{"parentcustomerid", "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"},
		},
		{
			name:  "lookup name becomes its formatted value",
			attrs: `{"key":"ownerid","value":` + ref("team", "aaaaaaaa-0000-4000-8000-000000000002", `"Sales"`) + `}`,
			want:  Row{"_ownerid_value@OData.Community.Display.V1.FormattedValue": "Sales"},
		},
		{
			name:      "an explicit formatted value of a lookup wins over its name",
			attrs:     `{"key":"ownerid","value":` + ref("team", "aaaaaaaa-0000-4000-8000-000000000002", `"Sales"`) + `}`,
			formatted: `{"key":"ownerid","value":"Sales Team (EMEA)"}`,
			want:      Row{"_ownerid_value@OData.Community.Display.V1.FormattedValue": "Sales Team (EMEA)"},
		},
		{
			name:  "option set value becomes its integer",
			attrs: `{"key":"statuscode","value":` + osv("1") + `}`,
			want:  Row{"statuscode": json.Number("1")},
		},
		{
			name:  "money with a fraction becomes a number",
			attrs: `{"key":"revenue","value":{"__type":"Money` + ns + `,"Value":2154.32}}`,
			want:  Row{"revenue": json.Number("2154.32")},
		},
		{
			name:  "money printed as a whole number stays whole",
			attrs: `{"key":"revenue","value":{"__type":"Money` + ns + `,"Value":100}}`,
			want:  Row{"revenue": json.Number("100")},
		},
		{
			name:  "multi-select becomes the comma-separated integers",
			attrs: `{"key":"new_tags","value":[` + osv("100000000") + `,` + osv("100000002") + `]}`,
			want:  Row{"new_tags": "100000000,100000002"},
		},
		{
			name:  "empty multi-select is null",
			attrs: `{"key":"new_tags","value":[]}`,
			want:  Row{"new_tags": nil},
		},
		{
			name:  "date without offset is UTC milliseconds, to the second",
			attrs: `{"key":"createdon","value":"\/Date(1506384247999)\/"}`,
			want:  Row{"createdon": "2017-09-26T00:04:07Z"},
		},
		{
			name:  "date with unescaped slashes",
			attrs: `{"key":"createdon","value":"/Date(1506384247000)/"}`,
			want:  Row{"createdon": "2017-09-26T00:04:07Z"},
		},
		{
			name:  "date with a negative offset adds it",
			attrs: `{"key":"createdon","value":"\/Date(1506409448000-0700)\/"}`,
			want:  Row{"createdon": "2017-09-26T00:04:08Z"},
		},
		{
			name:  "date with a positive offset adds it",
			attrs: `{"key":"createdon","value":"\/Date(1724647396000+0300)\/"}`,
			want:  Row{"createdon": "2024-08-26T07:43:16Z"},
		},
		{
			name:  "date before 1970",
			attrs: `{"key":"birthdate","value":"\/Date(-4861728000000)\/"}`,
			want:  Row{"birthdate": "1815-12-10T00:00:00Z"},
		},
		{
			name:  "date before 1970 with milliseconds floors to the second",
			attrs: `{"key":"birthdate","value":"\/Date(-1)\/"}`,
			want:  Row{"birthdate": "1969-12-31T23:59:59Z"},
		},
		{
			name:  "date written with unicode escapes",
			attrs: `{"key":"createdon","value":"\u002FDate(1506384247000)\u002F"}`,
			want:  Row{"createdon": "2017-09-26T00:04:07Z"},
		},
		{
			name:  "a Date-like string that is not a date is left alone",
			attrs: `{"key":"description","value":"\/Date(soon)\/"}`,
			want:  Row{"description": "/Date(soon)/"},
		},
		{
			name:  "a date beyond year 9999 is left as it came",
			attrs: `{"key":"description","value":"\/Date(999999999999999)\/"}`,
			want:  Row{"description": "/Date(999999999999999)/"},
		},
		{
			name:  "whole number beyond 2^53 stays exact",
			attrs: `{"key":"new_big","value":9007199254740993}`,
			want:  Row{"new_big": json.Number("9007199254740993")},
		},
		{
			name:  "decimal keeps its trailing zeros",
			attrs: `{"key":"exchangerate","value":1.0000000000}`,
			want:  Row{"exchangerate": json.Number("1.0000000000")},
		},
		{
			name:  "null is kept as a cleared column",
			attrs: `{"key":"fax","value":null}`,
			want:  Row{"fax": nil},
		},
		{
			name:  "booleans stay booleans",
			attrs: `{"key":"donotemail","value":true},{"key":"donotfax","value":false}`,
			want:  Row{"donotemail": true, "donotfax": false},
		},
		{
			name:      "formatted value of a plain column",
			attrs:     `{"key":"statuscode","value":` + osv("1") + `}`,
			formatted: `{"key":"statuscode","value":"Active"}`,
			want:      Row{"statuscode@OData.Community.Display.V1.FormattedValue": "Active"},
		},
		{
			name:  "mis-decoded non-ASCII passes through",
			attrs: `{"key":"name","value":"Ã¢âÂ¬2,154.32 â‚¬"}`,
			want:  Row{"name": "Ã¢âÂ¬2,154.32 â‚¬"},
		},
		{
			name:  "invalid UTF-8 becomes U+FFFD, never a failure",
			attrs: "{\"key\":\"name\",\"value\":\"a\xffb\"}",
			want:  Row{"name": "a\uFFFDb"},
		},
		{
			name:  "escapes and surrogate pairs",
			attrs: `{"key":"description","value":"a\nb\t\"q\" \u00e9 \ud83d\ude00 \ud800x"}`,
			want:  Row{"description": "a\nb\t\"q\" é 😀 \uFFFDx"},
		},
		{
			name: "entity collection becomes an array of rows",
			attrs: `{"key":"to","value":{"__type":"EntityCollection` + ns + `,"Entities":[{"Attributes":[` +
				`{"key":"partyid","value":` + ref("contact", "cccccccc-0000-4000-8000-000000000001", `"Ada"`) + `},` +
				`{"key":"participationtypemask","value":` + osv("2") + `}],"FormattedValues":[],` +
				`"Id":"dddddddd-0000-4000-8000-000000000001","LogicalName":"activityparty"}],` +
				`"EntityName":"activityparty","MoreRecords":false,"PagingCookie":null,"TotalRecordCount":-1}}`,
			want: Row{"to": []any{Row{
				"_partyid_value": "cccccccc-0000-4000-8000-000000000001",
				"_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname":  "contact",
				"_partyid_value@OData.Community.Display.V1.FormattedValue": "Ada",
				"participationtypemask":                                    json.Number("2"),
			}}},
		},
		{
			name: "unknown typed value keeps its members and its type name",
			attrs: `{"key":"iscustomizable","value":{"__type":"BooleanManagedProperty` + ns +
				`,"CanBeChanged":true,"ManagedPropertyLogicalName":"iscustomizableanddeletable","Value":false}}`,
			want: Row{"iscustomizable": Row{
				"@odata.type":                "#BooleanManagedProperty",
				"CanBeChanged":               true,
				"ManagedPropertyLogicalName": "iscustomizableanddeletable",
				"Value":                      false,
			}},
		},
		{
			name:  "untyped object with only a Value is its number",
			attrs: `{"key":"revenue","value":{"Value":12.5}}`,
			want:  Row{"revenue": json.Number("12.5")},
		},
		{
			name:  "value before key in a pair",
			attrs: `{"value":"Ada","key":"firstname"}`,
			want:  Row{"firstname": "Ada"},
		},
		{
			name:  "__type after the other members (a re-serialized body)",
			attrs: `{"key":"statuscode","value":{"Value":3,"__type":"OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts"}}`,
			want:  Row{"statuscode": json.Number("3")},
		},
		{
			name: "lookup with __type last and keys reordered",
			attrs: `{"key":"ownerid","value":{"RowVersion":null,"Name":null,"LogicalName":"systemuser",` +
				`"Id":"eeeeeeee-0000-4000-8000-000000000001","__type":"EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"}}`,
			want: Row{
				"_ownerid_value": "eeeeeeee-0000-4000-8000-000000000001",
				"_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
			},
		},
		{
			name:  "unknown members of a pair are ignored",
			attrs: `{"__type":"KeyValuePairOfstringanyType:#System.Collections.Generic","key":"firstname","value":"Ada","extra":[1,{"a":null}]}`,
			want:  Row{"firstname": "Ada"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := mustDecode(t, ctxWith(tt.attrs, tt.formatted))
			for k, want := range tt.want {
				got, ok := ev.Row[k]
				if !ok {
					t.Errorf("row has no %q; row = %v", k, ev.Row)
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("row[%q] = %#v, want %#v", k, got, want)
				}
			}
			for _, k := range tt.absent {
				if _, ok := ev.Row[k]; ok {
					t.Errorf("row has %q, want it absent", k)
				}
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Errorf("json.Marshal: %v", err)
			}
		})
	}
}

func TestDecode_OperationTimeKeepsItsMilliseconds(t *testing.T) {
	ev := mustDecode(t, `{"MessageName":"Create","PrimaryEntityName":"account","InputParameters":[],"OperationCreatedOn":"\/Date(1506409448123)\/"}`)
	if want := time.UnixMilli(1506409448123).UTC(); !ev.OperationCreatedAt.Equal(want) || ev.OperationCreatedOn != "2017-09-26T07:04:08Z" {
		t.Errorf("OperationCreatedAt %v, OperationCreatedOn %s; want %v and whole seconds", ev.OperationCreatedAt, ev.OperationCreatedOn, want)
	}
}

func TestOrganizationHost(t *testing.T) {
	cases := map[string]string{
		"contoso.crm4.dynamics.com":      "contoso.crm4.dynamics.com",
		"Contoso.CRM.Dynamics.com":       "contoso.crm.dynamics.com",
		"org-1.crm.dynamics.com":         "org-1.crm.dynamics.com",
		"":                               "",
		"localhost":                      "",
		"contoso.crm.dynamics.com/":      "",
		"https://contoso.crm.com":        "",
		"a..b":                           "",
		"-a.b":                           "",
		"a-.b":                           "",
		"a.b-":                           "",
		"evil.com#x":                     "",
		"a b.com":                        "",
		strings.Repeat("a", 64) + ".com": "",
	}
	for in, want := range cases {
		if got := OrganizationHost(in); got != want {
			t.Errorf("OrganizationHost(%q) = %q, want %q", in, got, want)
		}
	}
	ev, err := DecodeWith([]byte(`{"MessageName":"Create","PrimaryEntityName":"account","InputParameters":[]}`), DecodeOptions{OrganizationHost: "Contoso.crm.dynamics.com"})
	if err != nil || ev.OrganizationHost != "contoso.crm.dynamics.com" {
		t.Errorf("DecodeWith host: %v, %q", err, ev.OrganizationHost)
	}
}

func TestDecode_ContextFields(t *testing.T) {
	body := `{"BusinessUnitId":"b0000000-0000-4000-8000-000000000001","CorrelationId":"c0000000-0000-4000-8000-000000000001",` +
		`"Depth":2,"InitiatingUserId":"a0000000-0000-4000-8000-000000000001","InputParameters":[],` +
		`"MessageName":"Update","Mode":1,"OperationCreatedOn":"\/Date(1506409448000-0700)\/",` +
		`"OperationId":"d0000000-0000-4000-8000-000000000001","OrganizationId":"e0000000-0000-4000-8000-000000000001",` +
		`"OrganizationName":"contoso","PrimaryEntityId":"f0000000-0000-4000-8000-000000000001",` +
		`"PrimaryEntityName":"account","RequestId":"90000000-0000-4000-8000-000000000001","Stage":40,` +
		`"UserId":"80000000-0000-4000-8000-000000000001"}`
	ev := mustDecode(t, body)
	req := "90000000-0000-4000-8000-000000000001"
	want := Event{
		ID: ev.ID, Message: "Update", Table: "account", RecordID: "f0000000-0000-4000-8000-000000000001",
		Stage: 40, Mode: "async", Depth: 2, OrganizationID: "e0000000-0000-4000-8000-000000000001",
		OrganizationName: "contoso", CorrelationID: "c0000000-0000-4000-8000-000000000001",
		OperationID: "d0000000-0000-4000-8000-000000000001", RequestID: &req,
		UserID: "80000000-0000-4000-8000-000000000001", InitiatingUserID: "a0000000-0000-4000-8000-000000000001",
		BusinessUnitID: "b0000000-0000-4000-8000-000000000001", OperationCreatedOn: "2017-09-26T00:04:08Z",
		OperationCreatedAt: time.Date(2017, 9, 26, 0, 4, 8, 0, time.UTC),
		Row:                ev.Row, Raw: ev.Raw,
	}
	got := *ev
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("event:\n got %s\nwant %s", gj, wj)
	}
}

func TestDecode_ModeNames(t *testing.T) {
	for _, tt := range []struct {
		mode string
		want string
	}{{"0", "sync"}, {"1", "async"}} {
		ev := mustDecode(t, `{"MessageName":"Create","PrimaryEntityName":"account","Mode":`+tt.mode+`}`)
		if ev.Mode != tt.want {
			t.Errorf("Mode %s: got %q, want %q", tt.mode, ev.Mode, tt.want)
		}
	}
}

func TestDecode_RequestIDNullIsNil(t *testing.T) {
	ev := mustDecode(t, `{"MessageName":"Create","PrimaryEntityName":"account","RequestId":null}`)
	if ev.RequestID != nil {
		t.Errorf("RequestID = %q, want nil", *ev.RequestID)
	}
	out, _ := json.Marshal(ev)
	if !strings.Contains(string(out), `"requestId":null`) {
		t.Errorf("marshalled event lacks \"requestId\":null: %s", out)
	}
}

func TestDecode_BOMIsSkipped(t *testing.T) {
	body := "\xEF\xBB\xBF" + ctxWith(`{"key":"firstname","value":"Ada"}`, "")
	ev := mustDecode(t, body)
	if ev.Row["firstname"] != "Ada" {
		t.Errorf("row = %v", ev.Row)
	}
	if string(ev.Raw) != body {
		t.Error("Raw is not the body as received")
	}
}

func TestDecode_EscapedAndUnescapedSlashesAgree(t *testing.T) {
	escaped := ctxWith(`{"key":"createdon","value":"\/Date(1506384247000)\/"},{"key":"url","value":"https:\/\/example.com\/a"}`, "")
	plain := strings.ReplaceAll(escaped, `\/`, `/`)
	mixed := strings.Replace(escaped, `\/Date(1506384247000)\/`, `/Date(1506384247000)/`, 1)
	a, b, c := mustDecode(t, escaped), mustDecode(t, plain), mustDecode(t, mixed)
	if !reflect.DeepEqual(a.Row, b.Row) || !reflect.DeepEqual(a.Row, c.Row) {
		t.Errorf("rows differ:\n escaped %v\n plain   %v\n mixed   %v", a.Row, b.Row, c.Row)
	}
	if a.Row["url"] != "https://example.com/a" {
		t.Errorf("url = %v", a.Row["url"])
	}
}

func TestDecode_UnknownKeysAreTolerated(t *testing.T) {
	body := `{"Unknown":null,"x-ms-app-name":"app","MessageName":"Create","NewPlatformField":{"a":[1,2,{"b":"\/Date(0)\/"}]},` +
		`"PrimaryEntityName":"account","InputParameters":[{"key":"parentExecutionId","value":"abc"},` +
		`{"key":"Query","value":{"__type":"QueryExpression` + ns + `,"Criteria":{"Conditions":[{"Values":[1,"x",false]}]}}}]}`
	ev := mustDecode(t, body)
	if ev.Message != "Create" || ev.Table != "account" {
		t.Errorf("got message %q table %q", ev.Message, ev.Table)
	}
}

func TestDecode_ParentContextIsSkipped(t *testing.T) {
	parent := `{"MessageName":"Update","PrimaryEntityName":"contact","InputParameters":[{"key":"Target","value":` +
		`{"__type":"Entity` + ns + `,"Attributes":[{"key":"firstname","value":"Parent"}],"Id":"x","LogicalName":"contact"}}],"ParentContext":null}`
	body := strings.Replace(ctxWith(`{"key":"firstname","value":"Child"}`, ""), `{"MessageName"`, `{"ParentContext":`+parent+`,"MessageName"`, 1)
	ev := mustDecode(t, body)
	if ev.Message != "Create" || ev.Row["firstname"] != "Child" {
		t.Errorf("took something from the parent: message %q row %v", ev.Message, ev.Row)
	}
}

func TestDecode_MalformedParentContextIsASyntaxError(t *testing.T) {
	body := `{"MessageName":"Create","PrimaryEntityName":"account","ParentContext":{"a":[1,}}`
	_, err := Decode([]byte(body))
	if !IsSyntax(err) {
		t.Fatalf("err = %v, want a *SyntaxError", err)
	}
}

func TestDecode_ImagesWithoutTypeAreEntities(t *testing.T) {
	body := `{"MessageName":"Update","PrimaryEntityName":"contact","InputParameters":[],` +
		`"PreEntityImages":[{"key":"Pre","value":{"Attributes":[{"key":"firstname","value":"Old"}],"Id":"1","LogicalName":"contact"}}],` +
		`"PostEntityImages":[{"key":"A","value":{"Attributes":[{"key":"firstname","value":"New"}],"LogicalName":"contact"}},` +
		`{"key":"B","value":{"Attributes":[{"key":"lastname","value":"Lovelace"}],"LogicalName":"contact"}}]}`
	ev := mustDecode(t, body)
	if !ev.HasPreImage || ev.PreImage["firstname"] != "Old" {
		t.Errorf("pre-image = %v (has %v)", ev.PreImage, ev.HasPreImage)
	}
	want := Row{"firstname": "New", "lastname": "Lovelace"}
	if !reflect.DeepEqual(ev.PostImage, want) {
		t.Errorf("post-image = %v, want the named images merged %v", ev.PostImage, want)
	}
}

func TestDecode_NoImagesAreNull(t *testing.T) {
	ev := mustDecode(t, `{"MessageName":"Create","PrimaryEntityName":"account","InputParameters":[],"PreEntityImages":[],"PostEntityImages":[]}`)
	if ev.PreImage != nil || ev.PostImage != nil || ev.HasPreImage {
		t.Errorf("pre %v post %v has %v, want nil, nil, false", ev.PreImage, ev.PostImage, ev.HasPreImage)
	}
}

func TestDecode_SizeExceeded(t *testing.T) {
	full := `{"MessageName":"Update","PrimaryEntityName":"account","InputParameters":[]}`
	stripped := `{"MessageName":"Update","PrimaryEntityName":"account","PrimaryEntityId":"f0000000-0000-4000-8000-000000000001"}`
	tests := []struct {
		name string
		body string
		opt  bool
		want bool
	}{
		{"full body, no header", full, false, false},
		{"full body, header", full, true, true},
		{"stripped body, no header: inferred", stripped, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeWith([]byte(tt.body), DecodeOptions{SizeExceeded: tt.opt})
			if err != nil {
				t.Fatal(err)
			}
			if ev.SizeExceeded != tt.want {
				t.Errorf("SizeExceeded = %v, want %v", ev.SizeExceeded, tt.want)
			}
		})
	}
}

// TestDecode_ConcurrentCallsAgree decodes all payloads from several goroutines at once: pooled
// decoders and the shared key caches must not leak state between calls.
func TestDecode_ConcurrentCallsAgree(t *testing.T) {
	files := eventFiles(t)
	want := make([][]byte, len(files))
	for i, path := range files {
		out, err := json.Marshal(decodeFile(t, filepath.Base(path)))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = out
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(files))
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				for i, path := range files {
					ev, err := Decode(readEvent(t, filepath.Base(path)))
					if err != nil {
						errs <- err.Error()
						return
					}
					if out, _ := json.Marshal(ev); !bytes.Equal(out, want[i]) {
						errs <- filepath.Base(path) + ": differs when decoded concurrently"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestDecode_TargetColumnsSurviveWhatIsDecodedAfterThem: the Target's columns wait on the
// decoder's scratch stacks until the event is built, while the images after it push (and grow
// the stacks past their first size) above them.
func TestDecode_TargetColumnsSurviveWhatIsDecodedAfterThem(t *testing.T) {
	var image strings.Builder
	for i := range 300 {
		fmt.Fprintf(&image, `{"key":"c%03d","value":"image %d"},`, i, i)
	}
	image.WriteString(`{"key":"firstname","value":"Old"}`)
	party := `{"__type":"EntityCollection` + ns + `,"Entities":[{"Attributes":[{"key":"partyid","value":"p"}],"LogicalName":"activityparty"}]}`
	body := `{"MessageName":"Update","PrimaryEntityName":"contact","PrimaryEntityId":"11111111-2222-4333-8444-555555555555",` +
		`"InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns + `,` +
		`"Attributes":[{"key":"firstname","value":"New"},{"key":"to","value":` + party + `},{"key":"c007","value":"target"}],` +
		`"FormattedValues":[{"key":"firstname","value":"New (formatted)"}],` +
		`"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}],` +
		`"PostEntityImages":[{"key":"Post","value":{"Attributes":[` + image.String() + `],"LogicalName":"contact"}}],` +
		`"PreEntityImages":[{"key":"Pre","value":{"Attributes":[` + image.String() + `],"LogicalName":"contact"}}]}`

	for range 3 { // a pooled decoder too
		ev := mustDecode(t, body)
		want := map[string]any{
			"firstname": "New",
			"firstname@OData.Community.Display.V1.FormattedValue": "New (formatted)",
			"c007": "target",
			"c299": "image 299",
			"to":   []any{Row{"partyid": "p"}},
		}
		for k, v := range want {
			if !reflect.DeepEqual(ev.Row[k], v) {
				t.Errorf("row[%q] = %#v, want %#v", k, ev.Row[k], v)
			}
		}
		if got := fmt.Sprint(ev.ChangedColumns); got != "[c007 firstname to]" {
			t.Errorf("changedColumns = %s, want the Target's columns", got)
		}
		if len(ev.PreImage) != 301 || ev.PreImage["firstname"] != "Old" {
			t.Errorf("pre-image has %d columns, firstname %v; want 301, Old", len(ev.PreImage), ev.PreImage["firstname"])
		}
	}
}

func TestDecode_RepeatedDatesAgree(t *testing.T) {
	ev := mustDecode(t, ctxWith(`{"key":"a","value":"\/Date(1735725600000)\/"},{"key":"b","value":"\/Date(1735725600000)\/"},`+
		`{"key":"c","value":"\/Date(1735725601000)\/"},{"key":"d","value":"\/Date(1735725600000)\/"}`, ""))
	want := map[string]string{"a": "2025-01-01T10:00:00Z", "b": "2025-01-01T10:00:00Z", "c": "2025-01-01T10:00:01Z", "d": "2025-01-01T10:00:00Z"}
	for k, v := range want {
		if ev.Row[k] != v {
			t.Errorf("row[%q] = %v, want %s", k, ev.Row[k], v)
		}
	}
	if ev.OperationCreatedOn != "2025-01-01T10:00:00Z" {
		t.Errorf("operationCreatedOn = %s", ev.OperationCreatedOn)
	}
}

// TestDecode_RowValuesOutliveTheDecoder checks that the values of one event's rows stay its own
// while the pooled decoder goes on to others, from many goroutines, with more values per event
// than one chunk of boxes holds (see boxes): every string, number and lookup keeps its type and
// its text.
func TestDecode_RowValuesOutliveTheDecoder(t *testing.T) {
	body := func(n int) string {
		var attrs, fmts []string
		for i := range boxChunk + 10 {
			attrs = append(attrs, fmt.Sprintf(`{"key":"s%d","value":"text %d.%d"}`, i, n, i),
				fmt.Sprintf(`{"key":"n%d","value":%d.%d}`, i, n, i))
			fmts = append(fmts, fmt.Sprintf(`{"key":"n%d","value":"formatted %d.%d"}`, i, n, i))
		}
		attrs = append(attrs, fmt.Sprintf(`{"key":"parentcustomerid","value":{"__type":"EntityReference`+ns+
			`,"Id":"00000000-0000-0000-0000-%012d","LogicalName":"account","Name":"account %d"}}`, n, n))
		return ctxWith(strings.Join(attrs, ","), strings.Join(fmts, ","))
	}
	check := func(n int, row Row) error {
		for i := range boxChunk + 10 {
			if got, want := row[fmt.Sprintf("s%d", i)], fmt.Sprintf("text %d.%d", n, i); got != want {
				return fmt.Errorf("event %d: s%d = %#v, want %q", n, i, got, want)
			}
			if got, want := row[fmt.Sprintf("n%d", i)], json.Number(fmt.Sprintf("%d.%d", n, i)); got != want {
				return fmt.Errorf("event %d: n%d = %#v, want %#v", n, i, got, want)
			}
			if got, want := row[fmt.Sprintf("n%d@OData.Community.Display.V1.FormattedValue", i)], fmt.Sprintf("formatted %d.%d", n, i); got != want {
				return fmt.Errorf("event %d: formatted n%d = %#v, want %q", n, i, got, want)
			}
		}
		if got, want := row["_parentcustomerid_value"], fmt.Sprintf("00000000-0000-0000-0000-%012d", n); got != want {
			return fmt.Errorf("event %d: _parentcustomerid_value = %#v, want %q", n, got, want)
		}
		if got, want := row["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"], fmt.Sprintf("account %d", n); got != want {
			return fmt.Errorf("event %d: lookup name = %#v, want %q", n, got, want)
		}
		return nil
	}
	const workers, each = 4, 50
	rows := make([][]Row, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev, err := Decode([]byte(body(w*each + i)))
				if err != nil {
					t.Error(err)
					return
				}
				rows[w] = append(rows[w], ev.Row)
			}
		})
	}
	wg.Wait()
	for w := range workers {
		for i, row := range rows[w] {
			if err := check(w*each+i, row); err != nil {
				t.Fatal(err)
			}
		}
	}
}
