package failures

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Property names as stored. They are part of the stored format: renaming one orphans data.
const (
	pEventID        = "eventId"
	pConsumer       = "consumer"
	pRoute          = "route"
	pTable          = "table"
	pMessage        = "message"
	pRecordID       = "recordId"
	pCorrelationID  = "correlationId"
	pMessageID      = "messageId"
	pOrgHost        = "organizationHost"
	pKind           = "kind"
	pStatus         = "status"
	pAttempts       = "attempts"
	pOccurredAt     = "occurredAt"
	pFirstFailedAt  = "firstFailedAt"
	pLastFailedAt   = "lastFailedAt"
	pLastError      = "lastError"
	pLastStatusCode = "lastStatusCode"
	pUpdatedBy      = "updatedBy"
	pUpdatedAt      = "updatedAt"
	pClaimedBy      = "claimedBy"
	pClaimedAt      = "claimedAt"
	pReason         = "reason"
	pPayloadCodec   = "payloadCodec"
	pPayloadLen     = "payloadLen"
	pPayloadCRC     = "payloadCrc"
	pPayloadParts   = "payloadParts"
	pPayloadChunks  = "payloadChunks"
	pPayloadSpill   = "payloadSpill"
	pWriteID        = "writeId"
	pHistory        = "history" // JSON array of Change, newest last
	pTries          = "tries"   // JSON array of Try, newest last
)

// metaSelect is every column but the payload parts, for reads that do not need the payload.
var metaSelect = strings.Join([]string{"PartitionKey", "RowKey",
	pEventID, pConsumer, pRoute, pTable, pMessage, pRecordID, pCorrelationID, pMessageID, pOrgHost,
	pKind, pStatus, pAttempts, pOccurredAt, pFirstFailedAt, pLastFailedAt, pLastError,
	pLastStatusCode, pUpdatedBy, pUpdatedAt, pClaimedBy, pClaimedAt, pReason,
	pPayloadCodec, pPayloadLen, pPayloadCRC, pPayloadParts, pPayloadChunks, pPayloadSpill, pWriteID,
}, ",")

// detailSelect is metaSelect plus the history: what one failure's reads need, and lists do not.
var detailSelect = metaSelect + "," + pHistory + "," + pTries

// History caps: the newest maxHistory changes are kept, each detail cut to maxHistoryDetail
// characters, so the property stays far below the 64 KiB a string may hold and the entity
// below 1 MiB (TestEntitySize_FullMainEntityFitsOneMiB).
const (
	maxHistory       = 40
	maxHistoryDetail = 256
)

// Text caps. Identity fields are hashed whole into the keys; only the stored copy is capped.
// The caps bound the non-payload part of an entity so the payload parts always fit beside it.
const (
	maxFieldChars = 1024
	maxErrorChars = 4096
)

// entity is the stored shape of a failure's columns (payload parts are read separately).
type entity struct {
	PartitionKey   string `json:"PartitionKey"`
	RowKey         string `json:"RowKey"`
	ETag           string `json:"odata.etag"`
	EventID        string `json:"eventId"`
	Consumer       string `json:"consumer"`
	Route          string `json:"route"`
	Table          string `json:"table"`
	Message        string `json:"message"`
	RecordID       string `json:"recordId"`
	CorrelationID  string `json:"correlationId"`
	MessageID      string `json:"messageId"`
	OrgHost        string `json:"organizationHost"`
	Kind           string `json:"kind"`
	Status         string `json:"status"`
	Attempts       int32  `json:"attempts"`
	OccurredAt     string `json:"occurredAt"`
	FirstFailedAt  string `json:"firstFailedAt"`
	LastFailedAt   string `json:"lastFailedAt"`
	LastError      string `json:"lastError"`
	LastStatusCode int32  `json:"lastStatusCode"`
	UpdatedBy      string `json:"updatedBy"`
	UpdatedAt      string `json:"updatedAt"`
	ClaimedBy      string `json:"claimedBy"`
	ClaimedAt      string `json:"claimedAt"`
	Reason         string `json:"reason"`
	PayloadCodec   string `json:"payloadCodec"`
	PayloadLen     int32  `json:"payloadLen"`
	PayloadCRC     string `json:"payloadCrc"`
	PayloadParts   int32  `json:"payloadParts"`
	PayloadChunks  int32  `json:"payloadChunks"`
	PayloadSpill   string `json:"payloadSpill"`
	WriteID        string `json:"writeId"`
	History        string `json:"history"`
	Tries          string `json:"tries"`
}

