package dispatch

import (
	"context"
	"time"

	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/journal"
)

// Consumers is delivery's consumer operations (pause, resume, reset, test: see
// deliver/operations.go) with the test events journaled, as every delivery outcome is.
type Consumers struct {
	*deliver.Deliverer
	Journal Journal // nil: no delivery journal
}

// SendTest sends a test event to consumer and journals its outcome as test-delivered or
// test-failed (never as a delivery: nothing of it is kept as a failure).
func (c *Consumers) SendTest(ctx context.Context, consumer, by string) (deliver.TestResult, error) {
	res, err := c.Deliverer.SendTest(ctx, consumer, by)
	if err != nil || c.Journal == nil || res.Event == nil {
		return res, err
	}
	o := journal.TestDelivered
	if !res.Delivered {
		o = journal.TestFailed
	}
	ev := res.Event
	c.Journal.Add(journal.Entry{At: time.Now(), EventID: ev.ID, CorrelationID: ev.CorrelationID, Table: ev.Table,
		RecordID: ev.RecordID, Message: ev.Message, Route: deliver.TestRoute, Consumer: consumer, Outcome: o,
		AttemptCount: res.Attempts, StatusCode: res.StatusCode, Duration: res.Duration, Error: res.Error})
	return res, nil
}
