package route

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

func compileYAML(t *testing.T, src string) *Set {
	t.Helper()
	rf, err := config.LoadRoutesBytes("routes.yaml", []byte("consumers:\n  - {name: c, type: http, url: \"https://c.example.com/\"}\nroutes:\n"+src), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(rf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func accountUpdate(row dataverse.Row, changed ...string) *dataverse.Event {
	return &dataverse.Event{ID: "e", Message: "Update", Table: "account", RecordID: "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
		Stage: 40, Mode: "async", Row: row, ChangedColumns: changed}
}

func TestReads_FetchColumnsOfRoutesThatCouldMatch(t *testing.T) {
	s := compileYAML(t, `
  - {name: m, table: account, fetch: missing, conditions: ["@greater(triggerBody()?['creditlimit'], 5)"], filter: "_primarycontactid_value ne null", consumers: [c]}
  - {name: l, table: account, fetch: [revenue, name], consumers: [c]}
  - {name: other-table, table: contact, fetch: [lastname], consumers: [c]}
  - {name: creates, table: account, messages: [Create], fetch: [telephone1], consumers: [c]}
  - {name: filtered-out, table: account, filteringAttributes: [emailaddress1], fetch: [fax], consumers: [c]}
`)
	cols, reread := s.Reads(accountUpdate(dataverse.Row{"name": "x", "SdkMessage": "Update"}, "name"))
	if reread || !slices.Equal(cols, []string{"primarycontactid", "creditlimit", "revenue"}) {
		t.Errorf("Reads = %v, %v", cols, reread)
	}
	if cols, _ := s.Reads(accountUpdate(dataverse.Row{"name": "x", "creditlimit": nil, "_primarycontactid_value": "y", "revenue": "1"})); cols != nil {
		t.Errorf("the event carries everything (null counts): Reads = %v", cols)
	}
	del := accountUpdate(dataverse.Row{})
	del.Message = "Delete"
	if cols, _ := s.Reads(del); cols != nil {
		t.Errorf("a Delete is never read: %v", cols)
	}
}

func TestReads_SizeExceededReadsEveryColumnTheTablesRoutesRead(t *testing.T) {
	s := compileYAML(t, `
  - {name: a, table: account, filteringAttributes: [telephone1], filter: "statecode eq 0", select: [name], consumers: [c]}
  - {name: b, table: contact, filter: "lastname eq 'x'", consumers: [c]}
`)
	ev := accountUpdate(dataverse.Row{"accountid": "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b", "SdkMessage": "Update"})
	ev.SizeExceeded, ev.ChangedColumns = true, nil
	cols, reread := s.Reads(ev)
	if !reread || !slices.Equal(cols, []string{"telephone1", "statecode", "name"}) {
		t.Fatalf("Reads = %v, %v", cols, reread)
	}
	ev.Table = "lead"
	if cols, reread := s.Reads(ev); cols != nil || reread {
		t.Errorf("no route names lead: Reads = %v, %v", cols, reread)
	}
}

func TestMatch_ReReadEventPassesFilteringAttributes(t *testing.T) {
	s := compileYAML(t, `
  - {name: a, table: account, filteringAttributes: [telephone1], changed: [telephone1], filter: "statecode eq 0", consumers: [c]}
`)
	ev := accountUpdate(dataverse.Row{"statecode": "0"})
	ev.SizeExceeded, ev.ChangedColumns = true, nil
	if got := s.Match(ev); len(got) != 0 {
		t.Fatal("a size-exceeded event that was not re-read passed filteringAttributes")
	}
	ev.Reread = true
	ev.Row["statecode"] = jsonNumber("0")
	if got := s.Match(ev); len(got) != 1 {
		t.Fatalf("re-read event: matched %d routes, want 1: %+v", len(got), s.Explain(ev))
	}
}

func TestReads_AllocatesNothingWithoutFetch(t *testing.T) {
	s := compileYAML(t, `
  - {name: a, table: account, filter: "statecode eq 0", consumers: [c]}
`)
	ev := accountUpdate(dataverse.Row{"statecode": "0"}, "statecode")
	if n := testing.AllocsPerRun(100, func() { s.Reads(ev) }); n != 0 {
		t.Errorf("Reads allocates %v times per event", n)
	}
}

func TestExplain_SaysAConditionWasDecidedOnAnAbsentColumn(t *testing.T) {
	s := compileYAML(t, `
  - {name: no-fetch, table: account, conditions: ["@equals(triggerOutputs()?['body/creditlimit'], null)"], consumers: [c]}
  - {name: present, table: account, filter: "name eq 'x'", consumers: [c]}
`)
	ds := s.Explain(accountUpdate(dataverse.Row{"name": "x"}, "name"))
	if !ds[0].Matched || !slices.Equal(ds[0].Absent, []string{"creditlimit"}) ||
		!strings.Contains(ds[0].Reason, "absent column(s) creditlimit") || !strings.Contains(ds[0].Reason, "fetch: missing") {
		t.Errorf("decision = %+v", ds[0])
	}
	if ds[1].Absent != nil || strings.Contains(ds[1].Reason, "absent") {
		t.Errorf("decision = %+v", ds[1])
	}
}

func TestWarnings_UpdateRouteReadingColumnsWithoutFetch(t *testing.T) {
	s := compileYAML(t, `
  - {name: reads, table: account, filter: "statecode eq 0 and modifiedon ne null", consumers: [c]}
  - {name: fetches, table: account, fetch: missing, filter: "statecode eq 0", consumers: [c]}
  - {name: creates, table: account, messages: [Create], filter: "statecode eq 0", consumers: [c]}
`)
	ws := s.Warnings()
	if len(ws) != 1 || !strings.Contains(ws[0].Msg, `route "reads" reads [statecode] on Update`) || ws[0].Pos.Line != 5 {
		t.Fatalf("warnings = %v", ws)
	}
}

func TestLoad_Fetch(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`fetch: everything`, `fetch: "everything": want missing`},
		{`fetch: []`, `fetch: empty`},
		{`fetch: ["not a column"]`, `is not a column logical name`},
	} {
		_, err := config.LoadRoutesBytes("r.yaml", []byte("consumers:\n  - {name: c, type: http, url: \"https://c.example.com/\"}\nroutes:\n  - name: r\n    table: account\n    "+tc.src+"\n    consumers: [c]\n"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.src, err, tc.want)
		}
	}
	rf, err := config.LoadRoutesBytes("r.yaml", []byte("consumers:\n  - {name: c, type: http, url: \"https://c.example.com/\"}\nroutes:\n  - {name: r, table: account, fetch: missing, consumers: [c]}\n  - {name: s, table: account, fetch: [Revenue, name], consumers: [c]}\n"), nil)
	if err != nil || !rf.Routes[0].FetchMissing || !slices.Equal(rf.Routes[1].Fetch, []string{"revenue", "name"}) {
		t.Fatalf("routes = %+v (err %v)", rf, err)
	}
}

func jsonNumber(s string) any { return json.Number(s) }
