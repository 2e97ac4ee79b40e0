package dataverse

import (
	"encoding/json"
	"reflect"
	"testing"
)

// hintUpdate is an Update of a contact whose Target sets new_projectid to target (JSON) and
// whose images are pre and post (JSON arrays of images).
func hintUpdate(target, targetFmts, pre, post string) string {
	const id = "11111111-2222-4333-8444-555555555555"
	return `{"MessageName":"Update","PrimaryEntityName":"contact","PrimaryEntityId":"` + id + `","Mode":1,"Stage":40,` +
		`"InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns + `,"Attributes":[` +
		`{"key":"new_projectid","value":` + target + `},{"key":"firstname","value":"Ada"}],"FormattedValues":[` + targetFmts + `],` +
		`"Id":"` + id + `","LogicalName":"contact"}}],` +
		`"PreEntityImages":` + pre + `,"PostEntityImages":` + post + `}`
}

// The annotations a set lookup new_projectid has in a row.
const (
	projectTable = "_new_projectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"
	projectName  = "_new_projectid_value@OData.Community.Display.V1.FormattedValue"
)

func hintImage(attrs string) string {
	return `[{"key":"img","value":{"Attributes":[` + attrs + `],"FormattedValues":[],` +
		`"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}]`
}

// A Target that clears a custom lookup says "new_projectid": null, with no type. Only a hint
// (the route file's lookups:) tells the decoder it is a lookup when no image shows it; then the
// row reads as the Web API's does, and nothing else about the event changes.
func TestDecode_LookupHints(t *testing.T) {
	const projectRef = `{"__type":"EntityReference` + ns + `,"Id":"22222222-2222-4222-8222-222222222222","LogicalName":"new_project","Name":"Apollo"}`
	hint := Lookups{"contact": {"new_projectid"}}
	cleared := Row{"_new_projectid_value": nil}
	notCleared := Row{"new_projectid": nil}
	for _, tc := range []struct {
		name    string
		body    string
		hints   Lookups
		want    Row      // keys the row must hold, with these values
		absent  []string // keys the row must not hold
		wantPre Row      // the pre-image, exactly (nil: not checked)
	}{
		{
			name: "hinted: a cleared lookup in Web API shape", hints: hint,
			body: hintUpdate("null", "", "[]", "[]"),
			want: cleared, absent: []string{"new_projectid"},
		},
		{
			name: "no hint: the null stays as the context has it", hints: nil,
			body: hintUpdate("null", "", "[]", "[]"),
			want: notCleared, absent: []string{"_new_projectid_value"},
		},
		{
			name: "a hint for another table does not apply", hints: Lookups{"account": {"new_projectid"}},
			body: hintUpdate("null", "", "[]", "[]"),
			want: notCleared, absent: []string{"_new_projectid_value"},
		},
		{
			name: "a hint for another column of the table does not apply", hints: Lookups{"contact": {"new_otherid"}},
			body: hintUpdate("null", "", "[]", "[]"),
			want: notCleared, absent: []string{"_new_projectid_value"},
		},
		{
			name: "hinted: no formatted value of the cleared lookup under either key", hints: hint,
			body: hintUpdate("null", `{"key":"new_projectid","value":"Apollo"}`, "[]", hintImage(`{"key":"firstname","value":"Ada"}`)),
			want: cleared,
			absent: []string{"new_projectid", "new_projectid@OData.Community.Display.V1.FormattedValue", projectName,
				projectTable},
		},
		{
			name: "hinted: a pre-image without the column stays as it is", hints: hint,
			body:    hintUpdate("null", "", hintImage(`{"key":"firstname","value":"Grace"}`), "[]"),
			want:    Row{"_new_projectid_value": nil, "firstname": "Ada"},
			absent:  []string{"new_projectid"},
			wantPre: Row{"firstname": "Grace"},
		},
		{
			name: "hinted: a column set to a reference is the usual lookup", hints: hint,
			body: hintUpdate(projectRef, "", "[]", "[]"),
			want: Row{"_new_projectid_value": "22222222-2222-4222-8222-222222222222",
				projectTable: "new_project",
				projectName:  "Apollo"},
			absent: []string{"new_projectid"},
		},
		{
			name: "hinted: a value that is not null nor a reference is left alone", hints: hint,
			body: hintUpdate(`"not a reference"`, "", "[]", "[]"),
			want: Row{"new_projectid": "not a reference"}, absent: []string{"_new_projectid_value"},
		},
		{
			name: "no hint needed: the pre-image shows the lookup", hints: nil,
			body:    hintUpdate("null", "", hintImage(`{"key":"new_projectid","value":`+projectRef+`}`), "[]"),
			want:    cleared,
			absent:  []string{"new_projectid", projectTable, projectName},
			wantPre: Row{"_new_projectid_value": "22222222-2222-4222-8222-222222222222", projectTable: "new_project", projectName: "Apollo"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The same context in each of the three message formats: the hint is a decode
			// option, so every reader must honour it.
			js := []byte(tc.body)
			xml := genXML(t, js)
			for _, in := range []struct {
				format Format
				body   []byte
			}{{FormatJSON, js}, {FormatXML, xml}, {FormatBinary, encodeNBFX(t, xml)}} {
				ev, err := DecodeFormat(in.body, in.format, DecodeOptions{Lookups: tc.hints})
				if err != nil {
					t.Fatalf("%s: %v", in.format, err)
				}
				for k, w := range tc.want {
					if got, ok := ev.Row[k]; !ok || !reflect.DeepEqual(got, w) {
						t.Errorf("%s: row[%q] = %#v (present %v), want %#v", in.format, k, got, ok, w)
					}
				}
				for _, k := range tc.absent {
					if v, ok := ev.Row[k]; ok {
						t.Errorf("%s: row[%q] = %#v, want no such key", in.format, k, v)
					}
				}
				if tc.wantPre != nil && !reflect.DeepEqual(ev.PreImage, tc.wantPre) {
					t.Errorf("%s: preImage = %#v, want %#v", in.format, ev.PreImage, tc.wantPre)
				}
			}
		})
	}
}

// The hint changes the row's key, so it must come out of json.Marshal as the Web API writes it.
func TestDecode_LookupHintSerializesAsNullValueKey(t *testing.T) {
	ev, err := DecodeWith([]byte(hintUpdate("null", "", "[]", "[]")), DecodeOptions{Lookups: Lookups{"contact": {"new_projectid"}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(ev.Row)
	if err != nil {
		t.Fatal(err)
	}
	var row map[string]any
	if err := json.Unmarshal(out, &row); err != nil {
		t.Fatal(err)
	}
	if v, ok := row["_new_projectid_value"]; !ok || v != nil {
		t.Errorf("row = %s, want \"_new_projectid_value\":null", out)
	}
}
