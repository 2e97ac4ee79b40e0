// Package journal keeps a history of every delivery outcome of every (event, consumer) pair in
// Table Storage, written off the acknowledgement path, and answers the support lookups on it:
// by event id, by record, by correlation id, and by consumer and time range. It keeps ids,
// outcomes and timings, never payloads.
//
// # Keys
//
// Each outcome is one entity holding all of it (its row), in its consumer's partition, and up
// to three index rows that hold nothing but their keys, one per other lookup. Every lookup is
// a range read inside one partition (or, for a consumer's time range, a few), never a scan:
//
//	row:         PK "c|<consumer>|<yyyymmddhh>|<shard>"  RK "<inverted time>|<event>"
//	event:       PK "e<bucket>"  RK "<event>|<inverted time>|<event>|<consumer>"
//	record:      PK "r<bucket>"  RK "<table>|<record id>|<inverted time>|<event>|<consumer>"
//	correlation: PK "x<bucket>"  RK "<correlation id>|<inverted time>|<event>|<consumer>"
//
// The inverted time (MaxInt64 minus Unix nanoseconds, 19 digits) makes a read newest first.
// An index row's key ends in the time, event and consumer, from which the row's keys follow
// (the hour from the time, the shard from the event), so a lookup by event, record or
// correlation reads the index range and then each row it names; a consumer's time range reads
// rows directly. The index rows are keys only so that an outcome costs one entity with
// properties, not four (the writer's and Table Storage's work per entity grows with its
// properties).
//
// The bucket is a hash of the looked-up value over indexBuckets partitions: the outcomes of a
// second then land in a few dozen partitions, written as transactions of 100 entities (the
// writer sends a partition's as soon as it is full, the rest every FlushInterval), instead of
// one request per event; and the writes of thousands of events a second
// are spread evenly, well under Table Storage's per-partition rate. The consumer partitions are
// split by hour and by consumerShards (a hash of the event id), so that one busy consumer is
// not one hot partition, at the price of consumerShards queries per hour of a range lookup.
//
// This layout replaced one of four full copies per outcome before the journal was released;
// rows written in that layout are not read (the journal had not shipped: no migration).
package journal

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/pkg/failures"
)

// DefaultTable is the table used when Config.Table is empty.
const DefaultTable = "DeliveryJournal"

// consumerShards is how many partitions one consumer's hour is spread over. Lookups depend on
// it: changing it needs a migration.
const consumerShards = 4

// Outcome is how one (event, consumer) delivery ended, or what a support action did to it.
type Outcome string

const (
	Delivered   Outcome = "delivered"
	Failed      Outcome = "failed"       // failed and kept in the failure store
	BreakerOpen Outcome = "breaker-open" // skipped: the consumer's breaker was open (kept)
	Paused      Outcome = "paused"       // held: an operator paused the consumer (kept)
	Replayed    Outcome = "replayed"
	Discarded   Outcome = "discarded"
	// A test event an operator sent (its message is deliver.TestMessage); never kept.
	TestDelivered Outcome = "test-delivered"
	TestFailed    Outcome = "test-failed"
	// RereadFailed: the event's row could not be read from the Dataverse Web API, so it was
	// matched to no consumer and kept as one failure of kind reread; its entry names the
	// consumer NoConsumer.
	RereadFailed Outcome = "reread-failed"
)

// NoConsumer is the consumer of an entry that concerns the event before any consumer
// (RereadFailed).
const NoConsumer = "-"

// Attempt is one try at reaching the consumer, as delivery and the failure store note it.
type Attempt = failures.Try

// maxAttempts is how many attempts an entry keeps, the newest: one JSON property of a few KiB.
const maxAttempts = 10

// Entry is one outcome of one (event, consumer) pair.
type Entry struct {
	At            time.Time `json:"at"` // when the outcome was reached
	EventID       string    `json:"eventId"`
	CorrelationID string    `json:"correlationId,omitempty"`
	Table         string    `json:"table,omitempty"`
	RecordID      string    `json:"recordId,omitempty"`
	Message       string    `json:"message,omitempty"` // the SDK message (Create, Update, ...)
	Route         string    `json:"route,omitempty"`
	Consumer      string    `json:"consumer"`
	Outcome       Outcome   `json:"outcome"`
	// Attempts is every try this outcome took, oldest first (the newest 10 are kept); empty for
	// a breaker skip or a discard, which reach no consumer. A successful try has no status.
	Attempts []Attempt `json:"attempts,omitempty"`
	// AttemptCount is how many tries reached the consumer, which Attempts may hold fewer of.
	AttemptCount int `json:"attemptCount,omitempty"`
	// StatusCode is the last HTTP status, when there was one.
	StatusCode int           `json:"statusCode,omitempty"`
	Duration   time.Duration `json:"duration"` // the whole outcome, all attempts
	Error      string        `json:"error,omitempty"`
	FailureID  string        `json:"failureId,omitempty"` // the kept failure, when there is one
	// Source is "changes" for an event read by change tracking, empty for the plugin step's;
	// Version is the row version the event carried, when it carried one.
	Source  string `json:"source,omitempty"`
	Version string `json:"version,omitempty"`
}

