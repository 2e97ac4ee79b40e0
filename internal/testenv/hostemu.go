package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// HostOptions configures a Host, the stand-in for the Azure Functions host's Service Bus
// trigger.
type HostOptions struct {
	// ConnectionString and Queue say where to receive from (the Service Bus stand-in's
	// ConnectionString and the queue the webhook enqueues to).
	ConnectionString string
	Queue            string
	// HandlerURL is the custom handler's base URL, "http://127.0.0.1:PORT". The host POSTs
	// invocations to HandlerURL + "/" + Function and probes HandlerURL + "/".
	HandlerURL string
	// Function is the function name (default "DataverseQueue"), Binding the trigger binding's
	// name in its function.json (default "message").
	Function string
	Binding  string
	// Concurrency is how many messages are invoked at once (the host's
	// maxConcurrentCalls; default 16).
	Concurrency int
	// InvocationTimeout bounds one invocation (the host's functionTimeout; default 5m).
	InvocationTimeout time.Duration
	// LockRenewal renews a message's lock this often while its invocation runs, as the host's
	// auto lock renewal does; 0 means 20s, which suits the stand-in's default 60s lock.
	LockRenewal time.Duration
	// UserAgent is sent as User-Agent (default "Azure-Functions-Host/4.0").
	UserAgent string
}

// HostStats counts what a Host did.
type HostStats struct {
	Invocations      int64 // POSTs made (each message delivery is one)
	Completed        int64 // messages completed after a 2xx answer
	Abandoned        int64 // messages abandoned after a non-2xx answer or a connection error
	ConnectionErrors int64 // invocations that got no HTTP answer
	SettleErrors     int64 // complete or abandon calls that failed (the lock then expires)
}

// Host stands in for the Azure Functions host running a serviceBusTrigger function with
// `"dataType": "binary"` for a custom handler: it receives from a queue in PeekLock with the
// real azservicebus SDK, POSTs each message to the handler in the custom-handler invocation
// envelope (FACTS.md section 4), completes the message on a 2xx answer and abandons it
// otherwise, so Service Bus redelivers it. When the handler cannot be reached, it pauses, as
// the host does while it restarts its worker, until GET / answers again. Test code only.
type Host struct {
	opts HostOptions
	http *http.Client

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{}

	down atomic.Bool // the handler did not answer; invocations wait for the probe

	invocations, completed, abandoned, connErrors, settleErrors atomic.Int64
}

// StartHost starts a Host and stops it when the test ends.
func StartHost(t testing.TB, opts HostOptions) *Host {
	t.Helper()
	h := NewHost(opts)
	t.Cleanup(h.Stop)
	if err := h.Start(); err != nil {
		t.Fatalf("functions host emulator: %v", err)
	}
	return h
}

