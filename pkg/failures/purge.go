package failures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Retention says how long failures are kept. Zero keeps forever.
type Retention struct {
	// Failures bounds every failure, whatever its status: one whose event is older than this
	// is deleted, with its payload.
	Failures time.Duration
	// Resolved bounds replayed and discarded failures from the moment they were resolved
	// (their last change); zero means only Failures applies.
	Resolved time.Duration
}

// PurgeResult says what a Purge removed.
type PurgeResult struct {
	Deleted    int            // failures removed
	ByStatus   map[Status]int // of them, by status
	ByConsumer map[string]int // of them, by consumer ("" for poison messages)
	Chunks     int            // spilled payload entities removed, orphans included
	// EventsBefore and ResolvedBefore are the cut-offs applied (zero when that bound is off).
	EventsBefore, ResolvedBefore time.Time
}

// maxBatch is the most operations one entity group transaction may hold (all in one partition).
const maxBatch = 100

// purgeParallel is how many partitions are purged at once.
const purgeParallel = 4

// Purge deletes what r no longer keeps, as of now, by batch deletes of at most 100 entities per
// partition. A failure goes together with its spilled payload chunks in one transaction, so no
// payload outlives its failure, and chunks left behind by interrupted writes are deleted by the
// same event-time bound. A failure being replayed right now is left for the next run.
//
// Purge is resumable: every batch stands on its own, and a run stopped anywhere (ctx ends) leaves
// the store consistent; the next run deletes what is left. The result counts what was deleted
// even when the error is non-nil.
func (s *Store) Purge(ctx context.Context, now time.Time, r Retention) (PurgeResult, error) {
	res := PurgeResult{ByStatus: map[Status]int{}, ByConsumer: map[string]int{}}
	now = normTime(now)
	if r.Failures > 0 {
		res.EventsBefore = now.Add(-r.Failures)
	}
	if r.Resolved > 0 {
		res.ResolvedBefore = now.Add(-r.Resolved)
	}
	if res.EventsBefore.IsZero() && res.ResolvedBefore.IsZero() {
		return res, nil
	}
	var mu sync.Mutex
	errs := make([]error, shardCount)
	slots := make(chan struct{}, purgeParallel)
	var wg sync.WaitGroup
	for shard := range shardCount {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			part, err := s.purgeShard(ctx, partitionKey(shard), now, res.EventsBefore, res.ResolvedBefore)
			mu.Lock()
			defer mu.Unlock()
			res.Deleted += part.Deleted
			res.Chunks += part.Chunks
			for k, v := range part.ByStatus {
				res.ByStatus[k] += v
			}
			for k, v := range part.ByConsumer {
				res.ByConsumer[k] += v
			}
			errs[shard] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("purge: %w", err)
	}
	return res, nil
}

// purgeRow is one row the purge decided to delete.
type purgeRow struct {
	rk       string
	etag     azcore.ETag
	status   Status
	consumer string
	chunks   []string // RowKeys of its spilled payload chunks
	isChunk  bool
}

var purgeSelect = "PartitionKey,RowKey," + pStatus + "," + pConsumer + "," + pClaimedAt + "," + pPayloadSpill + "," + pPayloadChunks

