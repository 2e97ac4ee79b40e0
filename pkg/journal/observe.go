package journal

import "github.com/dvrouter/dvrouter/pkg/failures"

// ObserveFailure journals a replay or discard of a kept failure; it is a
// failures.Replayer.Observe.
func (j *Journal) ObserveFailure(o failures.Observed) {
	f := o.Failure
	e := Entry{At: o.At, EventID: f.EventID, CorrelationID: f.CorrelationID, Table: f.Table,
		RecordID: f.RecordID, Message: f.Message, Route: f.Route, Consumer: f.Consumer,
		Duration: o.Duration, Error: o.Error, FailureID: f.ID, StatusCode: o.StatusCode, Attempts: o.Tries}
	if e.Consumer == "" { // a reread failure concerns the event before any consumer
		e.Consumer = NoConsumer
	}
	switch o.Result {
	case failures.ResultDelivered:
		e.Outcome, e.AttemptCount = Replayed, max(len(o.Tries), 1)
	case failures.ResultSkipped:
		e.Outcome = BreakerOpen
		if o.Paused {
			e.Outcome = Paused
		}
	case "discarded":
		e.Outcome = Discarded
	default:
		e.Outcome, e.AttemptCount = Failed, max(len(o.Tries), 1)
		if f.Kind == failures.KindReread { // the row still could not be read
			e.Outcome = RereadFailed
		}
	}
	j.Add(e)
}
