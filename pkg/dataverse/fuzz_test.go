package dataverse

import (
	"bytes"
	"encoding/json"
	"errors"
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

// FuzzDecodeBody feeds arbitrary bodies to the XML and binary XML decoders (without
// DecodeFormat's recover, so a panic fails the run). Every error must be a syntax error naming
// its format, or a shape error; a success must give a marshalable event whose Raw is JSON.
func FuzzDecodeBody(f *testing.F) {
	for _, dir := range []string{sbDir, sbCorpusDir} {
		for _, ext := range []string{"*.xml", "*.msbin1"} {
			files, _ := filepath.Glob(filepath.Join(dir, ext))
			for _, path := range files {
				if raw, err := os.ReadFile(path); err == nil && len(raw) < 20000 {
					f.Add(raw)
				}
			}
		}
	}
	for _, s := range []string{
		"", "<", "<a/>", "<a>1</a>", "\x40\x01a\x01", "\x40\x01a\x99\x01b", "\x03\x40\x01a\x01\x8d\x02\x01\x00\x00\x00\x02\x00\x00\x00",
		"\x40\x01a\x09\x01i\x29http://www.w3.org/2001/XMLSchema-instance\x2e\x03nil\x86\x01",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, format := range []Format{FormatXML, FormatBinary} {
			ev, err := decodeXMLForm(body, format, DecodeOptions{})
			if err != nil {
				var se *SyntaxError
				switch {
				case errors.As(err, &se):
					if se.Format == "" {
						t.Fatalf("%v: the transcoder wrote JSON the decoder refused: %v", format, err)
					}
				case IsShape(err):
				default:
					t.Fatalf("%v: error of no known kind: %v", format, err)
				}
				continue
			}
			if !json.Valid(ev.Raw) {
				t.Fatalf("%v: Event.Raw is not JSON: %q", format, ev.Raw)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("%v: json.Marshal of the event: %v", format, err)
			}
		}
	})
}
