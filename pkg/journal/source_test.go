package journal

import (
	"context"
	"testing"
)

func TestLookup_KeepsTheSourceAndVersion(t *testing.T) {
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{})
	e := entry(7, "erp", Delivered)
	e.Message, e.Source, e.Version = "Upsert", "changes", "915244"
	j.Add(e)
	flush(t, j)
	got, err := j.Lookup(context.Background(), Query{EventID: e.EventID})
	if err != nil || len(got) != 1 || got[0].Source != "changes" || got[0].Version != "915244" {
		t.Fatalf("lookup = %+v (err %v)", got, err)
	}
}
