package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
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
