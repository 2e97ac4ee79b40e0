package journal

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// One in-memory Azurite serves every test that does not stop it; each test gets its own table.
var shared testenv.SharedAzurite

func TestMain(m *testing.M) { shared.Run(m) }

func sharedAzurite(t testing.TB) *testenv.Azurite {
	t.Helper()
	return shared.Get(t)
}

var tableSeq atomic.Int64

func tableName(t testing.TB) string {
	var b strings.Builder
	fmt.Fprintf(&b, "J%d", tableSeq.Add(1))
	for _, r := range t.Name() {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()[:min(b.Len(), 63)]
}

func openJournal(t testing.TB, conn string, cfg Config) *Journal {
	t.Helper()
	cfg.Account = tables.Account{ConnectionString: conn}
	if cfg.Table == "" {
		cfg.Table = tableName(t)
	}
	cfg.Log = zerolog.Nop()
	j, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		j.Close(ctx)
	})
	return j
}

func flush(t testing.TB, j *Journal) {
	t.Helper()
	// A guard against a hang, not a time limit: the load test writes 60,000 entities to Azurite
	// while other packages' tests share the machine's cores.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, j.Stats())
	}
}

var base = time.Date(2024, 7, 25, 10, 30, 0, 0, time.UTC)

func entry(i int, consumer string, outcome Outcome) Entry {
	return Entry{
		At:            base.Add(time.Duration(i) * time.Millisecond),
		EventID:       fmt.Sprintf("ev-%05d", i),
		CorrelationID: fmt.Sprintf("corr-%d", i%10),
		Table:         "account",
		RecordID:      fmt.Sprintf("rec-%d", i%50),
		Message:       "Update",
		Route:         "r1",
		Consumer:      consumer,
		Outcome:       outcome,
		Attempts: []Attempt{
			{At: base, StatusCode: 503, Duration: 20 * time.Millisecond, Error: "503 Service Unavailable"},
			{At: base.Add(time.Second), StatusCode: 200, Duration: 10 * time.Millisecond},
		},
		AttemptCount: 2,
		Duration:     1030 * time.Millisecond,
	}
}

func TestLookup_EachKeyFindsTheEntryWithItsAttempts(t *testing.T) {
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{})
	e := entry(1, "crm/sink#1?", Failed) // key characters that Table Storage forbids
	e.FailureID = "00-123"
	j.Add(e)
	j.Add(entry(1, "other", Delivered))
	flush(t, j)
	ctx := context.Background()
	for name, q := range map[string]Query{
		"event":       {EventID: e.EventID},
		"record":      {Table: "Account", RecordID: "REC-1"}, // case does not matter
		"correlation": {CorrelationID: "corr-1"},
		"consumer":    {Consumer: "crm/sink#1?", Since: base.Add(-time.Hour), Until: base.Add(time.Hour)},
	} {
		got, err := j.Lookup(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var found *Entry
		for i := range got {
			if got[i].Consumer == e.Consumer {
				found = &got[i]
			}
		}
		if found == nil {
			t.Fatalf("%s: entry not found in %+v", name, got)
		}
		if !found.At.Equal(e.At) || found.Outcome != Failed || found.FailureID != "00-123" || len(found.Attempts) != 2 ||
			found.Attempts[0].StatusCode != 503 || found.Attempts[0].Duration != 20*time.Millisecond || found.Duration != e.Duration {
			t.Errorf("%s: got %+v", name, *found)
		}
	}
	got, _ := j.Lookup(ctx, Query{EventID: e.EventID})
	if len(got) != 2 {
		t.Errorf("event lookup: %d entries, want both consumers", len(got))
	}
}

func TestLookup_NewestFirstWithinTheRange(t *testing.T) {
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{})
	// One record, outcomes spread over three hours.
	for i := range 6 {
		e := entry(i, "sink", Delivered)
		e.At = base.Add(time.Duration(i) * 30 * time.Minute)
		e.RecordID = "r"
		j.Add(e)
	}
	flush(t, j)
	ctx := context.Background()
	got, err := j.Lookup(ctx, Query{Table: "account", RecordID: "r"})
	if err != nil || len(got) != 6 {
		t.Fatalf("record: %d entries, %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].At.Before(got[i-1].At) {
			t.Fatalf("not newest first: %v then %v", got[i-1].At, got[i].At)
		}
	}
	got, err = j.Lookup(ctx, Query{Consumer: "sink", Since: base.Add(30 * time.Minute), Until: base.Add(90 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].At.Equal(base.Add(90*time.Minute)) || !got[2].At.Equal(base.Add(30*time.Minute)) {
		t.Errorf("consumer range: %+v", got)
	}
	got, _ = j.Lookup(ctx, Query{Consumer: "sink", Since: base.Add(-time.Hour), Until: base.Add(4 * time.Hour), Limit: 2})
	if len(got) != 2 || !got[0].At.Equal(base.Add(150*time.Minute)) {
		t.Errorf("limit: %+v", got)
	}
}

func TestLookup_RejectsUnclearQueries(t *testing.T) {
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{})
	for _, q := range []Query{
		{},
		{EventID: "a", CorrelationID: "b"},
		{Table: "account"},
		{Consumer: "sink"},
		{Consumer: "sink", Since: base, Until: base.Add(-time.Hour)},
		{Consumer: "sink", Since: base, Until: base.Add(40 * 24 * time.Hour)},
	} {
		if _, err := j.Lookup(context.Background(), q); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}

func TestWriter_BatchesByPartitionAtMost100(t *testing.T) {
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{FlushInterval: time.Second})
	// 250 outcomes of one event id: its event partition gets 250 copies, which need 3 batches.
	for i := range 250 {
		e := entry(i, fmt.Sprintf("c%03d", i), Delivered)
		e.EventID = "same"
		j.Add(e)
	}
	flush(t, j)
	if s := j.Stats(); s.Written != 250 || s.Lost != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	got, err := j.Lookup(context.Background(), Query{EventID: "same", Limit: 1000})
	if err != nil || len(got) != 250 {
		t.Fatalf("%d entries, %v", len(got), err)
	}
}

