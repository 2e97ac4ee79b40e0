package deliver_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/sbdest"
)

// sendEvent delivers ev once to an HTTP consumer of format c.Format (edited by edit) and returns
// what the consumer received.
func sendEvent(t *testing.T, reread bool, edit func(*config.Consumer)) testenv.ReceivedRequest {
	t.Helper()
	srv := testenv.StartConsumer(t)
	c := consumerConfig("erp", srv.URL)
	edit(&c)
	f := newDeliverer(t, 0, c)
	ev := testEvent()
	ev.Reread = reread
	out, err := f.d.Deliver(t.Context(), ev, []deliver.Target{target("erp")})
	if err != nil || len(out.Delivered) != 1 {
		t.Fatalf("Deliver = %+v, %v", out, err)
	}
	return srv.Requests()[0]
}

func TestReread_RawConsumerGetsTheHeaderOnlyForAReReadEvent(t *testing.T) {
	raw := func(c *config.Consumer) { c.Format = deliver.FormatRaw }
	if got := sendEvent(t, true, raw).Header.Get("X-Dvrouter-Reread"); got != "true" {
		t.Errorf("re-read event: X-Dvrouter-Reread = %q, want true", got)
	}
	if h := sendEvent(t, false, raw).Header; h.Get("X-Dvrouter-Reread") != "" {
		t.Errorf("normal event: X-Dvrouter-Reread = %q, want none", h.Get("X-Dvrouter-Reread"))
	}
}

func TestReread_CloudEventCarriesTheExtensionAttribute(t *testing.T) {
	structured := func(c *config.Consumer) { c.Format = deliver.FormatCloudEvent }
	var ce map[string]any
	if err := json.Unmarshal(sendEvent(t, true, structured).Body, &ce); err != nil || ce["dvrouterreread"] != true {
		t.Errorf("structured re-read event: dvrouterreread = %v (%v), want true", ce["dvrouterreread"], err)
	}
	ce = nil
	if err := json.Unmarshal(sendEvent(t, false, structured).Body, &ce); err != nil || ce["dvrouterreread"] != nil {
		t.Errorf("structured normal event: dvrouterreread = %v (%v), want none", ce["dvrouterreread"], err)
	}
	binary := func(c *config.Consumer) {
		c.Format, c.CloudEvent = deliver.FormatCloudEvent, config.CloudEvent{Mode: "binary"}
	}
	if got := sendEvent(t, true, binary).Header.Get("ce-dvrouterreread"); got != "true" {
		t.Errorf("binary re-read event: ce-dvrouterreread = %q, want true", got)
	}
	if got := sendEvent(t, false, binary).Header.Get("ce-dvrouterreread"); got != "" {
		t.Errorf("binary normal event: ce-dvrouterreread = %q, want none", got)
	}
}

func TestReread_ServiceBusMessageHasTheProperty(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("raw-events"))
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue, c.Format = "raw-events", deliver.FormatRaw
	}))
	for _, reread := range []bool{true, false} {
		ev := testEvent()
		ev.Reread = reread
		if out, err := f.d.Deliver(t.Context(), ev, []deliver.Target{target("bus")}); err != nil || len(out.Delivered) != 1 {
			t.Fatalf("Deliver = %+v, %v", out, err)
		}
	}
	msgs := sb.Messages(t, "raw-events")
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if got := msgs[0].ApplicationProperties["dvrouterReread"]; got != true {
		t.Errorf("re-read event: dvrouterReread = %v, want true", got)
	}
	if got, ok := msgs[1].ApplicationProperties["dvrouterReread"]; ok {
		t.Errorf("normal event: dvrouterReread = %v, want none", got)
	}
}
