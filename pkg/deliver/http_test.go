package deliver_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

func TestDeliver_FailNTimesThenSucceed(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.Repeat(2, testenv.ReplyStatus(http.StatusServiceUnavailable))...)
	f := newDeliverer(t, 0, consumerConfig("erp", srv.URL))

	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 3 {
		t.Fatalf("result = %+v, want delivered in 3 attempts", r)
	}
	if got := attemptsOf(srv.Requests()); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("X-Dvrouter-Attempt = %v, want [1 2 3]", got)
	}
	if n := len(f.rec.failures()); n != 0 {
		t.Errorf("%d failures recorded, want 0", n)
	}
}

// triesStatuses are the HTTP statuses of tries, in order.
func triesStatuses(tries []failures.Try) []int {
	var out []int
	for _, tr := range tries {
		out = append(out, tr.StatusCode)
	}
	return out
}

func TestDeliver_ResultHasEveryTryInOrder(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.Repeat(2, testenv.ReplyStatus(http.StatusServiceUnavailable))...)
	f := newDeliverer(t, 0, consumerConfig("erp", srv.URL))

	before := time.Now()
	r := f.deliverOne(t, "erp")

	if got := triesStatuses(r.Tries); !slices.Equal(got, []int{503, 503, 0}) {
		t.Fatalf("tries' statuses = %v, want [503 503 0] (a success has no status)", got)
	}
	for i, tr := range r.Tries {
		if tr.At.Before(before) || (i > 0 && tr.At.Before(r.Tries[i-1].At.Add(r.Tries[i-1].Duration))) || tr.Duration <= 0 {
			t.Errorf("try %d %+v: starts before the previous one ended, or has no duration", i, tr)
		}
		if (i < 2) != strings.Contains(tr.Error, "503") {
			t.Errorf("try %d error %q: the failed tries say 503, the last none", i, tr.Error)
		}
	}
}

func TestDeliver_KeptFailureHasEveryTry(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.Repeat(4, testenv.ReplyStatus(http.StatusBadGateway))...)
	f := newDeliverer(t, 0, consumerConfig("erp", srv.URL))

	r := f.deliverOne(t, "erp")

	kept := f.rec.failures()
	if r.Delivered || len(kept) != 1 {
		t.Fatalf("result %+v, %d failures kept, want failed and 1 kept", r, len(kept))
	}
	if got := triesStatuses(kept[0].Tries); !slices.Equal(got, []int{502, 502, 502, 502}) {
		t.Errorf("kept failure's tries' statuses = %v, want 4 x 502", got)
	}
}

func TestDeliver_StallPastTimeoutIsRetried(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.ReplyStall(10*time.Second))
	c := consumerConfig("erp", srv.URL)
	c.Timeout = 500 * time.Millisecond
	f := newDeliverer(t, 0, c)

	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 2 {
		t.Fatalf("result = %+v, want delivered in 2 attempts", r)
	}
	if got := attemptsOf(srv.Requests()); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("X-Dvrouter-Attempt = %v, want [1 2]", got)
	}
}

func TestDeliver_StallOnEveryAttemptFailsWithTimeout(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStall(10 * time.Second))
	c := consumerConfig("erp", srv.URL)
	c.Timeout = 100 * time.Millisecond
	c.Retry.Attempts = 3
	f := newDeliverer(t, 0, c)

	r := f.deliverOne(t, "erp")

	if r.Delivered || r.Attempts != 3 || r.Kind != failures.KindDelivery {
		t.Fatalf("result = %+v, want failed (delivery) after 3 attempts", r)
	}
	if !strings.Contains(r.Error, "no answer within 100ms") {
		t.Errorf("error = %q, want it to name the attempt timeout", r.Error)
	}
}

func TestDeliver_ResetConnectionIsRetried(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.ReplyReset(), testenv.ReplyReset())
	f := newDeliverer(t, 0, consumerConfig("erp", srv.URL))

	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 3 {
		t.Fatalf("result = %+v, want delivered in 3 attempts", r)
	}
	if got := attemptsOf(srv.Requests()); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("X-Dvrouter-Attempt = %v, want [1 2 3]", got)
	}
}

func TestDeliver_RetryAfterSecondsIsHonoured(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.ReplyRetryAfter(http.StatusTooManyRequests, "1"))
	c := consumerConfig("erp", srv.URL)
	c.Retry.MaxDelay = 5 * time.Second
	f := newDeliverer(t, 0, c)

	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 2 {
		t.Fatalf("result = %+v, want delivered in 2 attempts", r)
	}
	reqs := srv.Requests()
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < time.Second {
		t.Errorf("second attempt %s after the first, want at least the 1s Retry-After", gap)
	}
}

