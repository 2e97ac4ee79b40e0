package webapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// TestDecodeRow_SameAsEncodingJSON: the fast path gives what encoding/json gives, and leaves
// what it does not read to it.
func TestDecodeRow_SameAsEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"@odata.context":"x","@odata.etag":"W/\"81052965\"","name":"Fourth Coffee","revenue":20000.0000,"n":-1.5e+10,"z":0,"b":true,"f":false,"x":null}`,
		`{"name":"tab\tand \"quote\" \u00e9 \ud83d\ude00","_x_value@OData.Community.Display.V1.FormattedValue":"€1"}` + "\n",
		` { } `,
		`{"nested":{"a":1},"list":[1,2]}`,
		`{"a":1,"a":2}`,
		`{"a":"` + "\xff" + `"}`,
	} {
		got, err := decodeRow([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.UseNumber()
		var want dataverse.Row
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		for k := range want {
			if strings.HasPrefix(k, "@odata.") {
				delete(want, k)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %#v\n want %#v", body, got, want)
		}
	}
	for _, body := range []string{`{"bad":01}`, `{"bad":1.}`, `{"bad":-}`, `{"a" 1}`, `[1]`, `{"a":"ctl` + "\x01" + `"}`, `{"a":tru}`, ``} {
		if row, err := decodeRow([]byte(body)); err == nil {
			t.Errorf("%q accepted: %v", body, row)
		}
	}
}
