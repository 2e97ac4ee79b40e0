package deliver

import (
	"context"
	"errors"
	"sync"

	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// batchFallbackConcurrency bounds the one-by-one sends after a batch was not accepted.
const batchFallbackConcurrency = 8

// BatchSize is how many replays the named consumer takes in one request (a dataverse
// consumer's $batch); 0 when it takes them one at a time.
func (d *Deliverer) BatchSize(consumer string) int {
	if c, ok := d.consumers[consumer]; ok {
		if bp, ok := c.pub.(dest.BatchPublisher); ok {
			return bp.MaxBatch()
		}
	}
	return 0
}

// ResendBatch is Resend for several replays to one consumer, one Attempt per item in order. The
// items go in one batch request through the consumer's breaker, retry policy and timeout, as
// one delivery; when that is not accepted (the change set failed, or every attempt did), each
// item is sent on its own, as Resend sends it, so that each gets its own outcome. When the
// breaker refuses the batch before it is sent, every item says so and nothing was sent.
func (d *Deliverer) ResendBatch(ctx context.Context, consumer string, items []failures.BatchItem) []failures.Attempt {
	out := make([]failures.Attempt, len(items))
	if d.sendBatch(ctx, consumer, items, out) {
		return out
	}
	slots := make(chan struct{}, batchFallbackConcurrency)
	var wg sync.WaitGroup
	for i, it := range items {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			out[i] = d.Resend(ctx, it.Event, it.Route, consumer, it.Shape)
		})
	}
	wg.Wait()
	return out
}

// sendBatch tries items as one batch, filling out and reporting true when that settled them all.
func (d *Deliverer) sendBatch(ctx context.Context, consumer string, items []failures.BatchItem, out []failures.Attempt) bool {
	c, ok := d.consumers[consumer]
	if !ok || len(items) < 2 {
		return false
	}
	bp, ok := c.pub.(dest.BatchPublisher)
	if !ok || len(items) > bp.MaxBatch() {
		return false
	}
	msgs := make([]dest.Message, len(items))
	for i, it := range items {
		t := Target{Route: it.Route, Consumer: consumer, Select: it.Shape.Select, Exclude: it.Shape.Exclude}
		p := d.encodeOnce(it.Event, []Target{t})[0]
		if p.err != nil {
			return false // that one fails on its own, with its error
		}
		msgs[i] = dest.Message{Event: it.Event, Route: it.Route, Body: p.body, ContentType: p.contentType, CloudEvent: p.ce}
	}
	// The consumer's own policy but for its concurrency limit: a batch is one request, and the
	// bulk replay that sends it runs few at a time.
	send := stack(func(ctx context.Context, dl *delivery) error {
		dl.attempts++
		return bp.PublishBatch(ctx, msgs)
	}, guard(c.cb), retry(c.cfg.Retry, c.cb), timeout(c.cfg.Timeout))
	dl := &delivery{deadline: d.deadline(ctx)}
	err := send(ctx, dl)
	switch {
	case err == nil:
		for i := range out {
			out[i] = failures.Attempt{Delivered: true, Attempts: dl.attempts}
		}
		return true
	case errors.Is(err, errBreakerOpen) && dl.attempts == 0:
		for i := range out {
			out[i] = failures.Attempt{Error: err.Error(), BreakerRefused: true}
		}
		return true
	}
	d.log.Info().Str("consumer", consumer).Int("items", len(items)).Str("error", err.Error()).
		Msg("batch not accepted; sending its items one by one")
	return false
}

var _ failures.BatchSender = (*Deliverer)(nil)
