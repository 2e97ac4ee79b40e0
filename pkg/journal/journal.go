// Package journal keeps a history of every delivery outcome of every (event, consumer) pair in
// Table Storage, written off the acknowledgement path, and answers the support lookups on it:
// by event id, by record, by correlation id, and by consumer and time range. It keeps ids,
// outcomes and timings, never payloads.
//
// # Keys
//
// Each outcome is written as up to four copies of one small entity, one per lookup, so every
// lookup is a range read inside one partition (or, for a consumer's time range, a few) and
// never a table scan:
//
//	consumer:    PK "c|<consumer>|<yyyymmddhh>|<shard>"  RK "<inverted time>|<event>"
//	event:       PK "e<bucket>"  RK "<event>|<inverted time>|<consumer>"
//	record:      PK "r<bucket>"  RK "<table>|<record id>|<inverted time>|<event>|<consumer>"
//	correlation: PK "x<bucket>"  RK "<correlation id>|<inverted time>|<event>|<consumer>"
//
// The inverted time (MaxInt64 minus Unix nanoseconds, 19 digits) makes a read newest first.
// The bucket is a hash of the looked-up value over indexBuckets partitions: a flush of a few
// thousand outcomes then lands in a few hundred partitions, written as transactions of up to
// 100 entities, instead of one request per event; and the writes of thousands of events a
// second are spread evenly, well under Table Storage's per-partition rate. The consumer
// partitions are split by hour and by consumerShards (a hash of the event id), so that one busy
// consumer is not one hot partition, at the price of consumerShards queries per hour of a
// range lookup.
//
// Copies of one outcome share their properties, so a lookup reads the entity it lands on and
// needs no second read. Four entities per outcome is the price; they are small (no payload).
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/tables"
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
	Replayed    Outcome = "replayed"
	Discarded   Outcome = "discarded"
)

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

// entities are the copies of e, one per lookup it can be found by.
func entities(e Entry) ([]entity, error) {
	if e.EventID == "" || e.Consumer == "" {
		return nil, errors.New("journal entry without an event id or consumer")
	}
	base := entity{
		At: e.At.UTC().Format(time.RFC3339Nano), EventID: e.EventID, CorrelationID: e.CorrelationID,
		Table: e.Table, RecordID: e.RecordID, Message: e.Message, Route: e.Route,
		Consumer: e.Consumer, Outcome: string(e.Outcome), AttemptCount: e.AttemptCount, StatusCode: e.StatusCode,
		DurationMs: float64(e.Duration) / float64(time.Millisecond), Error: truncate(e.Error),
		FailureID: e.FailureID,
	}
	if len(e.Attempts) > 0 {
		kept := e.Attempts[max(0, len(e.Attempts)-maxAttempts):]
		as := make([]Attempt, len(kept))
		for i, a := range kept {
			a.Error = failures.CutError(a.Error)
			as[i] = a
		}
		b, err := json.Marshal(as)
		if err != nil {
			return nil, fmt.Errorf("encode attempts: %w", err)
		}
		base.Attempts = string(b)
	}
	inv := tables.InvertedTime(e.At)
	ev, cons := escape(e.EventID), escape(e.Consumer)
	out := make([]entity, 0, 4)
	add := func(pk, rk string) {
		x := base
		x.PartitionKey, x.RowKey = pk, rk
		out = append(out, x)
	}
	add(consumerPartition(e.Consumer, e.At, shardOf(e.EventID)), inv+"|"+ev)
	pk, prefix := eventKeys(e.EventID)
	add(pk, prefix+"|"+inv+"|"+cons)
	if e.Table != "" && e.RecordID != "" {
		pk, prefix := recordKeys(e.Table, e.RecordID)
		add(pk, prefix+"|"+inv+"|"+ev+"|"+cons)
	}
	if e.CorrelationID != "" {
		pk, prefix := correlationKeys(e.CorrelationID)
		add(pk, prefix+"|"+inv+"|"+ev+"|"+cons)
	}
	return out, nil
}

func (x entity) entry() Entry {
	e := Entry{EventID: x.EventID, CorrelationID: x.CorrelationID, Table: x.Table,
		RecordID: x.RecordID, Message: x.Message, Route: x.Route, Consumer: x.Consumer,
		Outcome: Outcome(x.Outcome), AttemptCount: x.AttemptCount, StatusCode: x.StatusCode, Error: x.Error, FailureID: x.FailureID,
		Duration: time.Duration(x.DurationMs * float64(time.Millisecond))}
	e.At, _ = time.Parse(time.RFC3339Nano, x.At)
	if x.Attempts != "" {
		_ = json.Unmarshal([]byte(x.Attempts), &e.Attempts) // a damaged list shows as none
	}
	return e
}

func hourBucket(t time.Time) string { return t.UTC().Format("2006010215") }

func consumerPartition(consumer string, at time.Time, shard int) string {
	return "c|" + escape(consumer) + "|" + hourBucket(at) + "|" + strconv.Itoa(shard)
}

// indexBuckets is how many partitions each index is spread over. Lookups depend on it:
// changing it needs a migration.
const indexBuckets = 64

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
	h := fnv.New32a()
	_, _ = h.Write([]byte(prefix))
	return fmt.Sprintf("%s%02x", kind, h.Sum32()%indexBuckets), prefix
}

func shardOf(eventID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(eventID))
	return int(h.Sum32() % consumerShards)
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
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; needsEscape(c) {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '#' || c == '?' || c == '|' || c == '%'
}
