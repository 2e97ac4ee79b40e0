package handlers_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// TestRetention_TimerInvocationPurgesAndSaysWhat: the Functions host fires the Retention timer
// (its envelope, read as strictly as the host reads answers); failures older than the window go,
// the rest stay, and both the invocation's Logs and dvrouter's log say what was removed.
func TestRetention_TimerInvocationPurgesAndSaysWhat(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := context.Background()
	store, err := failures.Open(ctx, failures.Config{ConnectionString: az.ConnectionString(), Table: fmt.Sprintf("Retention%d", time.Now().UnixNano()%1e6)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var recent []string
	for i, age := range []time.Duration{time.Hour, 10 * 24 * time.Hour, 29 * 24 * time.Hour, 31 * 24 * time.Hour, 90 * 24 * time.Hour, 400 * 24 * time.Hour} {
		f, err := store.Record(ctx, failures.Failure{
			EventID: fmt.Sprintf("evt-%d", i), Consumer: "erp", Route: "contacts-to-erp", Table: "contact",
			OccurredAt: now.Add(-age - time.Minute), FirstFailedAt: now.Add(-age), LastFailedAt: now.Add(-age),
			LastError: "503", Payload: []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if age < 30*24*time.Hour {
			recent = append(recent, f.ID)
		}
	}
	settings := &config.Settings{UnderFunctionsHost: true, FailureRetention: 30 * 24 * time.Hour, ResolvedRetention: 30 * 24 * time.Hour, BodyReadTimeout: 5 * time.Second}
	logs := &syncBuffer{}
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: &dispatch.Dispatcher{}, Purger: store, Log: zerolog.New(logs)}))
	t.Cleanup(srv.Close)

	ans, err := testenv.InvokeTimer(ctx, srv.URL, "Retention", "timer", false)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Status != 200 || len(ans.Logs) != 1 || !strings.Contains(ans.Logs[0], "purged 3 failures (3 pending, 0 replayed, 0 discarded)") {
		t.Fatalf("invocation: %+v", ans)
	}
	logged := logs.lines("failures purged")
	if len(logged) != 1 || logged[0]["deleted"] != float64(3) || logged[0]["complete"] != true {
		t.Errorf("log lines: %v", logged)
	} else if by, _ := logged[0]["byConsumer"].(map[string]any); by["erp"] != float64(3) {
		t.Errorf("byConsumer %v, want erp: 3", logged[0]["byConsumer"])
	}
	page, err := store.List(ctx, failures.Query{Top: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(recent) {
		t.Errorf("%d failures left, want the %d inside 30 days", len(page.Items), len(recent))
	}

	// A past-due run of the same (the app was down at the scheduled time) finds nothing left.
	ans, err = testenv.InvokeTimer(ctx, srv.URL, "Retention", "timer", true)
	if err != nil || ans.Status != 200 || !strings.Contains(ans.Logs[0], "purged 0 failures") {
		t.Errorf("second invocation: %+v, %v", ans, err)
	}
}

func TestRetention_OffOrWithoutStoreAnswersWithoutPurging(t *testing.T) {
	for name, settings := range map[string]*config.Settings{
		"retention 0":      {FailureRetention: 0, BodyReadTimeout: time.Second},
		"no failure store": {FailureRetention: time.Hour, BodyReadTimeout: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			var purger handlers.Purger
			if name == "retention 0" {
				purger = refusingPurger{t}
			}
			srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: &dispatch.Dispatcher{}, Purger: purger, Log: zerolog.Nop()}))
			t.Cleanup(srv.Close)
			ans, err := testenv.InvokeTimer(context.Background(), srv.URL, "Retention", "timer", false)
			if err != nil || ans.Status != 200 || len(ans.Logs) != 1 || !strings.Contains(ans.Logs[0], "nothing") {
				t.Errorf("invocation: %+v, %v", ans, err)
			}
		})
	}
}

// refusingPurger fails the test if retention 0 ever purges.
type refusingPurger struct{ t *testing.T }

func (p refusingPurger) Purge(context.Context, time.Time, failures.Retention) (failures.PurgeResult, error) {
	p.t.Error("purged with retention off")
	return failures.PurgeResult{}, nil
}

// TestRetention_StoreDownFailsTheInvocation: a purge that cannot reach the store answers
// non-2xx, so the run shows as failed (and counts toward the function-errors alert).
func TestRetention_StoreDownFailsTheInvocation(t *testing.T) {
	az := testenv.StartAzurite(t)
	store, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: "RetentionDown"})
	if err != nil {
		t.Fatal(err)
	}
	az.Stop()
	settings := &config.Settings{FailureRetention: time.Hour, BodyReadTimeout: time.Second}
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: &dispatch.Dispatcher{}, Purger: store, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	ans, err := testenv.InvokeTimer(context.Background(), srv.URL, "Retention", "timer", false)
	if err != nil || ans.Status != 500 {
		t.Errorf("invocation with the store down: %+v, %v; want 500", ans, err)
	}
}