func (e entity) failure() (Failure, error) {
	id, ok := idFromKeys(e.PartitionKey, e.RowKey)
	if !ok {
		return Failure{}, fmt.Errorf("entity %s/%s is not a failure", e.PartitionKey, e.RowKey)
	}
	f := Failure{
		ID:               id,
		EventID:          e.EventID,
		Consumer:         e.Consumer,
		Route:            e.Route,
		Table:            e.Table,
		Message:          e.Message,
		RecordID:         e.RecordID,
		CorrelationID:    e.CorrelationID,
		MessageID:        e.MessageID,
		OrganizationHost: e.OrgHost,
		Kind:             Kind(e.Kind),
		Status:           Status(e.Status),
		Attempts:         int(e.Attempts),
		LastError:        e.LastError,
		LastStatusCode:   int(e.LastStatusCode),
		UpdatedBy:        e.UpdatedBy,
		Reason:           e.Reason,
		PayloadSize:      int(e.PayloadLen),
	}
	if e.History != "" {
		// A history that does not parse (written by hand, say) is shown as absent rather than
		// making the failure unreadable: it is a record of the past, not something acted on.
		_ = json.Unmarshal([]byte(e.History), &f.History)
	}
	if e.Tries != "" {
		_ = json.Unmarshal([]byte(e.Tries), &f.Tries) // likewise: shown as absent when damaged
	}
	claimedAt := ""
	if f.Status == StatusReplaying {
		// The claim columns stay behind after a replay ends; they mean something only now.
		f.ClaimedBy, claimedAt = e.ClaimedBy, e.ClaimedAt
	}
	for _, t := range []struct {
		dst *time.Time
		src string
	}{
		{&f.OccurredAt, e.OccurredAt}, {&f.FirstFailedAt, e.FirstFailedAt},
		{&f.LastFailedAt, e.LastFailedAt}, {&f.UpdatedAt, e.UpdatedAt}, {&f.ClaimedAt, claimedAt},
	} {
		if t.src == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.src)
		if err != nil {
			return Failure{}, fmt.Errorf("entity %s/%s: time %q: %w", e.PartitionKey, e.RowKey, t.src, err)
		}
		*t.dst = v.UTC()
	}
	return f, nil
}

func (e entity) crc() (uint32, error) {
	v, err := strconv.ParseUint(e.PayloadCRC, 16, 32)
	if err != nil && e.PayloadLen > 0 {
		return 0, fmt.Errorf("payload checksum %q: %w", e.PayloadCRC, err)
	}
	return uint32(v), nil
}

// props is an entity under construction: values plus the OData type annotations Table
// Storage needs for types JSON cannot say (DateTime, Binary).
type props map[string]any

func (p props) str(name, v string, maxChars int) { p[name] = capText(v, maxChars) }

func (p props) time(name string, t time.Time) {
	if t.IsZero() {
		return // Table Storage cannot hold Go's zero time (before 1601); absent means zero
	}
	p[name] = t.UTC().Format("2006-01-02T15:04:05.0000000Z")
	p[name+"@odata.type"] = "Edm.DateTime"
}

func (p props) binary(name string, b []byte) {
	p[name] = b // encoding/json writes []byte as base64, which Edm.Binary expects
	p[name+"@odata.type"] = "Edm.Binary"
}

// history sets the history column to h with c appended (see withChange), and returns it.
func (p props) history(h []Change, c Change) []Change {
	h = withChange(h, c)
	b, _ := json.Marshal(h) // plain strings and times: cannot fail
	p[pHistory] = string(b)
	return h
}

// tries sets the tries column to the bounded ts (see LastTries) and returns what it stored.
// With no tries it sets nothing, so a merge leaves the stored ones alone.
func (p props) tries(ts []Try) []Try {
	ts = slices.Clone(LastTries(ts)) // the caller's tries may be shared: they stay as they are
	if len(ts) == 0 {
		return nil
	}
	for i := range ts {
		ts[i].At = normTime(ts[i].At)
	}
	b, _ := json.Marshal(ts) // plain strings, numbers and times: cannot fail
	p[pTries] = string(b)
	return ts
}

// withChange is h with c appended, as stored: the newest maxHistory changes, texts capped. h
// itself is not modified.
func withChange(h []Change, c Change) []Change {
	c.At = normTime(c.At)
	c.By = capText(c.By, maxFieldChars/4)
	c.Detail = capText(c.Detail, maxHistoryDetail)
	return append(h[max(0, len(h)+1-maxHistory):len(h):len(h)], c)
}

func (p props) marshal() ([]byte, error) { return json.Marshal(map[string]any(p)) }

// newProps starts an entity with its keys.
func newProps(pk, rk string) props { return props{"PartitionKey": pk, "RowKey": rk} }

// capText cuts s to at most n characters on a rune boundary, saying that it did.
func capText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const mark = "…(truncated)"
	keep := max(n-utf8.RuneCountInString(mark), 0)
	i := 0
	for j := range s {
		if keep == 0 {
			i = j
			break
		}
		keep--
	}
	return s[:i] + mark
}

// normTime is how times are kept: UTC at Table Storage's 100 ns resolution.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(100 * time.Nanosecond)
}

// entitySize is an entity's size as Table Storage counts it against its 1 MiB limit:
// 4 bytes, the keys as UTF-16, and per property 8 bytes, its name as UTF-16 and its value
// (strings as UTF-16 plus 4, binary as raw length plus 4, DateTime 8, Int32 4).
func entitySize(p props) int {
	utf16 := func(s string) int {
		n := 0
		for _, r := range s {
			if r >= 0x10000 {
				n += 4
			} else {
				n += 2
			}
		}
		return n
	}
	size := 4
	for name, v := range p {
		if strings.HasSuffix(name, "@odata.type") {
			continue
		}
		if name == "PartitionKey" || name == "RowKey" {
			s, _ := v.(string)
			size += utf16(s)
			continue
		}
		size += 8 + utf16(name)
		switch v := v.(type) {
		case string:
			if p[name+"@odata.type"] == "Edm.DateTime" {
				size += 8
			} else {
				size += 4 + utf16(v)
			}
		case []byte:
			size += 4 + len(v)
		default:
			size += 8
		}
	}
	return size
}