// NewHost makes a Host without starting it.
func NewHost(opts HostOptions) *Host {
	if opts.Function == "" {
		opts.Function = "DataverseQueue"
	}
	if opts.Binding == "" {
		opts.Binding = "message"
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.InvocationTimeout <= 0 {
		opts.InvocationTimeout = 5 * time.Minute
	}
	if opts.LockRenewal <= 0 {
		opts.LockRenewal = 20 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "Azure-Functions-Host/4.0"
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = opts.Concurrency
	return &Host{opts: opts, http: &http.Client{Transport: transport}}
}

// Start connects to Service Bus and begins receiving. Starting a running Host does nothing.
func (h *Host) Start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running {
		return nil
	}
	client, err := azservicebus.NewClientFromConnectionString(h.opts.ConnectionString, &azservicebus.ClientOptions{
		// Short retries: the stand-in is on loopback, and a test that stops it wants the
		// host to notice quickly rather than after the SDK's minute of silent retrying.
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 3, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second},
	})
	if err != nil {
		return fmt.Errorf("service bus client: %w", err)
	}
	receiver, err := client.NewReceiverForQueue(h.opts.Queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock})
	if err != nil {
		_ = client.Close(context.Background())
		return fmt.Errorf("receiver for %s: %w", h.opts.Queue, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.running, h.cancel, h.done = true, cancel, make(chan struct{})
	go h.run(ctx, client, receiver, h.done)
	return nil
}

// Stop stops receiving, waits for the invocations in flight to be answered and settled, and
// disconnects. Stopping a stopped Host does nothing.
func (h *Host) Stop() {
	h.mu.Lock()
	if !h.running {
		h.mu.Unlock()
		return
	}
	cancel, done := h.cancel, h.done
	h.running = false
	h.mu.Unlock()
	cancel()
	<-done
}

// Stats returns the counts so far.
func (h *Host) Stats() HostStats {
	return HostStats{
		Invocations:      h.invocations.Load(),
		Completed:        h.completed.Load(),
		Abandoned:        h.abandoned.Load(),
		ConnectionErrors: h.connErrors.Load(),
		SettleErrors:     h.settleErrors.Load(),
	}
}

func (h *Host) run(ctx context.Context, client *azservicebus.Client, receiver *azservicebus.Receiver, done chan struct{}) {
	defer close(done)
	slots := make(chan struct{}, h.opts.Concurrency)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = receiver.Close(closeCtx)
		_ = client.Close(closeCtx)
	}()
	for ctx.Err() == nil {
		// Ask for as many messages as there are free slots, so none waits locked in memory.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
		for len(slots) < cap(slots) {
			slots <- struct{}{}
			free++
		}
		if h.down.Load() {
			h.waitForHandler(ctx)
		}
		msgs, err := receiver.ReceiveMessages(ctx, free, nil)
		for range free - len(msgs) {
			<-slots
		}
		for _, m := range msgs {
			wg.Go(func() {
				defer func() { <-slots }()
				h.invoke(receiver, m)
			})
		}
		if err != nil && ctx.Err() == nil {
			// The stand-in may be down or restarting; try again shortly.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

// invoke hands one message to the handler and settles it by the answer. It does not use the
// receive loop's context: a Host being stopped lets invocations in flight finish and settle,
// as the Functions host drains on shutdown.
func (h *Host) invoke(receiver *azservicebus.Receiver, m *azservicebus.ReceivedMessage) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.InvocationTimeout)
	defer cancel()
	stopRenew := h.renewLock(ctx, receiver, m)
	ok, reachable := h.post(ctx, m)
	stopRenew()

	settleCtx, cancelSettle := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelSettle()
	if ok {
		if err := receiver.CompleteMessage(settleCtx, m, nil); err != nil {
			h.settleErrors.Add(1)
			return
		}
		h.completed.Add(1)
		return
	}
	if err := receiver.AbandonMessage(settleCtx, m, nil); err != nil {
		h.settleErrors.Add(1)
	} else {
		h.abandoned.Add(1)
	}
	if !reachable {
		h.down.Store(true)
	}
}

// renewLock renews m's lock every LockRenewal until the returned function is called.
func (h *Host) renewLock(ctx context.Context, receiver *azservicebus.Receiver, m *azservicebus.ReceivedMessage) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(h.opts.LockRenewal)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = receiver.RenewMessageLock(ctx, m, nil)
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// post sends the invocation. ok is a 2xx answer; reachable is false when no answer came.
func (h *Host) post(ctx context.Context, m *azservicebus.ReceivedMessage) (ok, reachable bool) {
	h.invocations.Add(1)
	body, err := Envelope(h.opts.Function, h.opts.Binding, m)
	if err != nil {
		return false, true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opts.HandlerURL+"/"+h.opts.Function, bytes.NewReader(body))
	if err != nil {
		return false, true
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", h.opts.UserAgent)
	req.Header.Set("X-Azure-Functions-InvocationId", newUUID())
	resp, err := h.http.Do(req)
	if err != nil {
		h.connErrors.Add(1)
		return false, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300, true
}

// waitForHandler polls GET / until the handler answers anything, as the host does before it
// sends a restarted worker invocations.
func (h *Host) waitForHandler(ctx context.Context) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.opts.HandlerURL+"/", nil)
		probe, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := h.http.Do(req.WithContext(probe))
		cancel()
		if err == nil {
			_ = resp.Body.Close()
			h.down.Store(false)
			return
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// Envelope is the JSON the Functions host POSTs to /<function> for a serviceBusTrigger binding
// named binding with `"dataType": "binary"`: Data holds the base64 of the body; Metadata holds the message's
// scalar properties JSON-encoded inside strings ("DeliveryCount": "1",
// "MessageId": "\"abc\"") and ApplicationProperties as an object.
func Envelope(function, binding string, m *azservicebus.ReceivedMessage) ([]byte, error) {
	meta := map[string]any{}
	encoded := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("metadata %s: %w", key, err)
		}
		meta[key] = string(b)
		return nil
	}
	var errs []error
	errs = append(errs, encoded("MessageId", m.MessageID))
	meta["DeliveryCount"] = strconv.FormatUint(uint64(m.DeliveryCount), 10)
	if m.EnqueuedTime != nil {
		errs = append(errs, encoded("EnqueuedTimeUtc", m.EnqueuedTime.UTC()))
	}
	if m.ContentType != nil {
		errs = append(errs, encoded("ContentType", *m.ContentType))
	}
	if m.CorrelationID != nil {
		errs = append(errs, encoded("CorrelationId", *m.CorrelationID))
	}
	if m.SessionID != nil {
		errs = append(errs, encoded("SessionId", *m.SessionID))
	}
	if m.SequenceNumber != nil {
		meta["SequenceNumber"] = strconv.FormatInt(*m.SequenceNumber, 10)
	}
	if m.LockedUntil != nil {
		errs = append(errs, encoded("LockedUntilUtc", m.LockedUntil.UTC()))
	}
	props := m.ApplicationProperties
	if props == nil {
		props = map[string]any{}
	}
	meta["ApplicationProperties"] = props
	meta["sys"] = map[string]any{"MethodName": function, "UtcNow": time.Now().UTC(), "RandomGuid": newUUID()}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"Data":     map[string]any{binding: base64.StdEncoding.EncodeToString(m.Body)},
		"Metadata": meta,
	})
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
