package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/httpdest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

const consumersKey = "consumers-key-0123456789"

// consumersServer serves the handlers with one consumer, erp, that answers 500, and whose
// breaker opens after two failed deliveries.
func consumersServer(t *testing.T, settings *config.Settings) (*httptest.Server, *deliver.Deliverer) {
	t.Helper()
	erp := testenv.StartConsumer(t)
	erp.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))
	c := config.Consumer{
		Name: "erp", Type: "http", Format: "row", Timeout: 3 * time.Second, MaxConcurrency: 4, Spec: httpdest.Spec{URL: erp.URL, Method: http.MethodPost},
		Retry:   config.Retry{Attempts: 1},
		Breaker: config.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Minute, HalfOpenRequests: 1},
	}
	d, err := deliver.New([]config.Consumer{c}, keepAll{}, deliver.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Consumers: d, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	return srv, d
}

func getConsumers(t *testing.T, srv *httptest.Server, method, key string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+"/api/consumers", nil)
	if key != "" {
		req.Header.Set("x-functions-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("%s /api/consumers: %s, body not JSON: %v", method, resp.Status, err)
	}
	return resp.StatusCode, raw
}

func TestConsumersAPI_ShowsEachBreakerBehindTheAdminKey(t *testing.T) {
	srv, d := consumersServer(t, &config.Settings{AdminKeys: []config.AdminKey{{Name: "ops", Key: consumersKey}}})
	ev := &dataverse.Event{ID: "evt-1", Message: "Create", Table: "contact", Raw: []byte(`{}`)}
	for range 2 {
		if _, err := d.Deliver(context.Background(), ev, []deliver.Target{{Route: "r", Consumer: "erp"}}); err != nil {
			t.Fatal(err)
		}
	}

	if code, body := getConsumers(t, srv, http.MethodGet, ""); code != http.StatusUnauthorized {
		t.Errorf("without a key: %d %s, want 401", code, body)
	}
	if code, body := getConsumers(t, srv, http.MethodGet, "wrong-key-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong key: %d %s, want 401", code, body)
	}
	if code, body := getConsumers(t, srv, http.MethodPost, consumersKey); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s, want 405", code, body)
	}
	code, body := getConsumers(t, srv, http.MethodGet, consumersKey)
	var list handlers.ConsumerList
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
		t.Fatalf("GET: %d %s (%v)", code, body, err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("items = %+v, want erp only", list.Items)
	}
	erp := list.Items[0]
	if erp.Consumer != "erp" || erp.State != "open" || erp.Shared || erp.Opened != 1 || erp.HalfOpenAt == nil ||
		time.Until(*erp.HalfOpenAt) < 50*time.Second {
		t.Errorf("erp = %+v, want open (not shared: no store), opened once, half-opening in about a minute", erp)
	}
	if !strings.Contains(string(body), `"halfOpenAt"`) || !strings.Contains(string(body), `"window":"30s"`) {
		t.Errorf("body %s lacks halfOpenAt or the default window", body)
	}
}

func TestConsumersAPI_StandaloneWithoutKeysIsRefused(t *testing.T) {
	srv, _ := consumersServer(t, &config.Settings{})
	if code, body := getConsumers(t, srv, http.MethodGet, consumersKey); code != http.StatusForbidden {
		t.Errorf("no admin keys configured: %d %s, want 403", code, body)
	}
}

// keepAll takes every failure: these tests look at the breaker, not the store.
type keepAll struct{}

func (keepAll) Record(_ context.Context, f failures.Failure) (failures.Failure, error) {
	f.ID = "kept"
	return f, nil
}
