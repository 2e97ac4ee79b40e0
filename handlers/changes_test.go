package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// TestChangeTracking_TimerReadsTablesAndTheAPIShowsAndResetsThem: the host fires the
// ChangeTracking timer (its envelope, read as strictly as the host reads answers); the changed
// rows reach the consumer; GET /api/changes shows the table, a reader may not reset it, an
// operator may, and the next run is a full read.
func TestChangeTracking_TimerReadsTablesAndTheAPIShowsAndResetsThem(t *testing.T) {
	ctx := context.Background()
	api := testenv.StartWebAPI(t)
	api.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid", Columns: []string{"name"}})
	for i := range 3 {
		api.SetRow("account", fmt.Sprintf("00000000-0000-0000-0000-%012d", i), map[string]any{"name": fmt.Sprint("a", i)})
	}
	api.TrackChanges("account")
	client, err := webapi.New(map[string]string{"org": api.URL}, webapi.Options{Credential: api.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	az := testenv.StartAzurite(t)
	fstore, err := failures.Open(ctx, failures.Config{ConnectionString: az.ConnectionString(), Table: "ChangeFailures"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := changes.OpenStore(tables.Account{ConnectionString: az.ConnectionString()}, "ChangeTracking")
	if err != nil {
		t.Fatal(err)
	}
	consumer := testenv.StartConsumer(t)
	f, err := config.LoadRoutesBytes("routes.yaml", []byte(`
consumers: [{name: erp, type: http, url: "`+consumer.URL+`"}]
routes: [{name: accounts, table: account, source: changes, select: [name], consumers: [erp]}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := route.Compile(f, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := deliver.New(f.Consumers, fstore, deliver.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(ctx) })
	disp := &dispatch.Dispatcher{Routes: set, Deliver: d, Recorder: fstore, Log: zerolog.Nop()}
	runner := &changes.Runner{
		Reader:     &changes.Reader{Env: client.Environments()[0], Store: store, Dispatcher: disp, Owner: "test", Log: zerolog.Nop()},
		Tables:     changes.TablesFor(f, set),
		StaleAfter: 15 * time.Minute,
	}
	settings, err := config.LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	settings.UnderFunctionsHost = true
	settings.AdminKeys = []config.AdminKey{{Name: "desk", Key: "reader-key-0123456789", Role: config.RoleReader}, {Name: "ops", Key: "operator-key-0123456789", Role: config.RoleOperator}}
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: disp, Changes: runner, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)

	ans, err := testenv.InvokeTimer(ctx, srv.URL, "ChangeTracking", "timer", false)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Status != 200 || len(ans.Logs) != 1 || !strings.Contains(ans.Logs[0], "account: 3 changed, 0 deleted in 1 pages (1 Web API requests") {
		t.Fatalf("invocation: %+v", ans)
	}
	if consumer.Count() != 3 {
		t.Fatalf("consumer got %d events, want 3", consumer.Count())
	}

	desk, _ := supportapi.NewClient(srv.URL, "reader-key-0123456789", "")
	st, err := desk.ChangesStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tables) != 1 || st.Tables[0].Table != "account" || st.Tables[0].TokenAt.IsZero() || st.Tables[0].Pending ||
		st.Tables[0].Stale || st.Tables[0].Changed != 3 || st.Tables[0].FullReads != 1 {
		t.Fatalf("status = %+v", st)
	}
	var apiErr *supportapi.APIError
	if _, err := desk.ResetChanges(ctx, "account"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("reset by a reader: %v, want 403", err)
	}
	ops, _ := supportapi.NewClient(srv.URL, "operator-key-0123456789", "")
	if _, err := ops.ResetChanges(ctx, "contact"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("reset of a table no route reads: %v, want 404", err)
	}
	res, err := ops.ResetChanges(ctx, "account")
	if err != nil || res.ResetBy != "ops" {
		t.Fatalf("reset = %+v (err %v)", res, err)
	}
	ans, err = testenv.InvokeTimer(ctx, srv.URL, "ChangeTracking", "timer", false)
	if err != nil || ans.Status != 200 || !strings.Contains(ans.Logs[0], "full read: reset by ops") {
		t.Fatalf("run after the reset: %+v (err %v)", ans, err)
	}
}

func TestChangeTracking_OffSaysSo(t *testing.T) {
	settings := &config.Settings{UnderFunctionsHost: true, BodyReadTimeout: 5 * time.Second}
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: &dispatch.Dispatcher{}, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	ans, err := testenv.InvokeTimer(context.Background(), srv.URL, "ChangeTracking", "timer", false)
	if err != nil || ans.Status != 200 || len(ans.Logs) != 1 || !strings.Contains(ans.Logs[0], "change tracking is off") {
		t.Fatalf("invocation: %+v (err %v)", ans, err)
	}
}
