package testenv

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// The envelopes in testdata/envelopes are written from the host's serialization rules
// (ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue in
// azure-functions-host, the keys of ServiceBusTriggerBindingStrategy.AddBindingData in the
// Service Bus extension; see their README). The emulator must write the same thing for the
// same message, or a handler that passes here could fail under the host.

type envelopeJSON struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

func readFixture(t *testing.T, name string) envelopeJSON {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(RepoRoot(), "testdata", "envelopes", name))
	if err != nil {
		t.Fatal(err)
	}
	var env envelopeJSON
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return env
}

func decodeEnvelope(t *testing.T, raw []byte) envelopeJSON {
	t.Helper()
	var env envelopeJSON
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("emulator envelope: %v", err)
	}
	return env
}

// fixtureMessage is the message the fixtures were written for.
func fixtureMessage(t *testing.T, allKeys bool) *azservicebus.ReceivedMessage {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(RepoRoot(), "testdata", "events", "create-contact-sync.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock [16]byte
	if _, err := hex.Decode(lock[:], []byte(strings.ReplaceAll("e2a1f4c3-7b6d-4e5f-a1b2-c3d4e5f6a7b8", "-", ""))); err != nil {
		t.Fatal(err)
	}
	// A fraction of a second the host drops: it re-parses every DateTime from its ToString.
	enqueued := time.Date(2024, 5, 1, 9, 0, 0, 987_000_000, time.UTC)
	seq := int64(42)
	str := func(s string) *string { return &s }
	claims := "http://schemas.microsoft.com/xrm/2011/Claims/"
	m := &azservicebus.ReceivedMessage{
		Body:           body,
		MessageID:      "5b0c6f1e-3a2d-4c8b-9e7f-1a2b3c4d5e6f",
		DeliveryCount:  1,
		LockToken:      lock,
		EnqueuedTime:   &enqueued,
		ContentType:    str("application/json"),
		SequenceNumber: &seq,
		CorrelationID:  str("7d9e1f20-3b4c-4d5e-8f60-718293a4b5c6"),
		ApplicationProperties: map[string]any{
			claims + "Organization":        "contoso.crm.dynamics.com",
			claims + "User":                "9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d",
			claims + "InitiatingUser":      "9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d",
			claims + "EntityLogicalName":   "contact",
			claims + "RequestName":         "Create",
			claims + "InitiatingUserAgent": "Microsoft Dynamics CRM/9.0",
		},
	}
	if allKeys {
		record := "3c8a1f52-6d4b-ef11-8409-000d3a1b2c3d"
		expires := time.Date(2024, 5, 15, 9, 0, 0, 0, time.UTC)
		big := int64(9007199254740993)
		m.DeliveryCount = 3
		m.DeadLetterSource = str("dataverse-events")
		m.ExpiresAt = &expires
		m.ReplyTo, m.To, m.Subject = str("replies"), str("dvrouter"), str("contact")
		m.SessionID, m.ReplyToSessionID, m.PartitionKey = str(record), str("reply-session"), str(record)
		m.SequenceNumber = &big
		m.RawAMQPMessage = &azservicebus.AMQPAnnotatedMessage{MessageAnnotations: map[any]any{"x-opt-via-partition-key": record}}
	}
	return m
}

// sameMetadata compares metadata values as JSON (key order aside), on the keys of want; sys
// is compared by its keys and MethodName, as UtcNow and RandGuid change with every call.
func sameMetadata(t *testing.T, got, want map[string]json.RawMessage) {
	t.Helper()
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("Metadata.%s missing; the host sends %s", key, w)
			continue
		}
		var gv, wv any
		_ = json.Unmarshal(g, &gv)
		_ = json.Unmarshal(w, &wv)
		if key == "sys" {
			gs, _ := gv.(map[string]any)
			ws, _ := wv.(map[string]any)
			if !slices.Equal(slices.Sorted(maps.Keys(gs)), slices.Sorted(maps.Keys(ws))) || gs["MethodName"] != ws["MethodName"] {
				t.Errorf("Metadata.sys = %s, want the keys and MethodName of %s", g, w)
			}
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(gs["UtcNow"])); err != nil {
				t.Errorf("Metadata.sys.UtcNow = %v: %v", gs["UtcNow"], err)
			}
			continue
		}
		if !reflect.DeepEqual(gv, wv) {
			t.Errorf("Metadata.%s = %s, the host sends %s", key, g, w)
		}
	}
}

func TestEnvelope_WritesTheHostsBinaryEnvelopes(t *testing.T) {
	for _, tt := range []struct {
		fixture string
		allKeys bool
	}{
		{"binary-json.json", false},
		{"binary-all-keys.json", true},
	} {
		t.Run(tt.fixture, func(t *testing.T) {
			want := readFixture(t, tt.fixture)
			raw, err := Envelope("DataverseQueue", "message", fixtureMessage(t, tt.allKeys))
			if err != nil {
				t.Fatal(err)
			}
			got := decodeEnvelope(t, raw)
			if string(got.Data["message"]) != string(want.Data["message"]) {
				t.Errorf("Data.message differs from the fixture's base64 body")
			}
			sameMetadata(t, got.Metadata, want.Metadata)
			// And nothing the host would not send: null values are left out.
			for key := range got.Metadata {
				if _, ok := want.Metadata[key]; !ok {
					t.Errorf("Metadata.%s = %s is not in the host's envelope", key, got.Metadata[key])
				}
			}
		})
	}
}

