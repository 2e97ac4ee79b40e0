// Package supportapi is the support API as it travels: the JSON of /api/failures and /api/me,
// and a client for it. The handler answers with these types and the CLI (and any other tool)
// reads them, so both sides always agree; it depends on nothing else in dvrouter.
//
// Compatibility: fields are only ever added. A field's name and meaning never change.
package supportapi

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/pkg/journal"
)

// Paths of the API, below the app's address.
const (
	FailuresPath = "/api/failures"
	MePath       = "/api/me"
)

// Headers a caller authenticates with.
const (
	// KeyHeader carries an admin key (DVROUTER_ADMIN_KEYS); the name is the Functions host's
	// for its own keys, so scripts written against either keep working.
	KeyHeader = "x-functions-key"
)

// Failure statuses and kinds, as they appear in Failure.Status and Failure.Kind.
const (
	StatusPending   = "pending"
	StatusReplaying = "replaying"
	StatusReplayed  = "replayed"
	StatusDiscarded = "discarded"

	KindDelivery    = "delivery"
	KindBreakerOpen = "breaker-open"
	KindPoison      = "poison"
	KindPaused      = "paused"
	KindReread      = "reread" // the row could not be read from the Dataverse Web API
)

// Failure is one kept failure: a failed (event, consumer) delivery, or a poison message
// (Consumer empty). Lists carry it without History.
type Failure struct {
	ID            string `json:"id"`
	EventID       string `json:"eventId"`
	Consumer      string `json:"consumer"`
	Route         string `json:"route"`
	Table         string `json:"table"`
	Message       string `json:"message"`
	RecordID      string `json:"recordId"`
	CorrelationID string `json:"correlationId"`
	MessageID     string `json:"messageId,omitempty"`
	// OrganizationHost is the environment host the webhook request named, when it did.
	OrganizationHost string    `json:"organizationHost,omitempty"`
	Kind             string    `json:"kind"`
	Status           string    `json:"status"`
	Attempts         int       `json:"attempts"`
	OccurredAt       time.Time `json:"occurredAt"` // the event's time; lists are ordered by it
	FirstFailedAt    time.Time `json:"firstFailedAt"`
	LastFailedAt     time.Time `json:"lastFailedAt"`
	LastError        string    `json:"lastError"`
	LastStatusCode   int       `json:"lastStatusCode"`
	UpdatedBy        string    `json:"updatedBy"` // who last acted on it
	UpdatedAt        time.Time `json:"updatedAt"`
	ClaimedBy        string    `json:"claimedBy,omitempty"` // who is replaying it (status replaying)
	ClaimedAt        time.Time `json:"claimedAt,omitzero"`
	Reason           string    `json:"reason,omitempty"` // why it was discarded
	PayloadSize      int       `json:"payloadSize"`      // bytes as received
	// History is every change of status and who made it, oldest first (the store keeps the
	// newest 40). Only GET /api/failures/{id} carries it.
	History []Change `json:"history,omitempty"`
	// Tries is every attempt at the consumer, oldest first, across the deliveries that failed
	// and the replays (the store keeps the newest 20): start, duration (nanoseconds), HTTP
	// status and error. Only GET /api/failures/{id} carries it.
	Tries []journal.Attempt `json:"tries,omitempty"`
}

// Change is one step in a failure's handling.
type Change struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Action string    `json:"action"` // recorded, failed-again, replay-started, replayed, replay-failed, replay-skipped, discarded
	Status string    `json:"status"` // the status it left the failure in
	Detail string    `json:"detail,omitempty"`
}

// FailureList is the answer to GET /api/failures. Continuation is empty on the last page.
type FailureList struct {
	Items        []Failure `json:"items"`
	Continuation string    `json:"continuation"`
}

