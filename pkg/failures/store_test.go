package failures

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

func TestRecord_GetRoundTripsEveryField(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := time.Date(2025, 3, 5, 8, 30, 0, 123456700, time.UTC)
	s.now = func() time.Time { return now }
	in := Failure{
		ID:               "ignored",
		EventID:          "evt-1",
		Consumer:         "erp",
		Route:            "contacts-to-erp",
		Table:            "contact",
		Message:          "Update",
		RecordID:         "2f6c1a4e-0000-0000-0000-000000000001",
		CorrelationID:    "c0ffee00-0000-0000-0000-000000000002",
		MessageID:        "msg-7",
		OrganizationHost: "contoso.crm4.dynamics.com",
		Kind:             KindBreakerOpen,
		Status:           StatusDiscarded, // ignored: a new failure is pending
		Attempts:         4,
		OccurredAt:       time.Date(2025, 3, 5, 8, 29, 59, 987654321, time.FixedZone("CET", 3600)),
		FirstFailedAt:    time.Date(2025, 3, 5, 8, 29, 0, 0, time.UTC),
		LastFailedAt:     time.Date(2025, 3, 5, 8, 29, 58, 0, time.UTC),
		LastError:        "breaker open: O'Brien's \"consumer\" <is> down ✓",
		LastStatusCode:   429,
		UpdatedBy:        "webhook",
		Payload:          eventJSON(1, 5000),
	}
	rec, err := s.Record(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, etag, err := s.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if etag == "" {
		t.Error("Get returned no ETag")
	}
	want := in
	want.ID = rec.ID
	want.Status = StatusPending
	want.OccurredAt = time.Date(2025, 3, 5, 7, 29, 59, 987654300, time.UTC) // UTC, 100 ns
	want.UpdatedAt = now
	want.PayloadSize = len(in.Payload)
	want.History = []Change{{At: now, By: "webhook", Action: ActionRecorded, Status: StatusPending, Detail: in.LastError}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("Record returned:\n got %+v\nwant %+v", rec, want)
	}
}

func TestRecord_DefaultsForAMinimalFailure(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := time.Date(2025, 3, 5, 8, 30, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	rec, err := s.Record(ctx, Failure{EventID: "e", Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Failure{ID: rec.ID, EventID: "e", Consumer: "c", Kind: KindDelivery, Status: StatusPending, Attempts: 1,
		FirstFailedAt: now, LastFailedAt: now, UpdatedBy: "dvrouter", UpdatedAt: now,
		History: []Change{{At: now, By: "dvrouter", Action: ActionRecorded, Status: StatusPending}}}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(rec, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestRecord_RejectsInvalidFailures(t *testing.T) {
	s := newStore(t)
	for name, f := range map[string]Failure{
		"consumer without event id": {Consumer: "erp"},
		"unknown kind":              {EventID: "e", Consumer: "erp", Kind: "oops"},
		"delivery without consumer": {EventID: "e", Kind: KindDelivery},
		"poison with a consumer":    {EventID: "e", Consumer: "erp", Kind: KindPoison},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Record(testCtx(t), f); !errors.Is(err, ErrInvalid) {
				t.Errorf("Record = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRecord_SameEventAndConsumerTwiceIsOneFailure(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	s.now = func() time.Time { return baseTime.Add(2 * time.Hour) }
	f := deliveryFailure(1, "erp")
	first, err := s.Record(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	f.LastError, f.LastStatusCode, f.LastFailedAt = "timeout", 0, baseTime.Add(3*time.Hour)
	second, err := s.Record(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID {
		t.Fatalf("ids differ: %s then %s", first.ID, second.ID)
	}
	page, err := s.List(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 {
		t.Fatalf("listed %d failures, want 1", len(page.Items))
	}
	got, _, err := s.Get(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts != 2 || got.LastError != "timeout" || got.LastStatusCode != 0 || !got.LastFailedAt.Equal(f.LastFailedAt) {
		t.Errorf("after two records: attempts %d, lastError %q, status code %d, lastFailedAt %s",
			got.Attempts, got.LastError, got.LastStatusCode, got.LastFailedAt)
	}
	if !bytes.Equal(got.Payload, f.Payload) {
		t.Error("payload changed")
	}
	if !reflect.DeepEqual(second, withoutPayload(got, second.Payload)) {
		t.Errorf("Record returned %+v, stored %+v", second, got)
	}
}

func withoutPayload(f Failure, p []byte) Failure { f.Payload = p; return f }

func TestRecord_SameEventForTwoConsumersIsTwoFailures(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	a, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Record(ctx, deliveryFailure(1, "crm"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Errorf("both consumers got id %s", a.ID)
	}
}

func TestRecord_ConcurrentRecordsOfOneFailureCountEveryAttempt(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Record(ctx, deliveryFailure(1, "erp")) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	page, err := s.List(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Attempts != n {
		t.Fatalf("want one failure with %d attempts, got %+v", n, page.Items)
	}
}

func TestRecord_AgainAfterReplayStaysReplayed(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	etag, err := s.Claim(ctx, f.ID, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReplayed(ctx, f.ID, etag, nil, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, deliveryFailure(1, "erp")); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusReplayed || got.Attempts != 2 {
		t.Errorf("status %s attempts %d, want replayed 2", got.Status, got.Attempts)
	}
	last := got.History[len(got.History)-1]
	if last.Action != ActionFailedAgain || last.Status != StatusReplayed {
		t.Errorf("last history entry %+v, want failed-again with status replayed", last)
	}
}

func TestRecord_RecordDuringReplayKeepsTheClaim(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, f.ID, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, deliveryFailure(1, "erp")); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusReplaying || got.ClaimedBy != "alice" {
		t.Errorf("status %s claimed by %q, want replaying by alice", got.Status, got.ClaimedBy)
	}
}

func TestRecord_PoisonIdentity(t *testing.T) {
	body := []byte("<not json>")
	other := []byte("<other>")
	tests := []struct {
		name        string
		a, b        Failure
		sameFailure bool
	}{
		{"same message id", Failure{MessageID: "m1", Payload: body}, Failure{MessageID: "m1", Payload: other}, true},
		{"different message ids", Failure{MessageID: "m1", Payload: body}, Failure{MessageID: "m2", Payload: body}, false},
		{"no message id, same bytes", Failure{Payload: body}, Failure{Payload: body}, true},
		{"no message id, other bytes", Failure{Payload: body}, Failure{Payload: other}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := testCtx(t)
			a, err := s.Record(ctx, tt.a)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Record(ctx, tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if (a.ID == b.ID) != tt.sameFailure {
				t.Errorf("ids %s and %s: same = %v, want %v", a.ID, b.ID, a.ID == b.ID, tt.sameFailure)
			}
			got, _, err := s.Get(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != KindPoison || got.Consumer != "" || !bytes.Equal(got.Payload, tt.a.Payload) {
				t.Errorf("got kind %s consumer %q payload %q", got.Kind, got.Consumer, got.Payload)
			}
		})
	}
}

func TestRecord_ThousandConcurrentFailuresAllListed(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	const n, workers = 1000, 32
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				if _, err := s.Record(ctx, deliveryFailure(i, "erp")); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	shards := map[string]bool{}
	q := Query{Consumer: "erp", Top: 300}
	for {
		page, err := s.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Items {
			if seen[f.EventID] {
				t.Fatalf("%s listed twice", f.EventID)
			}
			seen[f.EventID] = true
			shards[f.ID[:2]] = true
		}
		if page.Continuation == "" {
			break
		}
		q.Continuation = page.Continuation
	}
	if len(seen) != n {
		t.Errorf("listed %d failures, want %d", len(seen), n)
	}
	if len(shards) != shardCount {
		t.Errorf("failures used %d partitions, want %d", len(shards), shardCount)
	}
}

func TestGet_UnknownOrMalformedIDIsNotFound(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	valid := keysFor("d\x00e\x00c", baseTime).id()
	ids := []string{
		"", "x", "../../etc", "0a-123", valid + "0", strings.ToUpper(valid),
		"10" + valid[2:], // shard 16 of 16
		strings.Replace(valid, "-", "/", 1),
		valid[:3] + "#" + valid[4:],
		valid, // well-formed, never recorded
	}
	for _, id := range ids {
		if _, _, err := s.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Claim(ctx, id, "", "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Claim(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.Discard(ctx, id, "", "bob", "no"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Discard(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.MarkReplayed(ctx, id, "", nil, "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("MarkReplayed(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.RecordAttempt(ctx, id, "", "x", 500, nil, "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RecordAttempt(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestClaim_ConcurrentClaimsOnlyOneWins(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	for i := range 10 {
		f, err := s.Record(ctx, deliveryFailure(i, "erp"))
		if err != nil {
			t.Fatal(err)
		}
		_, etag, err := s.Get(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Half the rounds claim with the ETag read, half with whatever is stored.
		if i%2 == 1 {
			etag = ""
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j := range errs {
			wg.Go(func() { _, errs[j] = s.Claim(ctx, f.ID, etag, fmt.Sprintf("replayer-%d", j)) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Fatalf("claim: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d claims won (%v), want 1", i, won, errs)
		}
	}
}

func TestClaim_ThenMarkReplayed(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := baseTime.Add(24 * time.Hour)
	s.now = func() time.Time { return now }
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	_, etag, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	etag2, err := s.Claim(ctx, f.ID, etag, "alice")
	if err != nil {
		t.Fatal(err)
	}
	claimed, _, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if claimed.Status != StatusReplaying || claimed.ClaimedBy != "alice" || !claimed.ClaimedAt.Equal(now) || claimed.UpdatedBy != "alice" {
		t.Errorf("after claim: %+v", claimed)
	}
	now = now.Add(time.Second)
	if err := s.MarkReplayed(ctx, f.ID, etag2, nil, "alice"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusReplayed || got.UpdatedBy != "alice" || !got.UpdatedAt.Equal(now) || got.Attempts != 1 ||
		got.ClaimedBy != "" || !got.ClaimedAt.IsZero() {
		t.Errorf("after replay: %+v", got)
	}
	if _, err := s.Claim(ctx, f.ID, "", "bob"); !errors.Is(err, ErrConflict) {
		t.Errorf("claim of a replayed failure = %v, want ErrConflict", err)
	}
}

func TestClaim_ThenRecordAttemptIsPendingWithOneMoreAttempt(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	etag, err := s.Claim(ctx, f.ID, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, f.ID, etag, "502 Bad Gateway", 502, nil, "alice"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusPending || got.Attempts != 2 || got.LastError != "502 Bad Gateway" || got.LastStatusCode != 502 || got.UpdatedBy != "alice" {
		t.Errorf("after failed replay: %+v", got)
	}
	if _, err := s.Claim(ctx, f.ID, "", "bob"); err != nil {
		t.Errorf("claim after a failed replay: %v", err)
	}
}

func TestClaim_HeldClaimBlocksUntilItExpires(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := baseTime
	s.now = func() time.Time { return now }
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, f.ID, "", "crashed-replayer"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultClaimTimeout - time.Second)
	if _, err := s.Claim(ctx, f.ID, "", "bob"); !errors.Is(err, ErrConflict) {
		t.Errorf("claim while held = %v, want ErrConflict", err)
	}
	if err := s.Discard(ctx, f.ID, "", "bob", "dup"); !errors.Is(err, ErrConflict) {
		t.Errorf("discard while held = %v, want ErrConflict", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := s.Claim(ctx, f.ID, "", "bob"); err != nil {
		t.Errorf("claim after expiry: %v", err)
	}
}

func TestDiscard_StaleETagConflicts(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	_, etag, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(ctx, f.ID, etag, "alice", "customer asked"); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(ctx, f.ID, etag, "bob", "duplicate"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second discard with the same ETag = %v, want ErrConflict", err)
	}
	got, _, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusDiscarded || got.Reason != "customer asked" || got.UpdatedBy != "alice" {
		t.Errorf("after discard: %+v", got)
	}
}

func TestMarkReplayed_StaleETagConflicts(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	_, etag, err := s.Get(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, f.ID, etag, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReplayed(ctx, f.ID, etag, nil, "bob"); !errors.Is(err, ErrConflict) {
		t.Errorf("MarkReplayed with the pre-claim ETag = %v, want ErrConflict", err)
	}
}

func TestOpen_NeedsAConnection(t *testing.T) {
	if _, err := Open(testCtx(t), Config{}); err == nil {
		t.Error("Open without connection string or service URI succeeded")
	}
}

func TestOpen_MalformedConnectionStringDoesNotLeakIt(t *testing.T) {
	_, err := Open(testCtx(t), Config{ConnectionString: "AccountKey=c2VjcmV0;nonsense"})
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("Open = %v, want an error without the key", err)
	}
}

func TestOpen_ExistingTableIsFine(t *testing.T) {
	conn := sharedAzurite(t).ConnectionString()
	cfg := Config{ConnectionString: conn, Table: tableName(t)}
	for range 2 {
		if _, err := Open(testCtx(t), cfg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecord_StoreDownFailsPromptlyThenWorksWhenBack(t *testing.T) {
	az := testenv.StartAzurite(t) // its own: this test stops it
	s := openStore(t, az.ConnectionString(), Config{})
	ctx := testCtx(t)
	before, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}

	az.Stop()
	// The store must give up by itself (few short retries), well before the caller's deadline.
	down, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = s.Record(down, deliveryFailure(2, "erp"))
	t.Logf("Record with the store down failed after %s: %v", time.Since(start), err)
	if err == nil {
		t.Fatal("Record succeeded with the store down")
	}
	if down.Err() != nil {
		t.Fatalf("Record only gave up at the caller's deadline: %v", err)
	}

	az.Start(t)
	after, err := s.Record(ctx, deliveryFailure(2, "erp"))
	if err != nil {
		t.Fatalf("Record after restart: %v", err)
	}
	for _, id := range []string{before.ID, after.ID} {
		if _, _, err := s.Get(ctx, id); err != nil {
			t.Errorf("Get %s after restart: %v", id, err)
		}
	}
}

func TestHistory_EveryChangeIsKeptWithWhoAndWhen(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	at := baseTime
	s.now = func() time.Time { at = at.Add(time.Minute); return at }
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	etag, err := s.Claim(ctx, f.ID, "", "ann")
	step(err)
	step(s.RecordAttempt(ctx, f.ID, etag, "HTTP 500: locked", 500, nil, "ann"))
	etag, err = s.Claim(ctx, f.ID, "", "bob")
	step(err)
	step(s.Release(ctx, f.ID, etag, "bob"))
	_, err = s.Record(ctx, deliveryFailure(1, "erp")) // the same event fails again
	step(err)
	step(s.Discard(ctx, f.ID, "", "cy", "entered by hand"))

	got, _, err := s.Get(ctx, f.ID)
	step(err)
	want := []struct {
		action Action
		by     string
		status Status
		detail string
	}{
		{ActionRecorded, "dvrouter", StatusPending, f.LastError},
		{ActionClaimed, "ann", StatusReplaying, ""},
		{ActionReplayFailed, "ann", StatusPending, "HTTP 500: locked"},
		{ActionClaimed, "bob", StatusReplaying, ""},
		{ActionReleased, "bob", StatusPending, ""},
		{ActionFailedAgain, "dvrouter", StatusPending, f.LastError},
		{ActionDiscarded, "cy", StatusDiscarded, "entered by hand"},
	}
	if len(got.History) != len(want) {
		t.Fatalf("history %+v, want %d changes", got.History, len(want))
	}
	for i, w := range want {
		c := got.History[i]
		if c.Action != w.action || c.By != w.by || c.Status != w.status || c.Detail != w.detail {
			t.Errorf("change %d: %+v, want %+v", i, c, w)
		}
		if i > 0 && !c.At.After(got.History[i-1].At) {
			t.Errorf("change %d at %s, not after the one before", i, c.At)
		}
	}
	var status *StatusError
	if err := s.Discard(ctx, f.ID, "", "dee", "again"); !errors.As(err, &status) || !errors.Is(err, ErrConflict) {
		t.Errorf("discard of a discarded failure: %v, want a StatusError that is ErrConflict", err)
	}
}

func TestTries_KeptAcrossFailingAgainAndReplays(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	try := func(status int, errText string) Try {
		return Try{At: baseTime, StatusCode: status, Duration: 20 * time.Millisecond, Error: errText}
	}
	f := deliveryFailure(1, "erp")
	f.Tries = []Try{try(503, "busy"), try(502, strings.Repeat("x", 2*MaxTryError))}
	rec, err := s.Record(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	again := deliveryFailure(1, "erp") // the same event failing again adds its tries
	again.Tries = []Try{try(500, "locked")}
	if _, err := s.Record(ctx, again); err != nil {
		t.Fatal(err)
	}
	etag, err := s.Claim(ctx, rec.ID, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, rec.ID, etag, "HTTP 504", 504, []Try{try(504, "HTTP 504")}, "alice"); err != nil {
		t.Fatal(err)
	}
	if etag, err = s.Claim(ctx, rec.ID, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReplayed(ctx, rec.ID, etag, []Try{try(200, "")}, "alice"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for _, tr := range got.Tries {
		statuses = append(statuses, tr.StatusCode)
		if len(tr.Error) > MaxTryError || !tr.At.Equal(baseTime) || tr.Duration != 20*time.Millisecond {
			t.Errorf("try %+v: error over %d bytes, or time or duration changed", tr, MaxTryError)
		}
	}
	if want := []int{503, 502, 500, 504, 200}; !slices.Equal(statuses, want) {
		t.Errorf("tries' statuses = %v, want %v", statuses, want)
	}
	if len(f.Tries[1].Error) != 2*MaxTryError {
		t.Error("Record cut the caller's own tries")
	}
}

func TestTries_NewestMaxTriesKept(t *testing.T) {
	var ts []Try
	for i := range MaxTries + 3 {
		ts = append(ts, Try{StatusCode: 500 + i})
	}
	kept := LastTries(ts)
	if len(kept) != MaxTries || kept[0].StatusCode != 503 || kept[MaxTries-1].StatusCode != 500+MaxTries+2 {
		t.Errorf("LastTries kept %d, from %d to %d", len(kept), kept[0].StatusCode, kept[len(kept)-1].StatusCode)
	}
}
