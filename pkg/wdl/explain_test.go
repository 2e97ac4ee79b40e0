package wdl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExplain_SaysWhichCallFailedAndTheValuesItCompared(t *testing.T) {
	env := &Env{Body: map[string]any{"statuscode": json.Number("1"), "name": "Fabrikam", "stepname": nil}}
	cases := []struct{ cond, want string }{
		{"@equals(triggerBody()?['statuscode'], 2)", "equals(triggerBody()?['statuscode'], 2): triggerBody()?['statuscode'] is 1"},
		{"@and(equals(triggerBody()?['name'], 'Fabrikam'), greater(triggerBody()?['statuscode'], 5))",
			"greater(triggerBody()?['statuscode'], 5): triggerBody()?['statuscode'] is 1"},
		{"@or(equals(triggerOutputs()?['body/stepname'], 'Won'), startsWith(triggerBody()?['name'], 'Con'))",
			"equals(triggerOutputs()?['body/stepname'], 'Won'): triggerOutputs()?['body/stepname'] is null; startsWith(triggerBody()?['name'], 'Con'): triggerBody()?['name'] is 'Fabrikam'"},
		{"@not(equals(triggerBody()?['name'], 'Fabrikam'))", "not(equals(triggerBody()?['name'], 'Fabrikam')): equals(triggerBody()?['name'], 'Fabrikam') is true"},
		{"@false", ""},
		{"@empty(triggerBody()?['name'])", "empty(triggerBody()?['name']): triggerBody()?['name'] is 'Fabrikam'"},
		{"@equals(triggerBody()?['statuscode'], 1)", ""},
	}
	for _, c := range cases {
		e, err := Compile(c.cond)
		if err != nil {
			t.Fatalf("%s: %v", c.cond, err)
		}
		if got := e.Explain(env); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.cond, got, c.want)
		}
	}
}

func TestCheck_ReportsEveryErrorWithItsPosition(t *testing.T) {
	src := "@and(equals(triggerBody()?['x'], 1), frobnicate(2), greater(triggerBody()?['y']), contains('a', 'b'))"
	errs := Check(src)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		"col 38: unknown or unsupported function frobnicate(); see pkg/wdl/README.md for the supported list",
		"col 53: greater() takes 2 argument(s), found 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if Check("@equals(1, 1)") != nil {
		t.Error("a valid expression has errors")
	}
	// An unclosed call is one error, not one per enclosing call.
	if errs := Check("@and(equals(1, 1), not(equals(2, 2)"); len(errs) != 1 {
		t.Errorf("unclosed: %v", errs)
	}
	// Every error Check reports, Compile's first among them.
	for _, src := range []string{"@frobnicate(1)", "@equals(1", "@'open", "text @{equals(1,} more @{nope()}"} {
		_, err := Compile(src)
		errs := Check(src)
		if len(errs) == 0 || errs[0].Error() != err.Error() {
			t.Errorf("%s: Check %v, Compile %v", src, errs, err)
		}
	}
}
