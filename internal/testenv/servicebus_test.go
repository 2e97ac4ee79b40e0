package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// These tests drive the stand-in with the real azservicebus SDK. Each call gets a short
// context: against a broker that does not answer, the SDK would otherwise retry for a minute.

func sbClient(t testing.TB, sb *testenv.ServiceBus) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func sender(t testing.TB, c *azservicebus.Client, queueOrTopic string) *azservicebus.Sender {
	t.Helper()
	s, err := c.NewSender(queueOrTopic, nil)
	if err != nil {
		t.Fatalf("sender %s: %v", queueOrTopic, err)
	}
	return s
}

func send(t testing.TB, s *azservicebus.Sender, msgs ...*azservicebus.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := s.SendMessage(timeout(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

func queueReceiver(t testing.TB, c *azservicebus.Client, queue string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, opts)
	if err != nil {
		t.Fatalf("receiver %s: %v", queue, err)
	}
	return r
}

// messageReceiver is what Receiver and SessionReceiver share.
type messageReceiver interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

// receive collects exactly n messages, failing the test if they do not come within 5 s.
func receive(t testing.TB, r messageReceiver, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx := timeout(t, 5*time.Second)
	var got []*azservicebus.ReceivedMessage
	for len(got) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(got), nil)
		if err != nil {
			t.Fatalf("receive: got %d of %d: %v", len(got), n, err)
		}
		got = append(got, msgs...)
	}
	return got
}

// receiveNone asserts that nothing is delivered for a short while.
func receiveNone(t testing.TB, r messageReceiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	msgs, err := r.ReceiveMessages(ctx, 10, nil)
	if len(msgs) > 0 {
		t.Fatalf("received %d unexpected messages, first %q", len(msgs), msgs[0].Body)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive: %v", err)
	}
}

func body(s string) *azservicebus.Message { return &azservicebus.Message{Body: []byte(s)} }

func states(msgs []testenv.SBMessage) string {
	var s []string
	for _, m := range msgs {
		s = append(s, m.State)
	}
	return strings.Join(s, ",")
}

func TestServiceBus_SendSingleAndBatchThenReceiveAndComplete(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	s := sender(t, c, "orders")

	send(t, s, body("single"))
	batch, err := s.NewMessageBatch(timeout(t, 5*time.Second), nil)
	if err != nil {
		t.Fatalf("new batch: %v", err)
	}
	for _, b := range []string{"b1", "b2", "b3"} {
		if err := batch.AddMessage(body(b), nil); err != nil {
			t.Fatalf("add %s: %v", b, err)
		}
	}
	if err := s.SendMessageBatch(timeout(t, 5*time.Second), batch, nil); err != nil {
		t.Fatalf("send batch: %v", err)
	}

	recorded := sb.Messages(t, "orders")
	if len(recorded) != 4 || states(recorded) != "active,active,active,active" {
		t.Fatalf("side channel before receive: %d messages, states %s", len(recorded), states(recorded))
	}

	r := queueReceiver(t, c, "orders", nil)
	got := receive(t, r, 4)
	for i, want := range []string{"single", "b1", "b2", "b3"} {
		if string(got[i].Body) != want || *got[i].SequenceNumber != int64(i+1) || got[i].DeliveryCount != 1 {
			t.Errorf("message %d: body %q seq %d count %d, want %q seq %d count 1",
				i, got[i].Body, *got[i].SequenceNumber, got[i].DeliveryCount, want, i+1)
		}
		if got[i].LockedUntil == nil || got[i].EnqueuedTime == nil {
			t.Errorf("message %d: LockedUntil %v EnqueuedTime %v, want both set", i, got[i].LockedUntil, got[i].EnqueuedTime)
		}
		if err := r.CompleteMessage(timeout(t, 5*time.Second), got[i], nil); err != nil {
			t.Fatalf("complete %d: %v", i, err)
		}
	}
	receiveNone(t, r)
	if st := states(sb.Messages(t, "orders")); st != "completed,completed,completed,completed" {
		t.Fatalf("side channel after complete: states %s", st)
	}
}

