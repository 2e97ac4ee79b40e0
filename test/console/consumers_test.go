package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// TestConsole_ConsumerOperationsInABrowser pauses a consumer in the console, sees the pause
// shown, sends it a test event (which still goes: it is how a paused consumer is checked) and
// sees the result, resumes it, and checks that a reader is offered none of it; then checks at
// the consumer and in the store that it really happened.
func TestConsole_ConsumerOperationsInABrowser(t *testing.T) {
	requireBrowser(t)
	az := testenv.StartAzurite(t)
	const table = "ConsoleOpsFailures"
	store := openStore(t, az, table)
	erp := testenv.StartConsumer(t)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routes, fmt.Sprintf(`consumers:
  - name: erp
    type: http
    url: %s/events
routes:
  - name: new-contacts
    table: contact
    messages: [Create]
    consumers: [erp]
`, erp.URL))
	srv := startDvrouter(t,
		"DVROUTER_TABLES="+az.ConnectionString(),
		"DVROUTER_FAILURES_TABLE="+table,
		"DVROUTER_BREAKER_TABLE=ConsoleOpsBreakers",
		"DVROUTER_ROUTES="+routes,
		"DVROUTER_ADMIN_KEYS="+adminKeyName+"="+adminKey+",rita:reader="+readerKey)

	shots := screenshotDir(t)
	// The browser script posts an event while the consumer is paused, through this hook.
	webhook := srv.URL + "/api/dataverse/webhook"
	body := event(t, "create-contact-sync.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runBrowserScript(ctx, t, srv, "consumers.test.mjs",
		"CONSOLE_URL="+srv.URL+"/api/console/",
		"CONSOLE_KEY="+adminKey,
		"CONSOLE_ACTOR="+adminKeyName,
		"CONSOLE_READER_KEY="+readerKey,
		"CONSOLE_WEBHOOK="+webhook,
		"CONSOLE_EVENT="+string(body),
		"CONSOLE_SCREENSHOTS="+shots)

	// Only the test event reached erp: the event posted while it was paused was kept.
	reqs := erp.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("X-Dvrouter-Test") != "true" {
		t.Errorf("erp got %d requests (%v), want the test event only", len(reqs), reqs)
	}
	page, err := store.List(context.Background(), failures.Query{Top: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Kind != failures.KindPaused || page.Items[0].Consumer != "erp" {
		t.Errorf("kept failures %+v, want the one event posted while erp was paused, kind paused", page.Items)
	}
	var list struct {
		Items []struct {
			Paused *json.RawMessage `json:"paused"`
		} `json:"items"`
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/consumers", nil)
	req.Header.Set("x-functions-key", readerKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	if err := json.Unmarshal(raw.Bytes(), &list); err != nil || len(list.Items) != 1 || list.Items[0].Paused != nil {
		t.Errorf("GET /api/consumers after the browser resumed erp: %s (%v), want erp not paused", raw.Bytes(), err)
	}
}
