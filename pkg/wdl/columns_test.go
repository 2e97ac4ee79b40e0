package wdl

import (
	"slices"
	"testing"
)

func TestColumns_LiteralColumnReadsInBothForms(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"@equals(triggerOutputs()?['body/StepName'], 'Won')", []string{"stepname"}},
		{"@and(greater(triggerBody()?['budgetamount'], 10), equals(triggerBody()?['StepName'], triggerBody()?['stepname']))", []string{"budgetamount", "stepname"}},
		{"total @{triggerBody()?['revenue']}", []string{"revenue"}},
		{"@equals(utcNow(), '')", nil},
		{"plain text", nil},
	} {
		e, err := Compile(tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if got := e.Columns(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Columns() = %v, want %v", tc.src, got, tc.want)
		}
	}
}
