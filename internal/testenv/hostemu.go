package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
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
	// DataType is the trigger binding's dataType: "binary" (the default, what
	// functions/DataverseQueue/function.json declares) or "string", which stands for a binding
	// without dataType: the body is sent as text encoded twice, and the top-level properties of
	// a JSON body overwrite same-named metadata.
	DataType string
	// HostVersion is sent as X-Azure-Functions-HostVersion and in User-Agent (default "4.1036.1").
	HostVersion string
	// UserAgent is sent as User-Agent (default "Azure-Functions-Host/" + HostVersion).
	UserAgent string
}

// HostStats counts what a Host did.
type HostStats struct {
	Invocations      int64 // POSTs made (each message delivery is one)
	Completed        int64 // messages completed after a 2xx answer with a JSON body
	Abandoned        int64 // messages abandoned: a non-2xx or non-JSON answer, or a connection error
	Refused          int64 // non-2xx answers (the invocation failed; its body and Logs are dropped)
	Malformed        int64 // 2xx answers whose body is not a JSON invocation result (failed too)
	Hangs            int64 // 2xx answers with an empty body: the host never completes these
	ConnectionErrors int64 // invocations that got no HTTP answer
	SettleErrors     int64 // complete or abandon calls that failed (the lock then expires)
}

// Host stands in for the Azure Functions host running a serviceBusTrigger function for a custom
// handler: it receives from a queue in PeekLock with the real azservicebus SDK, POSTs each
// message to the handler in the custom-handler invocation envelope (Envelope), and settles the
// message by the answer as azure-functions-host's DefaultHttpWorkerService does:
//
//   - a non-2xx answer fails the invocation (EnsureSuccessStatusCode) and its body, Logs
//     included, is never read: the message is abandoned and Service Bus redelivers it;
//   - a 2xx answer whose body is not a JSON invocation result fails it too (ReadAsAsync throws);
//   - a 2xx answer with an empty body (or `null`) reads as no result, and the host never sets
//     the invocation's outcome: it hangs until functionTimeout and the host restarts the worker.
//     The emulator counts it in Hangs and leaves the message unsettled; the lock expires and
//     Service Bus redelivers it;
//   - a 2xx JSON result completes the message; its Logs lines are kept (Logs).
//
// When the handler cannot be reached, it pauses, as the host does while it restarts its
// worker, until GET / answers again. Test code only.
type Host struct {
	opts HostOptions
	http *http.Client

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{}

	down atomic.Bool // the handler did not answer; invocations wait for the probe

	invocations, completed, abandoned, refused, malformed, hangs, connErrors, settleErrors atomic.Int64

	logMu sync.Mutex
	logs  []string // Logs lines of completed invocations, as the host would write them
}

// maxKeptLogs bounds what Logs keeps over a long run.
const maxKeptLogs = 100_000

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
	if opts.DataType == "" {
		opts.DataType = DataTypeBinary
	}
	if opts.HostVersion == "" {
		opts.HostVersion = "4.1036.1"
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "Azure-Functions-Host/" + opts.HostVersion
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
		Refused:          h.refused.Load(),
		Malformed:        h.malformed.Load(),
		Hangs:            h.hangs.Load(),
		ConnectionErrors: h.connErrors.Load(),
		SettleErrors:     h.settleErrors.Load(),
	}
}

// Logs returns the Logs lines of the invocations that completed, in the order they came. Lines
// from failed invocations are not there: the host never reads them.
func (h *Host) Logs() []string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return append([]string(nil), h.logs...)
}

