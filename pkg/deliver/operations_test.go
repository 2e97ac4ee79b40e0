package deliver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/sbdest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

func opsDeliverer(t *testing.T, rec deliver.Recorder, cs ...config.Consumer) *deliver.Deliverer {
	t.Helper()
	d, err := deliver.New(cs, rec, deliver.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func TestPause_DeliveriesAreKeptAsPausedAndNothingIsSent(t *testing.T) {
	erp, crm := testenv.StartConsumer(t), testenv.StartConsumer(t)
	rec := &memRecorder{}
	d := opsDeliverer(t, rec, consumerConfig("erp", erp.URL), consumerConfig("crm", crm.URL))
	ctx := context.Background()
	if _, err := d.Pause(ctx, "erp", "alice", "ERP upgrade"); err != nil {
		t.Fatal(err)
	}
	if got := d.Paused("erp"); !strings.Contains(got, "alice") || !strings.Contains(got, "ERP upgrade") {
		t.Errorf("Paused(erp) = %q, want who and why", got)
	}

	targets := []deliver.Target{{Route: "r", Consumer: "erp"}, {Route: "r", Consumer: "crm"}}
	for range 3 {
		out, err := d.Deliver(ctx, testEvent(), targets)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Failed) != 1 || out.Failed[0].Consumer != "erp" || out.Failed[0].Kind != failures.KindPaused || out.Failed[0].Attempts != 0 {
			t.Fatalf("failed = %+v, want erp held as paused, no attempt", out.Failed)
		}
		if len(out.Delivered) != 1 || out.Delivered[0].Consumer != "crm" {
			t.Fatalf("delivered = %+v, want crm (not paused) as usual", out.Delivered)
		}
	}
	if n := erp.Count(); n != 0 {
		t.Errorf("the paused consumer got %d requests, want 0", n)
	}
	kept := rec.failures()
	if len(kept) != 3 {
		t.Fatalf("kept %d failures, want 3", len(kept))
	}
	for _, f := range kept {
		if f.Kind != failures.KindPaused || f.Consumer != "erp" || len(f.Payload) == 0 || !strings.Contains(f.LastError, "paused by alice") {
			t.Errorf("kept %+v, want kind paused for erp with its payload and who paused it", f)
		}
	}
	// A replay's send is held too, and says so.
	if a := d.Resend(ctx, testEvent(), "r", "erp", failures.Shape{}); a.Delivered || !a.Paused || a.Attempts != 0 {
		t.Errorf("resend while paused = %+v, want paused, nothing sent", a)
	}

	if p, err := d.Resume(ctx, "erp", "bob"); err != nil || p == nil || p.By != "alice" {
		t.Fatalf("resume = %+v, %v", p, err)
	}
	if out, err := d.Deliver(ctx, testEvent(), targets); err != nil || len(out.Delivered) != 2 {
		t.Fatalf("after resume: %+v, %v; want both delivered", out, err)
	}
	if n := erp.Count(); n != 1 {
		t.Errorf("erp got %d requests after resume, want 1", n)
	}
}

func TestOperations_UnknownConsumerIsNamed(t *testing.T) {
	d := opsDeliverer(t, &memRecorder{}, consumerConfig("erp", "http://127.0.0.1:1"))
	ctx := context.Background()
	for name, err := range map[string]error{
		"pause":  func() error { _, err := d.Pause(ctx, "nope", "a", ""); return err }(),
		"resume": func() error { _, err := d.Resume(ctx, "nope", "a"); return err }(),
		"reset":  func() error { _, err := d.ResetBreaker(ctx, "nope", "a"); return err }(),
		"test":   func() error { _, err := d.SendTest(ctx, "nope", "a"); return err }(),
	} {
		if !errors.Is(err, deliver.ErrUnknownConsumer) || !strings.Contains(err.Error(), `"nope"`) {
			t.Errorf("%s of an unknown consumer: %v, want ErrUnknownConsumer naming it", name, err)
		}
	}
}

func TestResetBreaker_ClosesAnOpenBreaker(t *testing.T) {
	erp := testenv.StartConsumer(t)
	erp.Otherwise(testenv.ReplyStatus(http.StatusServiceUnavailable))
	c := consumerConfig("erp", erp.URL)
	c.Retry.Attempts = 1
	c.Breaker.MinRequests = 2
	d := opsDeliverer(t, &memRecorder{}, c)
	ctx := context.Background()
	for range 2 {
		_, _ = d.Deliver(ctx, testEvent(), []deliver.Target{{Route: "r", Consumer: "erp"}})
	}
	if !d.BreakerOpen("erp") {
		t.Fatal("breaker not open after two failed deliveries")
	}
	from, err := d.ResetBreaker(ctx, "erp", "alice")
	if err != nil || from != "open" || d.BreakerOpen("erp") {
		t.Fatalf("reset = %q, %v; open %v; want it was open, now closed", from, err, d.BreakerOpen("erp"))
	}
	erp.Otherwise(testenv.ReplyStatus(http.StatusOK))
	if out, _ := d.Deliver(ctx, testEvent(), []deliver.Target{{Route: "r", Consumer: "erp"}}); len(out.Delivered) != 1 {
		t.Errorf("after reset: %+v, want delivered", out)
	}
}

func TestSendTest_ReachesTheConsumerMarkedSignedAndIsNotKept(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	formats := []struct {
		format, mode string
		message      func(body []byte) string
	}{
		{deliver.FormatRow, "", func(b []byte) string {
			var ev struct{ Message string }
			_ = json.Unmarshal(b, &ev)
			return ev.Message
		}},
		{deliver.FormatRaw, "", func(b []byte) string {
			var ctx struct{ MessageName string }
			_ = json.Unmarshal(b, &ctx)
			return ctx.MessageName
		}},
		{deliver.FormatCloudEvent, "structured", func(b []byte) string {
			var ce struct {
				Type string
				Data struct{ Message string }
			}
			_ = json.Unmarshal(b, &ce)
			if !strings.HasSuffix(ce.Type, ".dvrouter.test") {
				return "type " + ce.Type
			}
			return ce.Data.Message
		}},
	}
	for _, f := range formats {
		t.Run(f.format, func(t *testing.T) {
			erp := testenv.StartConsumer(t)
			c := consumerConfig("erp", erp.URL)
			c.Format, c.CloudEvent.Mode, httpSpec(&c).SigningSecret = f.format, f.mode, secret
			httpSpec(&c).Headers = map[string]string{"X-Api-Key": "configured"}
			rec := &memRecorder{}
			d := opsDeliverer(t, rec, c)
			// Paused: a test event still goes, it is how an operator checks before resuming.
			if _, err := d.Pause(context.Background(), "erp", "alice", ""); err != nil {
				t.Fatal(err)
			}
			res, err := d.SendTest(context.Background(), "erp", "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !res.Delivered || res.Attempts != 1 || res.Error != "" || res.EventID == "" || res.Duration <= 0 {
				t.Errorf("result = %+v, want delivered in one attempt", res)
			}
			reqs := erp.Requests()
			if len(reqs) != 1 {
				t.Fatalf("consumer got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Header.Get("X-Dvrouter-Test") != "true" || r.Header.Get("X-Api-Key") != "configured" ||
				r.Header.Get("Idempotency-Key") != res.EventID {
				t.Errorf("headers %v: want X-Dvrouter-Test: true, the configured header and the test's id", r.Header)
			}
			if !verifyStandardWebhook(secret, r.Header, r.Body) {
				t.Error("the test event's signature does not verify")
			}
			if got := f.message(r.Body); got != deliver.TestMessage {
				t.Errorf("message in the body = %q, want %q; body %s", got, deliver.TestMessage, r.Body)
			}
			if n := len(rec.failures()); n != 0 {
				t.Errorf("%d failures kept, want none for a test event", n)
			}
			again, _ := d.SendTest(context.Background(), "erp", "alice")
			if again.EventID == res.EventID {
				t.Error("two test events share an id: a consumer deduplicating would drop the second")
			}
		})
	}
}

func TestSendTest_FailureIsReportedNotKept(t *testing.T) {
	erp := testenv.StartConsumer(t)
	erp.Otherwise(testenv.ReplyStatus(http.StatusBadRequest))
	rec := &memRecorder{}
	d := opsDeliverer(t, rec, consumerConfig("erp", erp.URL))
	res, err := d.SendTest(context.Background(), "erp", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered || res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Error, "400") {
		t.Errorf("result = %+v, want failed with the consumer's 400", res)
	}
	if n := len(rec.failures()); n != 0 {
		t.Errorf("%d failures kept, want none for a test event", n)
	}
}

func TestSendTest_ServiceBusMessageIsMarked(t *testing.T) {
	sb := testenv.StartServiceBus(t, testenv.WithEntities("erp-events"))
	d := opsDeliverer(t, &memRecorder{}, sbConsumer("bus", sb.ConnectionString, func(c *config.Consumer, s *sbdest.Spec) { s.Queue = "erp-events" }))
	res, err := d.SendTest(context.Background(), "bus", "alice")
	if err != nil || !res.Delivered {
		t.Fatalf("test = %+v, %v; want delivered", res, err)
	}
	msgs := sb.Messages(t, "erp-events")
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.ApplicationProperties["dvrouterTest"] != true || m.ApplicationProperties["message"] != deliver.TestMessage ||
		m.MessageID != res.EventID || m.Subject != strings.ToLower(deliver.TestTable+"."+deliver.TestMessage) {
		t.Errorf("message id %q subject %q properties %v: want the test's id, dvrouterTest true and message %s", m.MessageID, m.Subject, m.ApplicationProperties, deliver.TestMessage)
	}
}