func TestStringEnvelope_WritesTheHostsEnvelopeForABindingWithoutDataType(t *testing.T) {
	want := readFixture(t, "string-json.json")
	m := fixtureMessage(t, false)
	raw, err := StringEnvelope("DataverseQueue", "message", m)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeEnvelope(t, raw)
	if string(got.Data["message"]) != string(want.Data["message"]) {
		t.Errorf("Data.message = %.120s..., want the body encoded twice: %.120s...", got.Data["message"], want.Data["message"])
	}
	// The fixture holds four of the body's properties; the emulator adds all of them.
	sameMetadata(t, got.Metadata, want.Metadata)
	if _, ok := got.Metadata["InputParameters"]; !ok {
		t.Errorf("the body's InputParameters are not in Metadata")
	}
}

// A handler answering each message in its own way, by MessageId.
func answeringHandler(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var env envelopeJSON
		_ = json.Unmarshal(raw, &env)
		var id string
		_ = json.Unmarshal(env.Metadata["MessageId"], &id) // the SerializeObject text: "\"ok\""
		_ = json.Unmarshal([]byte(id), &id)
		mu.Lock()
		seen = append(seen, id+" "+r.Header.Get("User-Agent")+" "+r.Header.Get("X-Azure-Functions-HostVersion"))
		mu.Unlock()
		switch id {
		case "ok":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"Outputs":{},"Logs":["ok: done"],"ReturnValue":null}`)
		case "refused":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"Outputs":{},"Logs":["refused: this line is never read"]}`)
		case "text":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "done")
		case "empty":
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestHost_SettlesByTheAnswerAsTheHostDoes(t *testing.T) {
	const queue = "invocations"
	sb := StartServiceBus(t, WithEntities(queue), WithMaxDeliveryCount(2), WithLockDuration(500*time.Millisecond))
	srv, seen := answeringHandler(t)
	host := StartHost(t, HostOptions{ConnectionString: sb.ConnectionString, Queue: queue, HandlerURL: srv.URL, Concurrency: 4})

	client, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	sender, err := client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []string{"ok", "refused", "text", "empty"} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{MessageID: &id, Body: []byte(`{}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}

	want := map[string]string{
		"ok":      "completed",
		"refused": "deadlettered", // abandoned on every delivery, until the max delivery count
		"text":    "deadlettered", // a 2xx the host cannot read fails the invocation too
		"empty":   "deadlettered", // never settled: the lock expires, twice
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		states := map[string]string{}
		for _, m := range sb.Messages(t, queue) {
			states[m.MessageID] = m.State
		}
		if reflect.DeepEqual(states, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message states %v, want %v (host %+v)", states, want, host.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	host.Stop()
	s := host.Stats()
	if s.Completed != 1 || s.Refused != 2 || s.Malformed != 2 || s.Hangs != 2 || s.Abandoned != 4 || s.Invocations != 7 {
		t.Errorf("host stats %+v, want 7 invocations: 1 completed, 2 refused and 2 malformed (abandoned), 2 hangs", s)
	}
	if logs := host.Logs(); !reflect.DeepEqual(logs, []string{"ok: done"}) {
		t.Errorf("Logs kept %q, want only the completed invocation's line", logs)
	}
	for _, line := range seen() {
		if !strings.HasSuffix(line, " Azure-Functions-Host/4.1036.1 4.1036.1") {
			t.Errorf("invocation headers: %q", line)
		}
	}
}

func TestReadResult_ContentTypeAndShape(t *testing.T) {
	tests := []struct {
		contentType, body string
		want              outcome
	}{
		{"application/json", `{"Outputs":{},"Logs":["a"],"ReturnValue":{"x":1}}`, outcomeSucceeded},
		{"application/json; charset=utf-8", `{}`, outcomeSucceeded},
		{"text/json", `{"Logs":[]}`, outcomeSucceeded},
		{"application/json", ``, outcomeHang},
		{"application/json", `null`, outcomeHang},
		{"", ``, outcomeHang},
		{"", `{}`, outcomeFailed}, // no Content-Type: no formatter reads it
		{"text/plain", `{}`, outcomeFailed},
		{"application/json", `[]`, outcomeFailed},
		{"application/json", `"done"`, outcomeFailed},
		{"application/json", `{"Logs":"one line"}`, outcomeFailed},
		{"application/json", `{"Outputs":`, outcomeFailed},
	}
	for _, tt := range tests {
		if _, got := readResult(tt.contentType, []byte(tt.body)); got != tt.want {
			t.Errorf("readResult(%q, %q) = %d, want %d", tt.contentType, tt.body, got, tt.want)
		}
	}
}
