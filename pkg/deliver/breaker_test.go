package deliver_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// breakerConsumer trips after 4 finished attempts of which at least half failed, and stays
// open for openFor. One attempt per delivery keeps the counting plain.
func breakerConsumer(url string, openFor time.Duration) config.Consumer {
	c := consumerConfig("erp", url)
	c.Retry.Attempts = 1
	c.Breaker = config.Breaker{FailureRatio: 0.5, MinRequests: 4, OpenFor: openFor, HalfOpenRequests: 1}
	return c
}

func TestBreaker_OpensAtItsThreshold(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))
	f := newDeliverer(t, 0, breakerConsumer(srv.URL, time.Minute))

	for i := 1; i <= 3; i++ {
		if r := f.deliverOne(t, "erp"); r.Kind != failures.KindDelivery || f.d.BreakerOpen("erp") {
			t.Fatalf("delivery %d: result %+v, breaker open %v; want a delivery failure, breaker closed below minRequests", i, r, f.d.BreakerOpen("erp"))
		}
	}
	r := f.deliverOne(t, "erp")

	if r.Kind != failures.KindDelivery || r.Attempts != 1 {
		t.Errorf("4th delivery = %+v, want the failed attempt that trips the breaker", r)
	}
	if !f.d.BreakerOpen("erp") {
		t.Error("breaker closed after 4 failures of 4 attempts, want open")
	}
}

func TestBreaker_FailsFastWhileOpen(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))
	f := newDeliverer(t, 0, breakerConsumer(srv.URL, time.Minute))
	for range 4 {
		f.deliverOne(t, "erp")
	}

	r := f.deliverOne(t, "erp")

	if r.Kind != failures.KindBreakerOpen || r.Attempts != 0 || r.Delivered {
		t.Errorf("result = %+v, want breaker-open with 0 attempts", r)
	}
	if n := srv.Count(); n != 4 {
		t.Errorf("consumer got %d requests, want 4: none while the breaker is open", n)
	}
	if got := f.rec.failures(); len(got) != 5 || got[4].Kind != failures.KindBreakerOpen {
		t.Errorf("recorded %d failures (last %+v), want 5, the last breaker-open", len(got), got[len(got)-1])
	}
}

func TestBreaker_HalfOpensAfterOpenForAndClosesOnSuccess(t *testing.T) {
	const openFor = 300 * time.Millisecond
	srv := testenv.StartConsumer(t, testenv.Repeat(4, testenv.ReplyStatus(http.StatusInternalServerError))...)
	f := newDeliverer(t, 0, breakerConsumer(srv.URL, openFor))
	for range 4 {
		f.deliverOne(t, "erp")
	}
	if !f.d.BreakerOpen("erp") {
		t.Fatal("breaker did not open")
	}

	time.Sleep(openFor + 50*time.Millisecond)
	r := f.deliverOne(t, "erp")

	if !r.Delivered || r.Attempts != 1 {
		t.Fatalf("result after openFor = %+v, want the half-open trial delivered", r)
	}
	if f.d.BreakerOpen("erp") {
		t.Error("breaker still open after a successful half-open trial")
	}
	var changes [][2]any
	for _, l := range f.logs.withMsg(t, "breaker state changed") {
		if l["level"] != "warn" || l["consumer"] != "erp" {
			t.Errorf("state change logged as %v, want level warn and consumer erp", l)
		}
		changes = append(changes, [2]any{l["from"], l["to"]})
	}
	want := [][2]any{{"closed", "open"}, {"open", "half-open"}, {"half-open", "closed"}}
	if len(changes) != len(want) {
		t.Fatalf("state changes logged %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Errorf("state change %d = %v, want %v", i, changes[i], want[i])
		}
	}
}

func TestBreaker_FailedHalfOpenTrialReopens(t *testing.T) {
	const openFor = 200 * time.Millisecond
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStatus(http.StatusBadGateway))
	f := newDeliverer(t, 0, breakerConsumer(srv.URL, openFor))
	for range 4 {
		f.deliverOne(t, "erp")
	}

	time.Sleep(openFor + 50*time.Millisecond)
	r := f.deliverOne(t, "erp")

	if r.Kind != failures.KindDelivery || r.Attempts != 1 {
		t.Errorf("half-open trial = %+v, want one attempt that failed", r)
	}
	if !f.d.BreakerOpen("erp") {
		t.Error("breaker not open again after a failed half-open trial")
	}
}

