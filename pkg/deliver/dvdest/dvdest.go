// Package dvdest delivers events into a Dataverse environment through its Web API: each Create,
// Update (and any other message but Delete) upserts the event's row, as the consumer's column
// map shapes it, into the target table by the target's alternate key; a Delete deletes the row
// that key names. Bulk replays go as $batch change sets (PublishBatch).
package dvdest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// BatchSize is how many writes one $batch change set carries: well under Dataverse's 1000
// requests per batch, and small enough that one change set stays inside the Web API's two
// minute request limit.
const BatchSize = 100

// Publisher writes to one target table of one environment.
type Publisher struct {
	env  *webapi.Environment
	spec Spec
	cond webapi.Condition
}

// New makes the publisher for consumer c. It writes through the process's Web API client
// (Deps.WebAPI), so that the environment's concurrency limit and the waits its 429s ask for are
// shared with the reads, as Dataverse counts its service protection limits per user. Without
// one, the consumers of one environment share a client of their own. Either way a write is sent
// once: the consumer's retry policy decides about more.
func New(c config.Consumer, d dest.Deps) (dest.Publisher, error) {
	s, err := spec(c)
	if err != nil {
		return nil, err
	}
	if s.Environment == "" || s.Table == "" || len(s.Key) == 0 {
		return nil, fmt.Errorf("consumer %s: a dataverse consumer needs environment, table and key", c.Name)
	}
	p := &Publisher{spec: s}
	if d.WebAPI != nil {
		if p.env = d.WebAPI.EnvironmentAt(s.Environment); p.env == nil {
			return nil, fmt.Errorf("consumer %s: dataverse %s: not an environment of the Web API client (Environments lists what it needs)", c.Name, s.Environment)
		}
	} else {
		shared, err := d.Shared("dataverse "+s.Environment, func() (any, error) {
			cred, err := d.Credential()
			if err != nil {
				return nil, fmt.Errorf("credential: %w", err)
			}
			return webapi.New(map[string]string{s.Environment: s.Environment}, webapi.Options{Credential: cred, HTTPClient: d.HTTPClient, MaxAttempts: 1})
		})
		if err != nil {
			return nil, fmt.Errorf("consumer %s: dataverse %s: %w", c.Name, s.Environment, err)
		}
		p.env = shared.(*webapi.Client).Environments()[0]
	}
	switch s.Mode {
	case "update":
		p.cond = webapi.UpdateOnly
	case "create":
		p.cond = webapi.CreateOnly
	}
	return p, nil
}

// Environments are the environment URLs of the dataverse consumers among consumers, each once,
// in file order: what a Web API client given to them as Deps.WebAPI must hold.
func Environments(consumers []config.Consumer) []string {
	var out []string
	for _, c := range consumers {
		if s, err := spec(c); err == nil && c.Type == Kind.Config.Name && s.Environment != "" && !slices.Contains(out, s.Environment) {
			out = append(out, s.Environment)
		}
	}
	return out
}

// Publish makes one write: a Delete event deletes the row (one already gone counts as done),
// any other upserts it.
func (p *Publisher) Publish(ctx context.Context, m dest.Message) error {
	w, err := p.write(ctx, m.Event)
	if err != nil {
		return err
	}
	return classify(p.env.Apply(ctx, w), w.Delete)
}

// MaxBatch is how many messages PublishBatch takes at once.
func (p *Publisher) MaxBatch() int { return BatchSize }

// PublishBatch writes msgs (at most MaxBatch) in one $batch change set: all of them, or, when
// the change set fails, none. The caller then sends them one by one, so that each gets its own
// outcome.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []dest.Message) error {
	if len(msgs) > BatchSize {
		return dest.Permanent(fmt.Errorf("%d messages in one batch, at most %d", len(msgs), BatchSize))
	}
	writes := make([]webapi.Write, len(msgs))
	for i, m := range msgs {
		w, err := p.write(ctx, m.Event)
		if err != nil {
			return fmt.Errorf("write %d of the batch: %w", i+1, err)
		}
		writes[i] = w
	}
	return classify(p.env.Batch(ctx, writes), false)
}

