package odata

import (
	"encoding/json"
	"strings"
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

func TestCheck_ReportsAnErrorInEachOperand(t *testing.T) {
	cases := []struct {
		src  string
		want []string
	}{
		{"statecode eq and name eq 'x' or frobnicate(name)", []string{
			`col 14: expected a value, found the operator "and"`,
			"col 33: unknown or unsupported function frobnicate; supported: contains, startswith, endswith, tolower, toupper",
		}},
		{"a gt 1 and (b eq) or c eq 2 and d in (1, e)", []string{
			"col 17: expected a value, found \")\"",
			"col 42: the list after in holds literals only, found \"e\"",
		}},
		{"name eq 'open", []string{"col 9: unterminated string literal (a quote inside a string is written '')"}},
	}
	for _, c := range cases {
		var got []string
		for _, e := range Check(c.src) {
			got = append(got, e.Error())
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", c.src, got, c.want)
		}
		_, err := Compile(c.src)
		if errs := Check(c.src); len(errs) == 0 || errs[0].Error() != err.Error() {
			t.Errorf("%s: Check's first error is not Compile's (%v)", c.src, err)
		}
	}
	if Check("a eq 1 and b eq 2") != nil {
		t.Error("a valid filter has errors")
	}
}
