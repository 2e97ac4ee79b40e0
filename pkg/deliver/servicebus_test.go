package deliver_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/sbdest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// These tests send through the real azservicebus SDK to the AMQP stand-in
// (test/servicebus-standin) and read what arrived from its side channel.

func sbConsumer(name, connection string, edit func(*config.Consumer, *sbdest.Spec)) config.Consumer {
	c := config.Consumer{
		Name:           name,
		Type:           "servicebus",
		Format:         deliver.FormatRow,
		Timeout:        2 * time.Second,
		Retry:          config.Retry{Attempts: 2, InitialDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		Breaker:        config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1},
		MaxConcurrency: 16,
	}
	s := sbdest.Spec{Connection: connection}
	edit(&c, &s)
	c.Spec = s
	return c
}

func TestServiceBus_QueueMessageCarriesIDPropertiesAndSession(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("crm-contacts"))
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue, s.SessionKey = "crm-contacts", "recordId"
	}))
	ev := testEvent()

	r := f.deliverOne(t, "bus")

	if !r.Delivered || r.Attempts != 1 {
		t.Fatalf("result = %+v, want delivered in 1 attempt", r)
	}
	msgs := sb.Messages(t, "crm-contacts")
	if len(msgs) != 1 {
		t.Fatalf("%d messages on the queue, want 1", len(msgs))
	}
	m := msgs[0]
	if m.MessageID != ev.ID || m.ContentType != "application/json" || m.CorrelationID != ev.CorrelationID ||
		m.SessionID != ev.RecordID || m.Subject != "contact.update" {
		t.Errorf("message = id %q, content type %q, correlation %q, session %q, subject %q", m.MessageID, m.ContentType, m.CorrelationID, m.SessionID, m.Subject)
	}
	wantProps := map[string]any{"table": "contact", "message": "Update", "route": "contacts", "correlationId": ev.CorrelationID, "recordId": ev.RecordID}
	for k, v := range wantProps {
		if m.ApplicationProperties[k] != v {
			t.Errorf("application property %s = %v, want %v", k, m.ApplicationProperties[k], v)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(m.Body, &body); err != nil || body["id"] != ev.ID || body["recordId"] != ev.RecordID {
		t.Errorf("body = %s (%v), want the normalized event", m.Body, err)
	}
}

func TestServiceBus_TopicGetsCloudEventWithoutSession(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithTopics("crm-events"))
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Topic, c.Format = "crm-events", deliver.FormatCloudEvent
	}))

	r := f.deliverOne(t, "bus")

	if !r.Delivered {
		t.Fatalf("result = %+v, want delivered", r)
	}
	m := sb.Messages(t, "crm-events")[0]
	var ce map[string]any
	if err := json.Unmarshal(m.Body, &ce); err != nil || ce["specversion"] != "1.0" || ce["type"] != "com.microsoft.dataverse.contact.update" {
		t.Errorf("body = %s (%v), want a CloudEvent", m.Body, err)
	}
	// The AMQP binding's properties come with the structured event too (its section 3.2.3).
	if m.ApplicationProperties["cloudEvents:type"] != "com.microsoft.dataverse.contact.update" || m.ApplicationPropertyTypes["cloudEvents:time"] != "timestamp" {
		t.Errorf("properties %v (types %v), want the cloudEvents: ones", m.ApplicationProperties, m.ApplicationPropertyTypes)
	}
	if m.ContentType != "application/cloudevents+json" || m.SessionID != "" || m.MessageID != testEvent().ID {
		t.Errorf("content type %q, session %q, id %q", m.ContentType, m.SessionID, m.MessageID)
	}
}

