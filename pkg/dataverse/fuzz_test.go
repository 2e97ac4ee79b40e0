package dataverse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds decode (without DecodeWith's recover, so a panic fails the run) arbitrary
// bodies. It checks that nothing panics, that every error is one of the three kinds, that a
// success marshals, and that the decoder agrees with encoding/json on what is well-formed.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	for _, path := range files {
		if raw, err := os.ReadFile(path); err == nil {
			f.Add(raw)
		}
	}
	for _, s := range []string{
		``, `{`, `{}`, `[]`, `null`, `"x"`, `<xml/>`, "\xEF\xBB\xBF{}", "@\x01\x02",
		`{"MessageName":"Create","PrimaryEntityName":"a"}`,
		`{"MessageName":"Create","PrimaryEntityName":"a","InputParameters":[{"key":"Target","value":{"Attributes":[],"LogicalName":"a","Id":"1"}}]}`,
		`{"MessageName":"Create","PrimaryEntityName":"a","InputParameters":[{"value":{"__type":"Entity:x","Attributes":[{"key":"d","value":"\/Date(1-0100)\/"}]},"key":"Target"}]}`,
		`{"MessageName":"Update","PrimaryEntityName":"a","PostEntityImages":[{"key":"p","value":{"Attributes":[{"key":"m","value":[{"Value":1},{"__type":"OptionSetValue:x","Value":2}]}]}}]}`,
		`{"MessageName":"Update","PrimaryEntityName":"a","Stage":1e400,"Depth":-0}`,
		`{"a":"\ud800\udc00\u0000","b":[[[[[]]]]]}`,
		ctxWith(`{"key":"a","value":{"__type":"EntityCollection:x","Entities":[{"Attributes":[{"key":"b","value":null}]}]}}`, `{"key":"a","value":"A"}`),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decode(body, DecodeOptions{})
		stdValid := json.Valid(bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF")))
		if err != nil {
			if !IsSyntax(err) && !IsShape(err) && !IsNotJSON(err) {
				t.Fatalf("error of no known kind: %v", err)
			}
			if IsSyntax(err) && stdValid && !strings.Contains(err.Error(), "nesting") {
				t.Fatalf("encoding/json accepts the body but Decode says: %v", err)
			}
			if IsShape(err) && !stdValid {
				t.Fatalf("encoding/json rejects the body but Decode calls it well-formed: %v", err)
			}
			return
		}
		if !stdValid {
			t.Fatalf("encoding/json rejects the body but Decode accepts it")
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("json.Marshal of the event: %v", err)
		}
	})
}
