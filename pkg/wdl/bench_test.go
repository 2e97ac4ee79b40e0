package wdl

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// benchRow is a row of the size a Dataverse event carries (about 100 columns).
func benchRow() map[string]any {
	row := map[string]any{
		"statecode": json.Number("1"), "stepname": "Won", "name": "Contoso Ltd",
		"estimatedvalue": json.Number("125000.5000"), "SdkMessage": "Update",
	}
	for i := 0; i < 100; i++ {
		row["new_column"+strconv.Itoa(i)] = "value " + strconv.Itoa(i)
	}
	return row
}

func benchBool(b *testing.B, src string) {
	e, err := Compile(src)
	if err != nil {
		b.Fatal(err)
	}
	env := &Env{Body: benchRow()}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Bool(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWDLBool is the simple condition a route carries: one comparison on one column.
func BenchmarkWDLBool(b *testing.B) {
	benchBool(b, "@equals(triggerOutputs()?['body/stepname'], 'Won')")
}

func BenchmarkWDLBoolOr(b *testing.B) {
	benchBool(b, "@or(equals(triggerOutputs()?['body/stepname'], 'Won'), equals(triggerOutputs()?['body/stepname'], 'Lost'))")
}

func BenchmarkWDLBoolNumber(b *testing.B) {
	benchBool(b, "@greater(triggerBody()?['estimatedvalue'], 100000)")
}

// BenchmarkWDLBoolMissing reads a column the row lacks: the exact lookup misses and the
// case-insensitive fallback scans the row.
func BenchmarkWDLBoolMissing(b *testing.B) {
	benchBool(b, "@equals(triggerBody()?['absent'], null)")
}

// BenchmarkReferenceDecode5KB decodes a 5 KB row, the yardstick the route matcher is held to:
// fifty routes' conditions must cost less than decoding one event. Compare ratios within one
// run; absolute numbers depend on the machine's load.
func BenchmarkReferenceDecode5KB(b *testing.B) {
	raw, err := json.Marshal(benchRow())
	if err != nil {
		b.Fatal(err)
	}
	for len(raw) < 5000 {
		row := benchRow()
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
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			b.Fatal(err)
		}
	}
}
