package failures

import (
	"slices"
	"time"
	"unicode/utf8"
)

// Kind says why a failure was recorded.
type Kind string

const (
	KindDelivery    Kind = "delivery"     // the consumer failed after every retry
	KindBreakerOpen Kind = "breaker-open" // the consumer's circuit breaker refused the delivery
	KindPoison      Kind = "poison"       // a queue message that could not be decoded
	KindPaused      Kind = "paused"       // an operator paused the consumer: nothing was sent
	// KindReread is an event whose row had to be read from the Dataverse Web API before it could
	// be matched (a size-exceeded event, a route with fetch) and whose read failed. It was not
	// matched on the data it lacked: replaying it reads and matches it again.
	KindReread Kind = "reread"
)

// Rerouted reports whether a failure of this kind is replayed by routing its event again
// (poison, reread) rather than by delivering it to its one consumer.
func (k Kind) Rerouted() bool { return k == KindPoison || k == KindReread }

// Status is where a failure stands in its handling by support staff.
type Status string

const (
	StatusPending   Status = "pending"
	StatusReplayed  Status = "replayed"
	StatusDiscarded Status = "discarded"
	// StatusReplaying marks a failure claimed by one replay (Store.Claim) so that a concurrent
	// replay cannot deliver it too. A claim older than Config.ClaimTimeout can be taken over.
	StatusReplaying Status = "replaying"
)

// Failure is one failed (event, consumer) delivery, or one poison message (Consumer empty).
type Failure struct {
	ID            string `json:"id"` // public id; encodes the table keys, set by the store
	EventID       string `json:"eventId"`
	Consumer      string `json:"consumer"`
	Route         string `json:"route"`
	Table         string `json:"table"`
	Message       string `json:"message"`
	RecordID      string `json:"recordId"`
	CorrelationID string `json:"correlationId"`
	MessageID     string `json:"messageId,omitempty"` // Service Bus MessageId (poison)
	// OrganizationHost is the environment's host as the webhook request named it (the payload
	// does not carry it), so that a replay sends the same CloudEvents source as the first attempt.
	OrganizationHost string    `json:"organizationHost,omitempty"`
	Kind             Kind      `json:"kind"`
	Status           Status    `json:"status"`
	Attempts         int       `json:"attempts"`
	OccurredAt       time.Time `json:"occurredAt"` // the event's time (OperationCreatedOn, or enqueue time for poison); keys derive from it
	FirstFailedAt    time.Time `json:"firstFailedAt"`
	LastFailedAt     time.Time `json:"lastFailedAt"`
	LastError        string    `json:"lastError"`
	LastStatusCode   int       `json:"lastStatusCode"`
	UpdatedBy        string    `json:"updatedBy"`
	UpdatedAt        time.Time `json:"updatedAt"`
	ClaimedBy        string    `json:"claimedBy,omitempty"` // who is replaying it (status replaying)
	ClaimedAt        time.Time `json:"claimedAt,omitzero"`  // when the replay was claimed (status replaying)
	Reason           string    `json:"reason,omitempty"`    // why it was discarded
	PayloadSize      int       `json:"payloadSize"`         // length of Payload in bytes, also in lists
	// History is every change of status with who made it, oldest first (the newest 40 are
	// kept). Get fills it; lists leave it out.
	History []Change `json:"history,omitempty"`
	// Tries is every attempt at the consumer, oldest first, across the deliveries that failed
	// and the replays (the newest MaxTries are kept): a failure shows how it failed each time,
	// not only the last error. Get fills it; lists leave it out.
	Tries []Try `json:"tries,omitempty"`

	// Payload is the raw RemoteExecutionContext bytes (or the poison message body), byte-exact.
	Payload []byte `json:"-"`
}

// Try is one attempt at reaching a consumer: when it started, how long it took, the HTTP
// status when there was one, and its error (cut to MaxTryError bytes) when it failed.
type Try struct {
	At         time.Time     `json:"at"`
	StatusCode int           `json:"statusCode,omitempty"`
	Duration   time.Duration `json:"duration"`
	Error      string        `json:"error,omitempty"`
}

// MaxTries is how many tries a failure keeps (the newest); MaxTryError bounds one try's error
// text. Together they keep the tries column near 10 KiB, far inside an entity's 1 MiB.
const (
	MaxTries    = 20
	MaxTryError = 512
)

// LastTries is ts bounded as a failure keeps them: the newest MaxTries, each error cut to
// MaxTryError bytes (on a rune boundary). ts itself is not modified.
func LastTries(ts []Try) []Try {
	ts = ts[max(0, len(ts)-MaxTries):]
	for i, t := range ts {
		if len(t.Error) > MaxTryError {
			out := slices.Clone(ts)
			for j := i; j < len(out); j++ {
				out[j].Error = CutError(out[j].Error)
			}
			return out
		}
	}
	return ts
}

// CutError cuts an error text to at most MaxTryError bytes on a rune boundary, marking the cut.
func CutError(s string) string {
	if len(s) <= MaxTryError {
		return s
	}
	const mark = "…"
	i := MaxTryError - len(mark)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + mark
}

// Change is one step in a failure's handling.
type Change struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Action Action    `json:"action"`
	Status Status    `json:"status"`           // the status it left the failure in
	Detail string    `json:"detail,omitempty"` // the reason of a discard, the error of a failed replay
}

// Action names a Change.
type Action string

const (
	ActionRecorded     Action = "recorded"       // the first failure of the (event, consumer)
	ActionFailedAgain  Action = "failed-again"   // the same event failed again for the same consumer
	ActionClaimed      Action = "replay-started" // a replay claimed it
	ActionReplayed     Action = "replayed"       // a replay delivered it
	ActionReplayFailed Action = "replay-failed"  // a replay was tried and failed
	ActionReleased     Action = "replay-skipped" // a replay gave it back untried (breaker open)
	ActionDiscarded    Action = "discarded"
)
