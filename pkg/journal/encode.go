package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// encoded is one entity of an entry as the flusher writes it: its keys and its JSON.
type encoded struct{ pk, rk, body []byte }

// encoder writes an entry's entities (its row, then its index rows: the layout the package
// comment shows) into buffers it reuses from entry to entry, so that an outcome costs the
// flusher no allocation. It is the flusher's alone.
type encoder struct {
	ents     [4]encoded
	n        int
	tail     []byte // "<inverted time>|<event>|<consumer>", escaped, which every RowKey ends in
	prefix   []byte // an index row's looked-up value, escaped
	attempts []byte // the row's Attempts property, as JSON
}

// encode fills c.ents[:c.n] with e's entities.
func (c *encoder) encode(e *Entry) error {
	if e.EventID == "" || e.Consumer == "" {
		return errors.New("journal entry without an event id or consumer")
	}
	c.n = 0
	var err error
	if c.attempts, err = appendAttempts(c.attempts[:0], e.Attempts); err != nil {
		return fmt.Errorf("encode attempts: %w", err)
	}
	ns := tables.ClampedUnixNano(e.At)
	c.tail = tables.AppendInvertedTime(c.tail[:0], e.At)
	inv := len(c.tail)
	c.tail = append(c.tail, '|')
	c.tail = appendEscaped(c.tail, e.EventID)
	ev := c.tail[inv+1:]
	c.tail = append(c.tail, '|')
	c.tail = appendEscaped(c.tail, e.Consumer)
	cons := c.tail[inv+2+len(ev):]

	row := &c.ents[0]
	row.pk = append(row.pk[:0], "c|"...)
	row.pk = append(row.pk, cons...)
	row.pk = append(row.pk, '|')
	row.pk = time.Unix(0, ns).UTC().AppendFormat(row.pk, "2006010215")
	row.pk = append(row.pk, '|')
	row.pk = strconv.AppendInt(row.pk, int64(fnv32a(ev)%consumerShards), 10)
	row.rk = append(row.rk[:0], c.tail[:inv+1+len(ev)]...)
	row.body = appendRow(row.body[:0], e, row.pk, row.rk, c.attempts)
	c.n = 1

	c.prefix = appendEscaped(c.prefix[:0], e.EventID)
	c.index('e')
	if e.Table != "" && e.RecordID != "" {
		c.prefix = appendEscaped(c.prefix[:0], lower(e.Table))
		c.prefix = append(c.prefix, '|')
		c.prefix = appendEscaped(c.prefix, lower(e.RecordID))
		c.index('r')
	}
	if e.CorrelationID != "" {
		c.prefix = appendEscaped(c.prefix[:0], lower(e.CorrelationID))
		c.index('x')
	}
	return nil
}

// index adds the index row of kind for the value in c.prefix.
func (c *encoder) index(kind byte) {
	x := &c.ents[c.n]
	x.pk = appendIndexPartition(x.pk[:0], kind, c.prefix)
	x.rk = append(x.rk[:0], c.prefix...)
	x.rk = append(x.rk, '|')
	x.rk = append(x.rk, c.tail...)
	x.body = append(x.body[:0], `{"PartitionKey":`...)
	x.body = appendJSONString(x.body, x.pk)
	x.body = append(x.body, `,"RowKey":`...)
	x.body = appendJSONString(x.body, x.rk)
	x.body = append(x.body, '}')
	c.n++
}

// lower is strings.ToLower, without its allocation for the ASCII ids it is mostly given.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return strings.ToLower(s)
		}
	}
	return s
}

