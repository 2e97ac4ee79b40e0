// Package customhandler holds the Azure Functions custom-handler envelopes: the JSON the
// Functions host POSTs to /<FunctionName> for non-HTTP triggers, and the JSON it expects back.
// The shapes are the host's own, as its source writes them (azure-functions-host:
// Workers/MessageExtensions/ScriptInvocationContextExtensions.cs builds the envelope,
// Workers/Http/DefaultHttpWorkerService.cs sends it and reads the answer; the Service Bus
// extension's Triggers/ServiceBusTriggerBindingStrategy.cs in azure-sdk-for-net names the
// metadata keys).
package customhandler

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// InvokeRequest is what the host POSTs for a trigger invocation.
type InvokeRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// InvokeResponse is the answer the host expects: JSON, never empty. Logs lines go to the
// invocation's log (Application Insights), but only from a 2xx answer: the host drops the
// body of any other (DefaultHttpWorkerService calls EnsureSuccessStatusCode before reading it).
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// Body forms of a Service Bus message in Data.
const (
	// FormBinary is a binding with `"dataType": "binary"`: the base64 of the raw body.
	FormBinary = "binary"
	// FormString is a binding without dataType: the body decoded as UTF-8 text, then
	// JSON-encoded twice. Binary bodies (Dataverse's application/msbin1) do not survive it.
	FormString = "string"
	// FormObject is a body that arrived as a JSON object or array, not as a string.
	FormObject = "object"
)

// Message is a Service Bus message as a serviceBusTrigger delivers it.
type Message struct {
	Body []byte
	// Form says how Body arrived in Data: FormBinary, FormString or FormObject.
	Form           string
	MessageID      string
	DeliveryCount  int
	SequenceNumber int64
	// EnqueuedTime is from EnqueuedTime (with its offset) or else EnqueuedTimeUtc (UTC written
	// without a zone); zero when neither parses. The host writes both to the second.
	EnqueuedTime time.Time
	ContentType  string
	// CorrelationID is Metadata.CorrelationId. Under a binding without dataType, the top-level
	// properties of a JSON body overwrite same-named metadata, so for a Dataverse JSON body it
	// is the RemoteExecutionContext's CorrelationId, not the message's.
	CorrelationID         string
	SessionID             string
	ApplicationProperties map[string]any
}

// ErrNoMessage means the envelope has no data under the binding name.
var ErrNoMessage = errors.New("envelope has no message data")

// ParseInvokeRequest decodes the host's envelope.
func ParseInvokeRequest(body []byte) (*InvokeRequest, error) {
	var req InvokeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invocation envelope: %w", err)
	}
	return &req, nil
}

// ServiceBusMessage extracts the message under binding and its metadata.
//
// How the host encodes each value (ScriptInvocationContextExtensions.
// GetHttpScriptInvocationContextValue, then serialized by Json.NET): a byte[] as base64 (the
// `dataType: binary` body), a DateTime or DateTimeOffset re-parsed from its ToString (so whole
// seconds: EnqueuedTimeUtc "2024-05-01T09:00:00" with no zone, EnqueuedTime
// "2024-05-01T09:00:00+00:00"), anything that serializes to a JSON object as that object
// (ApplicationProperties, UserProperties, sys), and everything else through
// JsonConvert.SerializeObject, whose text is then a JSON string again: strings arrive encoded
// twice (`"MessageId": "\"abc\""`), numbers as strings (`"DeliveryCount": "1"`). Null values
// are left out.
func (r *InvokeRequest) ServiceBusMessage(binding string) (*Message, error) {
	data, ok := r.Data[binding]
	if !ok || len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return nil, fmt.Errorf("%w %q", ErrNoMessage, binding)
	}
	body, form, err := messageBody(data)
	if err != nil {
		return nil, fmt.Errorf("message data %q: %w", binding, err)
	}
	m := &Message{Body: body, Form: form}
	m.MessageID, _ = r.metaText("MessageId")
	m.ContentType, _ = r.metaText("ContentType")
	m.CorrelationID, _ = r.metaText("CorrelationId")
	m.SessionID, _ = r.metaText("SessionId")
	if s, ok := r.metaText("DeliveryCount"); ok {
		m.DeliveryCount, _ = strconv.Atoi(s)
	}
	if s, ok := r.metaText("SequenceNumber"); ok {
		m.SequenceNumber, _ = strconv.ParseInt(s, 10, 64)
	}
	m.EnqueuedTime = r.enqueuedTime()
	// UserProperties is the same object under its Service Bus SDK v4 name (kept by the v5
	// extension for back-compatibility); either may be the one present.
	for _, key := range []string{"ApplicationProperties", "UserProperties"} {
		if props, ok := r.metaObject(key); ok {
			m.ApplicationProperties = props
			break
		}
	}
	return m, nil
}

