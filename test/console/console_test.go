// Package console_test drives the support console in a real browser (Debian's chromium,
// through playwright-core) against the real dvrouter binary, Azurite and loopback consumers.
package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

const (
	chromiumPath = "/usr/bin/chromium"
	adminKeyName = "support-desk"
	adminKey     = "console-test-key-0123456789"
	// readerKey has the reader role where dvrouter knows roles (name:reader=key).
	readerKey = "console-reader-key-0123456789"
	// hostile is what an attacker might get into a failure: a consumer's error body and a
	// Dataverse column can hold any text. The console must show it as text.
	hostile = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
)

// seeded is what the test put in the store, for the browser script to check against.
type seeded struct {
	HostileID string `json:"hostileId"`
	DiscardID string `json:"discardId"`
	Hostile   string `json:"hostile"`
	ERP       int    `json:"erp"`
	CRM       int    `json:"crm"`
	Ledger    int    `json:"ledger"`
	CRMFrom   string `json:"crmFrom"` // datetime-local values (the browser runs in UTC)
	CRMTo     string `json:"crmTo"`
	// HistoryEvent is the event id of a delivery the journal kept (desk answered 503, then
	// 200), for the browser to look up.
	HistoryEvent string `json:"historyEvent"`
}

// TestConsole_SupportLoopInABrowser signs in with the standalone admin key, lists, pages and
// filters, opens a failure with hostile content, replays it, discards another, and bulk
// replays a consumer's failures (dry run, then progress) and another's that fail again, all
// in chromium; then checks in the store and at the consumers that it really happened.
func TestConsole_SupportLoopInABrowser(t *testing.T) {
	requireBrowser(t)

	az := testenv.StartAzurite(t)
	const table = "ConsoleFailures"
	store := openStore(t, az, table)
	erp := testenv.StartConsumer(t)
	// A consumer that takes its time, as real ones do: a bulk replay's progress can be seen.
	erp.Otherwise(testenv.ReplyStall(100 * time.Millisecond))
	crm := testenv.StartConsumer(t)
	desk := testenv.StartConsumer(t, testenv.ReplyStatus(503)) // one refusal, then 200: two attempts
	deadPort, err := testenv.FreePort()                        // nothing listens there: the ledger stays down
	if err != nil {
		t.Fatal(err)
	}

	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routes, fmt.Sprintf(`consumers:
  - name: erp
    type: http
    url: %s/events
  - name: crm
    type: http
    url: %s/events
  - name: desk
    type: http
    url: %s/events
  - name: ledger
    type: http
    url: http://127.0.0.1:%d/events
    timeout: 2s
    retry: {attempts: 1}
    breaker: {minRequests: 3, openFor: 1m}
routes:
  - name: new-contacts
    table: contact
    messages: [Create]
    exclude: [birthdate]
    consumers: [erp, ledger]
  - name: accounts
    table: account
    messages: [Update]
    consumers: [crm]
  - name: cases
    table: incident
    messages: [SetState]
    consumers: [desk]
`, erp.URL, crm.URL, desk.URL, deadPort))

	want := seed(t, store)
	env := []string{
		"DVROUTER_TABLES=" + az.ConnectionString(),
		"DVROUTER_FAILURES_TABLE=" + table,
		"DVROUTER_ROUTES=" + routes,
		"DVROUTER_ADMIN_KEYS=" + adminKeyName + "=" + adminKey + ",rita:reader=" + readerKey,
		"DVROUTER_DELIVERY_BUDGET=10s",
	}
	srv := startDvrouter(t, env...) // DVROUTER_TABLES set: the delivery journal is on (its default)
	want.HistoryEvent = journaledDelivery(t, srv, event(t, "setstate-incident.json"), "desk")
	// The same store behind App Service authentication, where dvrouter knows it: the browser
	// script plays the platform (it sets x-ms-client-principal) against this one.
	behindAppService := startDvrouter(t, append(env, "DVROUTER_APPSERVICE_AUTH=true")...)

	shots := screenshotDir(t)
	config, _ := json.Marshal(want)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	runBrowserScript(ctx, t, srv, "console.test.mjs",
		"CONSOLE_URL="+srv.URL+"/api/console/",
		"CONSOLE_KEY="+adminKey,
		"CONSOLE_ACTOR="+adminKeyName,
		"CONSOLE_READER_KEY="+readerKey,
		"CONSOLE_APPSERVICE_URL="+behindAppService.URL+"/api/console/",
		"CONSOLE_SEEDED="+string(config),
		"CONSOLE_SCREENSHOTS="+shots)
	t.Logf("screenshots in %s", shots)

	// What the browser did, seen from the outside.
	if got := erp.Count(); got != want.ERP-1 {
		t.Errorf("erp received %d deliveries, want %d (one replay, then every other pending one but the discarded)", got, want.ERP-1)
	}
	if got := desk.Count(); got != 2 {
		t.Errorf("desk received %d requests, want 2 (a 503, then the delivery)", got)
	}
	if got := crm.Count(); got != 0 {
		t.Errorf("crm received %d deliveries, want none", got)
	}
	counts := statusCounts(t, store, "erp")
	if counts[failures.StatusReplayed] != want.ERP-1 || counts[failures.StatusDiscarded] != 1 || counts[failures.StatusPending] != 0 {
		t.Errorf("erp failures by status = %v, want %d replayed and 1 discarded", counts, want.ERP-1)
	}
	if got := statusCounts(t, store, "ledger"); got[failures.StatusPending] != want.Ledger {
		t.Errorf("ledger failures by status = %v, want all %d still pending (it is down)", got, want.Ledger)
	}
	gone, _, err := store.Get(context.Background(), want.DiscardID)
	if err != nil {
		t.Fatal(err)
	}
	if gone.Status != failures.StatusDiscarded || gone.UpdatedBy != adminKeyName || !strings.Contains(gone.Reason, "re-sent by hand") {
		t.Errorf("discarded failure = status %s by %q reason %q; want discarded by %s with the reason typed", gone.Status, gone.UpdatedBy, gone.Reason, adminKeyName)
	}
	replayed, _, err := store.Get(context.Background(), want.HostileID)
	if err != nil {
		t.Fatal(err)
	}
	if replayed.Status != failures.StatusReplayed || replayed.UpdatedBy != adminKeyName {
		t.Errorf("replayed failure = status %s by %q, want replayed by %s", replayed.Status, replayed.UpdatedBy, adminKeyName)
	}
	for _, name := range []string{"list-1280x800.png", "list-375x812.png", "detail-1280x800.png", "detail-375x812.png", "bulk-1280x800.png", "bulk-375x812.png"} {
		if st, err := os.Stat(filepath.Join(shots, name)); err != nil || st.Size() < 10_000 {
			t.Errorf("screenshot %s missing or empty (%v)", name, err)
		}
	}
}

