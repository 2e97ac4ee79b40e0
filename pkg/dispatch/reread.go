package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
)

// RowReader reads columns of an event's row from the Dataverse Web API, in the row's Web API
// shape. *webapi.Client is one.
type RowReader interface {
	ReadRow(ctx context.Context, ev *dataverse.Event, columns []string) (dataverse.Row, error)
}

// DefaultReadTimeout bounds one read of a row when Dispatcher.ReadTimeout is 0.
const DefaultReadTimeout = 10 * time.Second

// complete reads from the Web API, before matching, what the routes need of ev's row and the
// event lacks (route.Set.Reads): every column they read for a size-exceeded event, the columns
// of routes with fetch otherwise. One read serves every route. The columns read are added to
// the row (what the event carried wins: it is the row as the operation left it) and ev.Reread
// is set.
//
// When the read fails the event is not matched on what it lacks: held is true, and the event
// is kept as one failure of kind reread (rerouting: the error wraps failures.ErrRead instead,
// so the replay that asked says it failed). The error is non-nil only when the outcome could
// not be made durable.
func (d *Dispatcher) complete(ctx context.Context, ev *dataverse.Event, rerouting bool) (res Result, held bool, err error) {
	cols, reread := d.Routes.Reads(ev)
	if len(cols) == 0 {
		// Nothing to read: the event already carries every column asked for.
		return Result{}, false, nil
	}
	rctx, cancel := context.WithTimeout(ctx, d.readBudget(ctx))
	start := time.Now()
	row, rerr := d.Rows.ReadRow(rctx, ev, cols)
	cancel()
	if rerr == nil {
		// The read row is new and sized for its columns: the event's own go into it.
		for k, v := range ev.Row {
			row[k] = v
		}
		ev.Row = row
		ev.Reread = true
		EventLog(d.Log.Debug(), ev).Strs("columns", cols).Bool("sizeExceeded", reread).
			Dur("took", time.Since(start)).Msg("row read from the Web API")
		return Result{}, false, nil
	}
	res = Result{ID: ev.ID, Matched: []string{}, Delivered: []string{}, Failed: []string{}}
	why := "fetch"
	if reread {
		why = "size-exceeded"
	}
	if rerouting {
		return res, true, fmt.Errorf("%w (%s event %s, columns %v): %w", failures.ErrRead, why, ev.ID, cols, rerr)
	}
	if d.Recorder == nil {
		return res, true, fmt.Errorf("event %s: the row could not be read and %w: %v", ev.ID, ErrNoStore, rerr)
	}
	f := failures.Failure{
		EventID:          ev.ID,
		Table:            ev.Table,
		Message:          ev.Message,
		RecordID:         ev.RecordID,
		CorrelationID:    ev.CorrelationID,
		OrganizationHost: ev.OrganizationHost,
		Kind:             failures.KindReread,
		Attempts:         1,
		OccurredAt:       ev.OperationCreatedAt,
		LastError:        fmt.Sprintf("reading %v (%s) from the Web API: %v", cols, why, rerr),
		Payload:          ev.Raw,
	}
	kept, err := d.Recorder.Record(ctx, f)
	if err != nil {
		return res, true, fmt.Errorf("record reread failure of event %s: %w", ev.ID, err)
	}
	if d.Journal != nil {
		d.Journal.Add(journal.Entry{At: time.Now(), EventID: ev.ID, CorrelationID: ev.CorrelationID,
			Table: ev.Table, RecordID: ev.RecordID, Message: ev.Message, Consumer: journal.NoConsumer,
			Outcome: journal.RereadFailed, AttemptCount: 1, Error: f.LastError, FailureID: kept.ID,
			Source: ev.Source, Version: RowVersion(ev)})
	}
	EventLog(d.Log.Error(), ev).Str("kind", string(failures.KindReread)).Strs("columns", cols).
		Str("error", rerr.Error()).Msg("failure recorded: the row could not be read, the event is kept unmatched")
	return res, true, nil
}

// readBudget is how long one read may take: ReadTimeout, and never more than half of what is
// left of ctx, so the deliveries keep the rest of the budget.
func (d *Dispatcher) readBudget(ctx context.Context) time.Duration {
	b := d.ReadTimeout
	if b <= 0 {
		b = DefaultReadTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		b = min(b, time.Until(dl)/2)
	}
	return b
}
