package queue_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/queue"
)

var quick = azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}

func testEvent() *dataverse.Event {
	return &dataverse.Event{
		ID:               "evt-7f3a9c",
		Message:          "Create",
		Table:            "account",
		RecordID:         "5e6f7a8b-0000-4000-8000-00000000000b",
		OrganizationID:   "0f0e0d0c-0000-4000-8000-00000000000a",
		CorrelationID:    "9a8b7c6d-0000-4000-8000-000000000001",
		SizeExceeded:     true,
		OrganizationHost: "contoso.crm4.dynamics.com",
		Raw:              []byte("\ufeff" + `{"MessageName":"Create","PrimaryEntityName":"account"}`),
	}
}

func openSender(t *testing.T, cfg queue.Config) *queue.Sender {
	t.Helper()
	s, err := queue.Open(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func TestEnqueue_RoundTripThroughTheSDK(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities(queue.DefaultQueue))
	s := openSender(t, queue.Config{ConnectionString: sb.ConnectionString, Retry: quick})
	ev := testEvent()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	if err := s.Enqueue(ctx, ev); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	client, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString, &azservicebus.ClientOptions{RetryOptions: quick})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	rcv, err := client.NewReceiverForQueue(queue.DefaultQueue, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := rcv.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	m := msgs[0]
	if err := rcv.CompleteMessage(ctx, m, nil); err != nil {
		t.Errorf("complete: %v", err)
	}
	if !bytes.Equal(m.Body, ev.Raw) {
		t.Errorf("body = %q, want the raw bytes, byte-order mark included", m.Body)
	}
	if m.MessageID != ev.ID || m.ContentType == nil || *m.ContentType != "application/json" ||
		m.CorrelationID == nil || *m.CorrelationID != ev.CorrelationID {
		t.Errorf("message id %q, content type %v, correlation id %v", m.MessageID, m.ContentType, m.CorrelationID)
	}
	want := map[string]any{"organization": ev.OrganizationID, "table": "account", "message": "Create", "correlationId": ev.CorrelationID, "sizeExceeded": true,
		"organizationHost": "contoso.crm4.dynamics.com"}
	for k, v := range want {
		if m.ApplicationProperties[k] != v {
			t.Errorf("application property %s = %#v, want %#v", k, m.ApplicationProperties[k], v)
		}
	}
}

func TestEnqueue_UsesTheConfiguredQueue(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("custom-ingress"))
	s := openSender(t, queue.Config{ConnectionString: sb.ConnectionString, Queue: "custom-ingress", Retry: quick})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	if err := s.Enqueue(ctx, testEvent()); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	if n := len(sb.Messages(t, "custom-ingress")); n != 1 {
		t.Errorf("%d messages on custom-ingress, want 1", n)
	}
}

func TestEnqueue_FailsWhenServiceBusIsDown(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities(queue.DefaultQueue))
	sb.Kill()
	s := openSender(t, queue.Config{ConnectionString: sb.ConnectionString, Retry: quick})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()

	if err := s.Enqueue(ctx, testEvent()); err == nil {
		t.Error("Enqueue succeeded with Service Bus down; the webhook would acknowledge an event nobody has")
	}
}

func TestOpen_RefusesAmbiguousOrMissingConfig(t *testing.T) {
	cases := map[string]queue.Config{
		"neither": {},
		"both":    {ConnectionString: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true", Namespace: "x.servicebus.windows.net"},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if s, err := queue.Open(t.Context(), cfg, nil); err == nil {
				_ = s.Close(t.Context())
				t.Error("Open accepted the config")
			}
		})
	}
}