func TestServiceBus_SettledDeliveriesDoNotFillTheSession(t *testing.T) {
	// rhea tracks 2048 deliveries per session and frees one only when both ends have
	// settled it; in PeekLock the client settles first, so the stand-in must free them.
	const n = 2200
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	s := sender(t, c, "orders")
	for sent := 0; sent < n; sent += 550 {
		batch, err := s.NewMessageBatch(timeout(t, 5*time.Second), nil)
		if err != nil {
			t.Fatalf("new batch: %v", err)
		}
		for i := 0; i < 550; i++ {
			if err := batch.AddMessage(body("m"), nil); err != nil {
				t.Fatalf("add: %v", err)
			}
		}
		if err := s.SendMessageBatch(timeout(t, 5*time.Second), batch, nil); err != nil {
			t.Fatalf("send batch: %v", err)
		}
	}
	r := queueReceiver(t, c, "orders", nil)
	ctx := timeout(t, 15*time.Second)
	for done := 0; done < n; {
		msgs, err := r.ReceiveMessages(ctx, 500, nil)
		if err != nil {
			t.Fatalf("receive after %d of %d: %v", done, n, err)
		}
		for _, m := range msgs {
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				t.Fatalf("complete: %v", err)
			}
		}
		done += len(msgs)
	}
}

func TestServiceBus_AbandonRedeliversWithDeliveryCountTwo(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("again"))
	r := queueReceiver(t, c, "orders", nil)

	first := receive(t, r, 1)[0]
	if err := r.AbandonMessage(timeout(t, 5*time.Second), first, nil); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	second := receive(t, r, 1)[0]
	if first.DeliveryCount != 1 || second.DeliveryCount != 2 {
		t.Fatalf("delivery counts %d then %d, want 1 then 2", first.DeliveryCount, second.DeliveryCount)
	}
	if second.LockToken == first.LockToken {
		t.Fatalf("redelivery kept lock token %x, want a new one", second.LockToken)
	}
	if rec := sb.Messages(t, "orders")[0]; rec.DeliveryCount != 2 || rec.State != "locked" {
		t.Fatalf("side channel: count %d state %s, want 2 locked", rec.DeliveryCount, rec.State)
	}
}

func TestServiceBus_AbandonAppliesPropertiesToModify(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), &azservicebus.Message{
		Body: []byte("x"), ApplicationProperties: map[string]any{"table": "contact", "reason": "none"},
	})
	r := queueReceiver(t, c, "orders", nil)
	m := receive(t, r, 1)[0]
	err := r.AbandonMessage(timeout(t, 5*time.Second), m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"reason": "consumer down"},
	})
	if err != nil {
		t.Fatalf("abandon: %v", err)
	}
	again := receive(t, r, 1)[0]
	if again.ApplicationProperties["reason"] != "consumer down" || again.ApplicationProperties["table"] != "contact" {
		t.Fatalf("properties after abandon: %v", again.ApplicationProperties)
	}
}

func TestServiceBus_DeadLetterIsReceivableFromDeadLetterQueue(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), &azservicebus.Message{Body: []byte("poison"), MessageID: to("m-1")})
	r := queueReceiver(t, c, "orders", nil)
	m := receive(t, r, 1)[0]
	err := r.DeadLetterMessage(timeout(t, 5*time.Second), m, &azservicebus.DeadLetterOptions{
		Reason: to("not json"), ErrorDescription: to("offset 0"),
	})
	if err != nil {
		t.Fatalf("dead-letter: %v", err)
	}
	receiveNone(t, r)

	dlq := queueReceiver(t, c, "orders", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := receive(t, dlq, 1)[0]
	if string(d.Body) != "poison" || d.MessageID != "m-1" {
		t.Fatalf("dead-lettered message: body %q id %q", d.Body, d.MessageID)
	}
	if d.DeadLetterReason == nil || *d.DeadLetterReason != "not json" ||
		d.DeadLetterErrorDescription == nil || *d.DeadLetterErrorDescription != "offset 0" {
		t.Fatalf("dead-letter reason %v description %v", d.DeadLetterReason, d.DeadLetterErrorDescription)
	}
	if d.DeadLetterSource == nil || *d.DeadLetterSource != "orders" {
		t.Fatalf("dead-letter source %v, want orders", d.DeadLetterSource)
	}
	if err := dlq.CompleteMessage(timeout(t, 5*time.Second), d, nil); err != nil {
		t.Fatalf("complete from DLQ: %v", err)
	}
	if st := states(sb.Messages(t, "orders")); st != "deadlettered" {
		t.Fatalf("queue states %s, want deadlettered", st)
	}
	if st := states(sb.Messages(t, "orders/$DeadLetterQueue")); st != "completed" {
		t.Fatalf("dead-letter queue states %s, want completed", st)
	}
}

