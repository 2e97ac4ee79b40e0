package dataverse

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// benchPayload is a compact Update with pre and post images, about 5 KB: the size and form of a
// typical body on the wire.
const benchPayload = "update-opportunity-bench.json"

func loadBench(b *testing.B) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, benchPayload))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkDecode decodes and normalizes the payload into an Event.
func BenchmarkDecode(b *testing.B) {
	raw := loadBench(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStdlibMap is the baseline: encoding/json into map[string]any, same bytes, with
// no normalization at all. BenchmarkDecode must stay at least 4x faster.
func BenchmarkDecodeStdlibMap(b *testing.B) {
	raw := loadBench(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
	}
}
