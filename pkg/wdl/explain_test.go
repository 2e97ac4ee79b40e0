package wdl

import (
	"encoding/json"
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
