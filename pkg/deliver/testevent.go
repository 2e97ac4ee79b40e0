package deliver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// A test event is a synthetic RemoteExecutionContext an operator sends to one consumer to see
// that it is reachable and reads what dvrouter sends: it goes through the consumer's own format,
// signing, headers, retry policy and breaker, exactly as an event would. A consumer tells it
// from a real event by its message name, which no Dataverse message can have (they carry no
// dot), in every format and transport: `message` in row and cloudevent data, `MessageName` in
// raw, the CloudEvents type, and the Service Bus `message` property and subject. HTTP requests
// also carry httpdest.HeaderTest and Service Bus messages sbdest.PropTest; a raw body also has the
// shared variable "dvrouter.test". Its table is TestTable, its id new each time.
const (
	TestMessage = "dvrouter.Test"
	TestTable   = "dvrouter_test"
	TestRoute   = "dvrouter-test" // the route header or property it carries
)

// TestResult is how a test event ended.
type TestResult struct {
	Consumer   string        `json:"consumer"`
	EventID    string        `json:"eventId"`
	Delivered  bool          `json:"delivered"`
	Attempts   int           `json:"attempts"`
	StatusCode int           `json:"statusCode,omitempty"`
	Duration   time.Duration `json:"duration"`
	Error      string        `json:"error,omitempty"`
	// BreakerOpen says the consumer's breaker refused the event: nothing was sent.
	BreakerOpen bool             `json:"breakerOpen,omitempty"`
	Event       *dataverse.Event `json:"-"` // what was sent, for the journal
}

// ErrUnknownConsumer means no consumer of that name is configured.
var ErrUnknownConsumer = errors.New("unknown consumer")

// SendTest sends a new test event to consumer, within the delivery budget, and records nothing:
// a test event is never kept as a failure. It goes even to a paused consumer (pausing holds the
// events Dataverse sends, and a test is how an operator checks a consumer before resuming it),
// but not past an open breaker. by names who asked; it travels in the event's row.
func (d *Deliverer) SendTest(ctx context.Context, consumer, by string) (TestResult, error) {
	c, err := d.consumer(consumer)
	if err != nil {
		return TestResult{}, err
	}
	ev, err := NewTestEvent(by, time.Now())
	if err != nil {
		return TestResult{}, err
	}
	res := TestResult{Consumer: consumer, EventID: ev.ID, Event: ev}
	p := encode(ev, &c.cfg, nil, nil)
	if p.err != nil {
		res.Error = p.err.Error()
		return res, nil
	}
	start := time.Now()
	dl := &delivery{msg: dest.Message{Event: ev, Route: TestRoute, Body: p.body, ContentType: p.contentType, CloudEvent: p.ce, Test: true}, deadline: d.deadline(ctx)}
	err = c.send(ctx, dl)
	res.Duration = time.Since(start)
	res.Attempts, res.StatusCode = dl.attempts, dest.StatusCode(err)
	if err != nil {
		res.Error = err.Error()
		res.BreakerOpen = errors.Is(err, errBreakerOpen)
	} else {
		res.Delivered = true
	}
	d.log.Info().Str("eventId", ev.ID).Str("consumer", consumer).Str("who", by).Bool("delivered", res.Delivered).
		Int("attempts", res.Attempts).Int("statusCode", res.StatusCode).Str("error", res.Error).Dur("took", res.Duration).Msg("test event sent")
	return res, nil
}

// NewTestEvent builds a test event as Dataverse would write it, decoded like any other. Its
// operation, correlation and record ids are random, so its id is new (a consumer that
// deduplicates by Idempotency-Key takes every test).
func NewTestEvent(by string, now time.Time) (*dataverse.Event, error) {
	ids := make([]string, 3)
	for i := range ids {
		id, err := newGUID()
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	const zero = "00000000-0000-0000-0000-000000000000"
	kv := func(k string, v any) map[string]any { return map[string]any{"key": k, "value": v} }
	ctx := map[string]any{
		"BusinessUnitId": zero, "CorrelationId": ids[1], "Depth": 1, "InitiatingUserId": zero,
		"InputParameters": []any{kv("Target", map[string]any{
			"__type":     "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
			"Attributes": []any{kv("dvrouter_test", true), kv("requestedby", by)},
			"Id":         ids[2], "LogicalName": TestTable, "KeyAttributes": []any{},
			"FormattedValues": []any{}, "RelatedEntities": []any{}, "RowVersion": nil, "EntityState": nil,
		})},
		"MessageName": TestMessage, "Mode": 1,
		"OperationCreatedOn": fmt.Sprintf("/Date(%d)/", now.UnixMilli()),
		"OperationId":        ids[0], "OrganizationId": zero, "OrganizationName": "dvrouter-test",
		"OutputParameters": []any{}, "OwningExtension": map[string]any{"Id": zero, "KeyAttributes": []any{}, "LogicalName": "sdkmessageprocessingstep", "Name": "dvrouter test event", "RowVersion": nil},
		"ParentContext": nil, "PostEntityImages": []any{}, "PreEntityImages": []any{},
		"PrimaryEntityId": ids[2], "PrimaryEntityName": TestTable, "RequestId": ids[0],
		"SecondaryEntityName": "none", "SharedVariables": []any{kv("dvrouter.test", true)},
		"Stage": 40, "UserId": zero,
	}
	raw, err := json.Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("test event: %w", err)
	}
	ev, err := dataverse.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("test event does not decode: %w", err)
	}
	return ev, nil
}

func newGUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("test event id: %w", err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
