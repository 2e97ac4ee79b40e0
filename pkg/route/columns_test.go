package route

import (
	"slices"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
)

func TestColumns_EveryColumnTheRoutesOfATableRead(t *testing.T) {
	f := &config.RouteFile{Routes: []config.Route{
		{Name: "a", Table: "contact", FilteringAttributes: []string{"emailaddress1"}, Changed: []string{"_parentcustomerid_value"},
			Filter: "statecode eq 0 and lastname ne null", Select: []string{"fullname"}, Consumers: []string{"c"}},
		{Name: "b", Table: "*", Conditions: []string{"@equals(triggerOutputs()?['body/StepName'], 'Won')", "@{triggerBody()?['budgetamount']}"}, Consumers: []string{"c"}},
		{Name: "c", Table: "account", Filter: "name eq 'x'", Consumers: []string{"c"}},
	}}
	s, err := Compile(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Columns("contact")
	want := []string{"emailaddress1", "parentcustomerid", "statecode", "lastname", "fullname", "stepname", "budgetamount"}
	if !slices.Equal(got, want) {
		t.Errorf("Columns(contact) = %v, want %v", got, want)
	}
	if got, want := s.Columns("account"), []string{"stepname", "budgetamount", "name"}; !slices.Equal(got, want) {
		t.Errorf("Columns(account) = %v, want %v", got, want)
	}
}