func (s *Store) purgeShard(ctx context.Context, pk string, now, eventsBefore, resolvedBefore time.Time) (PurgeResult, error) {
	res := PurgeResult{ByStatus: map[Status]int{}, ByConsumer: map[string]int{}}
	var queries []string
	if !eventsBefore.IsZero() {
		// Event time is inverted in the RowKey: older rows have larger keys. A row at the
		// cut-off instant itself ("<digits>-<hash>") sorts before "<digits>." and is kept.
		inv := invertedTime(eventsBefore)
		queries = append(queries,
			fmt.Sprintf("PartitionKey eq '%s' and RowKey gt '%s%s.' and RowKey lt '%s'", pk, rowPrefix, inv, rowEnd),
			fmt.Sprintf("PartitionKey eq '%s' and RowKey gt '%s%s.' and RowKey lt 'y'", pk, chunkStart, inv))
	}
	if !resolvedBefore.IsZero() {
		queries = append(queries, fmt.Sprintf(
			"PartitionKey eq '%s' and RowKey gt '%s' and RowKey lt '%s' and (%s eq '%s' or %s eq '%s') and %s lt datetime'%s'",
			pk, rowPrefix, rowEnd, pStatus, StatusReplayed, pStatus, StatusDiscarded, pUpdatedAt, resolvedBefore.UTC().Format(time.RFC3339Nano)))
	}
	for _, filter := range queries {
		if err := s.purgeQuery(ctx, pk, filter, now, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// purgeQuery deletes every row filter finds, a page at a time.
func (s *Store) purgeQuery(ctx context.Context, pk, filter string, now time.Time, res *PurgeResult) error {
	top := int32(1000)
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &purgeSelect, Top: &top})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", pk, storageError(err))
		}
		var rows []purgeRow
		for _, raw := range page.Entities {
			var e entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("list %s: decode entity: %w", pk, err)
			}
			row := purgeRow{rk: e.RowKey, etag: azcore.ETag(e.ETag), status: Status(e.Status), consumer: e.Consumer}
			if len(e.RowKey) > 0 && e.RowKey[:1] == chunkStart {
				row.isChunk = true
			} else {
				if row.status == StatusReplaying {
					if at, err := time.Parse(time.RFC3339Nano, e.ClaimedAt); err == nil && now.Sub(at) < s.claimTTL {
						continue // being replayed right now: the next run takes it
					}
				}
				k := keys{pk: pk, rk: e.RowKey}
				for n := range int(e.PayloadChunks) {
					if e.PayloadSpill != "" {
						row.chunks = append(row.chunks, fmt.Sprintf("%s%02d", k.chunkPrefix(e.PayloadSpill), n))
					}
				}
			}
			rows = append(rows, row)
		}
		if err := s.deleteRows(ctx, pk, rows, res); err != nil {
			return err
		}
	}
	return nil
}

// deleteRows deletes rows in transactions of at most maxBatch operations, each failure in the
// same transaction as its chunks.
func (s *Store) deleteRows(ctx context.Context, pk string, rows []purgeRow, res *PurgeResult) error {
	var batch []purgeRow
	ops := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.deleteBatch(ctx, pk, batch, res)
		batch, ops = batch[:0], 0
		return err
	}
	for _, row := range rows {
		n := 1 + len(row.chunks)
		if ops+n > maxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, row)
		ops += n
	}
	return flush()
}

func (s *Store) deleteBatch(ctx context.Context, pk string, rows []purgeRow, res *PurgeResult) error {
	var actions []aztables.TransactionAction
	for _, row := range rows {
		// Chunks first, though the transaction makes the order moot: were it ever split, a
		// failure without its payload is still found and deleted, a payload without its failure
		// would not be.
		for _, rk := range row.chunks {
			actions = append(actions, deleteAction(pk, rk, nil))
		}
		etag := row.etag
		actions = append(actions, deleteAction(pk, row.rk, &etag))
	}
	_, err := s.client.SubmitTransaction(ctx, actions, nil)
	if err == nil {
		for _, row := range rows {
			res.count(row)
		}
		if s.afterPurgeBatch != nil {
			s.afterPurgeBatch()
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// One row changed or vanished since it was listed (recorded again, replayed, or deleted by
	// another run): the transaction is refused as a whole, so delete the rows one by one.
	for _, row := range rows {
		gone := true
		for _, rk := range row.chunks {
			if err := s.deleteOne(ctx, pk, rk, nil); err != nil {
				return err
			}
		}
		etag := row.etag
		if err := s.deleteOne(ctx, pk, row.rk, &etag); errors.Is(err, ErrConflict) {
			gone = false // changed since listed: the next run looks at it again
		} else if err != nil {
			return err
		}
		if gone {
			res.count(row)
		}
	}
	return nil
}

// deleteOne deletes one entity; one that is already gone counts as deleted.
func (s *Store) deleteOne(ctx context.Context, pk, rk string, etag *azcore.ETag) error {
	_, err := s.client.DeleteEntity(ctx, pk, rk, &aztables.DeleteEntityOptions{IfMatch: etag})
	if err == nil {
		return nil
	}
	if err = storageError(err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return fmt.Errorf("delete %s/%s: %w", pk, rk, err)
}

func deleteAction(pk, rk string, etag *azcore.ETag) aztables.TransactionAction {
	body, _ := json.Marshal(map[string]string{"PartitionKey": pk, "RowKey": rk}) // two strings: cannot fail
	return aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: body, IfMatch: etag}
}

func (r *PurgeResult) count(row purgeRow) {
	if row.isChunk {
		r.Chunks++
		return
	}
	r.Deleted++
	r.Chunks += len(row.chunks)
	r.ByStatus[row.status]++
	r.ByConsumer[row.consumer]++
}

// Consumers lists the consumers a purge removed failures of, in order.
func (r PurgeResult) Consumers() []string {
	return slices.Sorted(maps.Keys(r.ByConsumer))
}
