package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/httpdest"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// The CLI is tested against the real failures API (real store on Azurite, real deliveries to
// a loopback consumer) served by httptest.

const cliKey = "cli-test-key-0123456789"

type cliFixture struct {
	t     *testing.T
	store *failures.Store
	erp   *testenv.Consumer
	url   string
	d     *deliver.Deliverer
}

var cliTableSeq atomic.Int64

func newCLIFixture(t *testing.T, az *testenv.Azurite, breaker config.Breaker) *cliFixture {
	t.Helper()
	ctx := context.Background()
	store, err := failures.Open(ctx, failures.Config{
		ConnectionString: az.ConnectionString(),
		Table:            fmt.Sprintf("Cli%d%d", time.Now().UnixNano()%1e6, cliTableSeq.Add(1)),
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	fx := &cliFixture{t: t, store: store, erp: testenv.StartConsumer(t)}
	if breaker == (config.Breaker{}) {
		breaker = config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1}
	}
	file := &config.RouteFile{
		Consumers: []config.Consumer{{
			Name: "erp", Type: "http", Format: "row", Timeout: 3 * time.Second, MaxConcurrency: 16,
			Retry:   config.Retry{Attempts: 1, InitialDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
			Breaker: breaker, Spec: httpdest.Spec{URL: fx.erp.URL, Method: http.MethodPost},
		}},
		Routes: []config.Route{{Name: "contacts-to-erp", Table: "contact", Consumers: []string{"erp"}, Exclude: []string{"emailaddress1"}}},
	}
	log := zerolog.Nop()
	routes, err := route.Compile(file, route.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d, err := deliver.New(file.Consumers, store, deliver.Options{Budget: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	settings := &config.Settings{AdminKeys: []config.AdminKey{{Name: "support", Key: cliKey}}, DeliveryBudget: 5 * time.Second}
	disp := &dispatch.Dispatcher{Routes: routes, Deliver: d, Recorder: store, Log: log}
	api := handlers.NewFailuresAPI(handlers.FailuresDeps{Settings: settings, Log: log,
		Replayer: &failures.Replayer{Store: store, Sender: d, Router: disp, Budget: settings.DeliveryBudget, Log: log}})
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: disp, Failures: api, Consumers: d, Log: log}))
	t.Cleanup(srv.Close)
	fx.url, fx.d = srv.URL, d
	return fx
}

// cliContact is the i-th test contact event, a Create i minutes after a fixed time.
func cliContact(i int) (raw []byte, at time.Time) {
	at = time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	id := fmt.Sprintf("%08x-2c3d-4e5f-8a70-%012x", i, i)
	raw = fmt.Appendf(nil, `{"BusinessUnitId":"7e2d4c19-3a1b-ef11-8409-000d3a1b2c3d","CorrelationId":"%[1]s","Depth":1,
"InitiatingUserId":"9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d","InputParameters":[{"key":"Target","value":{
"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Attributes":[{"key":"contactid","value":"%[1]s"},
{"key":"firstname","value":"Ada%[2]d"},{"key":"emailaddress1","value":"ada%[2]d@example.com"}],"EntityState":null,"FormattedValues":[],"Id":"%[1]s","KeyAttributes":[],
"LogicalName":"contact","RelatedEntities":[],"RowVersion":null}}],"IsExecutingOffline":false,"IsInTransaction":false,
"IsOfflinePlayback":false,"IsolationMode":1,"MessageName":"Create","Mode":1,"OperationCreatedOn":"\/Date(%[3]d)\/",
"OperationId":"%[1]s","OrganizationId":"4ef5b371-e89e-e711-8122-000d3aa2331c","OrganizationName":"contoso",
"OutputParameters":[],"OwningExtension":{"Id":"75417616-4ea2-e711-8122-000d3aa2331c","KeyAttributes":[],
"LogicalName":"sdkmessageprocessingstep","Name":null,"RowVersion":null},"ParentContext":null,"PostEntityImages":[],
"PreEntityImages":[],"PrimaryEntityId":"%[1]s","PrimaryEntityName":"contact","RequestId":null,
"SecondaryEntityName":"none","SharedVariables":[],"Stage":40,"UserId":"9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d"}`, id, i, at.UnixMilli())
	return raw, at
}

// keep records a delivery failure of the i-th test contact event for consumer erp.
func (fx *cliFixture) keep(i int, lastError string) failures.Failure {
	fx.t.Helper()
	raw, at := cliContact(i)
	ev, err := dataverse.Decode(raw)
	if err != nil {
		fx.t.Fatalf("decode test event: %v", err)
	}
	now := time.Now().UTC()
	f, err := fx.store.Record(context.Background(), failures.Failure{
		EventID: ev.ID, Consumer: "erp", Route: "contacts-to-erp", Table: ev.Table, Message: ev.Message,
		RecordID: ev.RecordID, CorrelationID: ev.CorrelationID, Kind: failures.KindDelivery,
		Status: failures.StatusPending, Attempts: 4, OccurredAt: at, FirstFailedAt: now, LastFailedAt: now,
		LastError: lastError, LastStatusCode: 503, Payload: raw,
		Tries: []failures.Try{
			{At: at, StatusCode: 503, Duration: 1500 * time.Millisecond, Error: "consumer answered 503"},
			{At: at.Add(time.Second), Duration: 3 * time.Second, Error: "no answer within 3s"},
		},
	})
	if err != nil {
		fx.t.Fatalf("record: %v", err)
	}
	return f
}

// run runs `dvrouter failures args...` against the fixture's API.
func (fx *cliFixture) run(args ...string) (code int, stdout, stderr string) {
	env := map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": cliKey}
	return runCLI(env, args...)
}

func runCLI(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"failures"}, args...), strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestFailuresCLI(t *testing.T) {
	az := testenv.StartAzurite(t)

	t.Run("List_PrintsAlignedTable", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		a := fx.keep(1, "consumer answered 503: "+strings.Repeat("upstream timeout ", 20))
		b := fx.keep(2, "consumer answered 503\n\x1b[31mred\x1b[0m")
		code, out, errOut := fx.run("list")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "EVENT TIME (UTC)") {
			t.Fatalf("want a header and 2 rows:\n%s", out)
		}
		// Newest first, columns aligned under the header.
		if !strings.Contains(lines[1], b.ID) || !strings.Contains(lines[2], a.ID) {
			t.Errorf("rows not newest first:\n%s", out)
		}
		col := strings.Index(lines[0], "CONSUMER")
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l[col:], "erp ") {
				t.Errorf("CONSUMER column not aligned in %q", l)
			}
			for _, want := range []string{"delivery", "pending", "contact", "Create", "2024-05-01 09:0"} {
				if !strings.Contains(l, want) {
					t.Errorf("row %q lacks %q", l, want)
				}
			}
		}
		if !strings.Contains(lines[2], "…") || len([]rune(lines[2])) > len([]rune(lines[0]))+errorColumn {
			t.Errorf("long error not truncated: %q", lines[2])
		}
		if strings.ContainsRune(out, 0x1b) {
			t.Errorf("terminal escape from stored data printed as is")
		}
	})

	t.Run("List_AllFollowsContinuations", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		for i := range 5 {
			fx.keep(i, "503")
		}
		code, out, errOut := fx.run("list", "--top", "2")
		if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "--continuation") {
			t.Errorf("one page: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
		}
		code, out, _ = fx.run("list", "--top", "2", "--all", "--json")
		var all struct{ Items []failures.Failure }
		if err := json.Unmarshal([]byte(out), &all); err != nil || code != 0 {
			t.Fatalf("--json: exit %d, %v: %s", code, err, out)
		}
		seen := map[string]bool{}
		for _, it := range all.Items {
			seen[it.ID] = true
		}
		if len(all.Items) != 5 || len(seen) != 5 {
			t.Errorf("--all listed %d items (%d distinct), want 5", len(all.Items), len(seen))
		}
	})

	t.Run("List_ByEventRecordCorrelationAndDate", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		var kept []failures.Failure
		for i := range 3 {
			kept = append(kept, fx.keep(i, "503"))
		}
		for _, tc := range []struct {
			args []string
			want []string // ids listed
		}{
			{[]string{"--event", kept[1].EventID}, []string{kept[1].ID}},
			{[]string{"--record", "contact/" + kept[2].RecordID}, []string{kept[2].ID}},
			{[]string{"--record", "contact/" + strings.ToUpper(kept[2].RecordID)}, []string{kept[2].ID}},
			{[]string{"--record", "contact/" + kept[2].RecordID, "--table", "contact"}, []string{kept[2].ID}},
			{[]string{"--record", "account/" + kept[2].RecordID}, nil},
			{[]string{"--correlation", kept[0].CorrelationID}, []string{kept[0].ID}},
			{[]string{"--from", "2024-05-01", "--to", "2024-05-01"}, []string{kept[2].ID, kept[1].ID, kept[0].ID}},
			{[]string{"--to", "2024-04-30"}, nil},
		} {
			code, out, errOut := fx.run(append([]string{"list", "--json"}, tc.args...)...)
			var page struct{ Items []failures.Failure }
			if err := json.Unmarshal([]byte(out), &page); err != nil || code != 0 {
				t.Errorf("%v: exit %d, %v: %s %s", tc.args, code, err, out, errOut)
				continue
			}
			var got []string
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%v: listed %v, want %v", tc.args, got, tc.want)
			}
		}
	})

	t.Run("List_BadLookupsAreUsageErrors", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"--record", "5f2c0000-0000-0000-0000-000000000000"}, 2, "--record is TABLE/ID"},
			{[]string{"--record", "contact/"}, 2, "--record is TABLE/ID"},
			{[]string{"--record", "contact/x", "--table", "account"}, 2, "--table"},
			{[]string{"--from", "2024-05-32"}, 1, "error: from: "},
		} {
			code, _, errOut := fx.run(append([]string{"list"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
			}
		}
	})

	t.Run("List_BadFilterIsAnAPIError", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		code, _, errOut := fx.run("list", "--status", "lost")
		if code != 1 || !strings.HasPrefix(errOut, "error: status: ") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("Show_PrintsFieldsThenPayload", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		f := fx.keep(7, "consumer answered 503")
		code, out, errOut := fx.run("show", f.ID)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, re := range []string{
			`(?m)^id:\s+` + f.ID + `$`, `(?m)^status:\s+pending$`, `(?m)^consumer:\s+erp$`, `(?m)^attempts:\s+4$`,
			`(?m)^last error:\s+consumer answered 503$`, `(?m)^event id:\s+` + f.EventID + `$`,
			`payload \(\d+ bytes as received, shown as the normalized event\):`, `\n +"firstname": "Ada7"`,
			`(?m)^attempts \(UTC\):\n +1 +2024-05-01 09:07:00\.000 +503 +1\.5s +consumer answered 503\n +2 +2024-05-01 09:07:01\.000 +- +3s +no answer within 3s$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("show output lacks %s:\n%s", re, out)
			}
		}
		if strings.Contains(out, "ada7@example.com") || !strings.Contains(out, "(columns the route excludes are not shown: emailaddress1)") {
			t.Errorf("show must hide the column the route excludes and say so:\n%s", out)
		}
		// The stored payload, which a replay sends, stays exact.
		if got, _, err := fx.store.Get(context.Background(), f.ID); err != nil || !strings.Contains(string(got.Payload), "ada7@example.com") {
			t.Errorf("stored payload changed: %v", err)
		}
	})

	t.Run("Replay_OneDeliveredOrFailed", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		ok := fx.keep(1, "503")
		code, out, errOut := fx.run("replay", ok.ID)
		if code != 0 || out != "delivered "+ok.ID+"\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		fx.erp.Otherwise(testenv.Reply{Status: 500, Body: "no"})
		bad := fx.keep(2, "503")
		code, out, _ = fx.run("replay", bad.ID, "--json")
		var res struct{ ID, Result, Error string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Result != "failed" || res.ID != bad.ID {
			t.Errorf("failing replay: exit %d, %v, %q", code, err, out)
		}
		code, _, errOut = fx.run("replay", ok.ID)
		if code != 1 || !strings.HasPrefix(errOut, "error: ") || !strings.Contains(errOut, "replayed") {
			t.Errorf("replay of a replayed failure: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("Replay_BulkShowsProgressAndCounts", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		for i := range 60 {
			fx.keep(i, "503")
		}
		code, out, errOut := fx.run("replay", "--consumer", "erp")
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		progress := strings.Split(strings.TrimSpace(errOut), "\n")
		want := []string{
			"replaying  50/60  delivered 50  failed 0  skipped 0",
			"replaying  60/60  delivered 60  failed 0  skipped 0",
		}
		if strings.Join(progress, "\n") != strings.Join(want, "\n") {
			t.Errorf("progress lines:\n%s\nwant:\n%s", errOut, strings.Join(want, "\n"))
		}
		if out != "matched 60  delivered 60  failed 0  skipped 0\n" {
			t.Errorf("summary %q", out)
		}
		if n := fx.erp.Count(); n != 60 {
			t.Errorf("consumer received %d requests, want 60", n)
		}
	})

	t.Run("Replay_BulkCountsFailuresOnceAndExits1", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		fx.erp.Otherwise(testenv.ReplyStatus(500))
		for i := range 55 {
			fx.keep(i, "503")
		}
		code, out, _ := fx.run("replay", "--consumer", "erp", "--max", "55")
		if code != 1 || !strings.HasPrefix(out, "matched 55  delivered 0  failed 55  skipped 0\n") {
			t.Errorf("exit %d, stdout %q", code, out)
		}
		if n := fx.erp.Count(); n != 55 {
			t.Errorf("consumer received %d requests, want each failure tried once (55)", n)
		}
	})

	t.Run("Replay_BulkStopsWhenTheBreakerOpens", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Minute, HalfOpenRequests: 1})
		fx.erp.Otherwise(testenv.ReplyStatus(503))
		for i := range 120 {
			fx.keep(i, "503")
		}
		code, out, errOut := fx.run("replay", "--consumer", "erp")
		if code != 1 || !strings.Contains(out, "stopped early: consumer erp's circuit breaker is open") {
			t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		if n := strings.Count(strings.TrimSpace(errOut), "\n") + 1; n != 1 {
			t.Errorf("%d progress lines, want the run to stop after the first chunk:\n%s", n, errOut)
		}
		if n := fx.erp.Count(); n >= 50 {
			t.Errorf("consumer received %d requests", n)
		}
	})

	t.Run("Replay_DryRunSendsNothing", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		for i := range 3 {
			fx.keep(i, "503")
		}
		code, out, _ := fx.run("replay", "--dry-run", "--consumer", "erp")
		if code != 0 || out != "dry run: 3 failures would be replayed; nothing was sent\n" || fx.erp.Count() != 0 {
			t.Errorf("exit %d, stdout %q, consumer got %d", code, out, fx.erp.Count())
		}
	})

	t.Run("Discard_NeedsAReason", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		f := fx.keep(1, "503")
		if code, _, errOut := fx.run("discard", f.ID); code != 2 || !strings.Contains(errOut, "--reason") {
			t.Errorf("without reason: exit %d, stderr %q", code, errOut)
		}
		code, out, errOut := fx.run("discard", f.ID, "--reason", "order re-entered by hand")
		if code != 0 || !strings.HasPrefix(out, "discarded "+f.ID+" (") || !strings.Contains(out, "by support") {
			t.Errorf("discard: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		got, _, err := fx.store.Get(context.Background(), f.ID)
		if err != nil || got.Status != failures.StatusDiscarded || got.Reason != "order re-entered by hand" {
			t.Errorf("stored: %+v %v", got, err)
		}
		if code, _, errOut := fx.run("discard", "--reason", "again", f.ID); code != 1 || !strings.Contains(errOut, "discarded") {
			t.Errorf("second discard: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("Errors_AreReadable", func(t *testing.T) {
		fx := newCLIFixture(t, az, config.Breaker{})
		tests := []struct {
			name     string
			env      map[string]string
			args     []string
			wantCode int
			wantErr  string
		}{
			{"wrong key", map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": "not-the-key-0123456"}, []string{"list"}, 1, "--key"},
			{"key flag wins", map[string]string{"DVROUTER_ENDPOINT": fx.url}, []string{"list", "--key", cliKey}, 0, ""},
			{"unknown id", map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": cliKey}, []string{"show", "nope"}, 1, `error: no failure has id "nope"`},
			{"unreachable", map[string]string{"DVROUTER_ADMIN_KEY": cliKey}, []string{"list", "--endpoint", "http://127.0.0.1:1"}, 1, "cannot reach"},
			{"bad endpoint", nil, []string{"list", "--endpoint", "ftp://x"}, 2, "--endpoint"},
			{"unknown command", nil, []string{"purge"}, 2, "unknown failures command"},
			{"unknown flag", nil, []string{"list", "--colour"}, 2, "colour"},
			{"replay without filter", nil, []string{"replay"}, 2, "--consumer"},
			{"replay with a blank consumer", nil, []string{"replay", "--consumer", " "}, 2, "--all"},
			{"replay by table alone", nil, []string{"replay", "--table", "contact"}, 2, "--all"},
			{"show without id", nil, []string{"show"}, 2, "ID"},
		}
		for _, tc := range tests {
			code, _, errOut := runCLI(tc.env, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("%s: exit %d, stderr %q; want %d with %q", tc.name, code, errOut, tc.wantCode, tc.wantErr)
			}
		}
	})
}
