package failures

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// purgeFixture is a store holding n failures first recorded at times spread evenly over the 60
// days before now, every 7th discarded and every 11th replayed half a day after that, every 50th a
// poison message, and a few with payloads large enough to spill into chunk entities.
type purgeFixture struct {
	store   *Store
	now     time.Time
	stored  map[string]Failure // by id, as resolved
	payload map[string][]byte  // spilled payloads, by id
}

const purgeSpan = 60 * 24 * time.Hour

func newPurgeFixture(t *testing.T, n int) *purgeFixture {
	t.Helper()
	ctx := testCtx(t)
	s := newStore(t)
	fx := &purgeFixture{store: s, now: time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC), stored: map[string]Failure{}, payload: map[string][]byte{}}
	step := purgeSpan / time.Duration(n)
	consumers := []string{"erp", "crm", "wms"}

	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f := deliveryFailure(i, consumers[i%len(consumers)])
				f.OccurredAt = fx.now.Add(-time.Duration(i) * step)
				if i%50 == 49 {
					f = Failure{Kind: KindPoison, MessageID: fmt.Sprintf("msg-%d", i), OccurredAt: f.OccurredAt, Payload: []byte("not json")}
				}
				if i%1000 == 3 {
					f.Payload = randomBytes(uint64(i), 1_100_000) // spills into a chunk entity
				}
				// Recorded a little after the event; the event's own time does not count.
				f.FirstFailedAt = f.OccurredAt.Add(time.Minute)
				f.LastFailedAt = f.FirstFailedAt
				f.OccurredAt = f.OccurredAt.Add(-time.Duration(i%5) * 24 * time.Hour)
				got, err := s.Record(ctx, f)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				fx.stored[got.ID] = got
				if len(f.Payload) > 1_000_000 {
					fx.payload[got.ID] = f.Payload
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("record: %v", err)
	}
	// Resolve some, each half a day after it was recorded: the store's clock is moved for each.
	for id, f := range fx.stored {
		i := int(fx.now.Sub(f.FirstFailedAt.Add(-time.Minute)) / step)
		at := f.FirstFailedAt.Add(12 * time.Hour)
		s.now = func() time.Time { return at }
		switch {
		case i%7 == 0:
			if err := s.Discard(ctx, id, "", "ann", "re-entered by hand"); err != nil {
				t.Fatalf("discard: %v", err)
			}
			f.Status = StatusDiscarded
		case i%11 == 0 && f.Kind != KindPoison:
			etag, err := s.Claim(ctx, id, "", "bob")
			if err == nil {
				err = s.MarkReplayed(ctx, id, etag, nil, "bob")
			}
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			f.Status = StatusReplayed
		default:
			continue
		}
		f.UpdatedAt = at
		fx.stored[id] = f
	}
	s.now = time.Now
	return fx
}

// kept is what retention r must leave, by id.
func (fx *purgeFixture) kept(r Retention) map[string]bool {
	out := map[string]bool{}
	for id, f := range fx.stored {
		if f.FirstFailedAt.Before(fx.now.Add(-r.Failures)) {
			continue
		}
		resolved := f.Status == StatusReplayed || f.Status == StatusDiscarded
		if resolved && r.Resolved > 0 && f.UpdatedAt.Before(fx.now.Add(-r.Resolved)) {
			continue
		}
		out[id] = true
	}
	return out
}

// rows lists every entity left in the table: failures by id, and the number of chunk entities.
func (fx *purgeFixture) rows(t *testing.T) (map[string]bool, int) {
	t.Helper()
	ids, chunks := map[string]bool{}, 0
	sel := "PartitionKey,RowKey"
	pager := fx.store.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: &sel})
	for pager.More() {
		page, err := pager.NextPage(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e struct{ PartitionKey, RowKey string }
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			if id, ok := idFromKeys(e.PartitionKey, e.RowKey); ok {
				ids[id] = true
			} else {
				chunks++
			}
		}
	}
	return ids, chunks
}

func (fx *purgeFixture) check(t *testing.T, r Retention) {
	t.Helper()
	want := fx.kept(r)
	got, chunks := fx.rows(t)
	for id := range want {
		if !got[id] {
			t.Errorf("failure %s (recorded %s, %s) was purged but is inside the window", id, fx.stored[id].FirstFailedAt.Format(time.RFC3339), fx.stored[id].Status)
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("failure %s (recorded %s, %s) was kept but is outside the window", id, fx.stored[id].FirstFailedAt.Format(time.RFC3339), fx.stored[id].Status)
		}
	}
	wantChunks := 0
	for id, p := range fx.payload {
		if !want[id] {
			continue
		}
		wantChunks++ // 1.1 MB of random bytes: 14 parts in the main entity, the rest in one chunk
		f, _, err := fx.store.Get(testCtx(t), id)
		if err != nil || !bytes.Equal(f.Payload, p) {
			t.Errorf("kept failure %s: payload not intact (%v)", id, err)
		}
	}
	if chunks != wantChunks {
		t.Errorf("%d chunk entities left, want %d (those of the kept failures)", chunks, wantChunks)
	}
	if len(want) == 0 || len(want) == len(fx.stored) {
		t.Fatalf("the fixture does not exercise the window: %d of %d kept", len(want), len(fx.stored))
	}
}