func (h *Host) keepLogs(lines []string) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	if room := maxKeptLogs - len(h.logs); room > 0 {
		h.logs = append(h.logs, lines[:min(room, len(lines))]...)
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
	out := h.post(ctx, m)
	stopRenew()
	if out == outcomeHang {
		// Never settled: the lock runs out and Service Bus redelivers, as after the host has
		// given up on the invocation and restarted the worker.
		return
	}

	settleCtx, cancelSettle := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelSettle()
	if out == outcomeSucceeded {
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
	if out == outcomeUnreachable {
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

type outcome int

const (
	outcomeSucceeded   outcome = iota // 2xx with a JSON invocation result
	outcomeFailed                     // non-2xx, or a 2xx the host cannot read
	outcomeHang                       // 2xx with no result: the host would wait forever
	outcomeUnreachable                // no HTTP answer
)

// post sends the invocation and judges the answer as DefaultHttpWorkerService does.
func (h *Host) post(ctx context.Context, m *azservicebus.ReceivedMessage) outcome {
	h.invocations.Add(1)
	var body []byte
	var err error
	if h.opts.DataType == DataTypeString {
		body, err = StringEnvelope(h.opts.Function, h.opts.Binding, m)
	} else {
		body, err = Envelope(h.opts.Function, h.opts.Binding, m)
	}
	if err != nil {
		return outcomeFailed
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opts.HandlerURL+"/"+h.opts.Function, bytes.NewReader(body))
	if err != nil {
		return outcomeFailed
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", h.opts.UserAgent)
	req.Header.Set("X-Azure-Functions-HostVersion", h.opts.HostVersion)
	req.Header.Set("X-Azure-Functions-InvocationId", newUUID())
	resp, err := h.http.Do(req)
	if err != nil {
		h.connErrors.Add(1)
		return outcomeUnreachable
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// EnsureSuccessStatusCode throws before the body is read: its Logs are lost.
		_, _ = io.Copy(io.Discard, resp.Body)
		h.refused.Add(1)
		return outcomeFailed
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.connErrors.Add(1)
		return outcomeUnreachable
	}
	result, out := readResult(resp.Header.Get("Content-Type"), raw)
	switch out {
	case outcomeHang:
		h.hangs.Add(1)
	case outcomeFailed:
		h.malformed.Add(1)
	case outcomeSucceeded:
		h.keepLogs(result.Logs)
	}
	return out
}

// invocationResult is the host's HttpScriptInvocationResult, as Json.NET reads it.
type invocationResult struct {
	Outputs     map[string]json.RawMessage `json:"Outputs"`
	Logs        []string                   `json:"Logs"`
	ReturnValue json.RawMessage            `json:"ReturnValue"`
}

// readResult reads a 2xx answer as HttpContent.ReadAsAsync<HttpScriptInvocationResult> does
// with the default formatters: only a JSON media type has a formatter (anything else, or no
// Content-Type at all, throws); an empty body or `null` yields no result; anything but an
// object with those members throws.
func readResult(contentType string, raw []byte) (invocationResult, outcome) {
	var res invocationResult
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return res, outcomeHang
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "application/json" && mt != "text/json") {
		return res, outcomeFailed
	}
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &res) != nil {
		return res, outcomeFailed
	}
	return res, outcomeSucceeded
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

// Binding data types the Host can play.
const (
	DataTypeBinary = "binary"
	DataTypeString = "string"
)

// Envelope is the JSON the Functions host POSTs to /<function> for a serviceBusTrigger binding
// named binding with `"dataType": "binary"`: Data holds the body's base64 and Metadata the
// message's binding data, each value as azure-functions-host's
// ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue turns it into JSON.
// testdata/envelopes holds examples written from the same rules; hostemu_test.go checks that
// this writes them.
func Envelope(function, binding string, m *azservicebus.ReceivedMessage) ([]byte, error) {
	meta, err := metadata(function, m)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"Data":     map[string]any{binding: base64.StdEncoding.EncodeToString(m.Body)},
		"Metadata": meta,
	})
}

// StringEnvelope is the envelope for a binding without dataType: the body becomes a string (as
// UTF-8, invalid bytes replaced, as .NET decodes them), which goes through
// JsonConvert.SerializeObject and so arrives JSON-encoded twice. The top-level properties of a
// JSON object body are added to the binding data over same-named metadata keys (a
// RemoteExecutionContext's CorrelationId replaces the message's); they are encoded by the same
// rules as the rest, with null ones left out (that last point is inferred).
func StringEnvelope(function, binding string, m *azservicebus.ReceivedMessage) ([]byte, error) {
	meta, err := metadata(function, m)
	if err != nil {
		return nil, err
	}
	var props map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimPrefix(m.Body, []byte("\ufeff")), &props) == nil {
		for k, v := range props {
			if v, ok := payloadValue(v); ok {
				meta[k] = v
			}
		}
	}
	text, err := json.Marshal(string(m.Body)) // each invalid UTF-8 byte becomes U+FFFD
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"Data":     map[string]any{binding: string(text)},
		"Metadata": meta,
	})
}

