package dataverse

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func decodeFile(t *testing.T, name string) *Event {
	t.Helper()
	ev, err := Decode(readEvent(t, name))
	if err != nil {
		t.Fatalf("Decode %s: %v", name, err)
	}
	return ev
}

func wantRow(t *testing.T, row Row, want Row) {
	t.Helper()
	for k, w := range want {
		got, ok := row[k]
		if !ok {
			t.Errorf("row has no %q", k)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("row[%q] = %#v, want %#v", k, got, w)
		}
	}
}

func TestCreate_RowIsTheTargetWithIDAndSdkMessage(t *testing.T) {
	ev := decodeFile(t, "create-contact-sync.json")
	if ev.Message != "Create" || ev.Mode != "sync" || ev.Stage != 40 {
		t.Errorf("message %q mode %q stage %d", ev.Message, ev.Mode, ev.Stage)
	}
	wantRow(t, ev.Row, Row{
		"contactid":  "3c8a1f52-6d4b-ef11-8409-000d3a1b2c3d",
		"SdkMessage": "Create",
		"firstname":  "Ada",
		"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "Analytical Engines Ltd",
		"new_interests":             "100000000,100000002",
		"creditlimit":               json.Number("2500.5"),
		"new_externalnumber":        json.Number("9007199254740993"),
		"_modifiedonbehalfby_value": nil, // a lookup on every table: cleared in Web API shape
	})
	if ev.ChangedColumns != nil {
		t.Errorf("changedColumns = %v, want null for a Create", ev.ChangedColumns)
	}
}

func TestCreate_IDComesFromOutputParametersWhenTheTargetHasNone(t *testing.T) {
	body := `{"MessageName":"Create","PrimaryEntityName":"account","PrimaryEntityId":"00000000-0000-0000-0000-000000000000",` +
		`"InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns + `,"Attributes":[{"key":"name","value":"A"}],` +
		`"Id":"00000000-0000-0000-0000-000000000000","LogicalName":"account"}}],` +
		`"OutputParameters":[{"key":"id","value":"12345678-0000-4000-8000-000000000000"}]}`
	ev := mustDecode(t, body)
	wantRow(t, ev.Row, Row{"accountid": "12345678-0000-4000-8000-000000000000", "name": "A"})
}

func TestUpdate_TargetWinsOverThePostImage(t *testing.T) {
	ev := decodeFile(t, "update-account-async-images.json")
	wantRow(t, ev.Row, Row{
		"telephone1": "+44 20 7946 0000", // Target (also the post-image's value)
		"name":       "Fabrikam",         // only in the post-images
		"fax":        nil,                // cleared by the Target
		"revenue":    json.Number("1250000"),
		"accountid":  "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d",
		"SdkMessage": "Update",
	})
	if ev.Mode != "async" {
		t.Errorf("mode = %q", ev.Mode)
	}
	if ev.RequestID != nil {
		t.Errorf("requestId = %q, want null", *ev.RequestID)
	}
}

func TestUpdate_ChangedColumnsLeaveOutStampsAndTheKey(t *testing.T) {
	ev := decodeFile(t, "update-account-async-images.json")
	want := []string{"fax", "primarycontactid", "revenue", "telephone1"}
	if !slices.Equal(ev.ChangedColumns, want) {
		t.Errorf("changedColumns = %q, want %q", ev.ChangedColumns, want)
	}
}

func TestUpdate_ChangedColumnsIsEmptyNotNullWhenOnlyStampsChanged(t *testing.T) {
	body := `{"MessageName":"Update","PrimaryEntityName":"account","InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns +
		`,"Attributes":[{"key":"modifiedon","value":"\/Date(0)\/"},{"key":"accountid","value":"a"}],"Id":"a","LogicalName":"account"}}]}`
	ev := mustDecode(t, body)
	out, _ := json.Marshal(ev)
	if ev.ChangedColumns == nil || len(ev.ChangedColumns) != 0 {
		t.Errorf("changedColumns = %#v, want an empty slice; %s", ev.ChangedColumns, out)
	}
}

func TestUpdate_ImagesAreKeptAndMerged(t *testing.T) {
	ev := decodeFile(t, "update-account-async-images.json")
	if !ev.HasPreImage || ev.PreImage["telephone1"] != "+44 20 7946 0999" {
		t.Errorf("pre-image %v (has %v)", ev.PreImage, ev.HasPreImage)
	}
	// PostImage and AsynchronousStepPrimaryName are merged into one row.
	wantRow(t, ev.PostImage, Row{"name": "Fabrikam", "customertypecode": json.Number("3")})
}

