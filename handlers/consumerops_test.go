package handlers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/httpdest"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/route"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// Consumer operations are tested on two instances of dvrouter, each its own delivery, breakers
// and handlers, sharing one failure store, one breaker table and one journal on Azurite, as
// instances of one Function App do; erp is one loopback consumer both deliver to.

const opsSyncEvery = 50 * time.Millisecond

type opsInstance struct {
	srv       *httptest.Server
	deliverer *deliver.Deliverer
	shared    *breaker.Shared
}

type opsFixture struct {
	t       *testing.T
	store   *failures.Store
	journal *journal.Journal
	erp     *testenv.Consumer
	a, b    *opsInstance
}

func newOpsFixture(t *testing.T, az *testenv.Azurite, erpConsumer config.Consumer) *opsFixture {
	t.Helper()
	ctx := context.Background()
	suffix := fmt.Sprintf("%d%d", time.Now().UnixNano()%1e6, tableSeq.Add(1))
	store, err := failures.Open(ctx, failures.Config{ConnectionString: az.ConnectionString(), Table: "Failures" + suffix})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Config{Account: tables.Account{ConnectionString: az.ConnectionString()},
		Table: "Journal" + suffix, Buffer: 1000, FlushInterval: 20 * time.Millisecond, CallTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close(context.Background()) })
	breakers, err := breaker.OpenStore(breaker.StoreConfig{ConnectionString: az.ConnectionString(), Table: "Breakers" + suffix})
	if err != nil {
		t.Fatal(err)
	}
	fx := &opsFixture{t: t, store: store, journal: j}
	if erpConsumer.Spec == nil {
		fx.erp = testenv.StartConsumer(t)
		erpConsumer = httpConsumer("erp", fx.erp.URL, config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1})
	}
	file := &config.RouteFile{
		Consumers: []config.Consumer{erpConsumer},
		Routes:    []config.Route{{Name: "contacts-to-erp", Table: "contact", Consumers: []string{"erp"}}},
	}
	settings, err := config.LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	settings.DeliveryBudget = 5 * time.Second
	settings.AdminKeys = []config.AdminKey{{Name: "ops", Key: opsKey}, {Name: "desk", Key: readerKey, Role: config.RoleReader}}
	for _, in := range []**opsInstance{&fx.a, &fx.b} {
		sh := breaker.NewShared(breakers, breaker.SharedOptions{Interval: opsSyncEvery, Logger: zerolog.Nop()})
		routes, err := route.Compile(file, route.Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		d, err := deliver.New(file.Consumers, store, deliver.Options{Budget: 5 * time.Second, Logger: zerolog.Nop(), Breakers: sh})
		if err != nil {
			t.Fatal(err)
		}
		startCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sh.Start(startCtx)
		cancel()
		t.Cleanup(func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sh.Close(closeCtx)
			_ = d.Close(closeCtx)
		})
		disp := &dispatch.Dispatcher{Routes: routes, Deliver: d, Recorder: store, Journal: j, Log: zerolog.Nop()}
		replayer := &failures.Replayer{Store: store, Sender: d, Router: disp, Budget: settings.DeliveryBudget, Observe: j.ObserveFailure, Log: zerolog.Nop()}
		api := handlers.NewFailuresAPI(handlers.FailuresDeps{Settings: settings, Replayer: replayer, Log: zerolog.Nop()})
		srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: disp, Failures: api,
			Consumers: &dispatch.Consumers{Deliverer: d, Journal: j}, History: j, Log: zerolog.Nop()}))
		t.Cleanup(srv.Close)
		*in = &opsInstance{srv: srv, deliverer: d, shared: sh}
	}
	return fx
}