func TestPurge_KeepsExactlyTheFailuresInsideTheWindow(t *testing.T) {
	fx := newPurgeFixture(t, 5000)
	r := Retention{Failures: 30 * 24 * time.Hour, Resolved: 7 * 24 * time.Hour}
	res, err := fx.store.Purge(testCtx(t), fx.now, r)
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	want := len(fx.stored) - len(fx.kept(r))
	if res.Deleted != want {
		t.Errorf("purge says it deleted %d, want %d", res.Deleted, want)
	}
	if res.ByStatus[StatusPending] == 0 || res.ByStatus[StatusDiscarded] == 0 || res.ByStatus[StatusReplayed] == 0 || res.ByConsumer[""] == 0 {
		t.Errorf("purge result %+v: want pending, discarded, replayed and poison failures among the deleted", res)
	}
	kept := fx.kept(r)
	oldSpilled := 0
	for id := range fx.payload {
		if !kept[id] {
			oldSpilled++
		}
	}
	if res.Chunks != oldSpilled || oldSpilled == 0 {
		t.Errorf("purge deleted %d chunk entities, want the %d of the old spilled payloads", res.Chunks, oldSpilled)
	}
	fx.check(t, r)

	// Nothing more to do: a second run deletes nothing.
	again, err := fx.store.Purge(testCtx(t), fx.now, r)
	if err != nil || again.Deleted != 0 || again.Chunks != 0 {
		t.Errorf("second purge: %+v, %v; want nothing deleted", again, err)
	}
}

func TestPurge_StoppedHalfwayThenRunAgainEndsExact(t *testing.T) {
	fx := newPurgeFixture(t, 5000)
	r := Retention{Failures: 21 * 24 * time.Hour, Resolved: 3 * 24 * time.Hour}
	want := len(fx.stored) - len(fx.kept(r))

	ctx, cancel := context.WithCancel(testCtx(t))
	var batches atomic.Int32
	fx.store.afterPurgeBatch = func() {
		if batches.Add(1) == 12 {
			cancel()
		}
	}
	first, err := fx.store.Purge(ctx, fx.now, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped purge: err %v, want context.Canceled", err)
	}
	if first.Deleted == 0 || first.Deleted >= want {
		t.Fatalf("stopped purge deleted %d of %d: not stopped halfway", first.Deleted, want)
	}
	left, _ := fx.rows(t)
	if len(left) <= len(fx.kept(r)) {
		t.Fatalf("after the stopped purge %d failures are left, want more than the %d kept", len(left), len(fx.kept(r)))
	}

	fx.store.afterPurgeBatch = nil
	second, err := fx.store.Purge(testCtx(t), fx.now, r)
	if err != nil {
		t.Fatalf("purge run again: %v", err)
	}
	if first.Deleted+second.Deleted > want {
		t.Errorf("the two runs deleted %d+%d, more than the %d outside the window", first.Deleted, second.Deleted, want)
	}
	fx.check(t, r)
}

func TestPurge_ZeroKeepsForever(t *testing.T) {
	fx := newPurgeFixture(t, 200)
	res, err := fx.store.Purge(testCtx(t), fx.now.Add(365*24*time.Hour), Retention{})
	if err != nil || res.Deleted != 0 {
		t.Fatalf("purge with no retention: %+v, %v", res, err)
	}
	if got, _ := fx.rows(t); len(got) != len(fx.stored) {
		t.Errorf("%d failures left of %d", len(got), len(fx.stored))
	}
}

func TestPurge_LeavesAFailureBeingReplayed(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	old := deliveryFailure(1, "erp")
	old.FirstFailedAt, old.LastFailedAt = baseTime, baseTime // recorded in 2025: long outside 30 days
	f, err := s.Record(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, f.ID, "", "carol"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Purge(ctx, time.Now(), Retention{Failures: 30 * 24 * time.Hour})
	if err != nil || res.Deleted != 0 {
		t.Fatalf("purge: %+v, %v; want the failure being replayed left alone", res, err)
	}
	if _, _, err := s.Get(ctx, f.ID); err != nil {
		t.Errorf("the failure being replayed is gone: %v", err)
	}
}

// TestPurge_OrphanChunksGoLiveOnesStay: chunks an interrupted write left behind, which no failure
// refers to, are deleted once as old as the bound; the chunks of a stored payload are not, even
// when they are as old.
func TestPurge_OrphanChunksGoLiveOnesStay(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := time.Now().UTC()
	live := deliveryFailure(7, "erp")
	live.Payload = randomBytes(7, 1_100_000)
	live.FirstFailedAt, live.LastFailedAt = now.Add(72*time.Hour), now.Add(72*time.Hour) // inside any window below
	stored, err := s.Record(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	// An interrupted write: chunks written, the failure itself never.
	orphanKeys := keysFor("orphan", baseTime)
	if _, err := s.writeChunks(ctx, orphanKeys, "0123456789abcdef", [][]byte{[]byte("left behind")}); err != nil {
		t.Fatal(err)
	}
	// Chunks are as old as the service's clock says (Timestamp): judge from two days on.
	res, err := s.Purge(ctx, now.Add(48*time.Hour), Retention{Failures: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || res.Chunks != 1 {
		t.Errorf("purge: %+v, want only the orphan chunk deleted", res)
	}
	got, _, err := s.Get(ctx, stored.ID)
	if err != nil || !bytes.Equal(got.Payload, live.Payload) {
		t.Errorf("the live spilled payload was damaged: %v", err)
	}
}
