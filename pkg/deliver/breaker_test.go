package deliver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
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

func TestBreaker_RetriesStopWhenItOpens(t *testing.T) {
	srv := testenv.StartConsumer(t)
	srv.Otherwise(testenv.ReplyStatus(http.StatusServiceUnavailable))
	c := breakerConsumer(srv.URL, time.Minute)
	c.Retry.Attempts = 10
	f := newDeliverer(t, 0, c)

	r := f.deliverOne(t, "erp")

	if r.Kind != failures.KindBreakerOpen || r.Attempts != 4 || r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("result = %+v, want breaker-open after the 4 attempts that tripped it, last status 503", r)
	}
}