// appendRow appends the row of e, whose keys are pk and rk and whose attempts (as JSON) are
// attempts, as encoding/json would encode its entity (the same properties in the same order,
// omitempty alike), without its reflection: every outcome is one row.
func appendRow(b []byte, e *Entry, pk, rk, attempts []byte) []byte {
	str := func(name, v string) {
		if v == "" {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = appendJSONString(b, v)
	}
	num := func(name string, v int) {
		if v == 0 {
			return
		}
		b = append(b, `,"`+name+`":`...)
		b = strconv.AppendInt(b, int64(v), 10)
	}
	b = append(b, `{"PartitionKey":`...)
	b = appendJSONString(b, pk)
	b = append(b, `,"RowKey":`...)
	b = appendJSONString(b, rk)
	b = append(b, `,"At":"`...)
	b = e.At.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","EventID":`...)
	b = appendJSONString(b, e.EventID)
	str("CorrelationID", e.CorrelationID)
	str("Table", e.Table)
	str("RecordID", e.RecordID)
	str("Message", e.Message)
	str("Route", e.Route)
	b = append(b, `,"Consumer":`...)
	b = appendJSONString(b, e.Consumer)
	b = append(b, `,"Outcome":`...)
	b = appendJSONString(b, string(e.Outcome))
	if len(attempts) > 0 {
		b = append(b, `,"Attempts":`...)
		b = appendJSONString(b, attempts)
	}
	num("AttemptCount", e.AttemptCount)
	num("StatusCode", e.StatusCode)
	b = append(b, `,"DurationMs":`...)
	b = appendFloat(b, float64(e.Duration)/float64(time.Millisecond))
	str("Error", truncate(e.Error))
	str("FailureID", e.FailureID)
	str("Source", e.Source)
	str("Version", e.Version)
	return append(b, '}')
}

// appendFloat appends f as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	if d := math.Abs(f); d == 0 || (d >= 1e-6 && d < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64) // encoding/json's form in this range
	}
	j, err := json.Marshal(f)
	if err != nil { // NaN or an infinity, which no duration gives
		return append(b, '0')
	}
	return append(b, j...)
}

// appendAttempts appends the newest maxAttempts of as, each error cut as the failure store
// cuts it, as encoding/json encodes the list; nothing when there are none.
func appendAttempts(b []byte, as []Attempt) ([]byte, error) {
	if len(as) == 0 {
		return b, nil
	}
	b = append(b, '[')
	for i, a := range as[max(0, len(as)-maxAttempts):] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"at":"`...)
		var err error
		if b, err = a.At.AppendText(b); err != nil { // time.Time's MarshalJSON is this, quoted
			return b, err
		}
		b = append(b, '"')
		if a.StatusCode != 0 {
			b = append(b, `,"statusCode":`...)
			b = strconv.AppendInt(b, int64(a.StatusCode), 10)
		}
		b = append(b, `,"duration":`...)
		b = strconv.AppendInt(b, int64(a.Duration), 10)
		if a.Error != "" {
			b = append(b, `,"error":`...)
			b = appendJSONString(b, failures.CutError(a.Error))
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendJSONString appends s as encoding/json encodes a string. Printable ASCII, a quote and a
// backslash are written here, runs of plain text at once; text with anything else (control
// characters, <, > and &, which encoding/json writes as \u003c..., non-ASCII) is left to
// encoding/json.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	start := len(b)
	b = append(b, '"')
	run := 0 // s[run:i] is plain text not yet appended
	for i := 0; i < len(s); i++ {
		switch jsonClass[s[i]] {
		case jsonPlain:
			continue
		case jsonBackslash:
			b = append(b, s[run:i]...)
			b = append(b, '\\', s[i])
			run = i + 1
		default:
			q, _ := json.Marshal(string(s)) // a string always encodes
			return append(b[:start], q...)
		}
	}
	b = append(b, s[run:]...)
	return append(b, '"')
}

// The classes of a byte in a JSON string, for appendJSONString.
const (
	jsonPlain     = iota
	jsonBackslash // a quote or a backslash, written after a backslash
	jsonOther     // left to encoding/json
)

var jsonClass = func() (class [256]byte) {
	for c := range 256 {
		switch {
		case c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&':
			class[c] = jsonOther
		case c == '"' || c == '\\':
			class[c] = jsonBackslash
		}
	}
	return class
}()

// appendEscaped appends escape(s).
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		if c := s[i]; needsEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return b
}
