package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func inspect(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runInspect(args, strings.NewReader(stdin), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func TestInspect_PrintsTheNormalizedEventOfAFile(t *testing.T) {
	code, out, errOut := inspect(t, "", filepath.Join("testdata", "events", "update-account-async-images.json"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "}\n") {
		t.Errorf("want one JSON object on one line, got %q", out)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "message", "table", "recordId", "stage", "mode", "depth", "organizationId",
		"organizationName", "correlationId", "operationId", "requestId", "userId", "initiatingUserId",
		"businessUnitId", "operationCreatedOn", "changedColumns", "sizeExceeded", "row", "preImage", "postImage"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("output lacks %q", k)
		}
	}
	if ev["message"] != "Update" || ev["table"] != "account" || ev["mode"] != "async" {
		t.Errorf("message %v table %v mode %v", ev["message"], ev["table"], ev["mode"])
	}
}

func TestInspect_ReadsStdinForDash(t *testing.T) {
	code, out, errOut := inspect(t, `{"MessageName":"Create","PrimaryEntityName":"account","InputParameters":[]}`, "-")
	if code != 0 || !strings.Contains(out, `"message":"Create"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestInspect_SizeExceededFlag(t *testing.T) {
	code, out, _ := inspect(t, `{"MessageName":"Update","PrimaryEntityName":"account","InputParameters":[]}`, "--size-exceeded", "-")
	if code != 0 || !strings.Contains(out, `"sizeExceeded":true`) {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
}

func TestInspect_InvalidInputExitsOneWithAOneLineReason(t *testing.T) {
	tests := []struct {
		name, stdin, says string
	}{
		{"malformed JSON", `{"MessageName":`, "malformed JSON at byte 15"},
		{"not a context", `{"hello":"world"}`, "not a RemoteExecutionContext: MessageName"},
		{"XML of no context", `<RemoteExecutionContext/>`, "not a RemoteExecutionContext: MessageName"},
		{"malformed XML", `<RemoteExecutionContext>`, "malformed XML at byte"},
		{"malformed binary XML", "\x40\x16RemoteExecutionContext\x99", "malformed .NET binary XML at byte 25"},
		{"empty", ``, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := inspect(t, tt.stdin, "-")
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.says) {
				t.Errorf("stderr %q, want one line saying %q", errOut, tt.says)
			}
		})
	}
}

func TestInspect_MissingFileExitsOne(t *testing.T) {
	code, _, errOut := inspect(t, "", filepath.Join(t.TempDir(), "nope.json"))
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestInspect_UsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{nil, {"a.json", "b.json"}, {"--bogus", "-"}} {
		if code, _, errOut := inspect(t, "", args...); code != 2 || !strings.Contains(errOut, "usage: dvrouter inspect") {
			t.Errorf("args %q: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestInspect_SameEventInEveryFormat: the project's payloads in their three forms
// (testdata/events, testdata/servicebus) print the same event, told apart by their first bytes
// or named by --content-type. Binary XML keeps a local time as its instant only, so payloads with
// a non-zero offset are held to that for XML and JSON alone.
func TestInspect_SameEventInEveryFormat(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if len(files) == 0 {
		t.Fatal("no payloads")
	}
	localTime := regexp.MustCompile(`Date\(-?\d+[+-](?:0[1-9]|1\d)\d\d\)|Date\(-?\d+[+-]00(?:0[1-9]|[1-5]\d)\)`)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			code, want, errOut := inspect(t, "", path)
			if code != 0 {
				t.Fatalf("json: exit %d, stderr %q", code, errOut)
			}
			forms := [][]string{
				{filepath.Join("testdata", "servicebus", name+".xml")},
				{"--content-type", "application/xml", filepath.Join("testdata", "servicebus", name+".xml")},
			}
			if !localTime.Match(raw) {
				forms = append(forms,
					[]string{filepath.Join("testdata", "servicebus", name+".msbin1")},
					[]string{"--content-type", "msbin1", filepath.Join("testdata", "servicebus", name+".msbin1")})
			}
			for _, args := range forms {
				code, got, errOut := inspect(t, "", args...)
				if code != 0 {
					t.Fatalf("%q: exit %d, stderr %q", args, code, errOut)
				}
				if got != want {
					t.Errorf("%q prints\n%s\nwant (as the JSON)\n%s", args, got, want)
				}
			}
		})
	}
}

func TestInspect_WrongContentTypeExitsTwo(t *testing.T) {
	code, _, errOut := inspect(t, "", "--content-type", "text/plain", "-")
	if code != 2 || !strings.Contains(errOut, "want json, xml or msbin1") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// A cleared lookup prints as the Web API returns it, `_x_value: null`, even with no image
// showing the column: modifiedonbehalfby is a lookup on every table. The whole output is the
// golden file of the same payload.
func TestInspect_ClearedLookupIsANullLookupValue(t *testing.T) {
	code, out, errOut := inspect(t, "", filepath.Join("testdata", "events", "update-contact-clears-lookups.json"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got, want map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "update-contact-clears-lookups.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("inspect output differs from the golden file:\n%s", out)
	}
	row, _ := got["row"].(map[string]any)
	for _, k := range []string{"_modifiedonbehalfby_value", "_new_projectid_value", "_parentcustomerid_value", "telephone1"} {
		if v, ok := row[k]; !ok || v != nil {
			t.Errorf("row[%q] = %v (present %v), want null", k, v, ok)
		}
	}
	for _, k := range []string{"modifiedonbehalfby", "new_projectid", "parentcustomerid", "_new_projectid_value@OData.Community.Display.V1.FormattedValue"} {
		if _, ok := row[k]; ok {
			t.Errorf("row has %q; a cleared lookup is only _x_value: null", k)
		}
	}
}