// Close has nothing to release: the client's connections belong to the shared HTTP client.
func (p *Publisher) Close(context.Context) error { return nil }

// value finds an event column: in the row (the Target over the post-image), else the
// pre-image (all a Delete carries), else, for the table's primary key, the record id.
func value(ev *dataverse.Event, col string) (any, bool) {
	if v, ok := ev.Row[col]; ok {
		return v, true
	}
	if v, ok := ev.PostImage[col]; ok {
		return v, true
	}
	if v, ok := ev.PreImage[col]; ok {
		return v, true
	}
	if col == ev.Table+"id" && ev.RecordID != "" {
		return ev.RecordID, true
	}
	return nil, false
}

// write is the Web API write ev makes.
func (p *Publisher) write(ctx context.Context, ev *dataverse.Event) (webapi.Write, error) {
	s := &p.spec
	w := webapi.Write{Table: s.Table, Condition: p.cond, Delete: ev.Message == "Delete"}
	for _, k := range s.Key {
		from, constant := k, false
		var v any
		for _, c := range s.Columns {
			if c.Target == k {
				from, constant, v = c.From, c.Const, c.Value
				break
			}
		}
		if !constant {
			var ok bool
			if v, ok = value(ev, from); !ok || v == nil {
				return w, dest.Permanent(fmt.Errorf("key column %s: the event has no value for %s (a Delete carries only its pre-image)", k, from))
			}
		}
		w.Key = append(w.Key, webapi.KeyPart{Column: k, Value: v})
	}
	if w.Delete {
		return w, nil
	}
	body := make(map[string]any, len(s.Columns))
	for _, c := range s.Columns {
		switch {
		case config.Contains(s.Key, c.Target):
			// In the URL: a create takes the key's values from it.
		case c.Const:
			body[c.Target] = c.Value
		case c.Lookup != nil:
			ref, ok, err := p.reference(ctx, ev, c.Lookup)
			if err != nil {
				return w, err
			}
			if ok {
				body[c.Target+"@odata.bind"] = ref
			}
		default:
			// A column the event does not carry (an Update's Target holds what changed) is
			// left as the target has it; one it carries as null is cleared.
			if v, ok := value(ev, c.From); ok {
				body[c.Target] = v
			}
		}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return w, dest.Permanent(fmt.Errorf("encode the row: %w", err))
	}
	w.Body = data
	return w, nil
}

// reference is the @odata.bind value of a lookup, /<entityset>(<key>), or false when the event
// lacks a value of its key (the lookup is then left as it is).
func (p *Publisher) reference(ctx context.Context, ev *dataverse.Event, l *Lookup) (string, bool, error) {
	key := make(webapi.Key, 0, len(l.Key))
	for _, k := range l.Key {
		v, ok := value(ev, k.From)
		if !ok || v == nil {
			return "", false, nil
		}
		key = append(key, webapi.KeyPart{Column: k.Column, Value: v})
	}
	set, err := p.env.EntitySetName(ctx, l.Table)
	if err != nil {
		return "", false, classify(err, false)
	}
	seg, err := key.Segment()
	if err != nil {
		return "", false, dest.Permanent(fmt.Errorf("lookup to %s: %w", l.Table, err))
	}
	return "/" + set + "(" + seg + ")", true, nil
}

// classify tells the retry policy and the breaker what a Web API error means, as for an HTTP
// consumer: 408, 429 (with its Retry-After) and 5xx are worth another attempt, other 4xx are
// refusals no retry fixes (the Web API's error code is in the text). A delete of a row that is
// not there is done.
func classify(err error, deleting bool) error {
	if err == nil {
		return nil
	}
	var we *webapi.Error
	if !errors.As(err, &we) {
		var de *dest.Error
		if errors.As(err, &de) {
			return err
		}
		return &dest.Error{Err: err, Retryable: true}
	}
	if deleting && we.NotFound() {
		return nil
	}
	e := &dest.Error{Err: err, StatusCode: we.Status, RetryAfter: we.RetryAfter}
	switch {
	case we.Status == 0, we.Status == http.StatusRequestTimeout, we.Status == http.StatusTooManyRequests, we.Status >= 500:
		e.Retryable = true
	}
	return e
}