// Binary content mode on Service Bus is the CloudEvents AMQP binding, section 3.1: the body is
// the data, content-type is datacontenttype, every other attribute an application property
// named cloudEvents:<attribute> in its AMQP type (time a timestamp).
func TestServiceBus_CloudEventBinaryModeIsTheAMQPBinding(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("ce-binary"))
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue, c.Format = "ce-binary", deliver.FormatCloudEvent
		c.CloudEvent = config.CloudEvent{Mode: "binary", TypePrefix: "com.contoso.crm"}
	}))

	if r := f.deliverOne(t, "bus"); !r.Delivered {
		t.Fatalf("result = %+v, want delivered", r)
	}

	m := sb.Messages(t, "ce-binary")[0]
	ev := testEvent()
	want := map[string]any{
		"cloudEvents:specversion": "1.0",
		"cloudEvents:id":          ev.ID,
		"cloudEvents:source":      "https://contoso.crm4.dynamics.com/",
		"cloudEvents:type":        "com.contoso.crm.contact.update",
		"cloudEvents:subject":     ev.RecordID,
	}
	for k, v := range want {
		if m.ApplicationProperties[k] != v || m.ApplicationPropertyTypes[k] != "string" {
			t.Errorf("%s = %v (%s), want the string %v", k, m.ApplicationProperties[k], m.ApplicationPropertyTypes[k], v)
		}
	}
	if typ := m.ApplicationPropertyTypes["cloudEvents:time"]; typ != "timestamp" {
		t.Errorf("cloudEvents:time is a %s, want an AMQP timestamp", typ)
	}
	if at, _ := m.ApplicationProperties["cloudEvents:time"].(string); !strings.HasPrefix(at, "2024-05-01T10:00:00.123") {
		t.Errorf("cloudEvents:time = %v, want the operation's time to the millisecond", m.ApplicationProperties["cloudEvents:time"])
	}
	var data map[string]any
	if err := json.Unmarshal(m.Body, &data); err != nil || data["id"] != ev.ID || data["specversion"] != nil {
		t.Errorf("body = %s (%v), want the normalized event alone", m.Body, err)
	}
	if m.ContentType != "application/json" {
		t.Errorf("content type %q, want the data's, application/json", m.ContentType)
	}
}

func TestServiceBus_RawFormatSendsTheBytesAsReceived(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("raw-events"))
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue, c.Format = "raw-events", deliver.FormatRaw
	}))

	f.deliverOne(t, "bus")

	if got := sb.Messages(t, "raw-events")[0].Body; !bytes.Equal(got, testEvent().Raw) {
		t.Errorf("body = %s, want the raw event", got)
	}
}

func TestServiceBus_MissingEntityIsNotRetried(t *testing.T) {
	sb := testenv.StartServiceBus(t)
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue = "no-such-queue"
		c.Retry.Attempts = 4
	}))

	r := f.deliverOne(t, "bus")

	if r.Delivered || r.Attempts != 1 || r.Kind != failures.KindDelivery {
		t.Errorf("result = %+v, want failed after 1 attempt: a missing queue does not appear on retry", r)
	}
	if n := len(f.rec.failures()); n != 1 {
		t.Errorf("%d failures recorded, want 1", n)
	}
}

func TestServiceBus_UnreachableNamespaceIsRetried(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("crm-contacts"))
	sb.Kill()
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue = "crm-contacts"
		c.Timeout = 500 * time.Millisecond
		c.Retry.Attempts = 3
	}))

	r := f.deliverOne(t, "bus")

	if r.Delivered || r.Attempts != 3 {
		t.Errorf("result = %+v, want failed after all 3 attempts", r)
	}
}

func TestServiceBus_RecoversWhenTheBrokerComesBack(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("crm-contacts"))
	f := newDeliverer(t, 5*time.Second, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) {
		s.Queue = "crm-contacts"
		c.Retry.Attempts = 1
	}))
	if r := f.deliverOne(t, "bus"); !r.Delivered {
		t.Fatalf("first delivery = %+v", r)
	}
	sb.Stop()
	if r := f.deliverOne(t, "bus"); r.Delivered {
		t.Fatalf("delivery while stopped = %+v, want failed", r)
	}
	sb.Restart(t)

	r := f.deliverOne(t, "bus")

	if !r.Delivered {
		t.Errorf("delivery after restart = %+v, want the sender to reconnect", r)
	}
	if n := len(sb.Messages(t, "crm-contacts")); n != 2 {
		t.Errorf("%d messages on the queue, want 2", n)
	}
}