// ShownFailure is the answer to GET /api/failures/{id}: the failure with its payload, the
// normalized event, or for a poison message the raw text (base64, with PayloadEncoding
// "base64", when it is not UTF-8).
type ShownFailure struct {
	Failure
	Payload         json.RawMessage `json:"payload"`
	PayloadEncoding string          `json:"payloadEncoding,omitempty"`
	PayloadError    string          `json:"payloadError,omitempty"`
	// PayloadNote says what of the payload is not shown: the columns the route excludes for
	// its consumer (personal data) are left out; the stored payload, replayed, stays exact.
	PayloadNote string `json:"payloadNote,omitempty"`
}

// Replay results.
const (
	ResultDelivered = "delivered"
	ResultFailed    = "failed"
)

// ReplayResult is the answer to POST /api/failures/{id}/replay.
type ReplayResult struct {
	ID     string `json:"id"`
	Result string `json:"result"` // delivered or failed
	Error  string `json:"error"`
	// Dispatch is what routing a poison message that now decodes did; its own failures, if
	// any, are recorded as new failures.
	Dispatch *Routed `json:"dispatch,omitempty"`
}

// Routed is what routing one event did.
type Routed struct {
	ID        string   `json:"id"`
	Matched   []string `json:"matched"`
	Delivered []string `json:"delivered"`
	Failed    []string `json:"failed"`
}

// BulkReplayRequest is the body of POST /api/failures/replay. Times are RFC 3339 or a date (2024-07-25, UTC; as To, the whole day); From is
// inclusive and To exclusive, on the event's time. Status may only be pending (or empty).
type BulkReplayRequest struct {
	Consumer string `json:"consumer,omitempty"`
	Status   string `json:"status,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Table    string `json:"table,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Max      *int   `json:"max,omitempty"` // default 1000, at most 100000
	DryRun   bool   `json:"dryRun,omitempty"`
	// Continuation resumes after the last failure a previous bulk replay listed.
	Continuation string `json:"continuation,omitempty"`
	// All must be true to replay without a consumer and without a time range: replaying every
	// consumer's failures of all time is what a slip of the keyboard would do.
	All bool `json:"all,omitempty"`
}

// Narrow trims the request's filter and refuses one that names no consumer and no time range
// unless All says that is meant. The API and the CLI both call it, so they refuse the same.
func (r *BulkReplayRequest) Narrow() error {
	r.Consumer, r.Status, r.Kind, r.Table = strings.TrimSpace(r.Consumer), strings.TrimSpace(r.Status), strings.TrimSpace(r.Kind), strings.TrimSpace(r.Table)
	r.From, r.To = strings.TrimSpace(r.From), strings.TrimSpace(r.To)
	if r.Consumer == "" && r.From == "" && r.To == "" && !r.All {
		return errors.New("a bulk replay needs a consumer or a time range (from, to); to replay every consumer's pending failures of all time, say \"all\": true")
	}
	return nil
}

// BulkReplayResult is the answer to POST /api/failures/replay. Matched counts the failures
// found (up to max); those neither delivered, failed nor skipped were left alone because the
// replay stopped early.
type BulkReplayResult struct {
	Matched      int    `json:"matched"`
	Delivered    int    `json:"delivered"`
	Failed       int    `json:"failed"`
	Skipped      int    `json:"skipped"`
	DryRun       bool   `json:"dryRun"`
	StoppedEarly bool   `json:"stoppedEarly"`
	Reason       string `json:"reason,omitempty"`
	// Continuation is set when more failures may match beyond this answer: pass it back to go on.
	Continuation string      `json:"continuation,omitempty"`
	Errors       []ItemError `json:"errors,omitempty"` // the first failed or skipped items, with why
}

// ItemError names one failure a bulk replay could not replay, and why.
type ItemError struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// DiscardRequest is the body of POST /api/failures/{id}/discard. The answer is the Failure.
type DiscardRequest struct {
	Reason string `json:"reason"`
}

// Roles a caller can hold, as Me.Roles lists them.
const (
	RoleReader   = "reader"   // list, show, me
	RoleOperator = "operator" // also replay and discard
)

// How a caller was authenticated, as Me.Via says.
const (
	ViaKey        = "key"        // an admin key (x-functions-key)
	ViaAppService = "appservice" // App Service authentication (Entra ID sign-in)
)

