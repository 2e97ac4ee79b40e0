// Package dest is the contract between delivery and the destination kinds (one folder each:
// httpdest, sbdest, ...): what a kind is (its route file keys and how to build its publisher),
// the message one attempt sends, the two-method Publisher every kind implements, and the Error
// that tells the retry policy and the circuit breaker what went wrong.
package dest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
)

// Kind is one destination kind: how the route file describes its consumers (config.Kind, whose
// Decode makes the consumer's Spec) and how to build the publisher of one such consumer.
// Package deliver lists every kind.
type Kind struct {
	Config config.Kind
	New    func(c config.Consumer, d Deps) (Publisher, error)
}

// Deps are what the publishers of several consumers share; package deliver makes them once.
type Deps struct {
	HTTPClient *http.Client // shared by every HTTP-speaking consumer
	// Credential is the token credential for consumers reached with managed identity, built on
	// first need so that a deployment without such consumers never builds one.
	Credential func() (azcore.TokenCredential, error)
	// WebAPI, when set, is the one Dataverse Web API client of the process (the reads' too):
	// dataverse consumers write through its environments, so that they share each one's
	// concurrency limit and the waits its 429s ask for with everything else sent there.
	WebAPI *webapi.Client
	// Shared returns the value made by build under key, building it on the first call (and
	// again after a failed build): one client per environment for every consumer of it.
	Shared func(key string, build func() (any, error)) (any, error)
}

// Message is one attempt to hand one event to one consumer, its payload already encoded in the
// consumer's format.
type Message struct {
	Event       *dataverse.Event // read-only: ids and names for headers and properties
	Route       string           // the route that matched
	Attempt     int              // 1-based number of this attempt
	Body        []byte
	ContentType string
	// CloudEvent is set for a cloudevent consumer: the event's context attributes, for a
	// destination that also carries them outside the body (HTTP binary mode, AMQP properties).
	CloudEvent *CloudEvent
	// Test marks a test event an operator asked for (deliver.SendTest), which the destination
	// also says outside the body (a header, a property).
	Test bool
}

// CloudEvent is the context of one CloudEvents 1.0 event (specversion 1.0).
type CloudEvent struct {
	ID, Source, Type, Subject string
	Time                      time.Time // zero: no time attribute
	// Binary says the body is the data alone (binary content mode) and the attributes travel
	// only outside it; otherwise the body is the structured event.
	Binary bool
	// Reread sets the extension attribute CloudEventRereadExtension to true: the row was read
	// from the Dataverse Web API before matching.
	Reread bool
}

// CloudEventRereadExtension is the CloudEvents extension attribute saying the event was re-read
// (CloudEvents 1.0 section 3.1.1: attribute names are lower-case ASCII letters and digits).
const CloudEventRereadExtension = "dvrouterreread"

// TimeText is the CloudEvents `time`: RFC 3339 in UTC with the milliseconds Dataverse carries.
func (c *CloudEvent) TimeText() string { return c.Time.UTC().Format("2006-01-02T15:04:05.000Z") }

// Publisher sends messages to one consumer. Publish makes exactly one attempt (the retry policy
// around it decides about more) and returns nil only when the consumer has accepted the message.
type Publisher interface {
	Publish(ctx context.Context, m Message) error
	Close(ctx context.Context) error
}

// Error is a failed attempt as the destination understood it. Errors of any other type (a
// refused connection, a reset, a timeout) count as retryable.
type Error struct {
	Err        error
	Retryable  bool          // another attempt may succeed (the consumer is down or busy, not refusing)
	StatusCode int           // the HTTP status answered, 0 when there was none
	RetryAfter time.Duration // how long the consumer asked us to wait, 0 when it did not say
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as one that no retry can fix (a rejected payload, a missing entity, bad
// credentials).
func Permanent(err error) error { return &Error{Err: err} }

// Retryable reports whether another attempt could succeed after err.
func Retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable
	}
	return true
}

// StatusCode is the last HTTP status carried by err, 0 when none.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// RetryAfter is the wait the consumer asked for in err, 0 when none.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
