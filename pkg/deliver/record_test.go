package deliver_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/sbdest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

func TestDeliver_RecordsOneFailurePerFailedConsumer(t *testing.T) {
	down := testenv.StartConsumer(t)
	down.Otherwise(testenv.ReplyStatus(http.StatusBadGateway))
	rejecting := testenv.StartConsumer(t)
	rejecting.Otherwise(testenv.ReplyStatus(http.StatusBadRequest))
	up := testenv.StartConsumer(t)
	f := newDeliverer(t, 0, consumerConfig("down", down.URL), consumerConfig("rejecting", rejecting.URL), consumerConfig("up", up.URL))
	ev := testEvent()

	out, err := f.d.Deliver(t.Context(), ev, []deliver.Target{
		{Route: "r1", Consumer: "down"}, {Route: "r2", Consumer: "rejecting"}, {Route: "r1", Consumer: "up"},
	})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}

	if len(out.Delivered) != 1 || len(out.Failed) != 2 {
		t.Fatalf("outcome = %+v, want 1 delivered, 2 failed", out)
	}
	got := map[string]failures.Failure{}
	for _, fl := range f.rec.failures() {
		if _, dup := got[fl.Consumer]; dup {
			t.Errorf("consumer %s recorded twice", fl.Consumer)
		}
		got[fl.Consumer] = fl
	}
	want := map[string]failures.Failure{
		"down":      {Route: "r1", Attempts: 4, LastStatusCode: http.StatusBadGateway},
		"rejecting": {Route: "r2", Attempts: 1, LastStatusCode: http.StatusBadRequest},
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %v, want failures of %v", got, want)
	}
	occurred, _ := time.Parse(time.RFC3339, ev.OperationCreatedOn)
	for name, w := range want {
		g := got[name]
		if g.EventID != ev.ID || g.Route != w.Route || g.Table != "contact" || g.Message != "Update" ||
			g.RecordID != ev.RecordID || g.CorrelationID != ev.CorrelationID || g.Kind != failures.KindDelivery ||
			g.OrganizationHost != ev.OrganizationHost ||
			g.Attempts != w.Attempts || g.LastStatusCode != w.LastStatusCode || g.LastError == "" ||
			!g.OccurredAt.Equal(occurred) || string(g.Payload) != string(ev.Raw) {
			t.Errorf("failure of %s = %+v", name, g)
		}
	}
	logged := f.logs.withMsg(t, "failure recorded")
	if len(logged) != 2 {
		t.Fatalf("%d \"failure recorded\" lines, want 2", len(logged))
	}
	for _, l := range logged {
		if l["level"] != "error" || l["eventId"] != ev.ID || l["kind"] != "delivery" || l["error"] == "" || l["route"] == "" {
			t.Errorf("log line %v lacks level error, eventId, consumer, route, kind or error", l)
		}
	}
}

func TestDeliver_UnrecordableFailureIsNotDurable(t *testing.T) {
	down := testenv.StartConsumer(t)
	down.Otherwise(testenv.ReplyStatus(http.StatusServiceUnavailable))
	up := testenv.StartConsumer(t)
	f := newDeliverer(t, 0, consumerConfig("down", down.URL), consumerConfig("up", up.URL))
	f.rec.err = errStoreDown

	out, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{target("down"), target("up")})

	if !errors.Is(err, deliver.ErrNotDurable) || !errors.Is(err, errStoreDown) {
		t.Errorf("Deliver error = %v, want ErrNotDurable wrapping the store's error", err)
	}
	if len(out.Delivered) != 1 || len(out.Failed) != 1 {
		t.Errorf("outcome = %+v, want it complete despite the error", out)
	}
}