// entity is an Entry as stored. Attempts are one JSON property: a lookup always wants them all.
type entity struct {
	PartitionKey  string
	RowKey        string
	At            string // RFC 3339 with nanoseconds; Timestamp is the write time, not this
	EventID       string
	CorrelationID string `json:",omitempty"`
	Table         string `json:",omitempty"`
	RecordID      string `json:",omitempty"`
	Message       string `json:",omitempty"`
	Route         string `json:",omitempty"`
	Consumer      string
	Outcome       string
	Attempts      string `json:",omitempty"`
	AttemptCount  int    `json:",omitempty"`
	StatusCode    int    `json:",omitempty"`
	DurationMs    float64
	Error         string `json:",omitempty"`
	FailureID     string `json:",omitempty"`
	Source        string `json:",omitempty"`
	Version       string `json:",omitempty"`
}

// maxErrorLen bounds an error message kept in the journal; a consumer's error body can be long
// and a Table Storage property holds 64 KiB.
const maxErrorLen = 1024

func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	return s[:maxErrorLen] + "..."
}

// record is one entity to write: its keys and its JSON body.
type record struct {
	pk, rk string
	body   []byte
}

// indexRow is an index row as read: its keys, nothing else.
type indexRow struct {
	PartitionKey string
	RowKey       string
}

// rowKeys are the keys of the row an index row's tail ("<inverted time>|<event>|<consumer>",
// escaped) names. The hour comes from the inverted time, so a time InvertedTime clamped
// lands where the index rows point.
func rowKeys(tail string) (pk, rk string) {
	inv, rest, _ := strings.Cut(tail, "|")
	ev, cons, _ := strings.Cut(rest, "|")
	return consumerPartition(cons, timeOfInverted(inv), shardOf(ev)), inv + "|" + ev
}

// timeOfInverted undoes tables.InvertedTime; text that is not one gives the epoch.
func timeOfInverted(inv string) time.Time {
	n, err := strconv.ParseInt(inv, 10, 64)
	if err != nil || n < 0 {
		return time.Unix(0, 0)
	}
	return time.Unix(0, math.MaxInt64-n)
}

func (x entity) entry() Entry {
	e := Entry{EventID: x.EventID, CorrelationID: x.CorrelationID, Table: x.Table,
		RecordID: x.RecordID, Message: x.Message, Route: x.Route, Consumer: x.Consumer,
		Outcome: Outcome(x.Outcome), AttemptCount: x.AttemptCount, StatusCode: x.StatusCode, Error: x.Error, FailureID: x.FailureID,
		Duration: time.Duration(x.DurationMs * float64(time.Millisecond)), Source: x.Source, Version: x.Version}
	e.At, _ = time.Parse(time.RFC3339Nano, x.At)
	if x.Attempts != "" {
		_ = json.Unmarshal([]byte(x.Attempts), &e.Attempts) // a damaged list shows as none
	}
	return e
}

func hourBucket(t time.Time) string { return t.UTC().Format("2006010215") }

// consumerPartition is the partition of an escaped consumer's rows of an hour's shard.
func consumerPartition(consumer string, at time.Time, shard int) string {
	return "c|" + consumer + "|" + hourBucket(at) + "|" + strconv.Itoa(shard)
}

// indexBuckets is how many partitions each index is spread over: few enough that a flush's
// index rows fill batches, enough to keep each under Table Storage's per-partition rate at
// thousands of events a second. Lookups depend on it: changing it needs a migration.
const indexBuckets = 16

// eventKeys, recordKeys and correlationKeys give an index's partition and the RowKey prefix
// of every copy found by the value.
func eventKeys(id string) (pk, prefix string) { return indexKeys("e", escape(id)) }
func recordKeys(table, id string) (pk, prefix string) {
	return indexKeys("r", escape(strings.ToLower(table))+"|"+escape(strings.ToLower(id)))
}
func correlationKeys(id string) (pk, prefix string) {
	return indexKeys("x", escape(strings.ToLower(id)))
}

func indexKeys(kind, prefix string) (string, string) {
	return string(appendIndexPartition(make([]byte, 0, 3), kind[0], prefix)), prefix
}

// appendIndexPartition appends the partition of index kind ('e', 'r' or 'x') that holds the
// rows of an escaped value: the kind and the value's bucket in two hex digits.
func appendIndexPartition[S string | []byte](b []byte, kind byte, prefix S) []byte {
	const hex = "0123456789abcdef"
	n := fnv32a(prefix) % indexBuckets
	return append(b, kind, hex[n>>4&0xf], hex[n&0xf])
}

// shardOf is the consumer partition shard of an escaped event id.
func shardOf(eventID string) int { return int(fnv32a(eventID) % consumerShards) }

// fnv32a is hash/fnv's FNV-1a of s, without its allocation.
func fnv32a[S string | []byte](s S) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// escape keeps a key free of what Table Storage forbids in keys (/ \ # ? and control
// characters) and of the | that separates key parts, percent-encoding them.
func escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+8), s))
}

func needsEscape(c byte) bool {
	return c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '#' || c == '?' || c == '|' || c == '%'
}
