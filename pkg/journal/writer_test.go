package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

// OpenLazy does not create the table (main.go tries once, and Table Storage may be away then):
// the first batch that finds it missing creates it and is written.
func TestWriter_CreatesAMissingTableAndWrites(t *testing.T) {
	j, err := OpenLazy(Config{Account: tables.Account{ConnectionString: sharedAzurite(t).ConnectionString()},
		Table: tableName(t), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(context.Background())
	for i := range 30 {
		j.Add(entry(i, "sink", Delivered))
	}
	flush(t, j)
	if s := j.Stats(); s.Written != 30 || s.Lost != 0 {
		t.Fatalf("stats %+v, want 30 written", s)
	}
	if got, err := j.Lookup(context.Background(), Query{EventID: "ev-00007"}); err != nil || len(got) != 1 {
		t.Errorf("lookup: %d entries, %v", len(got), err)
	}
}

// The index rows and partition hashes written by hand are what encoding/json and hash/fnv give.
func TestRecords_HandWrittenEncodingMatchesTheLibraries(t *testing.T) {
	for _, s := range []string{"", "ev-1", `quo"te`, "ünïcode", "a%7Cb", "c|erp|2024072510|3"} {
		want, _ := json.Marshal(indexRow{PartitionKey: s, RowKey: s + "|x"})
		if got := indexBody(s, s+"|x"); !bytes.Equal(got, want) {
			t.Errorf("indexBody(%q) = %s, want %s", s, got, want)
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(s))
		if got := fnv32a(s); got != h.Sum32() {
			t.Errorf("fnv32a(%q) = %d, want %d", s, got, h.Sum32())
		}
		if pk, _ := indexKeys("e", s); pk != fmt.Sprintf("e%02x", h.Sum32()%indexBuckets) {
			t.Errorf("indexKeys(%q) = %s", s, pk)
		}
	}
}

// A row written by hand is what encoding/json makes of the entity: the same bytes for plain
// text, the same values for text it escapes differently (<, > and & it writes as \u003c...).
func TestRecords_RowEncodingMatchesEncodingJSON(t *testing.T) {
	full := entity{PartitionKey: "c|erp|2024072510|3", RowKey: "9223372036854775807|ev-1", At: "2024-07-25T10:30:00.123456789Z",
		EventID: "ev-1", CorrelationID: "corr", Table: "account", RecordID: "rec", Message: "Update", Route: "r",
		Consumer: "erp", Outcome: "failed", Attempts: `[{"at":"x","statusCode":503}]`, AttemptCount: 3, StatusCode: 503,
		DurationMs: 12.345678, Error: "consumer said \"no\"\n<html> & ünïcode \x01", FailureID: "f", Source: "changes", Version: "42"}
	cases := map[string]entity{
		"plain": {PartitionKey: "p", RowKey: "r", At: "t", EventID: "e", Consumer: "c", Outcome: "delivered", DurationMs: 1.5},
		"zero":  {},
		"full":  full,
		"tiny":  {DurationMs: 1e-9},
		"huge":  {DurationMs: 1e22, AttemptCount: -1},
	}
	for name, x := range cases {
		want, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		got := x.appendJSON(nil)
		if name != "full" && !bytes.Equal(got, want) {
			t.Errorf("%s: %s\nwant %s", name, got, want)
		}
		var a, b map[string]any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: %s does not decode: %v", name, got, err)
		}
		_ = json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: %v\nwant %v", name, a, b)
		}
	}
}