// messageBody reads Data.<binding> in each form the host sends it.
func messageBody(data json.RawMessage) ([]byte, string, error) {
	data = bytes.TrimSpace(data)
	if data[0] != '"' {
		// An object or array body delivered as JSON: the bytes are the body.
		return data, FormObject, nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, "", err
	}
	if strings.HasPrefix(s, `"`) {
		// No dataType: the body text went through JsonConvert.SerializeObject before the
		// envelope was serialized, so it is a JSON string literal inside a JSON string. A '"'
		// is not in the base64 alphabet, so a binary body never starts with one.
		var text string
		if err := json.Unmarshal([]byte(s), &text); err != nil {
			return nil, "", fmt.Errorf("body encoded twice as a JSON string (a binding without dataType) does not decode: %w", err)
		}
		return []byte(text), FormString, nil
	}
	t := strings.TrimLeft(s, "\ufeff \t\r\n")
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") || strings.HasPrefix(t, "<") {
		// The text of the message encoded once, as some older hosts and tools send it. '{',
		// '[' and '<' are not in the base64 alphabet either.
		return []byte(s), FormString, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, FormBinary, nil
	}
	// Neither base64 nor JSON: keep the text so the caller can record it as poison.
	return []byte(s), FormString, nil
}

// enqueuedTime prefers EnqueuedTime, a DateTimeOffset written with its offset, over
// EnqueuedTimeUtc, a DateTime written without a zone, which Service Bus states in UTC
// (the binding strategy sets it to EnqueuedTime.DateTime, and the broker's offset is zero).
func (r *InvokeRequest) enqueuedTime() time.Time {
	for _, key := range []string{"EnqueuedTime", "EnqueuedTimeUtc"} {
		if s, ok := r.metaText(key); ok {
			if t, ok := parseHostTime(s); ok {
				return t
			}
		}
	}
	return time.Time{}
}

// parseHostTime reads a time as the host writes it: ISO 8601 with or without a fraction, with
// an offset or Z, or with no zone at all, which is taken as UTC. The result is in UTC.
func parseHostTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// metaText returns a scalar metadata value as text, undoing the host's encodings: a JSON
// string holding the SerializeObject text of a string (one extra layer, removed once), a
// JSON string holding a number or a date (kept as is), or a bare JSON number. ok is false when
// the key is absent, null, or not a scalar.
func (r *InvokeRequest) metaText(key string) (string, bool) {
	raw := bytes.TrimSpace(r.Metadata[key])
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		if strings.HasPrefix(s, `"`) {
			var inner string
			if json.Unmarshal([]byte(s), &inner) == nil {
				return inner, true
			}
		}
		return s, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true
	default:
		return "", false
	}
}

// metaObject returns an object-valued metadata key. A JSON string holding an object is
// accepted too: that is how SerializeObject's fallback would carry one.
func (r *InvokeRequest) metaObject(key string) (map[string]any, bool) {
	raw := bytes.TrimSpace(r.Metadata[key])
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		raw = []byte(s)
	}
	var props map[string]any
	if json.Unmarshal(raw, &props) != nil || props == nil {
		return nil, false
	}
	return props, true
}
