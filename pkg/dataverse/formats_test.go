package dataverse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sbCorpusDir holds the shared corpus's events as text XML and msbin1 written by a real
// DataContractSerializer (Mono's), with the JSON each must decode to; read in place, never copied.
var sbCorpusDir = filepath.Join("..", "..", "..", "shared", "corpus", "servicebus")

// sbDir holds the project's own corpus: testdata/events/*.json again as text XML and binary XML,
// written by genXML and encodeNBFX (`go test ./pkg/dataverse -run OwnCorpus -update`).
var sbDir = filepath.Join("..", "..", "testdata", "servicebus")

func eventJSON(t testing.TB, ev *Event) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// localOffsets matches a JSON date with an offset: a local DateTime.
var localOffsets = regexp.MustCompile(`(Date\(-?\d+)[+-]\d{4}\)`)

// asInstants rewrites every local DateTime of a JSON body to its instant: what binary XML keeps of
// it (UTC ticks; the offset is not in the bytes).
func asInstants(js []byte) []byte { return localOffsets.ReplaceAll(js, []byte("${1}+0000)")) }

func TestFormats_SharedCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(sbCorpusDir, "*.expected.json"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", sbCorpusDir)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".expected.json")
		t.Run(name, func(t *testing.T) {
			js, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Decode(js)
			if err != nil {
				t.Fatal(err)
			}
			// Binary XML holds a local time as its instant only: it must give what the JSON gives
			// once its local times are read as instants too.
			wantBin, err := Decode(asInstants(js))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				ext, contentType string
				want             *Event
			}{{".xml", "application/xml", want}, {".msbin1", "application/msbin1", wantBin}} {
				raw, err := os.ReadFile(filepath.Join(sbCorpusDir, name+c.ext))
				if err != nil {
					t.Fatal(err)
				}
				for _, ct := range []string{c.contentType, ""} { // named, and sniffed
					ev, err := DecodeBody(raw, ct, DecodeOptions{})
					if err != nil {
						t.Fatalf("%s (content type %q): %v", c.ext, ct, err)
					}
					if got, w := eventJSON(t, ev), eventJSON(t, c.want); got != w {
						t.Errorf("%s (content type %q) decodes to\n%s\nwant\n%s", c.ext, ct, got, w)
					}
					checkInvariants(t, ev.Raw, ev)
				}
			}
		})
	}
}

// TestFormats_SharedCorpusTranscodesToTheJSONForm: the JSON written for the XML (Event.Raw) is
// the JSON DataContractJsonSerializer wrote for the same object graph, value for value.
func TestFormats_SharedCorpusTranscodesToTheJSONForm(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(sbCorpusDir, "*.expected.json"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", sbCorpusDir)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".expected.json")
		js, _ := os.ReadFile(path)
		raw, err := os.ReadFile(filepath.Join(sbCorpusDir, name+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := DecodeBody(raw, "application/xml", DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.Unmarshal(ev.Raw, &got); err != nil {
			t.Fatalf("%s: Event.Raw is not JSON: %v", name, err)
		}
		_ = json.Unmarshal(js, &want)
		// Mono's JSON serializer names the type of the items of a typed collection
		// (OptionSetValueCollection, KeyValuePair<string,string>[]) although the XML does not,
		// as the declared item type fixes it: compare array items without "__type".
		untagItems(got)
		untagItems(want)
		if g, w := mustJSON(got), mustJSON(want); g != w {
			t.Errorf("%s: transcoded\n%s\nwant\n%s", name, g, w)
		}
	}
}

func untagItems(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			untagItems(e)
		}
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				delete(m, "__type")
			}
			untagItems(e)
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestFormats_OwnCorpus: each of the project's payloads, in its three forms, gives the same event
// (and so the same `dvrouter inspect` output). Binary XML keeps a local time as its instant, so
// for the payloads with a non-zero offset the binary form is held to the JSON read as instants.
func TestFormats_OwnCorpus(t *testing.T) {
	for _, path := range eventFiles(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			js, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			xmlPath, binPath := filepath.Join(sbDir, name+".xml"), filepath.Join(sbDir, name+".msbin1")
			if *update {
				x := genXML(t, js)
				if err := os.MkdirAll(sbDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(xmlPath, x, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(binPath, encodeNBFX(t, x), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := Decode(js)
			if err != nil {
				t.Fatal(err)
			}
			wantBin, err := Decode(asInstants(js))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				path string
				want *Event
			}{{xmlPath, want}, {binPath, wantBin}} {
				raw, err := os.ReadFile(c.path)
				if err != nil {
					t.Fatalf("%v (run with -update to write it)", err)
				}
				ev, err := DecodeBody(raw, "", DecodeOptions{})
				if err != nil {
					t.Fatalf("%s: %v", filepath.Base(c.path), err)
				}
				if got, w := eventJSON(t, ev), eventJSON(t, c.want); got != w {
					t.Errorf("%s decodes to\n%s\nwant\n%s", filepath.Base(c.path), got, w)
				}
			}
		})
	}
}

func TestNeedsEscape(t *testing.T) {
	for s, want := range map[string]bool{
		"": false, "abc": false, "abcdefgh": false, "abcdefghi": false, "0123456789abcdef0": false,
		`a"`: true, "abcdefgh\\": true, "abcdefghijklmno\n": true, "\x01bcdefghijk": true, "abcdefg\x1f": true,
		"ünïcödé ok": false,
	} {
		if got := needsEscape(s); got != want {
			t.Errorf("needsEscape(%q) = %v", s, got)
		}
	}
}

// TestFormats_XMLWithDeclarationBOMAndIndentation: a text XML body with a BOM, an XML
// declaration, comments and indentation decodes as the compact one does.
func TestFormats_XMLWithDeclarationBOMAndIndentation(t *testing.T) {
	compact, err := os.ReadFile(filepath.Join(sbDir, "update-account-async-images.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeBody(compact, "application/xml", DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Indent: a newline and spaces before every start tag and before every end tag that follows an end tag.
	indented := regexp.MustCompile(`(>)(<[^/])`).ReplaceAll(compact, []byte("$1\n    <!-- x -->\n  $2"))
	indented = regexp.MustCompile(`(</[^>]+>)(</)`).ReplaceAll(indented, []byte("$1\n$2"))
	body := append([]byte("\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"), indented...)
	for _, ct := range []string{"text/xml; charset=utf-8", ""} {
		ev, err := DecodeBody(body, ct, DecodeOptions{})
		if err != nil {
			t.Fatalf("%q: %v", ct, err)
		}
		if got, w := eventJSON(t, ev), eventJSON(t, want); got != w {
			t.Errorf("%q: indented XML decodes to\n%s\nwant\n%s", ct, got, w)
		}
	}
}
