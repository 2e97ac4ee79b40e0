package testenv

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// The envelope must be the Functions host's, byte for byte where FACTS.md section 4 says how:
// a handler that passes against the emulator must pass against the host.
func TestEnvelope_IsTheHostsBinaryServiceBusShape(t *testing.T) {
	enqueued := time.Date(2025, 1, 16, 4, 0, 0, 123000000, time.UTC)
	seq := int64(42)
	contentType, correlation := "application/json", "0f6b2c3d-8e9a-4b1c-9d2e-3f4a5b6c7d8e"
	body := []byte("{\"MessageName\":\"Update\"}\n\x00\xff")
	m := &azservicebus.ReceivedMessage{
		Body:                  body,
		MessageID:             "evt-1",
		DeliveryCount:         3,
		EnqueuedTime:          &enqueued,
		ContentType:           &contentType,
		CorrelationID:         &correlation,
		SequenceNumber:        &seq,
		ApplicationProperties: map[string]any{"table": "account", "sizeExceeded": false},
	}
	raw, err := Envelope("DataverseQueue", "message", m)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Data     map[string]json.RawMessage `json:"Data"`
		Metadata map[string]json.RawMessage `json:"Metadata"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}

	var data string
	if err := json.Unmarshal(env.Data["message"], &data); err != nil {
		t.Fatalf("Data.message is not a JSON string: %s", env.Data["message"])
	}
	if got, err := base64.StdEncoding.DecodeString(data); err != nil || string(got) != string(body) {
		t.Errorf("Data.message = %q, want the base64 of the body", data)
	}

	tests := []struct {
		key  string
		want string // the raw JSON the host sends
	}{
		{"MessageId", `"\"evt-1\""`},
		{"DeliveryCount", `"3"`},
		{"EnqueuedTimeUtc", `"\"2025-01-16T04:00:00.123Z\""`},
		{"ContentType", `"\"application/json\""`},
		{"CorrelationId", `"\"0f6b2c3d-8e9a-4b1c-9d2e-3f4a5b6c7d8e\""`},
		{"SequenceNumber", `"42"`},
		{"ApplicationProperties", `{"sizeExceeded":false,"table":"account"}`},
	}
	for _, tt := range tests {
		if got := string(env.Metadata[tt.key]); got != tt.want {
			t.Errorf("Metadata.%s = %s, want %s", tt.key, got, tt.want)
		}
	}
	if _, ok := env.Metadata["SessionId"]; ok {
		t.Errorf("Metadata.SessionId present for a message without a session")
	}
}