// journaledDelivery posts body to srv's webhook and waits until the delivery journal answers
// for it (its writer flushes in the background); it returns the event id the journal keeps.
func journaledDelivery(t *testing.T, srv *dvrouter, body []byte, consumer string) string {
	t.Helper()
	var posted struct {
		CorrelationID string `json:"CorrelationId"`
	}
	if err := json.Unmarshal(body, &posted); err != nil || posted.CorrelationID == "" {
		t.Fatalf("the event has no CorrelationId to look it up by: %v", err)
	}
	resp, err := http.Post(srv.URL+"/api/dataverse/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook = %d, want 200\ndvrouter log:\n%s", resp.StatusCode, srv.out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/history?correlation="+url.QueryEscape(posted.CorrelationID), nil)
		req.Header.Set("x-functions-key", adminKey)
		var got supportapi.History
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		status := resp.StatusCode
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if status != http.StatusOK || err != nil {
			t.Fatalf("GET /api/history = %d (%v), want 200", status, err)
		}
		for _, e := range got.Items {
			if e.Consumer == consumer && e.Outcome == journal.Delivered {
				return e.EventID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal has no delivered outcome for %s within 30s: %+v", consumer, got.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seed records the failures the browser works with: erp (the newest one hostile), ledger
// (down for good) and crm (two days earlier, for the time filter).
func seed(t *testing.T, store *failures.Store) seeded {
	t.Helper()
	contact := event(t, "create-contact-sync.json")
	hostileContact := event(t, "create-contact-sync.json", `"Lovelace"`, jsonString(hostile))
	account := event(t, "update-account-async-images.json")
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	crmDay := time.Date(2026, 3, 8, 9, 0, 0, 0, time.UTC)
	want := seeded{Hostile: hostile, ERP: 120, CRM: 30, Ledger: 8,
		CRMFrom: "2026-03-08T00:00", CRMTo: "2026-03-09T00:00"}

	var all []failures.Failure
	for i := range want.ERP {
		f := failures.Failure{
			EventID: fmt.Sprintf("evt-erp-%03d", i), Consumer: "erp", Route: "new-contacts", Table: "contact", Message: "Create",
			RecordID: "3c8a1f52-6d4b-ef11-8409-000d3a1b2c3d", Kind: failures.KindDelivery, Attempts: 4,
			OccurredAt: base.Add(-time.Duration(i) * time.Minute), LastStatusCode: 503,
			LastError: "HTTP 503: erp is down for maintenance", Payload: contact,
		}
		if i == 0 {
			f.LastError, f.LastStatusCode, f.Payload = "HTTP 500: "+hostile, 500, hostileContact
			f.Tries = []failures.Try{
				{At: base.Add(-2 * time.Second), StatusCode: 503, Duration: 250 * time.Millisecond, Error: "HTTP 503: erp is down for maintenance"},
				{At: base.Add(-time.Second), Duration: 2 * time.Second, Error: "no answer within 2s"},
				{At: base, StatusCode: 500, Duration: 12 * time.Millisecond, Error: "HTTP 500: " + hostile},
			}
		}
		all = append(all, f)
	}
	for i := range want.Ledger {
		all = append(all, failures.Failure{
			EventID: fmt.Sprintf("evt-ledger-%03d", i), Consumer: "ledger", Route: "new-contacts", Table: "contact", Message: "Create",
			Kind: failures.KindDelivery, OccurredAt: base.Add(-3*time.Hour - time.Duration(i)*time.Minute),
			LastError: "connection refused", Payload: contact,
		})
	}
	for i := range want.CRM {
		all = append(all, failures.Failure{
			EventID: fmt.Sprintf("evt-crm-%03d", i), Consumer: "crm", Route: "accounts", Table: "account", Message: "Update",
			Kind: failures.KindBreakerOpen, OccurredAt: crmDay.Add(time.Duration(i) * time.Minute),
			LastError: "circuit breaker open", Payload: account,
		})
	}
	recorded := recordAll(t, store, all)
	want.HostileID = recorded[0].ID
	want.DiscardID = recorded[5].ID
	return want
}

func statusCounts(t *testing.T, store *failures.Store, consumer string) map[failures.Status]int {
	t.Helper()
	counts := map[failures.Status]int{}
	q := failures.Query{Consumer: consumer, Top: failures.MaxTop}
	for {
		page, err := store.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Items {
			counts[f.Status]++
		}
		if page.Continuation == "" {
			return counts
		}
		q.Continuation = page.Continuation
	}
}

// TestConsole_ServedWithSecurityHeaders checks the headers the browser test relies on, on the
// real binary: the page is anonymous (the key is asked for by the page), strict about what it
// loads, never framed, never sends a referrer.
func TestConsole_ServedWithSecurityHeaders(t *testing.T) {
	srv := startDvrouter(t) // no store, no keys: the console is served all the same
	resp, err := http.Get(srv.URL + "/api/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /api/console/ = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows inline or eval'd script", csp)
	}
	for name, want := range map[string]string{"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
