// Package dispatch runs one decoded event through the rest of the flow: it matches the routes,
// turns the matches into one delivery per consumer, and hands them to delivery, which records
// what fails. It also records queue messages that can never be decoded (poison).
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// Deliverer is the part of delivery dispatch uses.
type Deliverer interface {
	Deliver(ctx context.Context, ev *dataverse.Event, targets []deliver.Target) (deliver.Outcome, error)
}

// Dispatcher matches and delivers events.
type Dispatcher struct {
	Routes   *route.Set
	Deliver  Deliverer
	Recorder deliver.Recorder // for poison messages; may be nil when no store is configured
	// Journal is handed every outcome without waiting (it drops rather than delays); nil: no
	// delivery journal.
	Journal Journal
	// Rows reads from the Dataverse Web API what size-exceeded events and routes with fetch
	// need before matching (reread.go); nil: events are matched on what they carry.
	Rows RowReader
	// ReadTimeout bounds one read (DefaultReadTimeout when 0; never more than half of what is
	// left of the event's budget).
	ReadTimeout time.Duration
	Log         zerolog.Logger
}

// Journal is the part of the delivery journal dispatch uses; *journal.Journal is one.
type Journal interface {
	Add(journal.Entry)
}

// Result is what happened to one event.
type Result struct {
	ID        string   `json:"id"`
	Matched   []string `json:"matched"`
	Delivered []string `json:"delivered"`
	Failed    []string `json:"failed"`
}

