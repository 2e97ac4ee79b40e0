package console_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// TestConsole_ChangeTrackingInABrowser shows the Change tracking view a table's stored state
// (token time, a read between two pages, a full read), has an operator reset it and checks in
// the store that its next read is a full read, and checks that a reader is offered no reset.
//
// dvrouter cannot get a token for a Web API here, and needs none: its change tracking loop first
// reads after StaleAfter/3 (20 minutes with the setting below), and the view and the API only
// read and write the token store. So the state is written into the store as a read would.
func TestConsole_ChangeTrackingInABrowser(t *testing.T) {
	requireBrowser(t)
	az := testenv.StartAzurite(t)
	const (
		envURL      = "https://contoso.crm4.dynamics.com"
		envHost     = "contoso.crm4.dynamics.com"
		changeTable = "ConsoleChanges"
	)
	store, err := changes.OpenStore(tables.Account{ConnectionString: az.ConnectionString()}, changeTable)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tokenAt := time.Now().UTC().Add(-3 * time.Minute).Truncate(time.Second)
	lastRunAt := tokenAt.Add(time.Minute)
	// account: a full read reached its end at tokenAt; a later read stopped after two pages.
	seedChanges(ctx, t, store, envHost, "account", func(s *changes.State) {
		s.DeltaLink = envURL + "/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2026%2008%3a10%3a44"
		s.NextLink = envURL + "/api/data/v9.2/accounts?$skiptoken=page3"
		s.PagesRead, s.TokenAt, s.LastRunAt = 2, tokenAt, lastRunAt
		s.FullReads, s.FullReadWhy = 1, "first read of the table"
		s.Changed, s.Deleted = 12, 1
	})
	// contact: in the store, but no route reads it any more.
	seedChanges(ctx, t, store, envHost, "contact", func(s *changes.State) {
		s.DeltaLink, s.TokenAt, s.LastRunAt = envURL+"/api/data/v9.2/contacts?$deltatoken=1", tokenAt, tokenAt
		s.FullReads, s.FullReadWhy = 1, "first read of the table"
	})

	erp := testenv.StartConsumer(t)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routes, fmt.Sprintf(`consumers:
  - name: erp
    type: http
    url: %s/events
routes:
  - name: accounts
    table: account
    source: changes
    consumers: [erp]
`, erp.URL))
	srv := startDvrouter(t,
		"DVROUTER_TABLES="+az.ConnectionString(),
		"DVROUTER_FAILURES_TABLE=ConsoleChangesFailures",
		"DVROUTER_BREAKER_TABLE=ConsoleChangesBreakers",
		"DVROUTER_CHANGES_ENVIRONMENT="+envURL,
		"DVROUTER_CHANGES_CLIENT_ID=0c0e3f7e-52a4-4a51-8f36-9a2b44d1c1aa",
		"DVROUTER_CHANGES_TABLE="+changeTable,
		"DVROUTER_CHANGES_STALE_AFTER=1h",
		"DVROUTER_ROUTES="+routes,
		"DVROUTER_ADMIN_KEYS="+adminKeyName+"="+adminKey+",rita:reader="+readerKey)

	shots := screenshotDir(t)
	runBrowserScript(ctx, t, srv, "changes.test.mjs",
		"CONSOLE_URL="+srv.URL+"/api/console/",
		"CONSOLE_KEY="+adminKey,
		"CONSOLE_ACTOR="+adminKeyName,
		"CONSOLE_READER_KEY="+readerKey,
		"CONSOLE_TOKEN_AT="+tokenAt.Format("2006-01-02T15:04:05.000Z"),
		"CONSOLE_SCREENSHOTS="+shots)

	// The reset reached the store: no token, no pending read, the next read is a full one.
	states, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byTable := map[string]changes.State{}
	for _, st := range states {
		byTable[st.Table] = st
	}
	acc := byTable["account"]
	if acc.DeltaLink != "" || acc.NextLink != "" || acc.Pending || acc.PagesRead != 0 || !acc.TokenAt.IsZero() {
		t.Errorf("account after the reset: %+v (delta link %q, next link %q), want no token and no pending read", acc, acc.DeltaLink, acc.NextLink)
	}
	if acc.ResetBy != adminKeyName || acc.ResetAt.Before(tokenAt) || acc.FullReadWhy != "reset by "+adminKeyName {
		t.Errorf("account after the reset: reset by %q at %v, full read why %q; want reset by %s, now", acc.ResetBy, acc.ResetAt, acc.FullReadWhy, adminKeyName)
	}
	if acc.Changed != 12 || acc.FullReads != 1 {
		t.Errorf("account after the reset: changed %d, full reads %d; want the counts kept (12, 1)", acc.Changed, acc.FullReads)
	}
	if c := byTable["contact"]; c.DeltaLink == "" || c.ResetBy != "" {
		t.Errorf("contact (no route reads it) after the browser: %+v, want it untouched", c)
	}
}

// seedChanges writes table's state into store as a reader would: under the lease, released after.
func seedChanges(ctx context.Context, tb testing.TB, store *changes.Store, env, table string, change func(*changes.State)) {
	tb.Helper()
	lease, err := store.Acquire(ctx, env, table, "console-test", time.Minute)
	if err != nil {
		tb.Fatalf("seed %s: %v", table, err)
	}
	if err := lease.Save(ctx, change); err != nil {
		tb.Fatalf("seed %s: %v", table, err)
	}
	if err := lease.Release(ctx); err != nil {
		tb.Fatalf("seed %s: release: %v", table, err)
	}
}
