// Package customhandler holds the Azure Functions custom-handler envelopes: the JSON the
// Functions host POSTs to /<FunctionName> for non-HTTP triggers, and the JSON it expects back.
// See FACTS.md section 4; the shapes here are the host's, not ours.
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
// invocation's log (Application Insights).
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// Message is a Service Bus message as a serviceBusTrigger delivers it.
type Message struct {
	Body                  []byte
	MessageID             string
	DeliveryCount         int
	EnqueuedTime          time.Time
	ContentType           string
	CorrelationID         string
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

// ServiceBusMessage extracts the message under binding. With `"dataType": "binary"` the body is
// a JSON string holding base64; without it the host sends the body as a JSON string holding the
// message text (so a JSON body is encoded twice), and an object body may arrive as is. All three
// are accepted. Metadata values the host JSON-encodes inside strings are unwrapped.
func (r *InvokeRequest) ServiceBusMessage(binding string) (*Message, error) {
	data, ok := r.Data[binding]
	if !ok || len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return nil, fmt.Errorf("%w %q", ErrNoMessage, binding)
	}
	body, err := messageBody(data)
	if err != nil {
		return nil, fmt.Errorf("message data %q: %w", binding, err)
	}
	m := &Message{Body: body}
	m.MessageID = r.metaString("MessageId")
	m.ContentType = r.metaString("ContentType")
	m.CorrelationID = r.metaString("CorrelationId")
	if n, err := strconv.Atoi(r.metaString("DeliveryCount")); err == nil {
		m.DeliveryCount = n
	}
	if t, err := time.Parse(time.RFC3339Nano, r.metaString("EnqueuedTimeUtc")); err == nil {
		m.EnqueuedTime = t.UTC()
	}
	if raw, ok := r.Metadata["ApplicationProperties"]; ok {
		var props map[string]any
		if json.Unmarshal(unwrap(raw), &props) == nil {
			m.ApplicationProperties = props
		}
	}
	return m, nil
}

func messageBody(data json.RawMessage) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if data[0] != '"' {
		// An object or array body delivered as JSON: the bytes are the body.
		return data, nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	t := strings.TrimLeft(s, "\ufeff \t\r\n")
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") || strings.HasPrefix(t, "<") {
		// The text of the message itself (no dataType on the binding). '{', '[' and '<' are
		// not in the base64 alphabet, so this cannot be mistaken for a binary body.
		return []byte(s), nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	// Neither base64 nor JSON: keep the text so the caller can record it as poison.
	return []byte(s), nil
}

// metaString returns a scalar metadata value, unwrapping the JSON encodings the host adds
// (`"DeliveryCount": "1"`, `"MessageId": "\"abc\""`).
func (r *InvokeRequest) metaString(key string) string {
	raw, ok := r.Metadata[key]
	if !ok {
		return ""
	}
	raw = unwrap(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// unwrap removes layers of JSON string encoding around a JSON value, at most a few deep.
func unwrap(raw json.RawMessage) json.RawMessage {
	for range 3 {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return raw
		}
		inner := strings.TrimSpace(s)
		if !json.Valid([]byte(inner)) {
			return raw
		}
		raw = json.RawMessage(inner)
	}
	return raw
}
