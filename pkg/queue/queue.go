// Package queue is the ingress queue of queued mode: the webhook puts each accepted Dataverse
// body on a Service Bus queue, and the DataverseQueue function takes it from there. Enqueued is
// durable, so the webhook may answer 202 as soon as Enqueue returns.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// DefaultQueue is the queue name when Config.Queue is empty (DVROUTER_QUEUE).
const DefaultQueue = "dataverse-events"

// Application property names set on every enqueued message.
const (
	PropOrganization  = "organization"
	PropTable         = "table"
	PropMessage       = "message"
	PropCorrelationID = "correlationId"
	PropSizeExceeded  = "sizeExceeded"
	PropOrgHost       = "organizationHost" // the webhook's x-ms-dynamics-organization, when it had one
)

// Config says where the queue is. Exactly one of ConnectionString (the `ServiceBusConnection`
// setting; `UseDevelopmentEmulator=true` works) and Namespace (the
// `ServiceBusConnection__fullyQualifiedNamespace` setting, managed identity) is set.
type Config struct {
	ConnectionString string
	Namespace        string
	ClientID         string // `ServiceBusConnection__clientId`: a user-assigned managed identity
	Queue            string // default DefaultQueue

	// Retry is the SDK's retry policy for one Enqueue; zero means a few quick retries (the
	// webhook caller is waiting, and Dataverse gives up after 60 s).
	Retry azservicebus.RetryOptions
}

// Sender puts events on the ingress queue. It is safe for concurrent use.
type Sender struct {
	client *azservicebus.Client
	sender *azservicebus.Sender
}

// Open makes the sender. cred is used with Namespace; nil builds a managed identity credential
// (with ClientID when set) or, without ClientID, azidentity's default chain. Open does not wait
// for the network: the first Enqueue connects, so start-up is never held up by Service Bus.
func Open(ctx context.Context, cfg Config, cred azcore.TokenCredential) (*Sender, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	retry := cfg.Retry
	if retry == (azservicebus.RetryOptions{}) {
		retry = azservicebus.RetryOptions{MaxRetries: 3, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	}
	opts := &azservicebus.ClientOptions{RetryOptions: retry}
	var client *azservicebus.Client
	var err error
	switch {
	case cfg.ConnectionString != "" && cfg.Namespace != "":
		return nil, errors.New("queue: set either a connection string or a namespace, not both")
	case cfg.ConnectionString != "":
		client, err = azservicebus.NewClientFromConnectionString(cfg.ConnectionString, opts)
	case cfg.Namespace != "":
		if cred == nil {
			if cred, err = credential(cfg.ClientID); err != nil {
				return nil, fmt.Errorf("queue: credential: %w", err)
			}
		}
		client, err = azservicebus.NewClient(cfg.Namespace, cred, opts)
	default:
		return nil, errors.New("queue: no connection string or namespace")
	}
	if err != nil {
		return nil, fmt.Errorf("queue: service bus client: %w", err)
	}
	name := cfg.Queue
	if name == "" {
		name = DefaultQueue
	}
	sender, err := client.NewSender(name, nil)
	if err != nil {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("queue: sender for %s: %w", name, err)
	}
	return &Sender{client: client, sender: sender}, nil
}

func credential(clientID string) (azcore.TokenCredential, error) {
	if clientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

// Enqueue puts ev's raw body on the queue, with MessageId = the event id (a webhook retried by
// Dataverse enqueues the same id, which duplicate detection drops). It returns nil only once
// Service Bus has accepted the message.
func (s *Sender) Enqueue(ctx context.Context, ev *dataverse.Event) error {
	contentType := "application/json"
	msg := &azservicebus.Message{
		Body:        ev.Raw,
		MessageID:   &ev.ID,
		ContentType: &contentType,
		ApplicationProperties: map[string]any{
			PropOrganization:  ev.OrganizationID,
			PropTable:         ev.Table,
			PropMessage:       ev.Message,
			PropCorrelationID: ev.CorrelationID,
			PropSizeExceeded:  ev.SizeExceeded,
		},
	}
	if ev.OrganizationHost != "" {
		msg.ApplicationProperties[PropOrgHost] = ev.OrganizationHost
	}
	if ev.CorrelationID != "" {
		msg.CorrelationID = &ev.CorrelationID
	}
	if err := s.sender.SendMessage(ctx, msg, nil); err != nil {
		return fmt.Errorf("enqueue event %s: %w", ev.ID, err)
	}
	return nil
}

// Close closes the sender and its connection.
func (s *Sender) Close(ctx context.Context) error {
	return errors.Join(s.sender.Close(ctx), s.client.Close(ctx))
}
