package wdl

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

// The conformance test runs Microsoft's own examples: every "And returns this result" example
// of the expression functions reference (2021 and 2025 revisions) and the Logic Apps designer's
// parser tests, each case that a trigger condition may use (testdata/wdl-function-examples.json,
// which carries its sources and licence).

type conformanceCase struct {
	ID               string          `json:"id"`
	Kind             string          `json:"kind"`
	Expr             string          `json:"expr"`
	Expected         json.RawMessage `json:"expected"`
	ExpectedType     string          `json:"expected_type"`
	ExpectedReliable *bool           `json:"expected_reliable"`
	ExpectValid      *bool           `json:"expect_valid"`
	ExpectedValue    *string         `json:"expected_value"`
	Now              string          `json:"now"`
	Note             string          `json:"note"`
	SourceURL        string          `json:"source_url"`
}

// correction replaces a documented result that is wrong by the reference's own rules.
type correction struct {
	expected     any    // the value the documented rule gives; ignored when err is true
	expectedType string // as in the file
	err          bool   // the documented rule makes the expression an error
	why          string
}

// corrections are the cases where Microsoft's example looks wrong; the file marks them
// expected_reliable false, and each must have an entry here saying what the test expects and why.
var corrections = map[string]correction{
	"docs-40": {err: true, why: "convertTimeZone('2018-01-01T80:00:00.0000000Z', ...): hour 80 is not a time, " +
		"so the timestamp parameter is not 'a string that contains the timestamp' and the call is an error " +
		"(here at compile time, the timestamp being a literal); the doc's result is that of hour 08"},
	"docs-149": {expected: "https", expectedType: "string", why: "uriScheme('https://...') is the URI's scheme; " +
		"the doc prints \"http\" for an https URI"},
}

func loadConformance(t *testing.T) []conformanceCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/wdl-function-examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Licence string            `json:"licence"`
		Cases   []conformanceCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if file.Licence == "" || len(file.Cases) < 250 {
		t.Fatalf("testdata/wdl-function-examples.json: %d cases, licence %q", len(file.Cases), file.Licence)
	}
	return file.Cases
}

func TestConformance_MicrosoftExamples(t *testing.T) {
	for _, c := range loadConformance(t) {
		t.Run(c.ID, func(t *testing.T) {
			switch c.Kind {
			case "eval":
				checkEvalCase(t, c)
			case "parse":
				checkParseCase(t, c)
			default:
				t.Fatalf("unknown kind %q", c.Kind)
			}
		})
	}
}

func checkParseCase(t *testing.T, c conformanceCase) {
	e, err := Compile(c.Expr)
	if c.ExpectValid == nil {
		t.Fatal("parse case without expect_valid")
	}
	if !*c.ExpectValid {
		if err == nil {
			t.Fatalf("Compile(%q) succeeded; the designer refuses it", c.Expr)
		}
		var ee *Error
		if !errors.As(err, &ee) {
			t.Fatalf("Compile(%q) error %T is not *Error", c.Expr, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Compile(%q): %v", c.Expr, err)
	}
	if c.ExpectedValue == nil {
		return
	}
	got, err := e.Eval(&Env{})
	if err != nil {
		t.Fatalf("Eval(%q): %v", c.Expr, err)
	}
	if got != *c.ExpectedValue {
		t.Errorf("Eval(%q) = %#v, want %q", c.Expr, got, *c.ExpectedValue)
	}
}

func checkEvalCase(t *testing.T, c conformanceCase) {
	wantType := c.ExpectedType
	var want any
	if err := json.Unmarshal(c.Expected, &want); err != nil {
		t.Fatalf("expected: %v", err)
	}
	if fix, ok := corrections[c.ID]; ok {
		t.Logf("the documented result is corrected: %s", fix.why)
		want, wantType = fix.expected, fix.expectedType
		if fix.err {
			wantType = "error"
		}
	} else if c.ExpectedReliable != nil && !*c.ExpectedReliable {
		t.Fatalf("the file marks the documented result unreliable (%s): add a correction saying what the test expects", c.Note)
	}
	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if c.Now != "" {
		var err error
		if now, err = time.Parse(time.RFC3339Nano, c.Now); err != nil {
			t.Fatalf("now: %v", err)
		}
	}
	env := &Env{Now: func() time.Time { return now }}
	e, err := Compile(c.Expr)
	if wantType == "error" {
		if err == nil {
			var got any
			if got, err = e.Eval(env); err == nil {
				t.Fatalf("Eval(%q) = %#v, want an error", c.Expr, got)
			}
		}
		var ee *Error
		if !errors.As(err, &ee) {
			t.Fatalf("%q: error %T is not *Error", c.Expr, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Compile(%q): %v", c.Expr, err)
	}
	got, err := e.Eval(env)
	if err != nil {
		t.Fatalf("Eval(%q): %v", c.Expr, err)
	}
	switch wantType {
	case "int":
		if _, ok := got.(int64); !ok {
			t.Fatalf("Eval(%q) = %#v (%T), want the integer %v", c.Expr, got, got, want)
		}
	case "float":
		if _, ok := got.(float64); !ok {
			t.Fatalf("Eval(%q) = %#v (%T), want the float %v", c.Expr, got, got, want)
		}
	case "string":
		if _, ok := got.(string); !ok {
			t.Fatalf("Eval(%q) = %#v (%T), want a string", c.Expr, got, got)
		}
	case "bool":
		if _, ok := got.(bool); !ok {
			t.Fatalf("Eval(%q) = %#v (%T), want a boolean", c.Expr, got, got)
		}
	case "array":
		if _, ok := got.([]any); !ok {
			t.Fatalf("Eval(%q) = %#v (%T), want an array", c.Expr, got, got)
		}
	case "object":
		if _, ok := got.(map[string]any); !ok {
			t.Fatalf("Eval(%q) = %#v (%T), want an object", c.Expr, got, got)
		}
	case "null":
		if got != nil {
			t.Fatalf("Eval(%q) = %#v, want null", c.Expr, got)
		}
	default:
		t.Fatalf("unknown expected_type %q", wantType)
	}
	if g, w := jsonValue(t, got), jsonValue(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("Eval(%q) = %s, want %s (%s)", c.Expr, jsonText(got), jsonText(want), c.SourceURL)
	}
}

// jsonValue is v as plain JSON data (numbers as float64), so that arrays and objects built from
// int64, json.Number and float64 compare by value.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return string(bytes.TrimSpace(b.Bytes()))
}
