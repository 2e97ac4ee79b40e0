package journal

import (
	"context"
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
