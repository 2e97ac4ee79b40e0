package route

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// benchTemplates are the kinds of filter and condition people write on opportunities: amounts,
// lookups, text, choices, dates, nulls, the message. %d varies the constant per route.
var benchTemplates = [][2]string{
	{"estimatedvalue gt %d", "@greater(triggerOutputs()?['body/estimatedvalue'], %d)"},
	{"_customerid_value eq a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d and closeprobability ge %d",
		"@equals(triggerBody()?['_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname'], 'account')"},
	{"contains(name, 'widgets') or estimatedvalue lt %d", "@contains(toLower(triggerBody()?['name']), 'units')"},
	{"salesstagecode in (1, 2, 3) and closeprobability ne %d",
		"@or(equals(triggerOutputs()?['body/stepname'], '3-Propose'), equals(triggerOutputs()?['body/stepname'], '4-Close'))"},
	{"estimatedclosedate lt 2025-06-01T00:00:00Z and estimatedvalue ge %d",
		"@less(ticks(triggerBody()?['estimatedclosedate']), ticks('2025-06-01T00:00:00Z'))"},
	{"closeprobability ge %d and exchangerate eq 1", "@greaterOrEquals(int(triggerBody()?['closeprobability']), 50)"},
	{"description eq null and closeprobability gt %d", "@empty(triggerBody()?['description'])"},
	{"startswith(stepname, '3') and estimatedvalue gt %d", "@startsWith(triggerBody()?['stepname'], '3')"},
	{"not (salesstagecode eq 0) or estimatedvalue le %d", "@not(equals(triggerBody()?['SdkMessage'], 'Delete'))"},
	{"tolower(name) eq '500 units of widgets' and closeprobability lt %d",
		"@and(equals(triggerBody()?['SdkMessage'], 'Update'), not(empty(triggerBody()?['name'])))"},
}

// BenchmarkMatch50Routes matches a ~5 KB Update (the same payload BenchmarkDecode decodes)
// against 50 routes on its table, each with a filter and a condition; most filters hold, so
// most conditions run too. Compare it with BenchmarkDecode in the same run:
//
//	go test -run x -bench 'Decode$|Match50' ./pkg/dataverse ./pkg/route
func BenchmarkMatch50Routes(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		b.Fatal(err)
	}
	ev, err := dataverse.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	var routes strings.Builder
	for i := 0; i < 50; i++ {
		t := benchTemplates[i%len(benchTemplates)]
		n := 10 * (i + 1)
		if strings.Contains(t[0], "estimatedvalue") {
			n = 1000 * (i + 1)
		}
		fmt.Fprintf(&routes, "  - name: r%d\n    table: opportunity\n    messages: [Create, Update]\n    filter: %q\n    conditions: [%q]\n    consumers: [erp]\n",
			i, fmt.Sprintf(t[0], n), strings.ReplaceAll(t[1], "%d", fmt.Sprint(n)))
	}
	s := compile(b, routes.String(), Options{})
	if got := len(s.Match(ev)); got < 25 {
		b.Fatalf("only %d of 50 routes match: the benchmark would skip most conditions", got)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Match(ev)
	}
}