// payloadValue encodes one top-level property of a JSON body as binding data: an object as
// itself, anything else as the text of its JSON (SerializeObject of a string is its JSON
// literal, of a number its digits).
func payloadValue(v json.RawMessage) (any, bool) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return nil, false
	case v[0] == '{':
		return v, true
	default:
		return string(v), true
	}
}

// hostTimeLayout is how Json.NET writes a DateTime of unspecified kind: the host re-parses
// every DateTime from its ToString (GetHttpScriptInvocationContextValue), which keeps whole
// seconds and no zone.
const hostTimeLayout = "2006-01-02T15:04:05"

// maxDateTimeOffset is .NET's DateTimeOffset.MaxValue to the second: the ExpiresAt of a message
// without a time to live (inferred from the SDK: the queue's default TTL is TimeSpan.MaxValue).
var maxDateTimeOffset = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// metadata is the binding data of ServiceBusTriggerBindingStrategy.AddBindingData (Service Bus
// extension v5) for m, plus sys, encoded as the host sends it: a string as the text of its JSON
// literal ("MessageId": "\"abc\""), a number as its digits in a string ("DeliveryCount": "1"),
// a DateTime as whole seconds with no zone ("EnqueuedTimeUtc": "2024-05-01T09:00:00"), a
// DateTimeOffset with its offset, a dictionary as an object. Null values are left out.
func metadata(function string, m *azservicebus.ReceivedMessage) (map[string]any, error) {
	meta := map[string]any{}
	str := func(key string, v *string) {
		if v != nil {
			b, _ := json.Marshal(*v) // a string always encodes
			meta[key] = string(b)
		}
	}
	times := func(utcKey, offsetKey string, t time.Time) {
		t = t.UTC().Truncate(time.Second)
		meta[utcKey] = t.Format(hostTimeLayout)
		meta[offsetKey] = t.Format(hostTimeLayout) + "+00:00"
	}
	meta["DeliveryCount"] = strconv.FormatUint(uint64(m.DeliveryCount), 10)
	str("DeadLetterSource", m.DeadLetterSource)
	lock := formatUUID(m.LockToken)
	str("LockToken", &lock)
	expires := maxDateTimeOffset
	if m.ExpiresAt != nil {
		expires = *m.ExpiresAt
	}
	times("ExpiresAtUtc", "ExpiresAt", expires)
	if m.EnqueuedTime != nil {
		times("EnqueuedTimeUtc", "EnqueuedTime", *m.EnqueuedTime)
	}
	id := m.MessageID
	str("MessageId", &id)
	str("ContentType", m.ContentType)
	str("ReplyTo", m.ReplyTo)
	if m.SequenceNumber != nil {
		meta["SequenceNumber"] = strconv.FormatInt(*m.SequenceNumber, 10)
	}
	str("To", m.To)
	str("Subject", m.Subject)
	str("Label", m.Subject) // the extension keeps the v4 name beside the new one
	str("CorrelationId", m.CorrelationID)
	props := m.ApplicationProperties
	if props == nil {
		props = map[string]any{}
	}
	meta["ApplicationProperties"] = props
	meta["UserProperties"] = props // the same object, under its v4 name
	str("SessionId", m.SessionID)
	str("ReplyToSessionId", m.ReplyToSessionID)
	str("PartitionKey", m.PartitionKey)
	if m.RawAMQPMessage != nil {
		if v, ok := m.RawAMQPMessage.MessageAnnotations["x-opt-via-partition-key"].(string); ok {
			str("TransactionPartitionKey", &v)
		}
	}
	// SystemBindingData: Json.NET writes its UtcNow, a DateTime of kind Utc, with 7 digits.
	meta["sys"] = map[string]any{
		"MethodName": function,
		"UtcNow":     time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"RandGuid":   newUUID(),
	}
	if _, err := json.Marshal(props); err != nil {
		return nil, fmt.Errorf("metadata ApplicationProperties: %w", err)
	}
	return meta, nil
}

func formatUUID(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}