func TestDeliver_WithoutRecorderAFailureIsNotDurable(t *testing.T) {
	down := testenv.StartConsumer(t)
	down.Otherwise(testenv.ReplyStatus(http.StatusBadRequest))
	d, err := deliver.New([]config.Consumer{consumerConfig("down", down.URL)}, nil, deliver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(t.Context())

	_, err = d.Deliver(t.Context(), testEvent(), []deliver.Target{target("down")})

	if !errors.Is(err, deliver.ErrNotDurable) {
		t.Errorf("Deliver error = %v, want ErrNotDurable", err)
	}
}

func TestDeliver_AllDeliveredRecordsNothing(t *testing.T) {
	up := testenv.StartConsumer(t)
	f := newDeliverer(t, 0, consumerConfig("up", up.URL))
	f.rec.err = errStoreDown // would fail any Record call

	out, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{target("up")})

	if err != nil || len(out.Delivered) != 1 || out.Failed == nil {
		t.Errorf("Deliver = %+v, %v; want 1 delivered, an empty (non-nil) failed list, no error", out, err)
	}
}

func TestDeliver_UnknownConsumerIsARecordedFailure(t *testing.T) {
	f := newDeliverer(t, 0)

	out, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{target("nobody")})

	if err != nil || len(out.Failed) != 1 || len(f.rec.failures()) != 1 {
		t.Errorf("Deliver = %+v, %v; recorded %d; want one recorded failure", out, err, len(f.rec.failures()))
	}
}

func TestSend_RecordsNothing(t *testing.T) {
	down := testenv.StartConsumer(t)
	down.Otherwise(testenv.ReplyStatus(http.StatusBadRequest))
	f := newDeliverer(t, 0, consumerConfig("down", down.URL))

	r := f.d.Send(t.Context(), testEvent(), target("down"))

	if r.Delivered || r.Attempts != 1 || r.StatusCode != http.StatusBadRequest {
		t.Errorf("Send = %+v, want a failed result after 1 attempt", r)
	}
	if n := len(f.rec.failures()); n != 0 {
		t.Errorf("Send recorded %d failures, want 0", n)
	}
}

func TestNew_RejectsInvalidConsumers(t *testing.T) {
	ok := consumerConfig("ok", "http://127.0.0.1:1/hook")
	cases := []struct {
		name string
		edit func(c *config.Consumer)
	}{
		{"unknown type", func(c *config.Consumer) { c.Type = "ftp" }},
		{"unknown format", func(c *config.Consumer) { c.Format = "xml" }},
		{"relative url", func(c *config.Consumer) { httpSpec(c).URL = "/hook" }},
		{"non-http url", func(c *config.Consumer) { httpSpec(c).URL = "ftp://example.com/hook" }},
		{"servicebus without entity", func(c *config.Consumer) {
			c.Type, c.Spec = "servicebus", sbdest.Spec{Connection: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"}
		}},
		{"servicebus without namespace or connection", func(c *config.Consumer) { c.Type, c.Spec = "servicebus", sbdest.Spec{Queue: "q"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := consumerConfig("bad", "http://127.0.0.1:1/hook")
			tc.edit(&bad)

			d, err := deliver.New([]config.Consumer{ok, bad}, &memRecorder{}, deliver.Options{})

			if err == nil {
				d.Close(t.Context())
				t.Fatal("New accepted the consumer")
			}
		})
	}
	t.Run("duplicate name", func(t *testing.T) {
		if _, err := deliver.New([]config.Consumer{ok, ok}, &memRecorder{}, deliver.Options{}); err == nil {
			t.Fatal("New accepted two consumers with one name")
		}
	})
}

func TestDeliver_EventWithoutTimeIsRecordedUnderStableKeys(t *testing.T) {
	down := testenv.StartConsumer(t)
	down.Otherwise(testenv.ReplyStatus(http.StatusBadRequest))
	f := newDeliverer(t, 0, consumerConfig("down", down.URL))
	ev := testEvent()
	ev.OperationCreatedOn = "" // OperationCreatedOn null in the RemoteExecutionContext

	for range 2 { // Dataverse retrying the webhook, or Service Bus redelivering
		if _, err := f.d.Deliver(t.Context(), ev, []deliver.Target{target("down")}); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}

	got := f.rec.failures()
	if len(got) != 2 {
		t.Fatalf("recorded %d failures, want 2 records", len(got))
	}
	// The store's keys derive from OccurredAt: the two records must land on one entity.
	if !got[0].OccurredAt.Equal(got[1].OccurredAt) || !got[0].OccurredAt.IsZero() {
		t.Errorf("OccurredAt %s then %s, want the zero time both times", got[0].OccurredAt, got[1].OccurredAt)
	}
}
