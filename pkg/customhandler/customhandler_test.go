package customhandler

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const event = `{"MessageName":"Create","PrimaryEntityName":"contact","CorrelationId":"c0ffee00-0000-0000-0000-000000000001"}`

// envelope builds the host's JSON as https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers describes it.
func envelope(data string, metadata map[string]string) []byte {
	meta := map[string]json.RawMessage{}
	for k, v := range metadata {
		meta[k] = json.RawMessage(v)
	}
	b, _ := json.Marshal(map[string]any{"Data": map[string]json.RawMessage{"message": json.RawMessage(data)}, "Metadata": meta})
	return b
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestServiceBusMessage_BodyForms(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"binary dataType: base64 of the body", quote(base64.StdEncoding.EncodeToString([]byte(event))), event},
		{"binary dataType with a BOM", quote(base64.StdEncoding.EncodeToString([]byte("\ufeff" + event))), "\ufeff" + event},
		{"no dataType: the body encoded twice, as the host sends it", quote(quote(event)), event},
		{"no dataType: a body with quotes and newlines, encoded twice", quote(quote("<a b=\"1\">\n</a>")), "<a b=\"1\">\n</a>"},
		{"JSON text inside a JSON string once", quote(event), event},
		{"no dataType: object delivered as is", event, event},
		{"text that is neither base64 nor JSON is kept for poison", quote("not base64 !!"), "not base64 !!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseInvokeRequest(envelope(tt.data, nil))
			if err != nil {
				t.Fatal(err)
			}
			m, err := req.ServiceBusMessage("message")
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Body) != tt.want {
				t.Fatalf("body = %q, want %q", m.Body, tt.want)
			}
		})
	}
}

