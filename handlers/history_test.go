package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// newJournalFixture is the failures API fixture with the delivery journal on: the webhook
// journals every outcome and the history API reads it back.
func newJournalFixture(t *testing.T, az *testenv.Azurite) (*apiFixture, *journal.Journal) {
	t.Helper()
	return newJournalFixtureWith(t, az, fixtureOptions{})
}

func newJournalFixtureWith(t *testing.T, az *testenv.Azurite, opts fixtureOptions) (*apiFixture, *journal.Journal) {
	t.Helper()
	fx := newAPIFixture(t, az, opts)
	j, err := journal.Open(context.Background(), journal.Config{
		Account: tables.Account{ConnectionString: az.ConnectionString()},
		Table:   fmt.Sprintf("Journal%d%d", time.Now().UnixNano()%1e6, tableSeq.Add(1)),
		Buffer:  1000, FlushInterval: 20 * time.Millisecond, CallTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close(context.Background()) })
	fx.dispatcher.Journal = j
	settings, err := config.LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	settings.AdminKeys = []config.AdminKey{{Name: "support", Key: supportKey}, {Name: "ops", Key: opsKey}}
	settings.DeliveryBudget = 5 * time.Second
	replayer := &failures.Replayer{Store: fx.store, Sender: fx.deliverer, Router: fx.dispatcher, Budget: settings.DeliveryBudget,
		Observe: j.ObserveFailure, Log: zerolog.Nop()}
	api := handlers.NewFailuresAPI(handlers.FailuresDeps{Settings: settings, Replayer: replayer, Log: zerolog.Nop()})
	fx.srv.Config.Handler = handlers.New(handlers.Deps{Settings: settings, Dispatcher: fx.dispatcher, Failures: api, History: j, Log: zerolog.Nop()})
	return fx, j
}

