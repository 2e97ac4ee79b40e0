package wdl

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// The fast paths (short integers, the fused column read) must give exactly what the general
// path gives. These tests compare the two.

func TestShortInt_AgreesWithParseNumber(t *testing.T) {
	fixedCases := []string{"0", "-0", "007", "80", "-42", "150000", "+5", "", "-", "1.5", "1e3", "1E3", "--1",
		"999999999999999999", "-999999999999999999", "1000000000000000000", "9223372036854775807",
		"-9223372036854775808", "9223372036854775808", "12345678901234567890123", "1x", " 1"}
	r := rand.New(rand.NewPCG(3, 4))
	cases := fixedCases
	for range 20000 {
		var b strings.Builder
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		for range r.IntN(22) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		if r.IntN(10) == 0 {
			b.WriteString(".5")
		}
		cases = append(cases, b.String())
	}
	short := 0
	for _, s := range cases {
		i, ok := shortInt(s)
		if !ok {
			continue
		}
		short++
		if got, want := intV(i), parseNumber(s); got != want {
			t.Fatalf("shortInt(%q) = %d; parseNumber gives %+v", s, i, want)
		}
	}
	if short < 5000 {
		t.Fatalf("only %d texts took the short path; the generator no longer exercises it", short)
	}
	for _, s := range []string{"", "-", "+5", "1.5", "1e3", "1000000000000000000", " 1"} {
		if _, ok := shortInt(s); ok {
			t.Errorf("shortInt(%q) accepted; it is for -?digits of at most 18 digits", s)
		}
	}
}

func TestCompile_ColumnReadsAreFused(t *testing.T) {
	for _, src := range []string{
		"@triggerBody()?['name']",
		"@triggerBody()['name']",
		"@triggerOutputs()?['body/name']",
		"@TRIGGERBODY()?['name']",
		"@triggerBody()?.name",
	} {
		e, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := e.root.(*bodyColumnNode); !ok {
			t.Errorf("%s compiled to %T, want *bodyColumnNode", src, e.root)
		}
	}
	for _, src := range []string{"@triggerBody()?[concat('na', 'me')]", "@triggerOutputs()?['headers/x']", "@trigger()?['outputs']"} {
		e, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := e.root.(*bodyColumnNode); ok {
			t.Errorf("%s compiled to a column read", src)
		}
	}
}

func TestBodyColumn_AgreesWithIndex(t *testing.T) {
	row := map[string]any{
		"name": "Contoso", "SdkMessage": "Update", "statecode": json.Number("1"), "amount": json.Number("1.50"),
		"description": nil, "a/b": "slash", "nested": map[string]any{"inner": "x"}, "list": []any{"y"},
		"empty": "", "Dup": "upper", "dup": "lower",
	}
	keys := []string{"name", "NAME", "Name", "sdkmessage", "SdkMessage", "statecode", "amount", "description",
		"missing", "a/b", "nested/inner", "nested/missing", "missing/x", "list", "empty", "Dup", "dup", "DUP", ""}
	bodies := []map[string]any{row, nil, {}}
	for _, key := range keys {
		for _, sel := range []string{"?['%s']", "['%s']"} {
			src := "@triggerBody()" + fmt.Sprintf(sel, key)
			e, err := Compile(src)
			if err != nil {
				t.Fatal(err)
			}
			fused, ok := e.root.(*bodyColumnNode)
			if !ok {
				t.Fatalf("%s compiled to %T, want *bodyColumnNode", src, e.root)
			}
			for _, body := range bodies {
				env := &Env{Body: body}
				got, gotErr := fused.eval(env)
				want, wantErr := fused.general.eval(env)
				if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
					t.Errorf("%s on %v: %+v, %v; general path gives %+v, %v", src, body, got, gotErr, want, wantErr)
				}
			}
		}
	}
}