func TestWriter_DropsAndCountsWhenTheBufferIsFull(t *testing.T) {
	// A journal whose flusher is not running: the buffer fills and stays full.
	j, err := newJournal(Config{Account: tables.Account{ConnectionString: sharedAzurite(t).ConnectionString()}, Table: tableName(t), Buffer: 10})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 25 {
		j.Add(entry(i, "sink", Delivered))
	}
	// A blocked Add would wait for ever; the bound is far above a loaded machine's scheduling.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Add waited %s", d)
	}
	if s := j.Stats(); s.Added != 10 || s.Dropped != 15 {
		t.Errorf("stats %+v, want 10 added, 15 dropped", s)
	}
}

func TestWriter_TableDownLosesEntriesWithoutWaiting(t *testing.T) {
	az := testenv.StartAzurite(t)
	j := openJournal(t, az.ConnectionString(), Config{Buffer: 100, CallTimeout: time.Second})
	az.Stop()
	start := time.Now()
	for i := range 1000 {
		j.Add(entry(i, "sink", Delivered))
	}
	// An Add that waited on the store would take a CallTimeout (1 s) or more each: 1000 of
	// them far over this bound, which is far above a loaded machine's scheduling.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Add waited %s with the table down", d)
	}
	flush(t, j)
	s := j.Stats()
	if s.Added+s.Dropped != 1000 || s.Written != 0 || s.Lost != s.Added {
		t.Errorf("stats %+v", s)
	}
	// Back up: the journal writes again.
	az.Start(t)
	j.Add(entry(5000, "sink", Delivered))
	flush(t, j)
	if got, err := j.Lookup(context.Background(), Query{EventID: "ev-05000"}); err != nil || len(got) != 1 {
		t.Errorf("after restart: %d entries, %v", len(got), err)
	}
}

func TestPurge_DeletesWhatRetentionNoLongerKeeps(t *testing.T) {
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{})
	for i := range 120 {
		j.Add(entry(i, "sink", Delivered))
	}
	flush(t, j)
	ctx := context.Background()
	if n, err := j.Purge(ctx, time.Now(), time.Hour); err != nil || n != 0 {
		t.Fatalf("fresh entries purged: %d, %v", n, err)
	}
	n, err := j.Purge(ctx, time.Now().Add(2*time.Hour), time.Hour)
	if err != nil || n != 120*4 {
		t.Fatalf("purged %d, %v; want %d", n, err, 120*4)
	}
	if got, _ := j.Lookup(ctx, Query{EventID: "ev-00001"}); len(got) != 0 {
		t.Errorf("still there: %+v", got)
	}
}

// TestWriter_Load10000 journals 10,000 events of three consumers each and checks every one can
// be found.
func TestWriter_Load10000(t *testing.T) {
	// The buffer holds the whole burst: this test adds faster than any delivery could. A call
	// gets a minute, not the default 10 s: eight workers' batches at once keep a loaded
	// machine's Azurite busy for longer than that, and what is tested is completeness.
	j := openJournal(t, sharedAzurite(t).ConnectionString(), Config{Workers: 8, Buffer: 30000, CallTimeout: time.Minute})
	const events = 10000
	start := time.Now()
	for i := range events {
		for _, c := range []string{"a", "b", "c"} {
			e := entry(i, c, Delivered)
			e.CorrelationID, e.RecordID = "", "" // only the event and consumer copies
			j.Add(e)
		}
	}
	flush(t, j)
	s := j.Stats()
	t.Logf("%d outcomes journaled in %s: %+v", events*3, time.Since(start), s)
	if s.Written != events*3 || s.Dropped != 0 || s.Lost != 0 {
		t.Fatalf("stats %+v", s)
	}
	ctx := context.Background()
	for _, i := range []int{0, 1, 4999, 9999} {
		got, err := j.Lookup(ctx, Query{EventID: fmt.Sprintf("ev-%05d", i)})
		if err != nil || len(got) != 3 {
			t.Errorf("event %d: %d entries, %v", i, len(got), err)
		}
	}
	got, err := j.Lookup(ctx, Query{Consumer: "b", Since: base, Until: base.Add(time.Hour), Limit: MaxLimit})
	if err != nil || len(got) != MaxLimit || got[0].EventID != "ev-09999" {
		t.Errorf("consumer b: %d entries, first %+v, %v", len(got), got[0], err)
	}
}

// An Add racing Close either is dropped or is written: none is counted added and then left in
// the buffer after the flusher's last take (Flush would wait for it until its context ended).
func TestClose_AddsRacingItAreWrittenOrDropped(t *testing.T) {
	sink := testenv.StartTableBatchSink(t)
	for round := range 20 {
		j := openJournal(t, sink.ConnectionString(), Config{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					j.Add(entry(round*10000+g*1000+i, "sink", Delivered))
				}
			}()
		}
		runtime.Gosched()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		j.Close(ctx)
		cancel()
		wg.Wait()
		if s := j.Stats(); s.Added != s.Written+s.Lost || s.Added+s.Dropped != 800 {
			t.Fatalf("round %d: stats %+v: every entry added must be written or lost, and 800 given", round, s)
		}
	}
}