func (fx *apiFixture) webhook(body []byte) int {
	fx.t.Helper()
	resp, err := http.Post(fx.srv.URL+"/api/dataverse/webhook", "application/json", strings.NewReader(string(body)))
	if err != nil {
		fx.t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func flushJournal(t *testing.T, j *journal.Journal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		t.Fatalf("journal flush: %v", err)
	}
}

func TestHistoryAPI(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx, j := newJournalFixture(t, az)
	auth := []string{"x-functions-key", supportKey}

	// Event 1 is delivered; event 2 fails at crm and is kept, then replayed.
	if st := fx.webhook(accountEvent(1)); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	fx.crm.Next(testenv.ReplyStatus(500))
	if st := fx.webhook(accountEvent(2)); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	flushJournal(t, j)
	id2 := fmt.Sprintf("%08x-1b3c-4d5e-8f60-%012x", 2, 2)

	get := func(query string) supportapi.History {
		t.Helper()
		var h supportapi.History
		if st := fx.call("GET", "/api/history?"+query, "", &h, auth...); st != 200 {
			t.Fatalf("GET /api/history?%s: status %d", query, st)
		}
		return h
	}
	h := get("table=account&record=" + id2)
	if len(h.Items) != 1 {
		t.Fatalf("record lookup: %+v", h.Items)
	}
	ev2 := h.Items[0].EventID
	h = get("event=" + ev2)
	if len(h.Items) != 1 || h.Items[0].Outcome != journal.Failed || h.Items[0].Consumer != "crm" ||
		h.Items[0].Route != "accounts-to-crm" || h.Items[0].StatusCode != 500 || h.Items[0].AttemptCount != 1 {
		t.Fatalf("event lookup: %+v", h.Items)
	}
	// Replay it: the journal gets the replay, newest first.
	var list struct{ Items []supportapi.Failure }
	fx.call("GET", "/api/failures", "", &list, auth...)
	if len(list.Items) != 1 {
		t.Fatalf("failures: %+v", list.Items)
	}
	if st := fx.call("POST", "/api/failures/"+list.Items[0].ID+"/replay", "", nil, "x-functions-key", opsKey); st != 200 {
		t.Fatalf("replay: %d", st)
	}
	flushJournal(t, j)
	for _, q := range []string{"event=" + ev2, "table=account&record=" + id2, "correlation=" + id2} {
		h = get(q)
		if len(h.Items) != 2 || h.Items[0].Outcome != journal.Replayed || h.Items[0].FailureID != list.Items[0].ID || h.Items[1].Outcome != journal.Failed {
			t.Errorf("%s: %+v", q, h.Items)
		}
	}
	today := time.Now().UTC().Format(time.DateOnly)
	h = get("consumer=crm&since=" + today + "&until=" + today)
	if len(h.Items) != 3 {
		t.Errorf("consumer crm today: %d entries, want 3 (delivered, failed, replayed): %+v", len(h.Items), h.Items)
	}
	h = get("consumer=crm&since=2024-07-25&until=2024-07-26")
	if len(h.Items) != 0 {
		t.Errorf("consumer crm in 2024: %+v", h.Items)
	}

	for _, q := range []string{"", "event=a&consumer=b", "consumer=crm", "consumer=crm&since=yesterday", "table=account", "event=a&top=0"} {
		if st := fx.call("GET", "/api/history?"+q, "", nil, auth...); st != 400 {
			t.Errorf("%q: status %d, want 400", q, st)
		}
	}
	if st := fx.call("GET", "/api/history?event="+id2, "", nil, "x-functions-key", ""); st != 401 && st != 403 {
		t.Errorf("without a key: status %d", st)
	}
	if st := fx.call("POST", "/api/history?event="+id2, "", nil, auth...); st != 405 {
		t.Errorf("POST: status %d", st)
	}
}

func TestHistory_JournalTableDownDeliveriesUnaffected(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx, j := newJournalFixture(t, az)
	// The journal's own Table Storage is down; the failure store is not.
	down := testenv.StartAzurite(t)
	jd, err := journal.Open(context.Background(), journal.Config{Account: tables.Account{ConnectionString: down.ConnectionString()},
		Buffer: 50, CallTimeout: time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jd.Close(context.Background()) })
	down.Stop()
	fx.dispatcher.Journal = jd
	_ = j
	start := time.Now()
	for i := range 200 {
		if st := fx.webhook(accountEvent(i)); st != 200 {
			t.Fatalf("webhook %d: status %d", i, st)
		}
	}
	elapsed := time.Since(start)
	if n := fx.crm.Count(); n != 200 {
		t.Errorf("crm got %d events, want 200", n)
	}
	flushJournal(t, jd)
	s := jd.Stats()
	t.Logf("200 events in %s with the journal down: %+v", elapsed, s)
	if s.Written != 0 || s.Added+s.Dropped != 200 {
		t.Errorf("stats %+v", s)
	}
}

func TestParseFilterTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		end  bool
		want string
	}{
		{"2024-07-25", false, "2024-07-25T00:00:00Z"},
		{"2024-07-25", true, "2024-07-25T23:59:59.999999999Z"},
		{"2024-07-25T10:00:00+02:00", false, "2024-07-25T08:00:00Z"},
		{"", false, "0001-01-01T00:00:00Z"},
	} {
		got, err := handlers.ParseFilterTime(c.in, c.end)
		if err != nil || got.UTC().Format(time.RFC3339Nano) != c.want {
			t.Errorf("%q end=%v: %v %v, want %s", c.in, c.end, got.UTC().Format(time.RFC3339Nano), err, c.want)
		}
	}
	if _, err := handlers.ParseFilterTime("25/07/2024", false); err == nil {
		t.Error("25/07/2024: no error")
	}
}

// statusesOf are the HTTP statuses of attempts, in order (0: a success, which has none).
func statusesOf(as []journal.Attempt) []int {
	var out []int
	for _, a := range as {
		out = append(out, a.StatusCode)
	}
	return out
}