func TestUpdate_OperationCreatedOnOffsetIsAdded(t *testing.T) {
	ev := decodeFile(t, "update-account-async-images.json") // "\/Date(1735837200000-0500)\/"
	if ev.OperationCreatedOn != "2025-01-02T12:00:00Z" {
		t.Errorf("operationCreatedOn = %q", ev.OperationCreatedOn)
	}
}

func TestUpdate_WithoutPostImageTheRowBuildsOnThePreImage(t *testing.T) {
	body := `{"MessageName":"Update","PrimaryEntityName":"account","InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns +
		`,"Attributes":[{"key":"statuscode","value":{"__type":"OptionSetValue` + ns + `,"Value":2}}],"Id":"a","LogicalName":"account"}}],` +
		`"PreEntityImages":[{"key":"pre","value":{"Attributes":[{"key":"name","value":"N"},` +
		`{"key":"statuscode","value":{"__type":"OptionSetValue` + ns + `,"Value":1}}],` +
		`"FormattedValues":[{"key":"statuscode","value":"Active"},{"key":"name","value":"N"}],"LogicalName":"account"}}]}`
	ev := mustDecode(t, body)
	wantRow(t, ev.Row, Row{"name": "N", "statuscode": json.Number("2"), "accountid": "a"})
	if _, ok := ev.Row["statuscode@OData.Community.Display.V1.FormattedValue"]; ok {
		t.Error("the pre-image's formatted value of a changed column is still in the row")
	}
	if _, ok := ev.Row["name@OData.Community.Display.V1.FormattedValue"]; !ok {
		t.Error("the pre-image's formatted value of an unchanged column is missing")
	}
}

func TestDelete_RowIsThePreImageWithIDAndSdkMessage(t *testing.T) {
	ev := decodeFile(t, "delete-account-preimage.json")
	wantRow(t, ev.Row, Row{
		"accountid":     "b7d9e1f3-2a4c-ef11-8409-000d3a1b2c3d",
		"name":          "Northwind Traders",
		"accountnumber": "NW-0042",
		"SdkMessage":    "Delete",
	})
	if ev.ChangedColumns != nil {
		t.Errorf("changedColumns = %v, want null", ev.ChangedColumns)
	}
}

func TestDelete_WithoutPreImageTheRowIsIDAndSdkMessage(t *testing.T) {
	body := `{"MessageName":"Delete","PrimaryEntityName":"account","InputParameters":[{"key":"Target","value":` +
		`{"__type":"EntityReference` + ns + `,"Id":"b","KeyAttributes":[],"LogicalName":"account","Name":null}}]}`
	ev := mustDecode(t, body)
	want := Row{"accountid": "b", "SdkMessage": "Delete", "ItemInternalId": "b"}
	if !reflect.DeepEqual(ev.Row, want) {
		t.Errorf("row = %v, want %v", ev.Row, want)
	}
}

func TestAssociate_CarriesRelationshipAndRelatedRecords(t *testing.T) {
	for _, name := range []string{"associate-account-contacts.json", "disassociate-account-contacts.json"} {
		t.Run(name, func(t *testing.T) {
			ev := decodeFile(t, name)
			if ev.Relationship != "new_account_contact_partners" {
				t.Errorf("relationship = %q", ev.Relationship)
			}
			want := []RecordRef{
				{Table: "contact", ID: "c0ffee00-aaaa-ef11-8409-000d3a1b2c3d"},
				{Table: "contact", ID: "c0ffee00-bbbb-ef11-8409-000d3a1b2c3d"},
			}
			if !reflect.DeepEqual(ev.RelatedRecords, want) {
				t.Errorf("relatedRecords = %v, want %v", ev.RelatedRecords, want)
			}
			wantRow(t, ev.Row, Row{"accountid": "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d"})
		})
	}
}

func TestSetState_StateAndStatusGoIntoTheRow(t *testing.T) {
	ev := decodeFile(t, "setstate-incident.json")
	wantRow(t, ev.Row, Row{
		"incidentid": "1ce1de00-5e75-ef11-8409-000d3a1b2c3d",
		"statecode":  json.Number("1"),
		"statuscode": json.Number("5"),
		"title":      "Printer on fire",
		"SdkMessage": "SetState",
	})
	for _, k := range []string{"statecode@OData.Community.Display.V1.FormattedValue", "statuscode@OData.Community.Display.V1.FormattedValue"} {
		if _, ok := ev.Row[k]; ok {
			t.Errorf("row keeps the old %s", k)
		}
	}
}

func TestAssign_OwnerComesFromTheAssignee(t *testing.T) {
	ev := decodeFile(t, "assign-account-team.json")
	wantRow(t, ev.Row, Row{
		"_ownerid_value": "8db66f44-8d23-e311-a2cb-0050569c0f02",
		"_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "team",
		"accountid": "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d",
	})
}

func TestMerge_RowHasTheUpdateContent(t *testing.T) {
	ev := decodeFile(t, "merge-account.json")
	wantRow(t, ev.Row, Row{"telephone2": "+44 20 7946 0111", "accountid": "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d"})
}

func TestSizeExceeded_RowIsIDAndSdkMessage(t *testing.T) {
	ev := decodeFile(t, "update-account-size-exceeded.json")
	if !ev.SizeExceeded {
		t.Error("sizeExceeded = false for a body without InputParameters")
	}
	want := Row{"accountid": "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d", "SdkMessage": "Update",
		"ItemInternalId": "a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d", "RunAsSystemUserId": "9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d"}
	if !reflect.DeepEqual(ev.Row, want) {
		t.Errorf("row = %v, want %v", ev.Row, want)
	}
	if ev.ChangedColumns != nil {
		t.Errorf("changedColumns = %v, want null (unknown)", ev.ChangedColumns)
	}
}

func TestActivity_PrimaryKeyIsActivityID(t *testing.T) {
	ev := decodeFile(t, "create-email-partylist.json")
	if _, ok := ev.Row["emailid"]; ok {
		t.Error(`row has "emailid"; an email's key is "activityid"`)
	}
	wantRow(t, ev.Row, Row{"activityid": "e4a11000-2222-ef11-8409-000d3a1b2c3d"})
	to, ok := ev.Row["to"].([]any)
	if !ok || len(to) != 1 {
		t.Fatalf("to = %#v, want one party row", ev.Row["to"])
	}
	wantRow(t, to[0].(Row), Row{"_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact"})
}

func TestActivity_CustomActivityIsRecognizedFromItsRow(t *testing.T) {
	body := `{"MessageName":"Update","PrimaryEntityName":"new_visit","InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns +
		`,"Attributes":[{"key":"activityid","value":"AB"},{"key":"subject","value":"s"}],"Id":"ab","LogicalName":"new_visit"}}]}`
	ev := mustDecode(t, body)
	if _, ok := ev.Row["new_visitid"]; ok {
		t.Error(`row has "new_visitid"; a custom activity's key is "activityid"`)
	}
	if !slices.Equal(ev.ChangedColumns, []string{"subject"}) {
		t.Errorf("changedColumns = %q, want [subject]", ev.ChangedColumns)
	}
}

