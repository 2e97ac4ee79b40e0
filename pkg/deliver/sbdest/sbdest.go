// Package sbdest delivers events to Azure Service Bus consumers: one message per event on a
// queue or topic, with the event id as MessageId so Service Bus duplicate detection drops a
// redelivered event.
package sbdest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// Application property names set on every message.
const (
	PropTable         = "table"
	PropMessage       = "message"
	PropRoute         = "route"
	PropCorrelationID = "correlationId"
	PropRecordID      = "recordId"
	// PropTest is true on a test event (and absent on every other message).
	PropTest = "dvrouterTest"
	// PropReread is true on an event whose row was read from the Dataverse Web API before
	// matching (dataverse.Event.Reread), which a raw body does not say; absent otherwise.
	PropReread = "dvrouterReread"
)

// Publisher sends to one queue or topic.
type Publisher struct {
	client          *azservicebus.Client
	sender          *azservicebus.Sender
	sessionByRecord bool
}

// New makes the publisher for consumer c. A `connection` consumer uses its connection string
// (UseDevelopmentEmulator=true included); a `namespace` consumer authenticates with the
// credential that credential returns, asked for only here, so a deployment without such
// consumers never builds one. Nothing is sent over the network until the first Publish.
func New(c config.Consumer, credential func() (azcore.TokenCredential, error)) (*Publisher, error) {
	s, err := spec(c)
	if err != nil {
		return nil, err
	}
	opts := &azservicebus.ClientOptions{
		// dvrouter's retry policy (attempts, backoff, breaker, budget) decides about retries. The
		// SDK keeps one quick retry of its own: after a dropped connection the first send only
		// learns that the old connection is gone, and the retry is what reconnects; without it
		// every reconnection would cost an attempt and count against the breaker.
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond},
	}
	var client *azservicebus.Client
	switch {
	case s.Connection != "":
		client, err = azservicebus.NewClientFromConnectionString(s.Connection, opts)
	case s.Namespace != "":
		var cred azcore.TokenCredential
		if cred, err = credential(); err != nil {
			return nil, fmt.Errorf("consumer %s: credential: %w", c.Name, err)
		}
		client, err = azservicebus.NewClient(s.Namespace, cred, opts)
	default:
		return nil, fmt.Errorf("consumer %s: neither namespace nor connection is set", c.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: service bus client: %w", c.Name, err)
	}
	entity := s.Queue
	if entity == "" {
		entity = s.Topic
	}
	if entity == "" {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("consumer %s: neither queue nor topic is set", c.Name)
	}
	sender, err := client.NewSender(entity, nil)
	if err != nil {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("consumer %s: sender for %s: %w", c.Name, entity, err)
	}
	return &Publisher{client: client, sender: sender, sessionByRecord: s.SessionKey == "recordId"}, nil
}

// Publish sends one message.
func (p *Publisher) Publish(ctx context.Context, m dest.Message) error {
	ev := m.Event
	msg := &azservicebus.Message{
		Body:        m.Body,
		MessageID:   &ev.ID,
		ContentType: &m.ContentType,
		Subject:     ptr(strings.ToLower(ev.Table + "." + ev.Message)),
		ApplicationProperties: map[string]any{
			PropTable:         ev.Table,
			PropMessage:       ev.Message,
			PropRoute:         m.Route,
			PropCorrelationID: ev.CorrelationID,
			PropRecordID:      ev.RecordID,
		},
	}
	if ev.CorrelationID != "" {
		msg.CorrelationID = &ev.CorrelationID
	}
	if ce := m.CloudEvent; ce != nil {
		setCloudEventProperties(msg.ApplicationProperties, ce)
	}
	if m.Test {
		msg.ApplicationProperties[PropTest] = true
	}
	if ev.Reread {
		msg.ApplicationProperties[PropReread] = true
	}
	if p.sessionByRecord {
		msg.SessionID = &ev.RecordID
	}
	if err := p.sender.SendMessage(ctx, msg, nil); err != nil {
		return classify(err)
	}
	return nil
}

// setCloudEventProperties writes ce as the CloudEvents AMQP binding's application properties
// (section 3.1.3: every attribute but datacontenttype, which is the message's content-type,
// named "cloudEvents:<attribute>", time as an AMQP timestamp). In binary mode they are the
// event's context; in structured mode the binding allows them beside the body (3.2.3), which
// lets subscriptions filter on type without reading the body.
func setCloudEventProperties(props map[string]any, ce *dest.CloudEvent) {
	props["cloudEvents:specversion"] = "1.0"
	props["cloudEvents:id"] = ce.ID
	props["cloudEvents:source"] = ce.Source
	props["cloudEvents:type"] = ce.Type
	if ce.Subject != "" {
		props["cloudEvents:subject"] = ce.Subject
	}
	if !ce.Time.IsZero() {
		props["cloudEvents:time"] = ce.Time.UTC()
	}
	if ce.Reread {
		props["cloudEvents:"+dest.CloudEventRereadExtension] = true
	}
}

// Close closes the sender and its connection.
func (p *Publisher) Close(ctx context.Context) error {
	return errors.Join(p.sender.Close(ctx), p.client.Close(ctx))
}

// permanentConditions are the AMQP errors that another attempt cannot fix.
var permanentConditions = map[amqp.ErrCond]bool{
	amqp.ErrCondNotFound:            true,
	amqp.ErrCondUnauthorizedAccess:  true,
	amqp.ErrCondNotAllowed:          true,
	amqp.ErrCondMessageSizeExceeded: true,
	amqp.ErrCondNotImplemented:      true,
	amqp.ErrCondInvalidField:        true,
	amqp.ErrCondDecodeError:         true,
	"com.microsoft:entity-disabled": true,
}

// classify sorts an SDK error: a missing entity, bad credentials, a message too large or a
// refused message are permanent; a lost connection, a timeout, a busy server and anything not
// recognised are worth another attempt.
func classify(err error) error {
	if errors.Is(err, azservicebus.ErrMessageTooLarge) {
		return dest.Permanent(err)
	}
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		switch sbErr.Code {
		case azservicebus.CodeUnauthorizedAccess, azservicebus.CodeNotFound:
			return dest.Permanent(err)
		}
	}
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && permanentConditions[amqpErr.Condition] {
		return dest.Permanent(err)
	}
	return &dest.Error{Err: err, Retryable: true}
}

func ptr[T any](v T) *T { return &v }
