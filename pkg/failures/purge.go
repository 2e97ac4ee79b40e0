package failures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Retention says how long failures are kept. Zero keeps forever.
type Retention struct {
	// Failures bounds every failure, whatever its status: one first recorded longer ago than
	// this (firstFailedAt, when its payload was stored) is deleted, with its payload.
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
	// RecordedBefore and ResolvedBefore are the cut-offs applied (zero when that bound is off).
	RecordedBefore, ResolvedBefore time.Time
}

// maxBatch is the most operations one entity group transaction may hold (all in one partition).
const maxBatch = 100

// purgeParallel is how many partitions are purged at once.
const purgeParallel = 4

// Purge deletes what r no longer keeps, as of now, by batch deletes of at most 100 entities per
// partition. A failure goes together with its spilled payload chunks in one transaction, so no
// payload outlives its failure; chunks that interrupted writes left behind, referred to by no
// failure, go once they are as old as the bound. A failure being replayed right now is left
// for the next run.
//
// Purge is resumable: every batch stands on its own, and a run stopped anywhere (ctx ends) leaves
// the store consistent; the next run deletes what is left. The result counts what was deleted
// even when the error is non-nil.
func (s *Store) Purge(ctx context.Context, now time.Time, r Retention) (PurgeResult, error) {
	res := PurgeResult{ByStatus: map[Status]int{}, ByConsumer: map[string]int{}}
	now = normTime(now)
	if r.Failures > 0 {
		res.RecordedBefore = now.Add(-r.Failures)
	}
	if r.Resolved > 0 {
		res.ResolvedBefore = now.Add(-r.Resolved)
	}
	if res.RecordedBefore.IsZero() && res.ResolvedBefore.IsZero() {
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
			part, err := s.purgeShard(ctx, partitionKey(shard), now, res.RecordedBefore, res.ResolvedBefore)
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

func (s *Store) purgeShard(ctx context.Context, pk string, now, recordedBefore, resolvedBefore time.Time) (PurgeResult, error) {
	res := PurgeResult{ByStatus: map[Status]int{}, ByConsumer: map[string]int{}}
	mains := fmt.Sprintf("PartitionKey eq '%s' and RowKey gt '%s' and RowKey lt '%s'", pk, rowPrefix, rowEnd)
	var queries []string
	if !recordedBefore.IsZero() {
		queries = append(queries, fmt.Sprintf("%s and %s lt datetime'%s'", mains, pFirstFailedAt, odataTime(recordedBefore)))
	}
	if !resolvedBefore.IsZero() {
		queries = append(queries, fmt.Sprintf("%s and (%s eq '%s' or %s eq '%s') and %s lt datetime'%s'",
			mains, pStatus, StatusReplayed, pStatus, StatusDiscarded, pUpdatedAt, odataTime(resolvedBefore)))
	}
	for _, filter := range queries {
		if err := s.purgeQuery(ctx, pk, filter, now, &res); err != nil {
			return res, err
		}
	}
	// Chunks are written just before their failure, so one older than the bound whose failure is
	// gone (or names another write's token) belongs to nothing: an interrupted write's leftover.
	// Timestamp is the service's own last-modified time of the entity.
	if cutoff := recordedBefore; !cutoff.IsZero() {
		filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s' and RowKey lt 'y' and Timestamp lt datetime'%s'", pk, chunkStart, odataTime(cutoff))
		if err := s.purgeOrphanChunks(ctx, pk, filter, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// chunkOwner gives the RowKey of the failure a chunk row was written for, and the write's token.
func chunkOwner(rk string) (main, token string, ok bool) {
	const mainLen = invDigits + 1 + hashHex
	body, found := strings.CutPrefix(rk, chunkStart)
	if !found || len(body) < mainLen+2 || body[mainLen] != '-' {
		return "", "", false
	}
	token, _, found = strings.Cut(body[mainLen+1:], "-")
	if !found || token == "" {
		return "", "", false
	}
	return rowPrefix + body[:mainLen], token, true
}

func odataTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// purgeOrphanChunks deletes the chunk rows filter finds that no stored failure refers to.
func (s *Store) purgeOrphanChunks(ctx context.Context, pk, filter string, res *PurgeResult) error {
	sel := "PartitionKey,RowKey"
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel})
	for pager.More() {
		page, err := boundCall(s, ctx, pager.NextPage)
		if err != nil {
			return fmt.Errorf("list chunks %s: %w", pk, err)
		}
		var rows []purgeRow
		for _, raw := range page.Entities {
			var e entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("list chunks %s: decode entity: %w", pk, err)
			}
			// "x" + 19 digits + "-" + 32 hex + "-" + token + "-" + 2 digits: its failure is
			// "r" + the same 19 digits, "-" and hash.
			main, token, ok := chunkOwner(e.RowKey)
			if !ok {
				continue // not one of ours: leave it
			}
			owner, err := s.readMeta(ctx, keys{pk: pk, rk: main})
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return fmt.Errorf("chunk %s/%s: %w", pk, e.RowKey, err)
			case owner.spill == token:
				continue // still part of a stored payload
			}
			rows = append(rows, purgeRow{rk: e.RowKey, etag: azcore.ETag(e.ETag), isChunk: true})
		}
		if err := s.deleteRows(ctx, pk, rows, res); err != nil {
			return err
		}
	}
	return nil
}

// purgeQuery deletes every row filter finds, a page at a time.
func (s *Store) purgeQuery(ctx context.Context, pk, filter string, now time.Time, res *PurgeResult) error {
	top := int32(1000)
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &purgeSelect, Top: &top})
	for pager.More() {
		page, err := boundCall(s, ctx, pager.NextPage)
		if err != nil {
			return fmt.Errorf("list %s: %w", pk, err)
		}
		var rows []purgeRow
		for _, raw := range page.Entities {
			var e entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("list %s: decode entity: %w", pk, err)
			}
			row := purgeRow{rk: e.RowKey, etag: azcore.ETag(e.ETag), status: Status(e.Status), consumer: e.Consumer}
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
	tctx, cancel := s.bound(ctx)
	_, err := s.client.SubmitTransaction(tctx, actions, nil)
	cancel()
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
	if re := (*azcore.ResponseError)(nil); !errors.As(err, &re) {
		// No answer (the store is down or hung): deleting one by one would only wait longer.
		return fmt.Errorf("delete batch %s: %w", pk, callError(tctx, err))
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
	ctx, cancel := s.bound(ctx)
	defer cancel()
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

// boundCall makes one call of the store under its call deadline (see Store.bound): a purge runs
// for minutes, each of its calls for seconds at most.
func boundCall[T any](s *Store, ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := call(ctx)
	if err != nil {
		return v, callError(ctx, storageError(err))
	}
	return v, nil
}
