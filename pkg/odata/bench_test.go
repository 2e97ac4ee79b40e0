package odata

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// benchRow is a row of the size a Dataverse event carries (about 100 columns).
func benchRow() map[string]any {
	row := sampleRow()
	for i := 0; i < 80; i++ {
		row["new_column"+strconv.Itoa(i)] = "value " + strconv.Itoa(i)
	}
	return row
}

func benchMatch(b *testing.B, src string) {
	f, err := Compile(src)
	if err != nil {
		b.Fatal(err)
	}
	row := benchRow()
	if !f.Match(row) {
		b.Fatalf("%q does not match the bench row", src)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f.Match(row)
	}
}

// BenchmarkODataMatch is the simple filter a route carries: one comparison on one column.
func BenchmarkODataMatch(b *testing.B) { benchMatch(b, "statecode eq 1") }

func BenchmarkODataMatchString(b *testing.B) { benchMatch(b, "name eq 'contoso ltd'") }

func BenchmarkODataMatchDate(b *testing.B) {
	benchMatch(b, "createdon ge 2024-07-25T12:30:00+02:00")
}

func BenchmarkODataMatchCompound(b *testing.B) {
	benchMatch(b, "statecode eq 1 and (contains(name, 'toso') or estimatedvalue gt 100000) and _parentaccountid_value ne null")
}

// BenchmarkReferenceDecode5KB decodes a 5 KB row, the yardstick the route matcher is held to:
// fifty routes' filters must cost less than decoding one event. Compare ratios within one run;
// absolute numbers depend on the machine's load.
func BenchmarkReferenceDecode5KB(b *testing.B) {
	row := benchRow()
	raw, err := json.Marshal(row)
	if err != nil {
		b.Fatal(err)
	}
	if len(raw) < 5000 {
		row["description"] = strings.Repeat("x", 5000-len(raw))
		if raw, err = json.Marshal(row); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			b.Fatal(err)
		}
	}
}