// checkAttempts says what is wrong with attempts that should be in time order, each with a
// duration, the failed ones (a status) with their error.
func checkAttempts(t *testing.T, what string, as []journal.Attempt) {
	t.Helper()
	for i, a := range as {
		if a.At.IsZero() || a.Duration <= 0 || (i > 0 && a.At.Before(as[i-1].At)) || (a.StatusCode != 0) != strings.Contains(a.Error, "503") {
			t.Errorf("%s: attempt %d %+v: out of order, without a duration, or its error does not match its status", what, i+1, a)
		}
	}
}

func TestHistory_LiveDeliveryShowsEveryAttempt(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx, j := newJournalFixtureWith(t, az, fixtureOptions{attempts: 3})
	fx.crm.Next(testenv.ReplyStatus(503), testenv.ReplyStatus(503)) // fails twice, then succeeds
	if st := fx.webhook(accountEvent(1)); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	flushJournal(t, j)
	var h supportapi.History
	if st := fx.call("GET", "/api/history?table=account&record="+fmt.Sprintf("%08x-1b3c-4d5e-8f60-%012x", 1, 1), "", &h, "x-functions-key", supportKey); st != 200 {
		t.Fatalf("GET /api/history: %d", st)
	}
	if len(h.Items) != 1 || h.Items[0].Outcome != journal.Delivered || h.Items[0].AttemptCount != 3 {
		t.Fatalf("history: %+v, want one delivered outcome of 3 attempts", h.Items)
	}
	if got := statusesOf(h.Items[0].Attempts); !slices.Equal(got, []int{503, 503, 0}) {
		t.Errorf("attempts' statuses = %v, want [503 503 0]", got)
	}
	checkAttempts(t, "journal", h.Items[0].Attempts)
}

func TestHistory_KeptFailureShowsEveryAttemptAcrossItsReplay(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx, j := newJournalFixtureWith(t, az, fixtureOptions{attempts: 2})
	fx.crm.Next(testenv.ReplyStatus(503), testenv.ReplyStatus(503)) // fails twice (kept), then succeeds (the replay)
	if st := fx.webhook(accountEvent(2)); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	auth := []string{"x-functions-key", supportKey}
	var list struct{ Items []supportapi.Failure }
	if fx.call("GET", "/api/failures", "", &list, auth...); len(list.Items) != 1 {
		t.Fatalf("failures: %+v", list.Items)
	}
	id := list.Items[0].ID
	detail := func() supportapi.Failure {
		t.Helper()
		var f supportapi.Failure
		if st := fx.call("GET", "/api/failures/"+id, "", &f, auth...); st != 200 {
			t.Fatalf("GET failure: %d", st)
		}
		return f
	}
	if got := statusesOf(detail().Tries); !slices.Equal(got, []int{503, 503}) {
		t.Errorf("kept failure's attempts = %v, want [503 503]", got)
	}
	if st := fx.call("POST", "/api/failures/"+id+"/replay", "", nil, "x-functions-key", opsKey); st != 200 {
		t.Fatalf("replay: %d", st)
	}
	f := detail()
	if got := statusesOf(f.Tries); f.Status != "replayed" || !slices.Equal(got, []int{503, 503, 0}) {
		t.Errorf("replayed failure: status %s, attempts %v, want replayed with [503 503 0]", f.Status, got)
	}
	checkAttempts(t, "failure", f.Tries)

	flushJournal(t, j)
	var h supportapi.History
	if st := fx.call("GET", "/api/history?event="+f.EventID, "", &h, auth...); st != 200 || len(h.Items) != 2 {
		t.Fatalf("GET /api/history: %d %+v", st, h.Items)
	}
	if got := statusesOf(h.Items[1].Attempts); h.Items[1].Outcome != journal.Failed || !slices.Equal(got, []int{503, 503}) {
		t.Errorf("journal's failed outcome: %+v, want failed with [503 503]", h.Items[1])
	}
	if got := statusesOf(h.Items[0].Attempts); h.Items[0].Outcome != journal.Replayed || !slices.Equal(got, []int{0}) {
		t.Errorf("journal's replay: %+v, want replayed with one attempt", h.Items[0])
	}
}