// AppendJSON appends r as json.Marshal writes it. The webhook answers every direct-mode event
// with a Result; written out here it costs a fraction of what reflection does.
func (r Result) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"matched":`...)
	b = appendStrings(b, r.Matched)
	b = append(b, `,"delivered":`...)
	b = appendStrings(b, r.Delivered)
	b = append(b, `,"failed":`...)
	b = appendStrings(b, r.Failed)
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString writes the names and ids a Result holds, which need no escaping, as they are;
// anything else goes through encoding/json, so the escaping is always exactly its own.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON marks the bytes encoding/json writes as they are (HTML escaping on): printable
// ASCII but '"', '\\', '<', '>' and '&'. One table load per byte of the answer's ids and names.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// ErrNoStore means a failure had to be kept but no failure store is configured.
var ErrNoStore = errors.New("no failure store configured (set DVROUTER_TABLES)")

// Dispatch matches ev against the routes and delivers it to every matched consumer. The error is
// non-nil only when an outcome could not be made durable (a failure that could not be recorded);
// the caller must then not acknowledge the event.
func (d *Dispatcher) Dispatch(ctx context.Context, ev *dataverse.Event) (Result, error) {
	return d.dispatch(ctx, ev, false)
}

func (d *Dispatcher) dispatch(ctx context.Context, ev *dataverse.Event, rerouting bool) (Result, error) {
	if d.Rows != nil {
		if res, held, err := d.complete(ctx, ev, rerouting); held {
			return res, err
		}
	}
	matched := d.Routes.Match(ev)
	targets := Targets(matched)
	res := Result{ID: ev.ID, Matched: make([]string, 0, len(matched)), Delivered: []string{}, Failed: []string{}}
	for _, r := range matched {
		res.Matched = append(res.Matched, r.Name)
	}
	if len(targets) == 0 {
		EventLog(d.Log.Debug(), ev).Msg("no route matched")
		return res, nil
	}
	var start time.Time
	if d.Journal != nil {
		start = time.Now()
	}
	out, err := d.Deliver.Deliver(ctx, ev, targets)
	if d.Journal != nil {
		d.journal(ev, out, start)
	}
	res.Delivered = make([]string, 0, len(out.Delivered))
	res.Failed = make([]string, 0, len(out.Failed))
	for _, r := range out.Delivered {
		res.Delivered = append(res.Delivered, r.Consumer)
	}
	for _, r := range out.Failed {
		res.Failed = append(res.Failed, r.Consumer)
	}
	EventLog(d.Log.Info(), ev).Strs("routes", res.Matched).Strs("delivered", res.Delivered).Strs("failed", res.Failed).Msg("event dispatched")
	return res, err
}

// journal hands each of the event's outcomes to the journal: plain struct copies (the tries
// are shared, not copied), the formatting is done by the journal's flusher. The duration is the whole event's delivery.
func (d *Dispatcher) journal(ev *dataverse.Event, out deliver.Outcome, start time.Time) {
	now := time.Now()
	add := func(r deliver.Result, o journal.Outcome) {
		d.Journal.Add(journal.Entry{At: now, EventID: ev.ID, CorrelationID: ev.CorrelationID,
			Table: ev.Table, RecordID: ev.RecordID, Message: ev.Message, Route: r.Route,
			Consumer: r.Consumer, Outcome: o, AttemptCount: r.Attempts, StatusCode: r.StatusCode,
			Duration: now.Sub(start), Error: r.Error, Attempts: r.Tries, Source: ev.Source, Version: RowVersion(ev)})
	}
	for _, r := range out.Delivered {
		add(r, journal.Delivered)
	}
	for _, r := range out.Failed {
		switch r.Kind {
		case failures.KindBreakerOpen:
			add(r, journal.BreakerOpen)
		case failures.KindPaused:
			add(r, journal.Paused)
		default:
			add(r, journal.Failed)
		}
	}
}

// RowVersion is the row version an event carries: a change-tracking event's own, else the
// versionnumber of a plugin event's post-image or row (there when the step's image holds it);
// "" when it has none. Change tracking's reconciliation compares them.
func RowVersion(ev *dataverse.Event) string {
	if ev.Version != "" {
		return ev.Version
	}
	for _, row := range []dataverse.Row{ev.PostImage, ev.Row} {
		switch v := row["versionnumber"].(type) {
		case json.Number:
			return v.String()
		case string:
			return v
		}
	}
	return ""
}

// EventLog adds the fields that identify an event to a log line. Building them per line, not
// once per event with Logger.With, costs nothing for lines below the log level.
func EventLog(e *zerolog.Event, ev *dataverse.Event) *zerolog.Event {
	return e.Str("eventId", ev.ID).Str("sdkMessage", ev.Message).Str("table", ev.Table).
		Str("recordId", ev.RecordID).Str("correlationId", ev.CorrelationID)
}

// Targets turns matched routes into one delivery per consumer. A consumer fed by several matched
// routes gets the event once, shaped by the first of them in file order: consumers deduplicate
// by event id anyway, and sending one event twice to one consumer would only cost them work.
func Targets(matched []*route.Route) []deliver.Target {
	n := 0
	for _, r := range matched {
		n += len(r.Consumers)
	}
	if n == 0 {
		return nil
	}
	targets := make([]deliver.Target, 0, n)
	for _, r := range matched {
		for _, c := range r.Consumers {
			// A linear search: an event goes to a handful of consumers, fewer than it takes for a
			// map to pay for itself.
			if slices.ContainsFunc(targets, func(t deliver.Target) bool { return t.Consumer == c }) {
				continue
			}
			targets = append(targets, deliver.Target{Route: r.Name, Consumer: c, Select: r.Select, Exclude: r.Exclude})
		}
	}
	return targets
}

// Poison is a queue message that can never be decoded.
type Poison struct {
	Body         []byte
	MessageID    string
	EnqueuedTime time.Time
	Reason       error
}

// RecordPoison keeps a message that cannot be decoded, so it is neither lost nor redelivered
// forever. The caller acknowledges the message only when this returns nil.
func (d *Dispatcher) RecordPoison(ctx context.Context, p Poison) error {
	if d.Recorder == nil {
		return ErrNoStore
	}
	// The store derives the entry's keys from OccurredAt, so it must be the same on every
	// redelivery: the enqueue time, or zero (sorted oldest) when the host sent none, never now.
	f := failures.Failure{
		MessageID:  p.MessageID,
		Kind:       failures.KindPoison,
		Attempts:   1,
		OccurredAt: p.EnqueuedTime,
		LastError:  p.Reason.Error(),
		Payload:    p.Body,
	}
	if _, err := d.Recorder.Record(ctx, f); err != nil {
		return fmt.Errorf("record poison message %q: %w", p.MessageID, err)
	}
	d.Log.Error().Str("messageId", p.MessageID).Str("kind", string(failures.KindPoison)).
		Str("error", p.Reason.Error()).Msg("failure recorded")
	return nil
}