func TestBOMAndUnescapedSlashes(t *testing.T) {
	ev := decodeFile(t, "create-lead-bom-unescaped.json")
	wantRow(t, ev.Row, Row{
		"leadid":             "4ead0000-1111-ef11-8409-000d3a1b2c3d",
		"companyname":        "Navy & Co <R&D>",
		"estimatedclosedate": "2025-02-01T00:00:00Z",
	})
	if ev.OperationCreatedOn != "2025-01-09T05:20:00Z" {
		t.Errorf("operationCreatedOn = %q", ev.OperationCreatedOn)
	}
}

// An Update that clears a lookup says only "parentcustomerid": null in its Target. With no
// post-image the row is built over the pre-image, which holds the old reference as
// _parentcustomerid_value: the cleared value must replace it there, or a filter such as
// "_parentcustomerid_value eq null" sees the old record.
func TestUpdate_ClearedLookupReplacesThePreImageReference(t *testing.T) {
	body := `{"MessageName":"Update","PrimaryEntityName":"contact","PrimaryEntityId":"11111111-2222-4333-8444-555555555555","Mode":1,"Stage":40,` +
		`"InputParameters":[{"key":"Target","value":{"__type":"Entity` + ns + `,"Attributes":[` +
		`{"key":"parentcustomerid","value":null}],"FormattedValues":[],` +
		`"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}],` +
		`"PreEntityImages":[{"key":"pre","value":{"Attributes":[{"key":"parentcustomerid","value":` +
		`{"__type":"EntityReference` + ns + `,"Id":"22222222-2222-4222-8222-222222222222","LogicalName":"account","Name":"Acme"}}],` +
		`"FormattedValues":[],"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}],"PostEntityImages":[]}`
	ev := mustDecode(t, body)
	wantRow(t, ev.Row, Row{"_parentcustomerid_value": nil})
	for _, k := range []string{
		"parentcustomerid",
		"_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname",
		"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue",
	} {
		if v, ok := ev.Row[k]; ok {
			t.Errorf("row[%q] = %#v, want no such key", k, v)
		}
	}
	if want := []string{"parentcustomerid"}; !slices.Equal(ev.ChangedColumns, want) {
		t.Errorf("changedColumns = %v, want %v", ev.ChangedColumns, want)
	}
	if ev.PreImage["_parentcustomerid_value"] != "22222222-2222-4222-8222-222222222222" {
		t.Errorf("preImage lost its reference: %v", ev.PreImage)
	}
}