func TestDeliver_RetryAfterDateIsHonoured(t *testing.T) {
	// An HTTP date has whole seconds: 2s ahead, truncated, is between 1s and 2s away.
	notBefore := time.Now().Add(2 * time.Second).Truncate(time.Second)
	srv := testenv.StartConsumer(t, testenv.ReplyRetryAfter(http.StatusServiceUnavailable, notBefore.UTC().Format(http.TimeFormat)))
	c := consumerConfig("erp", srv.URL)
	c.Retry.MaxDelay = 5 * time.Second
	f := newDeliverer(t, 0, c)

	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 2 {
		t.Fatalf("result = %+v, want delivered in 2 attempts", r)
	}
	if second := srv.Requests()[1].Time; second.Before(notBefore) {
		t.Errorf("second attempt at %s, before the Retry-After date %s", second.Format(time.StampMilli), notBefore.Format(time.StampMilli))
	}
}

func TestDeliver_RetryAfterIsCappedAtMaxDelay(t *testing.T) {
	srv := testenv.StartConsumer(t, testenv.ReplyRetryAfter(http.StatusTooManyRequests, "3600"))
	c := consumerConfig("erp", srv.URL)
	c.Retry.MaxDelay = 50 * time.Millisecond
	f := newDeliverer(t, 0, c)

	start := time.Now()
	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 2 {
		t.Fatalf("result = %+v, want delivered in 2 attempts", r)
	}
	// Structural: honouring the hour would hit the 20s budget instead of delivering.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s: Retry-After was not capped at maxDelay", took)
	}
}

func TestDeliver_BadRequestIsNotRetried(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.Reply{Status: http.StatusBadRequest, Body: `{"error":"email is not valid"}`})
	f := newDeliverer(t, 0, consumerConfig("erp", srv.URL))

	r := f.deliverOne(t, "erp")

	if r.Delivered || r.Attempts != 1 || r.StatusCode != http.StatusBadRequest || r.Kind != failures.KindDelivery {
		t.Fatalf("result = %+v, want failed (delivery) after 1 attempt with status 400", r)
	}
	if !strings.Contains(r.Error, "email is not valid") {
		t.Errorf("error = %q, want the consumer's answer in it", r.Error)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("consumer got %d requests, want 1", n)
	}
}

func TestDeliver_RetryableStatuses(t *testing.T) {
	cases := []struct {
		status    int
		retryable bool
	}{
		{http.StatusRequestTimeout, true},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusGatewayTimeout, true},
		{http.StatusUnauthorized, false},
		{http.StatusForbidden, false},
		{http.StatusNotFound, false},
		{http.StatusConflict, false},
		{http.StatusUnprocessableEntity, false},
		{http.StatusFound, false}, // redirects are not followed
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv := testenv.StartConsumer(t, testenv.ReplyStatus(tc.status))
			f := newDeliverer(t, 0, consumerConfig("erp", srv.URL))

			r := f.deliverOne(t, "erp")

			want := 1
			if tc.retryable {
				want = 2
			}
			if r.Attempts != want || r.Delivered != tc.retryable {
				t.Errorf("result = %+v, want %d attempts, delivered %v", r, want, tc.retryable)
			}
		})
	}
}

func TestDeliver_BudgetStopsRetryingRatherThanWaitPastIt(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyRetryAfter(http.StatusServiceUnavailable, "5"))
	c := consumerConfig("erp", srv.URL)
	c.Retry = config.Retry{Attempts: 10, InitialDelay: time.Second, MaxDelay: 10 * time.Second}
	f := newDeliverer(t, 300*time.Millisecond, c)

	start := time.Now()
	r := f.deliverOne(t, "erp")

	if r.Delivered || r.Attempts != 1 || r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("result = %+v, want failed after 1 attempt with the last status", r)
	}
	if !strings.Contains(r.Error, "delivery budget exhausted") {
		t.Errorf("error = %q, want it to say the budget ran out", r.Error)
	}
	if took := time.Since(start); took >= 5*time.Second {
		t.Errorf("took %s: slept the 5s Retry-After past the 300ms budget", took)
	}
	if n := len(f.rec.failures()); n != 1 {
		t.Errorf("%d failures recorded, want 1", n)
	}
}

func TestDeliver_BudgetCutsAStalledAttemptAndStillRecords(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStall(30 * time.Second))
	c := consumerConfig("erp", srv.URL)
	c.Timeout = 20 * time.Second
	f := newDeliverer(t, 200*time.Millisecond, c)

	r := f.deliverOne(t, "erp")

	if r.Delivered || r.Attempts != 1 || !strings.Contains(r.Error, "delivery budget exhausted") {
		t.Fatalf("result = %+v, want failed after 1 attempt, budget exhausted", r)
	}
	if got := f.rec.failures(); len(got) != 1 || got[0].Consumer != "erp" {
		t.Errorf("recorded %+v, want the failure recorded although the budget had run out", got)
	}
}

