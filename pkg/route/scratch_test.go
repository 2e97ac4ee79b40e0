package route

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/odata"
	"github.com/dvrouter/dvrouter/pkg/wdl"
)

// Match reads every event's columns once, through pooled per-event scratch shared by all
// filters. These tests check that sharing never changes a decision.

func TestMatch_EachEventSeesItsOwnColumns(t *testing.T) {
	s := compile(t, `  - name: open
    table: contact
    filter: "statecode eq 0"
    consumers: [erp]
  - name: won
    table: contact
    filter: "statecode eq 1 and estimatedvalue gt 1000"
    consumers: [erp]
  - name: big
    table: contact
    filter: "estimatedvalue ge 1000000 or statecode eq 2"
    conditions: ["@equals(triggerBody()?['stepname'], 'Won')"]
    consumers: [erp]
`, Options{})
	tests := []struct {
		row  dataverse.Row
		want []string
	}{
		{dataverse.Row{"statecode": num("0"), "estimatedvalue": num("5")}, []string{"open"}},
		{dataverse.Row{"statecode": num("1"), "estimatedvalue": num("5000")}, []string{"won"}},
		{dataverse.Row{"statecode": num("1"), "estimatedvalue": num("2000000"), "stepname": "Won"}, []string{"won", "big"}},
		{dataverse.Row{"statecode": num("2"), "stepname": "Lost"}, nil},
		{dataverse.Row{}, nil},
		{dataverse.Row{"statecode": num("0.0")}, []string{"open"}},
	}
	for round := range 3 { // the same scratch serves event after event
		for i, tt := range tests {
			if got := routeNames(s.Match(update(tt.row))); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("round %d, event %d: matched %v, want %v", round, i, got, tt.want)
			}
		}
	}
}

// randomBenchRoutes is a route file shaped like BenchmarkMatch50Routes', with random constants.
func randomBenchRoutes(r *rand.Rand, n int) string {
	var routes strings.Builder
	for i := range n {
		t := benchTemplates[i%len(benchTemplates)]
		c := r.IntN(100)
		if strings.Contains(t[0], "estimatedvalue") {
			c = 1000 * r.IntN(300)
		}
		fmt.Fprintf(&routes, "  - name: r%d\n    table: opportunity\n    messages: [Create, Update]\n    filter: %q\n    conditions: [%q]\n    consumers: [erp]\n",
			i, fmt.Sprintf(t[0], c), strings.ReplaceAll(t[1], "%d", fmt.Sprint(c)))
	}
	return routes.String()
}

// vary changes the columns the bench routes read, to values of every kind they meet.
func vary(r *rand.Rand, row dataverse.Row) {
	pick := func(vs ...any) any { return vs[r.IntN(len(vs))] }
	row["estimatedvalue"] = pick(json.Number(fmt.Sprint(1000*r.IntN(300))), json.Number("150000.0000"), nil, "150000")
	row["closeprobability"] = pick(json.Number(fmt.Sprint(r.IntN(100))), json.Number("50.5"), nil)
	row["salesstagecode"] = pick(json.Number("0"), json.Number("2"), json.Number("3.0"), nil)
	row["stepname"] = pick("3-Propose", "4-Close", "1-Qualify", nil)
	row["name"] = pick("500 units of widgets", "500 UNITS of Widgets", "Fabrikam units", "", nil)
	row["description"] = pick(nil, "text")
	row["exchangerate"] = pick(json.Number("1.0000000000"), json.Number("1.1"))
	row["estimatedclosedate"] = pick("2025-03-01T00:00:00Z", "2025-07-01T00:00:00Z", "soon", nil)
	row["_customerid_value"] = pick("a41b7c2e-9f3d-ef11-8409-000d3a1b2c3d", "A41B7C2E-9F3D-EF11-8409-000D3A1B2C3D", "x")
	if r.IntN(4) == 0 {
		delete(row, "name")
	}
}

func TestMatch_AgreesWithEvaluatingEachRouteAlone(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		t.Skipf("test event not available: %v", err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	s := compile(t, randomBenchRoutes(r, 100), Options{})
	matched := 0
	for range 300 {
		ev, err := dataverse.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		vary(r, ev.Row)
		// The reference: each route's filter and conditions compiled and run on their own, with
		// no memo, no shared columns and a fresh Env.
		want := []string{}
		for _, rt := range s.Routes() {
			f, err := odata.Compile(rt.Config.Filter)
			if err != nil {
				t.Fatal(err)
			}
			ok := f.Match(ev.Row)
			for _, c := range rt.Config.Conditions {
				e, err := wdl.Compile(c)
				if err != nil {
					t.Fatal(err)
				}
				if held, err := e.Bool(&wdl.Env{Body: ev.Row}); err != nil || !held {
					ok = false
				}
			}
			if ok {
				want = append(want, rt.Name)
			}
		}
		if got := routeNames(s.Match(ev)); !reflect.DeepEqual(got, want) {
			t.Fatalf("row %v:\nMatch gives       %v\nalone they give %v", ev.Row, got, want)
		}
		explained := []string{}
		for _, d := range s.Explain(ev) {
			if d.Matched {
				explained = append(explained, d.Name)
			}
		}
		if !reflect.DeepEqual(explained, want) {
			t.Fatalf("row %v:\nExplain gives   %v\nalone they give %v", ev.Row, explained, want)
		}
		matched += len(want)
	}
	if matched == 0 {
		t.Fatal("no route ever matched; the test compares nothing")
	}
}

func TestMatch_AllocatesOnlyTheResult(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		t.Skipf("test event not available: %v", err)
	}
	ev, err := dataverse.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := compile(t, randomBenchRoutes(rand.New(rand.NewPCG(7, 8)), 50), Options{})
	if n := testing.AllocsPerRun(200, func() { s.Match(ev) }); n > 1 {
		t.Errorf("Match allocates %v times per event, want at most 1 (the result)", n)
	}
}
