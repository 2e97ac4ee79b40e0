package odata

import (
	"encoding/json"
	"testing"
)

func TestExplain_SaysWhichComparisonFailedAndWhatItCompared(t *testing.T) {
	row := map[string]any{"statuscode": json.Number("1"), "statecode": json.Number("0"), "name": "Fabrikam", "revenue": nil}
	cases := []struct{ filter, want string }{
		{"statuscode eq 2", "statuscode eq 2: statuscode is 1"},
		{"statecode eq 0 and statuscode eq 2", "statuscode eq 2: statuscode is 1"},
		{"statuscode eq 2 or name eq 'Contoso'", "statuscode eq 2: statuscode is 1; name eq 'Contoso': name is 'Fabrikam'"},
		{"(statecode eq 1 or statuscode gt 5) and name ne null", "statecode eq 1: statecode is 0; statuscode gt 5: statuscode is 1"},
		{"revenue gt 1000", "revenue gt 1000 is unknown: revenue is null"},
		{"telephone1 eq '555'", "telephone1 eq '555' is unknown: telephone1 is null (not in the event)"},
		{"contains(name, 'widgets')", "contains(name, 'widgets'): name is 'Fabrikam'"},
		{"not (statecode eq 0)", "not (statecode eq 0): statecode is 0"},
		{"statecode eq 0", ""},
	}
	for _, c := range cases {
		f, err := Compile(c.filter)
		if err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		if got := f.Explain(row); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.filter, got, c.want)
		}
	}
}
