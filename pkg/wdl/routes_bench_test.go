package wdl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// routeFileConditions collects the trigger conditions of the project's route files (the
// examples, the load run's routes) and of the flow definitions the route tests import: the
// conditions people actually write, for BenchmarkRouteConditions.
func routeFileConditions(tb testing.TB) []string {
	tb.Helper()
	var files []string
	for _, pattern := range []string{"../../examples/*.yaml", "../../loadtest/cmd/load/*.yaml", "../route/testdata/*.json", "../config/testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var conds []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var doc any
		if strings.HasSuffix(f, ".json") {
			err = json.Unmarshal(raw, &doc)
		} else {
			err = yaml.Unmarshal(raw, &doc)
		}
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		conds = append(conds, collectConditions(doc, false)...)
	}
	if len(conds) < 5 {
		tb.Fatalf("found only %d trigger conditions in %v", len(conds), files)
	}
	return conds
}

// collectConditions returns the strings under "conditions" keys: YAML route files list them as
// strings, flow definitions as {"expression": "..."} objects.
func collectConditions(v any, inConditions bool) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out = append(out, collectConditions(e, (inConditions && k == "expression") || k == "conditions")...)
		}
	case []any:
		for _, e := range x {
			out = append(out, collectConditions(e, inConditions)...)
		}
	case string:
		if inConditions && strings.HasPrefix(strings.TrimSpace(x), "@") {
			out = append(out, x)
		}
	}
	return out
}

// BenchmarkRouteConditions compiles the route files' trigger conditions and evaluates each on a
// row of the size an event carries: the cost of conditions at start-up and per event.
func BenchmarkRouteConditions(b *testing.B) {
	conds := routeFileConditions(b)
	env := &Env{Body: benchRow()}
	b.Run("compile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range conds {
				if _, err := Compile(c); err != nil {
					b.Fatalf("%q: %v", c, err)
				}
			}
		}
	})
	b.Run("eval", func(b *testing.B) {
		exprs := make([]*Expr, len(conds))
		for i, c := range conds {
			e, err := Compile(c)
			if err != nil {
				b.Fatalf("%q: %v", c, err)
			}
			exprs[i] = e
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			for _, e := range exprs {
				_, _ = e.Bool(env) // a condition over a column the row lacks may fail: that is a cost too
			}
		}
	})
}