func TestDeliver_StalledConsumerDoesNotDelayAnother(t *testing.T) {
	stalled := testenv.StartConsumer(t)
	stalled.Otherwise(testenv.ReplyStall(30 * time.Second))
	healthy := testenv.StartConsumer(t)
	slow := consumerConfig("slow", stalled.URL)
	slow.Timeout = 2 * time.Second
	slow.Retry.Attempts = 1
	f := newDeliverer(t, 0, slow, consumerConfig("fast", healthy.URL))

	start := time.Now()
	out, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{target("slow"), target("fast")})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}

	if len(out.Delivered) != 1 || out.Delivered[0].Consumer != "fast" || len(out.Failed) != 1 || out.Failed[0].Consumer != "slow" {
		t.Fatalf("outcome = %+v, want fast delivered and slow failed", out)
	}
	// The healthy consumer's request must not wait for the stalled one's 2s timeout.
	if arrived := healthy.Requests()[0].Time; !arrived.Before(start.Add(slow.Timeout)) {
		t.Errorf("healthy consumer reached %s after start, not before the stalled consumer's %s timeout", arrived.Sub(start), slow.Timeout)
	}
}

func TestDeliver_MaxConcurrencyBoundsInFlightRequests(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStall(100 * time.Millisecond))
	c := consumerConfig("erp", srv.URL)
	c.MaxConcurrency = 2
	f := newDeliverer(t, 0, c)

	done := make(chan bool)
	for range 8 {
		go func() {
			out, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{target("erp")})
			done <- err == nil && len(out.Delivered) == 1
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("a delivery failed")
		}
	}

	if got := srv.MaxInFlight(); got != 2 {
		t.Errorf("consumer saw at most %d requests at once, want exactly maxConcurrency 2", got)
	}
}

func TestDeliver_RequestHeaders(t *testing.T) {
	srv := testenv.StartConsumer(t)
	c := consumerConfig("erp", srv.URL)
	httpSpec(&c).Headers = map[string]string{"X-Api-Key": "test-key-value"}
	f := newDeliverer(t, 0, c)

	f.deliverOne(t, "erp")

	h := srv.Requests()[0].Header
	want := map[string]string{
		"Idempotency-Key":    testEvent().ID,
		"X-Dvrouter-Route":   "contacts",
		"X-Dvrouter-Attempt": "1",
		"Content-Type":       "application/json",
		"User-Agent":         "dvrouter",
		"X-Api-Key":          "test-key-value",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if h.Get("webhook-signature") != "" {
		t.Error("unsigned consumer got a webhook-signature")
	}
}

func TestDeliver_CallerDeadlineSoonerThanTheBudgetCutsTheAttempt(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStall(30 * time.Second))
	c := consumerConfig("erp", srv.URL)
	c.Timeout = 20 * time.Second
	f := newDeliverer(t, 20*time.Second, c)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()

	out, err := f.d.Deliver(ctx, testEvent(), []deliver.Target{target("erp")})

	if err != nil || len(out.Failed) != 1 {
		t.Fatalf("Deliver = %+v, %v; want one recorded failure", out, err)
	}
	if r := out.Failed[0]; r.Attempts != 1 || !strings.Contains(r.Error, "delivery budget exhausted") {
		t.Fatalf("result = %+v, want failed after 1 attempt, budget exhausted", r)
	}
	if n := len(f.rec.failures()); n != 1 {
		t.Errorf("%d failures recorded, want 1", n)
	}
}

func TestDeliver_WithoutATimeoutTheBudgetStillCutsTheAttempt(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStall(30 * time.Second))
	c := consumerConfig("erp", srv.URL)
	c.Timeout = 0
	f := newDeliverer(t, 200*time.Millisecond, c)

	r := f.deliverOne(t, "erp")

	if r.Delivered || r.Attempts != 1 || !strings.Contains(r.Error, "delivery budget exhausted") {
		t.Fatalf("result = %+v, want failed after 1 attempt, budget exhausted", r)
	}
}

func TestDeliver_WaitingForASlotEndsWithTheBudgetOrTheCaller(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStall(30 * time.Second))
	c := consumerConfig("erp", srv.URL)
	c.MaxConcurrency = 1
	c.Timeout = 20 * time.Second
	f := newDeliverer(t, 20*time.Second, c)

	// The first delivery takes the only slot and holds it until it is cancelled.
	holdCtx, release := context.WithCancel(t.Context())
	held := make(chan struct{})
	go func() {
		defer close(held)
		_, _ = f.d.Deliver(holdCtx, testEvent(), []deliver.Target{target("erp")})
	}()
	srv.Wait(t, 1, 5*time.Second)
	defer func() { release(); <-held }()

	expiring, cancelExpiring := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancelExpiring()
	gone, cancelGone := context.WithCancel(t.Context())
	cancelGone()
	for name, ctx := range map[string]context.Context{"budget ends": expiring, "caller gone": gone} {
		t.Run(name, func(t *testing.T) {
			out, err := f.d.Deliver(ctx, testEvent(), []deliver.Target{target("erp")})
			if err != nil || len(out.Failed) != 1 {
				t.Fatalf("Deliver = %+v, %v; want one recorded failure", out, err)
			}
			r := out.Failed[0]
			if r.Attempts != 0 || !strings.Contains(r.Error, "delivery budget exhausted waiting for one of 1 delivery slots") {
				t.Errorf("result = %+v, want no attempt and the budget exhausted waiting for a slot", r)
			}
		})
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("consumer got %d requests, want only the first delivery's", n)
	}
}