// call makes one request to in with key and decodes the JSON answer into out.
func (fx *opsFixture) call(in *opsInstance, key, method, path, body string, out any) int {
	fx.t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, in.srv.URL+path, rd)
	req.Header.Set("x-functions-key", key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fx.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		fx.t.Fatalf("%s %s: %s, body not JSON: %v", method, path, resp.Status, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			fx.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

func (fx *opsFixture) consumer(in *opsInstance) supportapi.Consumer {
	fx.t.Helper()
	var list supportapi.ConsumerList
	if code := fx.call(in, readerKey, http.MethodGet, "/api/consumers", "", &list); code != http.StatusOK || len(list.Items) != 1 {
		fx.t.Fatalf("GET /api/consumers: %d %+v", code, list)
	}
	return list.Items[0]
}

func (fx *opsFixture) webhook(in *opsInstance, body []byte) map[string]any {
	fx.t.Helper()
	resp, err := http.Post(in.srv.URL+"/api/dataverse/webhook", "application/json", strings.NewReader(string(body)))
	if err != nil {
		fx.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		fx.t.Fatalf("webhook: %d %v", resp.StatusCode, out)
	}
	return out
}

// poll waits for cond, checking every few milliseconds, and fails after within.
func poll(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestConsumerOps_PauseHoldsEveryInstanceAndResumeWithReplayDeliversAll(t *testing.T) {
	fx := newOpsFixture(t, testenv.StartAzurite(t), config.Consumer{})

	var paused supportapi.ConsumerAction
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/erp/pause", `{"reason":"ERP upgrade"}`, &paused); code != http.StatusOK {
		t.Fatalf("pause: %d %+v", code, paused)
	}
	if p := paused.Consumer.Paused; !paused.Changed || paused.Action != "paused" || p == nil || p.By != "ops" || p.Reason != "ERP upgrade" || time.Since(p.At) > time.Minute {
		t.Fatalf("pause answer = %+v, want paused by ops with the reason, now", paused)
	}
	took := poll(t, "instance b shows the pause", 2*time.Second, func() bool { return fx.consumer(fx.b).Paused != nil })
	t.Logf("b showed the pause %s after a took it (sync every %s)", took.Round(time.Millisecond), opsSyncEvery)
	if p := fx.consumer(fx.b).Paused; p.By != "ops" || p.Reason != "ERP upgrade" {
		t.Errorf("b's pause = %+v", p)
	}

	// Events arrive at both instances: nothing reaches erp, each is kept as paused.
	const n = 6
	for i := range n {
		in := fx.a
		if i%2 == 1 {
			in = fx.b
		}
		if out := fx.webhook(in, contactEvent(i)); fmt.Sprint(out["failed"]) != "[erp]" {
			t.Fatalf("event %d: %v, want erp failed (held)", i, out)
		}
	}
	if c := fx.erp.Count(); c != 0 {
		t.Fatalf("the paused consumer got %d requests, want 0", c)
	}
	page, err := fx.store.List(context.Background(), failures.Query{Kind: string(failures.KindPaused), Top: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != n {
		t.Fatalf("%d paused failures kept, want %d", len(page.Items), n)
	}
	for _, f := range page.Items {
		if f.Consumer != "erp" || f.Status != failures.StatusPending || !strings.Contains(f.LastError, "paused by ops") {
			t.Errorf("kept %+v, want pending, erp, saying who paused it", f)
		}
	}

	// Replaying while paused keeps the failure as it is and says why.
	one := page.Items[0]
	var refused errorAnswer
	if code := fx.call(fx.b, opsKey, http.MethodPost, "/api/failures/"+one.ID+"/replay", "", &refused); code != http.StatusConflict ||
		refused.Error != "consumer paused" || !strings.Contains(refused.Detail, "resume the consumer") {
		t.Errorf("replay while paused: %d %+v, want 409 consumer paused", code, refused)
	}
	var bulkWhilePaused bulkAnswer
	fx.call(fx.a, opsKey, http.MethodPost, "/api/failures/replay", `{"consumer":"erp","kind":"paused"}`, &bulkWhilePaused)
	if bulkWhilePaused.Matched != n || bulkWhilePaused.Skipped != n || bulkWhilePaused.Delivered != 0 {
		t.Errorf("bulk replay while paused = %+v, want all %d skipped", bulkWhilePaused, n)
	}
	if f, _, _ := fx.store.Get(context.Background(), one.ID); f.Status != failures.StatusPending || fx.erp.Count() != 0 {
		t.Errorf("after replays while paused: status %s, erp got %d; want pending and nothing sent", f.Status, fx.erp.Count())
	}

	// Resume on b; a sees it within a sync; replaying the paused failures sends them all.
	var resumed supportapi.ConsumerAction
	if code := fx.call(fx.b, opsKey, http.MethodPost, "/api/consumers/erp/resume", "", &resumed); code != http.StatusOK || !resumed.Changed || resumed.Consumer.Paused != nil {
		t.Fatalf("resume: %d %+v", code, resumed)
	}
	poll(t, "instance a shows the resume", 2*time.Second, func() bool { return fx.consumer(fx.a).Paused == nil })
	var bulk bulkAnswer
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/failures/replay", `{"consumer":"erp","kind":"paused"}`, &bulk); code != http.StatusOK {
		t.Fatalf("bulk replay: %d %+v", code, bulk)
	}
	if bulk.Matched != n || bulk.Delivered != n {
		t.Errorf("bulk replay = %+v, want %d matched and delivered", bulk, n)
	}
	if c := fx.erp.Count(); c != n {
		t.Errorf("erp got %d requests after resume and replay, want %d", c, n)
	}

	// The journal has each held delivery as its own outcome.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fx.journal.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var hist supportapi.History
	fx.call(fx.a, readerKey, http.MethodGet, "/api/history?consumer=erp&since="+time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "", &hist)
	counts := map[journal.Outcome]int{}
	for _, e := range hist.Items {
		counts[e.Outcome]++
	}
	// A replay refused before it starts (the consumer paused) changes nothing and is not journaled.
	if counts[journal.Paused] != n || counts[journal.Replayed] != n || len(counts) != 2 {
		t.Errorf("journal outcomes %v, want %d paused (one per event) and %d replayed", counts, n, n)
	}
}

func TestConsumerOps_ResetClosesAnOpenBreakerOnEveryInstance(t *testing.T) {
	erp := testenv.StartConsumer(t)
	erp.Otherwise(testenv.ReplyStatus(http.StatusServiceUnavailable))
	c := httpConsumer("erp", erp.URL, config.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Hour, HalfOpenRequests: 1})
	fx := newOpsFixture(t, testenv.StartAzurite(t), c)
	for i := range 2 {
		fx.webhook(fx.a, contactEvent(i))
	}
	poll(t, "b shows the breaker open", 2*time.Second, func() bool { return fx.consumer(fx.b).State == "open" })

	erp.Otherwise(testenv.ReplyStatus(http.StatusOK))
	var reset supportapi.ConsumerAction
	if code := fx.call(fx.b, opsKey, http.MethodPost, "/api/consumers/erp/reset", "", &reset); code != http.StatusOK ||
		!reset.Changed || reset.Was != "open" || reset.Consumer.State != "closed" {
		t.Fatalf("reset: %d %+v, want was open, now closed", code, reset)
	}
	poll(t, "a shows the breaker closed", 2*time.Second, func() bool { return fx.consumer(fx.a).State == "closed" })
	if out := fx.webhook(fx.a, contactEvent(10)); fmt.Sprint(out["delivered"]) != "[erp]" {
		t.Errorf("after reset: %v, want delivered", out)
	}
}

func TestConsumerOps_TestEventIsSignedMarkedJournaledAndNotKept(t *testing.T) {
	erp := testenv.StartConsumer(t)
	secret := "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	c := httpConsumer("erp", erp.URL, config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1})
	c.Spec = httpdest.Spec{URL: erp.URL, Method: http.MethodPost, SigningSecret: secret}
	fx := newOpsFixture(t, testenv.StartAzurite(t), c)

	var res supportapi.TestResult
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/erp/test", "", &res); code != http.StatusOK {
		t.Fatalf("test: %d %+v", code, res)
	}
	if !res.Delivered || res.Attempts != 1 || res.StatusCode != 0 && res.StatusCode != 200 || res.EventID == "" || res.Message != deliver.TestMessage || res.DurationMs <= 0 {
		t.Errorf("test result = %+v, want delivered once, with its id and a duration", res)
	}
	reqs := erp.Requests()
	if len(reqs) != 1 {
		t.Fatalf("erp got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Header.Get("X-Dvrouter-Test") != "true" || r.Header.Get("Idempotency-Key") != res.EventID || !verifySignature(secret, r.Header, r.Body) {
		t.Errorf("request headers %v: want X-Dvrouter-Test: true, the test's id, a valid signature", r.Header)
	}
	var ev struct{ Message, Table string }
	if err := json.Unmarshal(r.Body, &ev); err != nil || ev.Message != deliver.TestMessage || ev.Table != deliver.TestTable {
		t.Errorf("body %s: want message %s, table %s", r.Body, deliver.TestMessage, deliver.TestTable)
	}
	page, err := fx.store.List(context.Background(), failures.Query{Top: 10})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("kept failures %+v (%v), want none for a test event", page.Items, err)
	}

	// A failed test is reported, not kept.
	erp.Otherwise(testenv.ReplyStatus(http.StatusUnauthorized))
	var failed supportapi.TestResult
	fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/erp/test", "", &failed)
	if failed.Delivered || failed.StatusCode != http.StatusUnauthorized || !strings.Contains(failed.Error, "401") {
		t.Errorf("failed test = %+v, want the consumer's 401", failed)
	}
	if page, _ := fx.store.List(context.Background(), failures.Query{Top: 10}); len(page.Items) != 0 {
		t.Errorf("a failed test event was kept: %+v", page.Items)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fx.journal.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var hist supportapi.History
	fx.call(fx.a, readerKey, http.MethodGet, "/api/history?event="+res.EventID, "", &hist)
	if len(hist.Items) != 1 || hist.Items[0].Outcome != journal.TestDelivered || hist.Items[0].Message != deliver.TestMessage {
		t.Errorf("journal for the test event: %+v, want one test-delivered entry", hist.Items)
	}
}

func TestConsumerOps_RolesAndUnknownConsumers(t *testing.T) {
	fx := newOpsFixture(t, testenv.StartAzurite(t), config.Consumer{})
	for _, action := range []string{"pause", "resume", "reset", "test"} {
		var e errorAnswer
		if code := fx.call(fx.a, readerKey, http.MethodPost, "/api/consumers/erp/"+action, "", &e); code != http.StatusForbidden || e.Error != "operator role required" {
			t.Errorf("reader %s: %d %+v, want 403", action, code, e)
		}
		if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/nope/"+action, "", &e); code != http.StatusNotFound || !strings.Contains(e.Detail, `"nope"`) {
			t.Errorf("%s of an unknown consumer: %d %+v, want 404 naming it", action, code, e)
		}
		if code := fx.call(fx.a, opsKey, http.MethodGet, "/api/consumers/erp/"+action, "", &e); code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 405", action, code)
		}
		if code := fx.call(fx.a, "", http.MethodPost, "/api/consumers/erp/"+action, "", &e); code != http.StatusUnauthorized {
			t.Errorf("%s without a key: %d, want 401", action, code)
		}
	}
	if fx.erp.Count() != 0 || fx.consumer(fx.a).Paused != nil {
		t.Error("a refused action did something")
	}
	var e errorAnswer
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/erp/pause", `{"reason":1}`, &e); code != http.StatusBadRequest {
		t.Errorf("malformed pause body: %d %+v, want 400", code, e)
	}
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/erp/pause", `{"reason":"`+strings.Repeat("x", 1025)+`"}`, &e); code != http.StatusBadRequest || e.Error != "invalid reason" {
		t.Errorf("pause with a 1025-character reason: %d %+v, want 400", code, e)
	}
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/consumers/erp/explode", "", &e); code != http.StatusNotFound {
		t.Errorf("unknown action: %d %+v, want 404", code, e)
	}
	if code := fx.call(fx.a, opsKey, http.MethodPost, "/api/failures?kind=paused", "", &e); code == http.StatusOK {
		t.Errorf("POST /api/failures: %d", code)
	}
	var list listAnswer
	if code := fx.call(fx.a, readerKey, http.MethodGet, "/api/failures?kind=paused", "", &list); code != http.StatusOK {
		t.Errorf("list kind=paused: %d, want 200", code)
	}
}

// verifySignature checks a request as the Standard Webhooks scheme tells a receiver to: HMAC-SHA256
// of "<webhook-id>.<webhook-timestamp>.<body>" with the key after "whsec_", one of the
// space-separated v1 signatures.
func verifySignature(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if s == "v1,"+want {
			return true
		}
	}
	return false
}
