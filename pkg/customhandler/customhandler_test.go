package customhandler

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

const event = `{"MessageName":"Create","PrimaryEntityName":"contact","CorrelationId":"c0ffee00-0000-0000-0000-000000000001"}`

// envelope builds the host's JSON the way FACTS.md section 4 describes it.
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
		{"no dataType: JSON text inside a JSON string", quote(event), event},
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