// Me is the answer to GET /api/me: who the caller is, as recorded on what they do, and what
// they may do. Roles is ["reader"] or ["reader", "operator"].
type Me struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	Via   string   `json:"via"`
}

// Error is the body of every refusal.
type Error struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

// HistoryPath is the delivery journal's lookup endpoint.
const HistoryPath = "/api/history"

// History is the answer of GET /api/history: every outcome found, newest first, each with the
// event's route, consumer and attempts.
type History struct {
	Items []journal.Entry `json:"items"`
}

// ConsumersPath is the consumers' endpoint: GET lists them, POST ConsumersPath/{name}/pause,
// /resume, /reset and /test act on one (operator).
const ConsumersPath = "/api/consumers"

// ConsumerList is the answer to GET /api/consumers, in the order of the route file.
type ConsumerList struct {
	Items []Consumer `json:"items"`
}

// Consumer is one consumer's circuit breaker, as the answering instance sees it (shared ones as
// the breaker table holds them), and its pause.
type Consumer struct {
	Consumer string `json:"consumer"`
	State    string `json:"state"` // closed, open or half-open
	// Shared is false when the answering instance judges the consumer alone: no breaker table
	// is configured, or the table has not answered lately.
	Shared     bool       `json:"shared"`
	Window     string     `json:"window"`
	Successes  uint32     `json:"successes"` // deliveries in the window, closed state only
	Failures   uint32     `json:"failures"`
	HalfOpenAt *time.Time `json:"halfOpenAt,omitempty"` // when an open breaker lets its trials through
	Prober     string     `json:"prober,omitempty"`     // the instance running the half-open trials
	ProbeUntil *time.Time `json:"probeUntil,omitempty"`
	Opened     int64      `json:"opened"` // times it opened: ever when shared, since start-up when not
	ChangedAt  *time.Time `json:"changedAt,omitempty"`
	ChangedBy  string     `json:"changedBy,omitempty"` // the instance that made the last change
	SyncedAt   *time.Time `json:"syncedAt,omitempty"`  // when the table last confirmed this state
	// Paused is set while an operator holds the consumer: nothing is sent to it, and its
	// deliveries are kept as failures of kind paused.
	Paused *Pause `json:"paused,omitempty"`
}

// Pause is who paused a consumer, when, and why.
type Pause struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// PauseRequest is the body of POST /api/consumers/{name}/pause; the body is optional.
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Consumer actions, as ConsumerAction.Action names them.
const (
	ActionPaused  = "paused"
	ActionResumed = "resumed"
	ActionReset   = "reset"
)

// ConsumerAction is the answer to POST /api/consumers/{name}/pause, /resume and /reset.
type ConsumerAction struct {
	Action string `json:"action"` // paused, resumed or reset
	// Changed is false when there was nothing to do: already paused (Consumer.Paused is the
	// pause that stands), not paused, or a breaker already closed.
	Changed bool   `json:"changed"`
	Was     string `json:"was,omitempty"` // reset: the breaker's state before
	// Consumer is the consumer as it is now, on the answering instance; the others follow
	// within one breaker sync (DVROUTER_BREAKER_SYNC).
	Consumer Consumer `json:"consumer"`
}

// TestResult is the answer to POST /api/consumers/{name}/test: how the test event ended. A
// test event is never kept as a failure.
type TestResult struct {
	Consumer   string  `json:"consumer"`
	EventID    string  `json:"eventId"` // the test event's id (Idempotency-Key)
	Message    string  `json:"message"` // the test event's message name, dvrouter.Test
	Delivered  bool    `json:"delivered"`
	Attempts   int     `json:"attempts"`
	StatusCode int     `json:"statusCode,omitempty"`
	DurationMs float64 `json:"durationMs"`
	Error      string  `json:"error,omitempty"`
	// BreakerOpen says the consumer's breaker refused the event: nothing was sent.
	BreakerOpen bool `json:"breakerOpen,omitempty"`
}
