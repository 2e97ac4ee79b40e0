package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/queue"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// The queued round trip runs every piece for real except the Functions host: the webhook
// enqueues to the Service Bus stand-in with the azservicebus SDK, testenv.Host (standing in
// for the host's Service Bus trigger) receives in PeekLock and POSTs the binary-data envelope
// to /DataverseQueue, and the event reaches a loopback consumer. No failure store: a delivery
// that fails cannot be kept, so the invocation must fail and Service Bus must redeliver.

const queuedTestQueue = "dataverse-events"

// queuedFixture is dvrouter in queued mode, served on loopback, with one consumer behind it.
type queuedFixture struct {
	sb       *testenv.ServiceBus
	consumer *testenv.Consumer
	host     *testenv.Host
	url      string // dvrouter's base URL
}

func newQueuedFixture(t *testing.T, consumerYAML string, replies ...testenv.Reply) *queuedFixture {
	t.Helper()
	sb := testenv.StartServiceBus(t, testenv.WithEntities(queuedTestQueue))
	consumer := testenv.StartConsumer(t, replies...)

	env := map[string]string{config.EnvServiceBus: sb.ConnectionString, config.EnvQueue: queuedTestQueue}
	settings, err := config.LoadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	routesYAML := "consumers:\n  - name: erp\n    type: http\n    url: " + consumer.URL + "/events\n" + consumerYAML +
		"routes:\n  - name: opportunities\n    table: opportunity\n    consumers: [erp]\n"
	file, err := config.LoadRoutesBytes("routes.yaml", []byte(routesYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	routes, err := route.Compile(file, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deliverer, err := deliver.New(file.Consumers, nil, deliver.Options{Budget: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deliverer.Close(context.Background()) })
	q, err := queue.Open(context.Background(), queue.Config{ConnectionString: sb.ConnectionString, Queue: queuedTestQueue}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close(context.Background()) })

	h := handlers.New(handlers.Deps{
		Settings:   settings,
		Dispatcher: &dispatch.Dispatcher{Routes: routes, Deliver: deliverer, Log: zerolog.Nop()},
		Queue:      q,
		Log:        zerolog.Nop(),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := testenv.StartHost(t, testenv.HostOptions{
		ConnectionString: sb.ConnectionString,
		Queue:            queuedTestQueue,
		HandlerURL:       srv.URL,
		Concurrency:      4,
	})
	return &queuedFixture{sb: sb, consumer: consumer, host: host, url: srv.URL}
}

// postEvent POSTs a Dataverse event to the webhook and returns the status and the event id
// from the answer.
func (fx *queuedFixture) postEvent(t *testing.T, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(fx.url+"/api/dataverse/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		ID     string `json:"id"`
		Queued bool   `json:"queued"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("webhook answer: %v", err)
	}
	if resp.StatusCode == http.StatusAccepted && !answer.Queued {
		t.Errorf("webhook answered 202 without queued: true")
	}
	return resp.StatusCode, answer.ID
}

// waitSettled waits until the queue's only message is completed, and the host has counted
// every settlement it made, and returns the message.
func (fx *queuedFixture) waitSettled(t *testing.T) testenv.SBMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := fx.sb.Messages(t, queuedTestQueue)
		s := fx.host.Stats()
		if len(msgs) == 1 && msgs[0].State == "completed" && s.Completed+s.Abandoned+s.SettleErrors == s.Invocations {
			return msgs[0]
		}
		if time.Now().After(deadline) {
			var states []string
			for _, m := range msgs {
				states = append(states, fmt.Sprintf("%s %s after %d deliveries", m.MessageID, m.State, m.DeliveryCount))
			}
			t.Fatalf("queue after 20s: %v (host: %+v)", states, fx.host.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func opportunityEvent(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestQueuedRoundTrip_EventReachesConsumerOnceWithMessageIDEventID(t *testing.T) {
	fx := newQueuedFixture(t, "")

	status, id := fx.postEvent(t, opportunityEvent(t))
	if status != http.StatusAccepted || id == "" {
		t.Fatalf("webhook = %d, id %q; want 202 with the event id", status, id)
	}
	msg := fx.waitSettled(t)
	if msg.MessageID != id {
		t.Errorf("Service Bus MessageId = %q, want the event id %q", msg.MessageID, id)
	}
	if msg.DeliveryCount != 1 {
		t.Errorf("message delivered %d times, want 1", msg.DeliveryCount)
	}

	got := fx.consumer.Requests()
	if len(got) != 1 {
		t.Fatalf("consumer got %d requests, want 1", len(got))
	}
	if key := got[0].Header.Get("Idempotency-Key"); key != id {
		t.Errorf("Idempotency-Key = %q, want the event id %q", key, id)
	}
	var row struct {
		ID    string `json:"id"`
		Table string `json:"table"`
	}
	if err := json.Unmarshal(got[0].Body, &row); err != nil {
		t.Fatalf("consumer body: %v", err)
	}
	if row.ID != id || row.Table != "opportunity" {
		t.Errorf("consumer got event %q of table %q, want %q of opportunity", row.ID, row.Table, id)
	}
	if s := fx.host.Stats(); s.Invocations != 1 || s.Completed != 1 || s.Abandoned != 0 {
		t.Errorf("host stats = %+v, want one invocation, completed", s)
	}
}

func TestQueuedRoundTrip_UnrecordableFailureIsRedelivered(t *testing.T) {
	// One attempt per delivery: the consumer's 500 fails the delivery at once; with no
	// failure store it cannot be kept, so the invocation fails, the host abandons the message
	// and the redelivery reaches the consumer, which now answers 200.
	fx := newQueuedFixture(t, "    retry: {attempts: 1}\n", testenv.ReplyStatus(http.StatusInternalServerError))

	status, id := fx.postEvent(t, opportunityEvent(t))
	if status != http.StatusAccepted {
		t.Fatalf("webhook = %d, want 202", status)
	}
	msg := fx.waitSettled(t)
	if msg.MessageID != id || msg.DeliveryCount != 2 {
		t.Errorf("message %q delivered %d times, want %q twice", msg.MessageID, msg.DeliveryCount, id)
	}
	got := fx.consumer.Requests()
	if len(got) != 2 {
		t.Fatalf("consumer got %d requests, want 2 (the failed one, then the redelivery)", len(got))
	}
	for i, r := range got {
		if key := r.Header.Get("Idempotency-Key"); key != id {
			t.Errorf("request %d: Idempotency-Key = %q, want %q", i, key, id)
		}
	}
	if s := fx.host.Stats(); s.Abandoned != 1 || s.Completed != 1 {
		t.Errorf("host stats = %+v, want one abandoned, then one completed", s)
	}
}
