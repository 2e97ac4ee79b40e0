package deliver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// awkward strings: everything encoding/json escapes or replaces.
var awkward = []string{
	"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\bbs\ffeed",
	"\x00\x01\x1f\x7f", "0123456789abcdef\"after sixteen", "abcdefg\x1fhijklmnop", "abcdefghijklmnopé",
	"seven b\\ackslash in the second word", "line\u2028sep\u2029para", "invalid \xff\xfe utf-8 \xc3", "é ü 日本 🙂",
}

// filledEvent sets every exported field of a dataverse.Event to a non-zero value by reflection,
// so a field added to Event later is covered without this test knowing its name.
func filledEvent(t *testing.T) *dataverse.Event {
	t.Helper()
	reqID := "req-1"
	ev := &dataverse.Event{}
	v := reflect.ValueOf(ev).Elem()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch sf.Name {
		case "Row", "PreImage", "PostImage":
			f.Set(reflect.ValueOf(dataverse.Row{
				"b": json.Number("-1.5e+10"), "a": "x", "c": nil, "d": true,
				"e": []any{dataverse.Row{"z": json.Number("1")}, "s"}, "f": dataverse.Row{}, "g": []any{},
				"_x_value@OData.Community.Display.V1.FormattedValue": awkward[3],
			}))
			continue
		case "RequestID":
			f.Set(reflect.ValueOf(&reqID))
			continue
		case "RelatedRecords":
			f.Set(reflect.ValueOf([]dataverse.RecordRef{{Table: "account", ID: "1"}, {Table: "contact", ID: "2"}}))
			continue
		case "OperationCreatedAt": // not serialized (json:"-")
			f.Set(reflect.ValueOf(time.UnixMilli(1714557600123)))
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(sf.Name + " " + awkward[i%len(awkward)])
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				f.Set(reflect.ValueOf([]string{"one", awkward[4]}))
			} else if f.Type().Elem().Kind() == reflect.Uint8 {
				f.SetBytes([]byte("raw"))
			} else {
				t.Fatalf("Event.%s: a field of type %s; teach appendEvent and this test about it", sf.Name, f.Type())
			}
		default:
			t.Fatalf("Event.%s: a field of type %s; teach appendEvent and this test about it", sf.Name, f.Type())
		}
	}
	return ev
}

func TestAppendEvent_MatchesEncodingJSON(t *testing.T) {
	events := map[string]*dataverse.Event{
		"every field set": filledEvent(t),
		"zero event":      {},
		"empty slices":    {ChangedColumns: []string{}, Row: dataverse.Row{}, RelatedRecords: []dataverse.RecordRef{}},
		"one column rows": {Row: dataverse.Row{awkward[2]: awkward[7]}, PostImage: dataverse.Row{"n": json.Number("1.50")}},
	}
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			want, err := marshalStd(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendEvent(nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			if !multiColumn(ev) && string(got) != string(want) {
				t.Errorf("appendEvent differs from encoding/json:\n got %s\nwant %s", got, want)
			}
			if g, w := topLevelKeys(t, got), topLevelKeys(t, want); !slices.Equal(g, w) {
				t.Errorf("fields = %v, want %v", g, w)
			}
			if g, w := decode(t, got), decode(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("appendEvent differs from encoding/json:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// multiColumn reports whether some row of ev has several columns, whose order is then free.
func multiColumn(ev *dataverse.Event) bool {
	return len(ev.Row) > 1 || len(ev.PreImage) > 1 || len(ev.PostImage) > 1
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

// topLevelKeys lists an object's member names in the order written.
func topLevelKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestAppendValue_RefusesAnInvalidNumber(t *testing.T) {
	for _, n := range []string{"1.", "01", "+1", "1e", "-", "NaN", "1 ", "0x10", ".5"} {
		if _, err := appendValue(nil, json.Number(n)); err == nil {
			t.Errorf("json.Number(%q) accepted", n)
		}
	}
	for _, n := range []string{"0", "-0", "10", "1.25", "1e5", "1E-5", "-0.0e+00", "123456789012345678901234567890"} {
		if _, err := appendValue(nil, json.Number(n)); err != nil {
			t.Errorf("json.Number(%q) refused: %v", n, err)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := marshalStd(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func BenchmarkEncodeRow(b *testing.B) {
	ev := &dataverse.Event{ID: "x", Row: dataverse.Row{}, Raw: make([]byte, 6000)}
	for i := range 50 {
		ev.Row["new_field"+strings.Repeat("x", i%7)+string(rune('a'+i%26))] = strings.Repeat("x", 80)
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := encode(ev, &config.Consumer{Format: FormatRow}, nil, nil); p.err != nil {
			b.Fatal(p.err)
		}
	}
}

func BenchmarkEncodeRowWithEncodingJSON(b *testing.B) {
	ev := &dataverse.Event{ID: "x", Row: dataverse.Row{}}
	for i := range 50 {
		ev.Row["new_field"+strings.Repeat("x", i%7)+string(rune('a'+i%26))] = strings.Repeat("x", 80)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := marshalStd(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncode_PayloadsOwnTheirBytes(t *testing.T) {
	first := &dataverse.Event{ID: "first", Row: dataverse.Row{"name": strings.Repeat("a", 3000)}}
	second := &dataverse.Event{ID: "second", Row: dataverse.Row{"name": strings.Repeat("b", 100)}}
	pa := encode(first, &config.Consumer{Format: FormatRow}, nil, nil)
	if pa.err != nil {
		t.Fatal(pa.err)
	}
	a := pa.body
	want := string(a)
	for _, format := range []string{FormatRow, FormatCloudEvent} {
		pb := encode(second, &config.Consumer{Format: format}, nil, nil)
		if pb.err != nil {
			t.Fatal(pb.err)
		}
		b := pb.body
		if string(a) != want {
			t.Fatalf("encoding another event (%s) changed the first payload", format)
		}
		if cap(b) > 2*len(b) {
			t.Errorf("%s payload of %d bytes holds a buffer of %d", format, len(b), cap(b))
		}
		if !json.Valid(b) || !strings.Contains(string(b), `"second"`) {
			t.Errorf("%s payload = %s", format, b)
		}
	}
}

// plainRun against a byte-at-a-time reference: every byte value at every position of strings
// up to 72 bytes long (a 32-byte step, 16-byte steps, a word, a part word), after plain bytes
// and after other stops.
func TestPlainRun_MatchesByteLoop(t *testing.T) {
	ref := func(s string) int {
		i := 0
		for i < len(s) && s[i] < utf8.RuneSelf && plainASCII[s[i]] {
			i++
		}
		return i
	}
	for n := 1; n <= 72; n++ {
		for at := 0; at < n; at++ {
			for c := 0; c < 256; c++ {
				for _, fill := range []byte{'a', 0x01, '"', 0xe2} {
					b := []byte(strings.Repeat("x", n))
					b[at] = byte(c)
					for k := at + 1; k < n; k += 3 {
						b[k] = fill
					}
					if got, want := plainRun(string(b)), ref(string(b)); got != want {
						t.Fatalf("plainRun(%q) = %d, want %d", b, got, want)
					}
				}
			}
		}
	}
}