func TestServiceBus_RenewLockKeepsMessageLockedPastItsFirstLock(t *testing.T) {
	const lock = time.Second
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"), testenv.WithLockDuration(lock))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("slow"))
	r := queueReceiver(t, c, "orders", nil)
	m := receive(t, r, 1)[0]
	firstLock := *m.LockedUntil

	time.Sleep(lock / 2)
	if err := r.RenewMessageLock(timeout(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if !m.LockedUntil.After(firstLock) {
		t.Fatalf("LockedUntil %v after renewal, want later than %v", m.LockedUntil, firstLock)
	}
	time.Sleep(time.Until(firstLock) + lock/4) // past the first lock, inside the renewed one
	if err := r.CompleteMessage(timeout(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("complete after renewal: %v", err)
	}
}

func TestServiceBus_SettleAfterLockExpiryIsLockLostAndRedelivers(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"), testenv.WithLockDuration(300*time.Millisecond))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("late"))
	r := queueReceiver(t, c, "orders", nil)
	first := receive(t, r, 1)[0]

	second := receive(t, r, 1)[0] // arrives once the first lock expires
	if second.DeliveryCount != 2 {
		t.Fatalf("redelivery after lock expiry: DeliveryCount %d, want 2", second.DeliveryCount)
	}
	err := r.CompleteMessage(timeout(t, 5*time.Second), first, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("complete with expired lock: %v, want code %s", err, azservicebus.CodeLockLost)
	}
	if err := r.CompleteMessage(timeout(t, 5*time.Second), second, nil); err != nil {
		t.Fatalf("complete current delivery: %v", err)
	}
}

func TestServiceBus_ReleasedMessageIsNotCounted(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	s := sender(t, c, "orders")
	send(t, s, body("first"))
	r := queueReceiver(t, c, "orders", nil)
	// Asking for 10 and getting 1 leaves 9 credits on the link: the SDK releases whatever
	// arrives on them before the next ReceiveMessages.
	msgs, err := r.ReceiveMessages(timeout(t, 5*time.Second), 10, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("first receive: %d messages, err %v", len(msgs), err)
	}
	send(t, s, body("second"))
	time.Sleep(200 * time.Millisecond) // let the releaser bounce it
	m := receive(t, r, 1)[0]
	if string(m.Body) != "second" || m.DeliveryCount != 1 {
		t.Fatalf("after release: %q with DeliveryCount %d, want second with 1", m.Body, m.DeliveryCount)
	}
}

func TestServiceBus_MaxDeliveryCountDeadLetters(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"), testenv.WithMaxDeliveryCount(2))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("failing"))
	r := queueReceiver(t, c, "orders", nil)
	for i := 0; i < 2; i++ {
		m := receive(t, r, 1)[0]
		if err := r.AbandonMessage(timeout(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("abandon %d: %v", i, err)
		}
	}
	receiveNone(t, r)
	dl := sb.Messages(t, "orders/$deadletterqueue")
	if len(dl) != 1 || dl[0].DeadLetterReason == nil || *dl[0].DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("dead-letter queue: %+v", dl)
	}
}

func TestServiceBus_PeekNeitherLocksNorCounts(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("p1"), body("p2"), body("p3"))
	r := queueReceiver(t, c, "orders", nil)

	peeked, err := r.PeekMessages(timeout(t, 5*time.Second), 10, nil)
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	if len(peeked) != 3 || string(peeked[0].Body) != "p1" || *peeked[2].SequenceNumber != 3 {
		t.Fatalf("peeked %d messages", len(peeked))
	}
	more, err := r.PeekMessages(timeout(t, 5*time.Second), 10, nil)
	if err != nil || len(more) != 0 {
		t.Fatalf("second peek continues after the last one: %d messages, err %v", len(more), err)
	}
	got := receive(t, r, 3)
	for _, m := range got {
		if m.DeliveryCount != 1 {
			t.Fatalf("after peek, %q has DeliveryCount %d, want 1", m.Body, m.DeliveryCount)
		}
	}
}

func TestServiceBus_TopicFansOutToEachSubscription(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("events/subscriptions/audit", "events/subscriptions/erp"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "events"), body("created"))

	for _, sub := range []string{"audit", "erp"} {
		r, err := c.NewReceiverForSubscription("events", sub, nil)
		if err != nil {
			t.Fatalf("receiver %s: %v", sub, err)
		}
		m := receive(t, r, 1)[0]
		if string(m.Body) != "created" {
			t.Fatalf("subscription %s got %q", sub, m.Body)
		}
		if err := r.CompleteMessage(timeout(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("complete on %s: %v", sub, err)
		}
	}
	if st := states(sb.Messages(t, "events")); st != "published" {
		t.Fatalf("topic states %s, want published", st)
	}
	if st := states(sb.Messages(t, "events/subscriptions/erp")); st != "completed" {
		t.Fatalf("subscription states %s, want completed", st)
	}
}

func TestServiceBus_MessagePropertiesArriveIntact(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	enqueued := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	payload := []byte(`{"id":"e-1"}`)
	send(t, sender(t, c, "orders"), &azservicebus.Message{
		Body:          payload,
		MessageID:     to("e-1"),
		ContentType:   to("application/json"),
		CorrelationID: to("corr-9"),
		SessionID:     to("record-42"),
		Subject:       to("contact.Update"),
		ApplicationProperties: map[string]any{
			"table": "contact", "attempt": int64(3), "sizeExceeded": false, "at": enqueued,
		},
	})

	got := sb.Messages(t, "orders")
	if len(got) != 1 {
		t.Fatalf("side channel has %d messages, want 1", len(got))
	}
	m := got[0]
	side := []struct{ name, got, want string }{
		{"MessageID", m.MessageID, "e-1"},
		{"ContentType", m.ContentType, "application/json"},
		{"CorrelationID", m.CorrelationID, "corr-9"},
		{"SessionID", m.SessionID, "record-42"},
		{"Subject", m.Subject, "contact.Update"},
		{"BodyType", m.BodyType, "data"},
		{"Body", string(m.Body), string(payload)},
		{"table", fmt.Sprint(m.ApplicationProperties["table"]), "contact"},
		{"attempt", fmt.Sprint(m.ApplicationProperties["attempt"]), "3"},
		{"sizeExceeded", fmt.Sprint(m.ApplicationProperties["sizeExceeded"]), "false"},
		{"at", fmt.Sprint(m.ApplicationProperties["at"]), "2024-05-01T12:00:00.000Z"},
		{"type of attempt", m.ApplicationPropertyTypes["attempt"], "long"},
		{"type of table", m.ApplicationPropertyTypes["table"], "string"},
		{"type of at", m.ApplicationPropertyTypes["at"], "timestamp"},
	}
	for _, c := range side {
		if c.got != c.want {
			t.Errorf("side channel %s = %q, want %q", c.name, c.got, c.want)
		}
	}

	r := queueReceiver(t, c, "orders", nil)
	rm := receive(t, r, 1)[0]
	if rm.MessageID != "e-1" || deref(rm.ContentType) != "application/json" || deref(rm.CorrelationID) != "corr-9" ||
		deref(rm.SessionID) != "record-42" || deref(rm.Subject) != "contact.Update" || !bytes.Equal(rm.Body, payload) {
		t.Errorf("received: id %q type %q corr %q session %q subject %q body %q",
			rm.MessageID, deref(rm.ContentType), deref(rm.CorrelationID), deref(rm.SessionID), deref(rm.Subject), rm.Body)
	}
	wantProps := map[string]any{"table": "contact", "attempt": int64(3), "sizeExceeded": false, "at": enqueued}
	for k, want := range wantProps {
		gotV := rm.ApplicationProperties[k]
		if tm, ok := gotV.(time.Time); ok {
			gotV = tm.UTC()
		}
		if gotV != want {
			t.Errorf("received property %s = %#v (%T), want %#v (%T)", k, gotV, gotV, want, want)
		}
	}
}

func TestServiceBus_SessionReceiverGetsOnlyItsSession(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	s := sender(t, c, "orders")
	send(t, s,
		&azservicebus.Message{Body: []byte("a1"), SessionID: to("a")},
		&azservicebus.Message{Body: []byte("b1"), SessionID: to("b")},
		&azservicebus.Message{Body: []byte("a2"), SessionID: to("a")},
	)

	ra, err := c.AcceptSessionForQueue(timeout(t, 5*time.Second), "orders", "a", nil)
	if err != nil {
		t.Fatalf("accept session a: %v", err)
	}
	got := receive(t, ra, 2)
	if string(got[0].Body) != "a1" || string(got[1].Body) != "a2" {
		t.Fatalf("session a received %q, %q", got[0].Body, got[1].Body)
	}
	if err := ra.SetSessionState(timeout(t, 5*time.Second), []byte("step-2"), nil); err != nil {
		t.Fatalf("set session state: %v", err)
	}
	state, err := ra.GetSessionState(timeout(t, 5*time.Second), nil)
	if err != nil || string(state) != "step-2" {
		t.Fatalf("session state %q, err %v", state, err)
	}

	rb, err := c.AcceptNextSessionForQueue(timeout(t, 5*time.Second), "orders", nil)
	if err != nil {
		t.Fatalf("accept next session: %v", err)
	}
	if rb.SessionID() != "b" {
		t.Fatalf("next session %q, want b (a is locked)", rb.SessionID())
	}
	if m := receive(t, rb, 1)[0]; string(m.Body) != "b1" {
		t.Fatalf("session b received %q", m.Body)
	}
}

func TestServiceBus_AcceptNextSessionWithNoneAvailableTimesOut(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	_, err := c.AcceptNextSessionForQueue(timeout(t, 5*time.Second), "orders", nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeTimeout {
		t.Fatalf("accept next session on an empty queue: %v, want code %s", err, azservicebus.CodeTimeout)
	}
}

func TestServiceBus_DeferredMessageIsReceivedBySequenceNumber(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("later"))
	r := queueReceiver(t, c, "orders", nil)
	m := receive(t, r, 1)[0]
	if err := r.DeferMessage(timeout(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("defer: %v", err)
	}
	receiveNone(t, r)
	deferred, err := r.ReceiveDeferredMessages(timeout(t, 5*time.Second), []int64{*m.SequenceNumber}, nil)
	if err != nil || len(deferred) != 1 || string(deferred[0].Body) != "later" {
		t.Fatalf("receive deferred: %d messages, err %v", len(deferred), err)
	}
	if err := r.CompleteMessage(timeout(t, 5*time.Second), deferred[0], nil); err != nil {
		t.Fatalf("complete deferred: %v", err)
	}
	if st := states(sb.Messages(t, "orders")); st != "completed" {
		t.Fatalf("states %s, want completed", st)
	}
}

func TestServiceBus_ScheduledMessageWaitsForItsTime(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	at := time.Now().Add(400 * time.Millisecond)
	send(t, sender(t, c, "orders"), &azservicebus.Message{Body: []byte("at"), ScheduledEnqueueTime: &at})
	if st := states(sb.Messages(t, "orders")); st != "scheduled" {
		t.Fatalf("states %s right after sending, want scheduled", st)
	}
	m := receive(t, queueReceiver(t, c, "orders", nil), 1)[0]
	if time.Now().Before(at) {
		t.Fatalf("scheduled message %q arrived before its time", m.Body)
	}
}

func TestServiceBus_ReceiveAndDeleteCompletesOnDelivery(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	send(t, sender(t, c, "orders"), body("once"))
	r := queueReceiver(t, c, "orders", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if m := receive(t, r, 1)[0]; string(m.Body) != "once" {
		t.Fatalf("received %q", m.Body)
	}
	if st := states(sb.Messages(t, "orders")); st != "completed" {
		t.Fatalf("states %s, want completed", st)
	}
}

func TestServiceBus_UnknownQueueIsNotFound(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	err := sender(t, c, "missing").SendMessage(timeout(t, 5*time.Second), body("x"), nil)
	if err == nil || !strings.Contains(err.Error(), "amqp:not-found") {
		t.Fatalf("send to a missing queue: %v, want amqp:not-found", err)
	}
	_, err = queueReceiver(t, c, "missing", nil).ReceiveMessages(timeout(t, 5*time.Second), 1, nil)
	if err == nil || !strings.Contains(err.Error(), "amqp:not-found") {
		t.Fatalf("receive from a missing queue: %v, want amqp:not-found", err)
	}
}

func TestServiceBus_AutoCreateMakesQueueOnFirstUse(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithAutoCreate())
	c := sbClient(t, sb)
	send(t, sender(t, c, "fresh"), body("x"))
	if n := len(sb.Messages(t, "fresh")); n != 1 {
		t.Fatalf("auto-created queue holds %d messages, want 1", n)
	}
}

func TestServiceBus_BatchLargerThanMaxMessageSizeIsRefused(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"), testenv.WithMaxMessageSize(1024))
	c := sbClient(t, sb)
	batch, err := sender(t, c, "orders").NewMessageBatch(timeout(t, 5*time.Second), nil)
	if err != nil {
		t.Fatalf("new batch: %v", err)
	}
	if err := batch.AddMessage(&azservicebus.Message{Body: make([]byte, 2048)}, nil); !errors.Is(err, azservicebus.ErrMessageTooLarge) {
		t.Fatalf("add 2 KiB to a 1 KiB batch: %v, want ErrMessageTooLarge", err)
	}
}

func TestServiceBus_SenderFailsWithinDeadlineWhenStandinKilled(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	c := sbClient(t, sb)
	s := sender(t, c, "orders")
	send(t, s, body("before"))

	sb.Kill()
	const deadline = 3 * time.Second
	start := time.Now()
	err := s.SendMessage(timeout(t, deadline), body("after"), nil)
	if err == nil {
		t.Fatalf("send to a killed stand-in succeeded")
	}
	if took := time.Since(start); took > deadline+time.Second {
		t.Fatalf("send to a killed stand-in returned after %s, want within its %s context", took, deadline)
	}
}

func TestServiceBus_StopAndRestartKeepMessagesAndPort(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"))
	port := sb.AMQPPort
	send(t, sender(t, sbClient(t, sb), "orders"), body("m1"), body("m2"))

	sb.Stop()
	sb.Restart(t)
	if sb.AMQPPort != port {
		t.Fatalf("restarted on port %d, want %d", sb.AMQPPort, port)
	}
	got := receive(t, queueReceiver(t, sbClient(t, sb), "orders", nil), 2)
	if string(got[0].Body) != "m1" || string(got[1].Body) != "m2" {
		t.Fatalf("after restart received %q, %q", got[0].Body, got[1].Body)
	}
}

// Service Bus with requiresDuplicateDetection accepts a message whose MessageId it saw within
// the window and drops it: the send succeeds, nothing is delivered.
func TestServiceBus_DuplicateDetectionDropsARepeatedMessageIDWithinTheWindow(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders", "plain", "events/subscriptions/audit"),
		testenv.WithDuplicateDetection("orders", "events"), testenv.WithDuplicateDetectionWindow(time.Second))
	c := sbClient(t, sb)
	withID := func(id, text string) *azservicebus.Message {
		return &azservicebus.Message{MessageID: to(id), Body: []byte(text)}
	}
	orders := sender(t, c, "orders")
	send(t, orders, withID("a", "first"), withID("a", "again"), withID("b", "other"))
	// In one batch too.
	batch, err := orders.NewMessageBatch(timeout(t, 5*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*azservicebus.Message{withID("c", "batched"), withID("c", "batched again"), withID("a", "third")} {
		if err := batch.AddMessage(m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := orders.SendMessageBatch(timeout(t, 5*time.Second), batch, nil); err != nil {
		t.Fatal(err)
	}
	r := queueReceiver(t, c, "orders", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receive(t, r, 3)
	var bodies []string
	for _, m := range got {
		bodies = append(bodies, string(m.Body))
	}
	if strings.Join(bodies, ",") != "first,other,batched" {
		t.Fatalf("received %v, want first, other, batched", bodies)
	}
	receiveNone(t, r)
	var states []string
	for _, m := range sb.Messages(t, "orders") {
		states = append(states, m.MessageID+"="+m.State)
	}
	if want := "a=completed,a=duplicate,b=completed,c=completed,c=duplicate,a=duplicate"; strings.Join(states, ",") != want {
		t.Errorf("side channel %v, want %s", states, want)
	}

	// Past the window the id is new again.
	time.Sleep(1100 * time.Millisecond)
	send(t, orders, withID("a", "after the window"))
	if got := receive(t, r, 1); string(got[0].Body) != "after the window" {
		t.Fatalf("after the window received %q", got[0].Body)
	}

	// A queue without it keeps both; a topic with it drops before fanning out.
	send(t, sender(t, c, "plain"), withID("a", "1"), withID("a", "2"))
	receive(t, queueReceiver(t, c, "plain", nil), 2)
	send(t, sender(t, c, "events"), withID("e", "1"), withID("e", "2"))
	if n := len(sb.Messages(t, "events/subscriptions/audit")); n != 1 {
		t.Errorf("subscription got %d copies, want 1", n)
	}
}

func TestServiceBus_DuplicateDetectionSurvivesARestart(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("orders"), testenv.WithDuplicateDetection("orders"))
	send(t, sender(t, sbClient(t, sb), "orders"), &azservicebus.Message{MessageID: to("a"), Body: []byte("1")})
	sb.Stop()
	sb.Restart(t)
	send(t, sender(t, sbClient(t, sb), "orders"), &azservicebus.Message{MessageID: to("a"), Body: []byte("2")})
	msgs := sb.Messages(t, "orders")
	if len(msgs) != 2 || msgs[0].State != "active" || msgs[1].State != "duplicate" {
		t.Fatalf("after restart: %+v", msgs)
	}
}

func to(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// BenchmarkStandinSend measures what the stand-in sustains with the real SDK: single sends
// (one round trip each) and batches of 100 (one transfer each). Figures are messages/s.
func BenchmarkStandinSend(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 512)
	b.Run("single", func(b *testing.B) {
		sb := testenv.StartServiceBus(b, testenv.WithEntities("bench"))
		s := sender(b, sbClient(b, sb), "bench")
		send(b, s, body("warm-up"))
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := s.SendMessage(ctx, &azservicebus.Message{Body: payload}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("batch100", func(b *testing.B) {
		sb := testenv.StartServiceBus(b, testenv.WithEntities("bench"))
		s := sender(b, sbClient(b, sb), "bench")
		send(b, s, body("warm-up"))
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			batch, err := s.NewMessageBatch(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			for j := 0; j < 100; j++ {
				if err := batch.AddMessage(&azservicebus.Message{Body: payload}, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkStandinReceiveComplete measures PeekLock receive + complete of messages sent
// beforehand in batches.
func BenchmarkStandinReceiveComplete(b *testing.B) {
	sb := testenv.StartServiceBus(b, testenv.WithEntities("bench"))
	c := sbClient(b, sb)
	s := sender(b, c, "bench")
	ctx := context.Background()
	for sent := 0; sent < b.N; {
		batch, err := s.NewMessageBatch(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		for ; sent < b.N; sent++ {
			if err := batch.AddMessage(&azservicebus.Message{Body: []byte(`{"n":1}`)}, nil); err != nil {
				break
			}
		}
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	r := queueReceiver(b, c, "bench", nil)
	b.ResetTimer()
	for done := 0; done < b.N; {
		msgs, err := r.ReceiveMessages(ctx, min(100, b.N-done), nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				b.Fatal(err)
			}
		}
		done += len(msgs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
