package failures

// Bulk replay in batches: a consumer that takes several replays in one request (a dataverse
// consumer's $batch change set) gets its failures that way, each still claimed, and its outcome
// saved, one by one.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// BatchSender is a Sender whose consumers may take several replays in one request.
// *deliver.Deliverer is one.
type BatchSender interface {
	Sender
	// BatchSize is how many replays the consumer takes at once; 0 or 1: one at a time.
	BatchSize(consumer string) int
	// ResendBatch resends items to consumer, returning one Attempt per item, in order.
	ResendBatch(ctx context.Context, consumer string, items []BatchItem) []Attempt
}

// BatchItem is one replay of a batch.
type BatchItem struct {
	Event *dataverse.Event
	Route string
	Shape Shape
}

// claimed is a failure claimed for a batch, with what its replay needs.
type claimed struct {
	f     Failure
	etag  ETag
	shape Shape
	ev    *dataverse.Event
}

// replayBatches replays, in batches, the items whose consumer takes them, and returns the
// others for replayAll to replay one by one.
func (b *bulkRun) replayBatches(ctx context.Context, items []Failure) []Failure {
	bs, ok := b.r.Sender.(BatchSender)
	if !ok {
		return items
	}
	var rest []Failure
	groups := map[string][]Failure{}
	var order []string
	for _, f := range items {
		if f.Kind == KindPoison || bs.BatchSize(f.Consumer) < 2 {
			rest = append(rest, f)
			continue
		}
		if groups[f.Consumer] == nil {
			order = append(order, f.Consumer)
		}
		groups[f.Consumer] = append(groups[f.Consumer], f)
	}
	for _, consumer := range order {
		group, size := groups[consumer], bs.BatchSize(consumer)
		for start := 0; start < len(group) && !b.stopped(); start += size {
			if ctx.Err() != nil {
				b.stop("the request was cancelled")
				break
			}
			b.replayBatch(ctx, bs, consumer, group[start:min(start+size, len(group))])
		}
	}
	return rest
}

// replayBatch claims what it can of listed (one consumer's), resends it in one batch and saves
// each outcome as a replay of its own would.
func (b *bulkRun) replayBatch(reqCtx context.Context, bs BatchSender, consumer string, listed []Failure) {
	r := b.r
	if bs.BreakerOpen(consumer) {
		b.stop(breakerStopReason(consumer))
		return
	}
	// Room for the batch, and for sending its items one by one if it is not accepted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), 3*r.budget()+storeTimeout)
	defer cancel()
	var batch []claimed
	for _, l := range listed {
		f, etag, err := r.Store.Get(ctx, l.ID)
		if err != nil {
			b.count(l.ID, ResultSkipped, "read: "+err.Error())
			continue
		}
		if f.Status != StatusPending {
			b.count(f.ID, ResultSkipped, "")
			continue
		}
		shape, err := r.replayable(f)
		if err != nil {
			b.count(f.ID, ResultSkipped, err.Error())
			continue
		}
		etag, err = r.Store.Claim(ctx, f.ID, etag, b.by.Name)
		if errors.Is(err, ErrConflict) {
			b.count(f.ID, ResultSkipped, "")
			continue
		}
		if err != nil {
			b.count(f.ID, ResultSkipped, "claim: "+err.Error())
			continue
		}
		ev, err := dataverse.DecodeBody(f.Payload, "", dataverse.DecodeOptions{OrganizationHost: f.OrganizationHost, Lookups: r.Lookups})
		if err != nil {
			out := ReplayOutcome{ID: f.ID, Result: ResultFailed, Error: fmt.Sprintf("payload does not decode: %v", err)}
			err := r.save(ctx, f, etag, &out, 0, time.Now(), b.by)
			b.saved(consumer, out, err)
			continue
		}
		batch = append(batch, claimed{f, etag, shape, ev})
	}
	if len(batch) == 0 {
		return
	}
	items := make([]BatchItem, len(batch))
	for i, c := range batch {
		items[i] = BatchItem{Event: c.ev, Route: c.f.Route, Shape: c.shape}
	}
	start := time.Now()
	attempts := bs.ResendBatch(ctx, consumer, items)
	for i, c := range batch {
		var a Attempt
		if i < len(attempts) {
			a = attempts[i]
		} else {
			a = Attempt{Error: "no outcome for this item", BreakerRefused: true} // given back untried
		}
		out := ReplayOutcome{ID: c.f.ID, tries: a.Tries}
		if a.Delivered {
			out.Result = ResultDelivered
		} else {
			out.Result, out.Error = ResultFailed, a.Error
			out.breaker = a.BreakerRefused
			out.untried = a.BreakerRefused && a.Attempts == 0
		}
		err := r.save(ctx, c.f, c.etag, &out, a.StatusCode, start, b.by)
		b.saved(consumer, out, err)
	}
}

// saved counts one saved (or not saved) replay outcome, stopping the run when the breaker
// refused it.
func (b *bulkRun) saved(consumer string, out ReplayOutcome, err error) {
	msg := out.Error
	if err != nil {
		msg = err.Error()
	}
	b.count(out.ID, out.Result, msg)
	if out.breaker {
		b.stop(breakerStopReason(consumer))
	}
}
