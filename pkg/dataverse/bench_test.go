package dataverse

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// BenchmarkDecodeBinary decodes the same event as BenchmarkDecode in its .NET binary XML form
// (application/msbin1, testdata/servicebus): it must stay within 2x of BenchmarkDecode.
func BenchmarkDecodeBinary(b *testing.B) { benchFormat(b, ".msbin1", "application/msbin1") }

// BenchmarkDecodeXML is the same event in its text XML form (application/xml).
func BenchmarkDecodeXML(b *testing.B) { benchFormat(b, ".xml", "application/xml") }

func benchFormat(b *testing.B, ext, contentType string) {
	raw, err := os.ReadFile(filepath.Join(sbDir, strings.TrimSuffix(benchPayload, ".json")+ext))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBody(raw, contentType, DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBinaryVsJSON decodes the bench event's JSON and binary XML forms alternately,
// timing each, so that both see the same machine load (this one is shared): it reports each
// decode's mean and their ratio, which must stay at or under 2.
func BenchmarkDecodeBinaryVsJSON(b *testing.B) {
	js := loadBench(b)
	bin, err := os.ReadFile(filepath.Join(sbDir, strings.TrimSuffix(benchPayload, ".json")+".msbin1"))
	if err != nil {
		b.Fatal(err)
	}
	var tJSON, tBin time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := Decode(js); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := DecodeBody(bin, "application/msbin1", DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
		tJSON += t1.Sub(t0)
		tBin += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(tJSON.Nanoseconds())/float64(n), "json-ns/op")
	b.ReportMetric(float64(tBin.Nanoseconds())/float64(n), "binary-ns/op")
	b.ReportMetric(float64(tBin)/float64(tJSON), "binary/json")
}