func TestServiceBusMessage_MetadataUnwrapped(t *testing.T) {
	data := quote(base64.StdEncoding.EncodeToString([]byte(event)))
	req, err := ParseInvokeRequest(envelope(data, map[string]string{
		"MessageId":             quote(`"abc-123"`),
		"DeliveryCount":         quote("3"),
		"ContentType":           quote(`"application/json"`),
		"CorrelationId":         quote(`"corr-1"`),
		"EnqueuedTimeUtc":       quote(`"2024-07-25T10:11:12.5Z"`),
		"ApplicationProperties": `{"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName":"contact","sizeExceeded":true}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := req.ServiceBusMessage("message")
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != "abc-123" || m.DeliveryCount != 3 || m.ContentType != "application/json" || m.CorrelationID != "corr-1" {
		t.Fatalf("metadata = %+v", m)
	}
	if want := time.Date(2024, 7, 25, 10, 11, 12, 5e8, time.UTC); !m.EnqueuedTime.Equal(want) {
		t.Fatalf("EnqueuedTime = %v, want %v", m.EnqueuedTime, want)
	}
	if m.ApplicationProperties["http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName"] != "contact" || m.ApplicationProperties["sizeExceeded"] != true {
		t.Fatalf("ApplicationProperties = %v", m.ApplicationProperties)
	}
}

// The envelopes in testdata/envelopes are written from the host's serialization rules (see
// their README): each must give back the message the host was handed.
func TestServiceBusMessage_HostEnvelopes(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "envelopes")
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "create-contact-sync.json"))
	if err != nil {
		t.Fatal(err)
	}
	enqueued := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		file          string
		form          string
		deliveryCount int
		sequence      int64
		correlationID string
		sessionID     string
	}{
		// dataType binary: Data is the byte[] body, which Json.NET writes as base64
		// (ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue returns the
		// byte[] as is for DataType.Binary).
		{"binary-json.json", FormBinary, 1, 42, "7d9e1f20-3b4c-4d5e-8f60-718293a4b5c6", ""},
		// Every key of ServiceBusTriggerBindingStrategy.AddBindingData set; SequenceNumber, a
		// long, past 2^53 arrives as its digits and must not lose precision.
		{"binary-all-keys.json", FormBinary, 3, 9007199254740993, "7d9e1f20-3b4c-4d5e-8f60-718293a4b5c6", "3c8a1f52-6d4b-ef11-8409-000d3a1b2c3d"},
		// No dataType: the body is a string, which goes through JsonConvert.SerializeObject
		// before the envelope is serialized, and the JSON body's top-level properties overwrite
		// same-named metadata: CorrelationId is the RemoteExecutionContext's.
		{"string-json.json", FormString, 1, 42, "0f6b2c3d-8e9a-4b1c-9d2e-3f4a5b6c7d8e", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			req, err := ParseInvokeRequest(raw)
			if err != nil {
				t.Fatal(err)
			}
			m, err := req.ServiceBusMessage("message")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Body, body) {
				t.Errorf("body differs from the message's (%d bytes, want %d): %.80q", len(m.Body), len(body), m.Body)
			}
			if m.Form != tt.form {
				t.Errorf("form = %q, want %q", m.Form, tt.form)
			}
			// Strings arrive as SerializeObject text inside a string: one layer more to remove.
			if m.MessageID != "5b0c6f1e-3a2d-4c8b-9e7f-1a2b3c4d5e6f" || m.ContentType != "application/json" {
				t.Errorf("MessageId %q, ContentType %q", m.MessageID, m.ContentType)
			}
			// Numbers arrive as their digits in a string.
			if m.DeliveryCount != tt.deliveryCount || m.SequenceNumber != tt.sequence {
				t.Errorf("DeliveryCount %d, SequenceNumber %d; want %d, %d", m.DeliveryCount, m.SequenceNumber, tt.deliveryCount, tt.sequence)
			}
			if m.CorrelationID != tt.correlationID || m.SessionID != tt.sessionID {
				t.Errorf("CorrelationId %q, SessionId %q; want %q, %q", m.CorrelationID, m.SessionID, tt.correlationID, tt.sessionID)
			}
			// DateTime and DateTimeOffset are re-parsed from ToString: whole seconds, and
			// EnqueuedTimeUtc has no zone at all.
			if !m.EnqueuedTime.Equal(enqueued) {
				t.Errorf("EnqueuedTime = %v, want %v", m.EnqueuedTime, enqueued)
			}
			// ApplicationProperties is an object (JObject.FromObject accepts a dictionary).
			if got := m.ApplicationProperties["http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName"]; got != "contact" {
				t.Errorf("ApplicationProperties EntityLogicalName = %v, want contact", got)
			}
		})
	}
}

func TestServiceBusMessage_EnqueuedTimeForms(t *testing.T) {
	want := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		meta map[string]string
		want time.Time
	}{
		{"EnqueuedTimeUtc without a zone is UTC", map[string]string{"EnqueuedTimeUtc": quote("2024-05-01T09:00:00")}, want},
		{"EnqueuedTime with an offset", map[string]string{"EnqueuedTime": quote("2024-05-01T11:00:00+02:00")}, want},
		{"EnqueuedTime wins over EnqueuedTimeUtc", map[string]string{"EnqueuedTime": quote("2024-05-01T09:00:00+00:00"), "EnqueuedTimeUtc": quote("2024-05-01T08:00:00")}, want},
		{"a fraction without a zone", map[string]string{"EnqueuedTimeUtc": quote("2024-05-01T09:00:00.250")}, want.Add(250 * time.Millisecond)},
		{"a JSON-encoded RFC 3339 text (older emulators)", map[string]string{"EnqueuedTimeUtc": quote(quote("2024-05-01T09:00:00Z"))}, want},
		{"EnqueuedTime unreadable falls back to EnqueuedTimeUtc", map[string]string{"EnqueuedTime": quote("soon"), "EnqueuedTimeUtc": quote("2024-05-01T09:00:00")}, want},
		{"neither present is zero", map[string]string{}, time.Time{}},
	}
	data := quote(base64.StdEncoding.EncodeToString([]byte(event)))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseInvokeRequest(envelope(data, tt.meta))
			if err != nil {
				t.Fatal(err)
			}
			m, err := req.ServiceBusMessage("message")
			if err != nil {
				t.Fatal(err)
			}
			if !m.EnqueuedTime.Equal(tt.want) || m.EnqueuedTime.Location() != time.UTC {
				t.Fatalf("EnqueuedTime = %v, want %v in UTC", m.EnqueuedTime, tt.want)
			}
		})
	}
}

func TestServiceBusMessage_UserPropertiesWhenApplicationPropertiesAbsent(t *testing.T) {
	data := quote(base64.StdEncoding.EncodeToString([]byte(event)))
	req, err := ParseInvokeRequest(envelope(data, map[string]string{"UserProperties": `{"sizeExceeded":true}`}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := req.ServiceBusMessage("message")
	if err != nil {
		t.Fatal(err)
	}
	if m.ApplicationProperties["sizeExceeded"] != true {
		t.Fatalf("ApplicationProperties = %v, want UserProperties' values", m.ApplicationProperties)
	}
}

func TestServiceBusMessage_StringValueKeepsItsOwnQuotes(t *testing.T) {
	// A MessageId that is itself `"x"` (quotes included) arrives encoded three times; exactly
	// the host's two layers come off.
	data := quote(base64.StdEncoding.EncodeToString([]byte(event)))
	req, err := ParseInvokeRequest(envelope(data, map[string]string{"MessageId": quote(quote(`"x"`)), "CorrelationId": quote(quote("123"))}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := req.ServiceBusMessage("message")
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != `"x"` || m.CorrelationID != "123" {
		t.Fatalf("MessageId %q, CorrelationId %q; want %q and %q", m.MessageID, m.CorrelationID, `"x"`, "123")
	}
}

func TestServiceBusMessage_MissingBinding(t *testing.T) {
	req, err := ParseInvokeRequest([]byte(`{"Data":{},"Metadata":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := req.ServiceBusMessage("message"); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("err = %v, want ErrNoMessage", err)
	}
}

func TestParseInvokeRequest_RejectsNonJSON(t *testing.T) {
	if _, err := ParseInvokeRequest([]byte("<xml/>")); err == nil {
		t.Fatal("want an error for a non-JSON envelope")
	}
}

func FuzzServiceBusMessage(f *testing.F) {
	f.Add(envelope(quote(base64.StdEncoding.EncodeToString([]byte(event))), map[string]string{"MessageId": quote(`"x"`)}))
	f.Add(envelope(quote(event), map[string]string{"DeliveryCount": quote("1")}))
	f.Add([]byte(`{"Data":{"message":null},"Metadata":{"ApplicationProperties":"\"{}\""}}`))
	f.Add([]byte(`{"Data":{"message":"   "}}`))
	f.Add(envelope(quote(quote(event)), map[string]string{"EnqueuedTimeUtc": quote("2024-05-01T09:00:00"), "SequenceNumber": "9007199254740993"}))
	f.Add([]byte(`{"Data":{"message":"\"unterminated"},"Metadata":{"MessageId":"\"\\\"","UserProperties":"{"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseInvokeRequest(body)
		if err != nil {
			return
		}
		m, err := req.ServiceBusMessage("message")
		if err == nil && m == nil {
			t.Fatal("nil message without an error")
		}
	})
}
