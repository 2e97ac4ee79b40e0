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
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/queue"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// The queued round trip runs every piece for real except the Functions host: the webhook
// enqueues to the Service Bus stand-in with the azservicebus SDK, testenv.Host (standing in
// for the host's Service Bus trigger, as strict as the host about answers) receives in
// PeekLock and POSTs the envelope to /DataverseQueue, and the event reaches a loopback
// consumer. The queue has duplicate detection on, as infra/modules/servicebus.bicep creates it.
// Without a failure store, a delivery that fails cannot be kept, so the invocation must fail
// and Service Bus must redeliver.

const queuedTestQueue = "dataverse-events"

// queuedFixture is dvrouter in queued mode, served on loopback, with one consumer behind it.
type queuedFixture struct {
	sb       *testenv.ServiceBus
	consumer *testenv.Consumer
	host     *testenv.Host
	store    *failures.Store // nil without queuedOptions.store
	url      string          // dvrouter's base URL
}

type queuedOptions struct {
	consumerYAML string          // extra settings of the consumer
	replies      []testenv.Reply // the consumer's answers, in turn
	store        *testenv.Azurite
	dataType     string // the trigger binding's, as testenv.HostOptions.DataType
}

func newQueuedFixture(t *testing.T, opts queuedOptions) *queuedFixture {
	t.Helper()
	sb := testenv.StartServiceBus(t, testenv.WithEntities(queuedTestQueue), testenv.WithDuplicateDetection(queuedTestQueue))
	consumer := testenv.StartConsumer(t, opts.replies...)
	fx := &queuedFixture{sb: sb, consumer: consumer}

	env := map[string]string{config.EnvServiceBus: sb.ConnectionString, config.EnvQueue: queuedTestQueue}
	settings, err := config.LoadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	routesYAML := "consumers:\n  - name: erp\n    type: http\n    url: " + consumer.URL + "/events\n" + opts.consumerYAML +
		"routes:\n  - name: opportunities\n    table: opportunity\n    consumers: [erp]\n"
	file, err := config.LoadRoutesBytes("routes.yaml", []byte(routesYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	routes, err := route.Compile(file, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recorder deliver.Recorder
	dispatcher := &dispatch.Dispatcher{Routes: routes, Log: zerolog.Nop()}
	if opts.store != nil {
		table := fmt.Sprintf("Queued%d%d", time.Now().UnixNano()%1e6, tableSeq.Add(1))
		fx.store, err = failures.Open(context.Background(), failures.Config{ConnectionString: opts.store.ConnectionString(), Table: table})
		if err != nil {
			t.Fatal(err)
		}
		recorder, dispatcher.Recorder = fx.store, fx.store
	}
	deliverer, err := deliver.New(file.Consumers, recorder, deliver.Options{Budget: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dispatcher.Deliver = deliverer
	t.Cleanup(func() { _ = deliverer.Close(context.Background()) })
	q, err := queue.Open(context.Background(), queue.Config{ConnectionString: sb.ConnectionString, Queue: queuedTestQueue}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close(context.Background()) })

	h := handlers.New(handlers.Deps{Settings: settings, Dispatcher: dispatcher, Queue: q, Log: zerolog.Nop()})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	fx.url = srv.URL
	fx.host = testenv.StartHost(t, testenv.HostOptions{
		ConnectionString: sb.ConnectionString,
		Queue:            queuedTestQueue,
		HandlerURL:       srv.URL,
		Concurrency:      4,
		DataType:         opts.dataType,
	})
	return fx
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

// waitSettled waits until the queue's only message is completed (duplicates dropped beside it
// aside), and the host has counted every settlement it made, and returns the message.
func (fx *queuedFixture) waitSettled(t *testing.T) testenv.SBMessage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var kept []testenv.SBMessage
		for _, m := range fx.sb.Messages(t, queuedTestQueue) {
			if m.State != "duplicate" {
				kept = append(kept, m)
			}
		}
		msgs := kept
		s := fx.host.Stats()
		if len(msgs) == 1 && msgs[0].State == "completed" && s.Completed+s.Abandoned+s.SettleErrors == s.Invocations {
			return msgs[0]
		}
		if time.Now().After(deadline) {
			var states []string
			for _, m := range msgs {
				states = append(states, fmt.Sprintf("%s %s after %d deliveries", m.MessageID, m.State, m.DeliveryCount))
			}
			t.Fatalf("queue after 30s: %v (host: %+v)", states, fx.host.Stats())
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
	fx := newQueuedFixture(t, queuedOptions{})

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
	fx := newQueuedFixture(t, queuedOptions{consumerYAML: "    retry: {attempts: 1}\n", replies: []testenv.Reply{testenv.ReplyStatus(http.StatusInternalServerError)}})

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

func TestQueuedRoundTrip_WebhookRetriedByDataverseReachesConsumersOnce(t *testing.T) {
	// Dataverse retries a webhook that got no answer (or a 502/503/504) with the same body. The
	// event id, which is the message's MessageId, is the same, so the queue's duplicate
	// detection drops the second copy: the consumer gets the event once.
	fx := newQueuedFixture(t, queuedOptions{})
	body := opportunityEvent(t)
	status1, id1 := fx.postEvent(t, body)
	status2, id2 := fx.postEvent(t, body)
	if status1 != http.StatusAccepted || status2 != http.StatusAccepted || id1 != id2 {
		t.Fatalf("webhook answered %d %q, then %d %q; want 202 twice with the same id", status1, id1, status2, id2)
	}
	msg := fx.waitSettled(t)
	if msg.MessageID != id1 {
		t.Fatalf("completed message %q, want %q", msg.MessageID, id1)
	}
	var states []string
	for _, m := range fx.sb.Messages(t, queuedTestQueue) {
		states = append(states, m.State)
	}
	if fmt.Sprint(states) != "[completed duplicate]" {
		t.Fatalf("queue holds %v, want the event completed and its retry dropped as a duplicate", states)
	}
	if n := fx.consumer.Count(); n != 1 {
		t.Fatalf("consumer got the event %d times, want once", n)
	}
	if s := fx.host.Stats(); s.Invocations != 1 {
		t.Errorf("host made %d invocations, want 1", s.Invocations)
	}
}

func TestQueuedRoundTrip_StoreDownMessageIsNotCompletedThenKeptOnceBack(t *testing.T) {
	// The consumer fails; the failure store is down, so the failure cannot be recorded. The
	// invocation must fail (non-2xx) so that the host abandons the message and Service Bus keeps
	// it; once the store is back, a redelivery records the failure and completes the message.
	az := testenv.StartAzurite(t)
	fx := newQueuedFixture(t, queuedOptions{
		consumerYAML: "    retry: {attempts: 1}\n",
		replies:      []testenv.Reply{testenv.ReplyStatus(http.StatusInternalServerError)},
		store:        az,
	})
	fx.consumer.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))
	az.Stop()

	status, id := fx.postEvent(t, opportunityEvent(t))
	if status != http.StatusAccepted {
		t.Fatalf("webhook = %d, want 202 (the queue needs no failure store)", status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for fx.host.Stats().Refused < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no refused invocation while the store is down (host %+v)", fx.host.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if msgs := fx.sb.Messages(t, queuedTestQueue); len(msgs) != 1 || msgs[0].State == "completed" || msgs[0].State == "deadlettered" {
		t.Fatalf("with the store down the message is %+v, want it still on the queue", msgs)
	}
	if s := fx.host.Stats(); s.Completed != 0 {
		t.Fatalf("a message was completed while its failure could not be recorded: %+v", s)
	}

	down := time.Now()
	az.Start(t)
	msg := fx.waitSettled(t)
	t.Logf("store back after %s; completed after %d deliveries (host %+v)", time.Since(down).Round(time.Millisecond), msg.DeliveryCount, fx.host.Stats())
	if msg.MessageID != id || msg.DeliveryCount < 3 {
		t.Errorf("message %q completed after %d deliveries, want %q after at least 3", msg.MessageID, msg.DeliveryCount, id)
	}
	page, err := fx.store.List(t.Context(), failures.Query{Consumer: "erp"})
	if err != nil || len(page.Items) != 1 || page.Items[0].EventID != id || page.Items[0].Kind != failures.KindDelivery {
		t.Fatalf("store holds %+v (err %v), want the one failure of event %s", page.Items, err, id)
	}
	if n := fx.consumer.Count(); n != msg.DeliveryCount {
		t.Errorf("consumer got %d attempts over %d deliveries, want one each", n, msg.DeliveryCount)
	}
	// Only the completed invocation's Logs reach the function's log; the refused ones' reasons
	// survive only on dvrouter's stdout.
	if logs := fx.host.Logs(); len(logs) != 1 || !strings.Contains(logs[0], "1 failures recorded") {
		t.Errorf("host kept Logs %q, want only the completed invocation's", logs)
	}
}

func TestQueuedRoundTrip_BindingWithoutDataTypeStillDelivers(t *testing.T) {
	// A function.json without "dataType": "binary": the host sends the body as text encoded
	// twice, and the body's own CorrelationId over the message's.
	fx := newQueuedFixture(t, queuedOptions{dataType: testenv.DataTypeString})
	status, id := fx.postEvent(t, opportunityEvent(t))
	if status != http.StatusAccepted {
		t.Fatalf("webhook = %d, want 202", status)
	}
	fx.waitSettled(t)
	got := fx.consumer.Requests()
	if len(got) != 1 || got[0].Header.Get("Idempotency-Key") != id {
		t.Fatalf("consumer got %d requests, want the event %s once", len(got), id)
	}
}