func TestBreaker_RejectedPayloadsDoNotTripIt(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStatus(http.StatusUnprocessableEntity))
	f := newDeliverer(t, 0, breakerConsumer(srv.URL, time.Minute))

	for range 8 {
		f.deliverOne(t, "erp")
	}

	if f.d.BreakerOpen("erp") {
		t.Error("breaker opened on 422 answers: a consumer refusing payloads is not down")
	}
	if n := srv.Count(); n != 8 {
		t.Errorf("consumer got %d requests, want 8", n)
	}
}

func TestBreaker_RetriesStopWhenItOpensMeanwhile(t *testing.T) {
	srv := testenv.StartConsumer(t)
	// Retry-After (capped at maxDelay) makes every wait between attempts exactly 300ms.
	srv.Otherwise(testenv.ReplyRetryAfter(http.StatusServiceUnavailable, "5"))
	c := consumerConfig("erp", srv.URL)
	c.Retry = config.Retry{Attempts: 10, InitialDelay: 300 * time.Millisecond, MaxDelay: 300 * time.Millisecond}
	c.Breaker = config.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Minute, HalfOpenRequests: 1}
	f := newDeliverer(t, 0, c)

	long := make(chan deliver.Result)
	go func() {
		out, _ := f.d.Deliver(context.Background(), testEvent(), []deliver.Target{target("erp")})
		long <- append(out.Delivered, out.Failed...)[0]
	}()
	srv.Wait(t, 1, time.Second) // the long delivery's first attempt failed; it now waits 300ms
	// Two deliveries whose budget (100ms) cannot cover a wait fail after one attempt each and
	// trip the breaker (2 of 2 failed) while the first is still waiting.
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		out, err := f.d.Deliver(ctx, testEvent(), []deliver.Target{target("erp")})
		cancel()
		if err != nil || len(out.Failed) != 1 || out.Failed[0].Kind != failures.KindDelivery {
			t.Fatalf("short delivery: %+v, %v; want one delivery failure", out, err)
		}
	}
	if !f.d.BreakerOpen("erp") {
		t.Fatal("breaker closed after 2 of 2 deliveries failed, want open")
	}

	r := <-long
	if r.Kind != failures.KindBreakerOpen || r.Attempts != 1 || r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("long delivery = %+v, want breaker-open after its 1 attempt, last status 503: no retry once the breaker opened", r)
	}
}

func TestBreaker_CountsDeliveriesAfterRetries(t *testing.T) {
	// Every first attempt fails and every second succeeds: attempt by attempt half failed, but
	// every delivery succeeded, and that is what the breaker judges.
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("X-Dvrouter-Attempt") == "1" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	c := consumerConfig("erp", srv.URL)
	c.Retry.Attempts = 2
	c.Breaker = config.Breaker{FailureRatio: 0.5, MinRequests: 4, OpenFor: time.Minute, HalfOpenRequests: 1}
	f := newDeliverer(t, 0, c)

	for i := range 20 {
		if r := f.deliverOne(t, "erp"); !r.Delivered || r.Attempts != 2 {
			t.Fatalf("delivery %d = %+v, want delivered on its second attempt", i+1, r)
		}
	}

	if f.d.BreakerOpen("erp") {
		t.Error("breaker opened on failed first attempts of deliveries that all succeeded")
	}
	if n := requests.Load(); n != 40 {
		t.Errorf("consumer got %d requests, want 40", n)
	}
}

// With the defaults of the route file, a consumer failing 30% of requests at random is never shut
// off: with 4 attempts a delivery fails 0.3^4 = 0.8% of the time, and opening takes at least half
// of 20 deliveries in the window failing (docs/delivery.md has the figures).
func TestBreaker_DefaultsKeepAConsumerFailing30PercentOpen(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if rand.Float64() < 0.3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	yaml := "consumers:\n  - name: erp\n    type: http\n    url: " + srv.URL + "\n    retry: {initialDelay: 1ms, maxDelay: 2ms}\n" +
		"routes:\n  - name: contacts\n    table: contact\n    consumers: [erp]\n"
	file, err := config.LoadRoutesBytes("routes.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	f := newDeliverer(t, 0, file.Consumers...)

	var wg sync.WaitGroup
	var delivered atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if f.deliverOne(t, "erp").Delivered {
					delivered.Add(1)
				}
			}
		})
	}
	wg.Wait()

	if opened := f.logs.withMsg(t, "breaker state changed"); len(opened) > 0 {
		t.Errorf("breaker changed state %v, want it closed throughout", opened)
	}
	// 400 deliveries at 0.8% each: fewer than 390 delivered would be 4 standard deviations out.
	if n := delivered.Load(); n < 390 {
		t.Errorf("%d of 400 deliveries delivered, want nearly all (the failures were retried)", n)
	}
}
