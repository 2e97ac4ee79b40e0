package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
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
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// The failures API is tested end to end: a real store on Azurite (one Azurite for the whole
// test, one table per subtest), real deliveries to loopback consumers, real HTTP requests.

const (
	supportKey = "support-key-0123456789"
	opsKey     = "ops-key-0123456789abcd"
)

// apiFixture is one failures API with everything behind it.
type apiFixture struct {
	t          *testing.T
	store      *failures.Store
	erp, crm   *testenv.Consumer
	deliverer  *deliver.Deliverer
	dispatcher *dispatch.Dispatcher
	srv        *httptest.Server
	logs       *syncBuffer
}

type fixtureOptions struct {
	settings *config.Settings // nil: standalone with the support and ops keys
	breaker  config.Breaker   // of consumer erp; zero: one that does not open in a test
	attempts int              // each consumer's retry attempts; 0: 1
}

var tableSeq atomic.Int64

func newAPIFixture(t *testing.T, az *testenv.Azurite, opts fixtureOptions) *apiFixture {
	t.Helper()
	ctx := context.Background()
	table := fmt.Sprintf("Failures%d%d", time.Now().UnixNano()%1e6, tableSeq.Add(1))
	store, err := failures.Open(ctx, failures.Config{ConnectionString: az.ConnectionString(), Table: table})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	fx := &apiFixture{t: t, store: store, erp: testenv.StartConsumer(t), crm: testenv.StartConsumer(t), logs: &syncBuffer{}}
	log := zerolog.New(fx.logs)

	erpBreaker := opts.breaker
	if erpBreaker == (config.Breaker{}) {
		erpBreaker = config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1}
	}
	file := &config.RouteFile{
		Consumers: []config.Consumer{
			httpConsumer("erp", fx.erp.URL, erpBreaker),
			httpConsumer("crm", fx.crm.URL, config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1}),
		},
		Routes: []config.Route{
			// Contacts carry personal data the ERP must not get.
			{Name: "contacts-to-erp", Table: "contact", Consumers: []string{"erp"}, Exclude: []string{"emailaddress1"}},
			{Name: "accounts-to-crm", Table: "account", Consumers: []string{"crm"}},
		},
	}
	for i := range file.Consumers {
		file.Consumers[i].Retry.Attempts = max(opts.attempts, 1)
	}
	routes, err := route.Compile(file, route.Options{Logger: log})
	if err != nil {
		t.Fatalf("compile routes: %v", err)
	}
	fx.deliverer, err = deliver.New(file.Consumers, store, deliver.Options{Budget: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatalf("deliverer: %v", err)
	}
	t.Cleanup(func() { _ = fx.deliverer.Close(context.Background()) })
	fx.dispatcher = &dispatch.Dispatcher{Routes: routes, Deliver: fx.deliverer, Recorder: store, Log: log}

	settings := opts.settings
	if settings == nil {
		settings = &config.Settings{AdminKeys: []config.AdminKey{{Name: "support", Key: supportKey}, {Name: "ops", Key: opsKey}}}
	}
	settings.DeliveryBudget = 5 * time.Second
	api := handlers.NewFailuresAPI(handlers.FailuresDeps{
		Settings: settings, Log: log,
		Replayer: &failures.Replayer{Store: store, Sender: fx.deliverer, Router: fx.dispatcher, Budget: settings.DeliveryBudget, Log: log},
	})
	fx.srv = httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: fx.dispatcher, Failures: api, Log: log}))
	t.Cleanup(fx.srv.Close)
	return fx
}

func httpConsumer(name, url string, b config.Breaker) config.Consumer {
	return config.Consumer{
		Name: name, Type: "http", Format: "row", Timeout: 3 * time.Second, MaxConcurrency: 16,
		Retry:   config.Retry{Attempts: 1, InitialDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		Breaker: b, Spec: httpdest.Spec{URL: url, Method: http.MethodPost},
	}
}

// contactEvent is the i-th Dataverse Create of a contact (a RemoteExecutionContext as a webhook
// or the queue carries it), i minutes after a fixed time, so later i sort first.
func contactEvent(i int) []byte {
	return dataverseCreate(i, "contact", fmt.Sprintf(`{"key":"firstname","value":"Ada%d"},{"key":"emailaddress1","value":"ada%d@example.com"}`, i, i))
}

func accountEvent(i int) []byte {
	return dataverseCreate(i, "account", fmt.Sprintf(`{"key":"name","value":"Engines %d"}`, i))
}

func dataverseCreate(i int, table, attrs string) []byte {
	at := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).UnixMilli()
	id := fmt.Sprintf("%08x-1b3c-4d5e-8f60-%012x", i, i)
	return fmt.Appendf(nil, `{"BusinessUnitId":"7e2d4c19-3a1b-ef11-8409-000d3a1b2c3d","CorrelationId":"%[1]s",
"Depth":1,"InitiatingUserId":"9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d",
"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
"Attributes":[{"key":"%[2]sid","value":"%[1]s"},%[3]s],"EntityState":null,"FormattedValues":[],"Id":"%[1]s",
"KeyAttributes":[],"LogicalName":"%[2]s","RelatedEntities":[],"RowVersion":null}}],
"IsExecutingOffline":false,"IsInTransaction":false,"IsOfflinePlayback":false,"IsolationMode":1,"MessageName":"Create",
"Mode":1,"OperationCreatedOn":"\/Date(%[4]d)\/","OperationId":"%[1]s","OrganizationId":"4ef5b371-e89e-e711-8122-000d3aa2331c",
"OrganizationName":"contoso","OutputParameters":[{"key":"id","value":"%[1]s"}],
"OwningExtension":{"Id":"75417616-4ea2-e711-8122-000d3aa2331c","KeyAttributes":[],"LogicalName":"sdkmessageprocessingstep","Name":null,"RowVersion":null},
"ParentContext":null,"PostEntityImages":[],"PreEntityImages":[],"PrimaryEntityId":"%[1]s","PrimaryEntityName":"%[2]s",
"RequestId":null,"SecondaryEntityName":"none","SharedVariables":[],"Stage":40,"UserId":"9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d"}`,
		id, table, attrs, at)
}

// keep records a delivery failure of raw to consumer the way delivery does.
func (fx *apiFixture) keep(raw []byte, consumer, routeName string, kind failures.Kind) failures.Failure {
	fx.t.Helper()
	ev, err := dataverse.Decode(raw)
	if err != nil {
		fx.t.Fatalf("decode test event: %v", err)
	}
	occurred, err := time.Parse(time.RFC3339Nano, ev.OperationCreatedOn)
	if err != nil {
		fx.t.Fatalf("operationCreatedOn %q: %v", ev.OperationCreatedOn, err)
	}
	now := time.Now().UTC()
	f, err := fx.store.Record(context.Background(), failures.Failure{
		EventID: ev.ID, Consumer: consumer, Route: routeName, Table: ev.Table, Message: ev.Message,
		RecordID: ev.RecordID, CorrelationID: ev.CorrelationID, Kind: kind, Status: failures.StatusPending,
		Attempts: 4, OccurredAt: occurred, FirstFailedAt: now, LastFailedAt: now,
		LastError: "consumer answered 503 Service Unavailable", LastStatusCode: 503, Payload: raw,
	})
	if err != nil {
		fx.t.Fatalf("record failure: %v", err)
	}
	return f
}

func (fx *apiFixture) get(id string) failures.Failure {
	fx.t.Helper()
	f, _, err := fx.store.Get(context.Background(), id)
	if err != nil {
		fx.t.Fatalf("get %s: %v", id, err)
	}
	return f
}

// call makes one request to the API with the support key (unless headers say otherwise) and
// decodes the JSON answer into out (when not nil).
func (fx *apiFixture) call(method, path, body string, out any, headers ...string) int {
	fx.t.Helper()
	status, raw := fx.raw(method, path, body, headers...)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			fx.t.Fatalf("%s %s: answer %d is not JSON: %v: %s", method, path, status, err, raw)
		}
	}
	return status
}

func (fx *apiFixture) raw(method, path, body string, headers ...string) (int, []byte) {
	fx.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fx.srv.URL+path, rd)
	if err != nil {
		fx.t.Fatal(err)
	}
	req.Header.Set("x-functions-key", supportKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fx.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		fx.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, raw
}

type listAnswer struct {
	Items        []map[string]any `json:"items"`
	Continuation string           `json:"continuation"`
}

type errorAnswer struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

type replayAnswer struct {
	ID       string           `json:"id"`
	Result   string           `json:"result"`
	Error    string           `json:"error"`
	Dispatch *dispatch.Result `json:"dispatch"`
}

type bulkAnswer struct {
	Matched      int    `json:"matched"`
	Delivered    int    `json:"delivered"`
	Failed       int    `json:"failed"`
	Skipped      int    `json:"skipped"`
	DryRun       bool   `json:"dryRun"`
	StoppedEarly bool   `json:"stoppedEarly"`
	Reason       string `json:"reason"`
	Continuation string `json:"continuation"`
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines whose msg is msg.
func (b *syncBuffer) lines(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestFailuresAPI(t *testing.T) {
	az := testenv.StartAzurite(t)

	t.Run("List_PagesNewestFirstEveryItemOnce", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		for i := range 5 {
			fx.keep(contactEvent(i), "erp", "contacts-to-erp", failures.KindDelivery)
		}
		for i := 5; i < 7; i++ {
			fx.keep(accountEvent(i), "crm", "accounts-to-crm", failures.KindDelivery)
		}
		var ids []string
		var times []string
		cont := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			var page listAnswer
			if st := fx.call("GET", "/api/failures?top=3&continuation="+cont, "", &page); st != 200 {
				t.Fatalf("list: status %d", st)
			}
			if len(page.Items) > 3 {
				t.Fatalf("page of %d items with top=3", len(page.Items))
			}
			for _, it := range page.Items {
				if _, ok := it["payload"]; ok {
					t.Errorf("list item carries its payload")
				}
				ids = append(ids, it["id"].(string))
				times = append(times, it["occurredAt"].(string))
			}
			if cont = page.Continuation; cont == "" {
				break
			}
		}
		if len(ids) != 7 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 7 {
			t.Fatalf("listed %d ids (%v), want 7 distinct", len(ids), ids)
		}
		if !slices.IsSortedFunc(times, func(a, b string) int { return strings.Compare(b, a) }) {
			t.Errorf("not newest first: %v", times)
		}
	})

	t.Run("List_Filters", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		var kept []failures.Failure
		for i := range 4 {
			kept = append(kept, fx.keep(contactEvent(i), "erp", "contacts-to-erp", failures.KindDelivery))
		}
		fx.keep(contactEvent(4), "erp", "contacts-to-erp", failures.KindBreakerOpen)
		fx.keep(accountEvent(5), "crm", "accounts-to-crm", failures.KindDelivery)
		tests := []struct {
			query string
			want  int
		}{
			{"consumer=crm", 1},
			{"consumer=erp", 5},
			{"table=contact", 5},
			{"kind=breaker-open", 1},
			{"status=pending", 6},
			{"status=discarded", 0},
			// Events 1, 2 and 3 happened in [09:01, 09:04).
			{"from=2024-05-01T09:01:00Z&to=2024-05-01T09:04:00Z", 3},
			{"consumer=erp&kind=delivery&from=2024-05-01T09:02:00Z", 2},
			{"event=" + url.QueryEscape(kept[2].EventID), 1},
			// The fixture's record and correlation ids of event i are one id.
			{"table=contact&record=00000002-1b3c-4d5e-8f60-000000000002", 1},
			{"table=account&record=00000002-1b3c-4d5e-8f60-000000000002", 0},
			{"table=account&record=00000005-1B3C-4D5E-8F60-000000000005", 1}, // upper case finds it too
			{"correlation=00000003-1b3c-4d5e-8f60-000000000003&consumer=erp", 1},
			{"correlation=00000003-1b3c-4d5e-8f60-000000000003&consumer=crm", 0},
			// Plain dates: from is that day's start, to takes in the whole day.
			{"from=2024-05-01", 6},
			{"to=2024-05-01", 6},
			{"from=2024-05-01&to=2024-05-01", 6},
			{"from=2024-05-02", 0},
			{"to=2024-04-30", 0},
		}
		for _, tc := range tests {
			var page listAnswer
			if st := fx.call("GET", "/api/failures?"+tc.query, "", &page); st != 200 {
				t.Errorf("%s: status %d", tc.query, st)
				continue
			}
			if len(page.Items) != tc.want {
				t.Errorf("%s: %d items, want %d", tc.query, len(page.Items), tc.want)
			}
		}
	})

	t.Run("List_RejectsBadQueryNamingTheParameter", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		tests := []struct{ query, names string }{
			{"status=lost", "status"},
			{"kind=timeout", "kind"},
			{"from=yesterday", "from"},
			{"to=2024-13-01T00:00:00Z", "to"},
			{"from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "to"},
			{"top=0", "top"},
			{"top=1001", "top"},
			{"top=ten", "top"},
			{"consumr=erp", "consumr"},
			{"consumer=erp&consumer=crm", "consumer"},
			{"continuation=not-ours", "continuation"},
			{"record=00000002-1b3c-4d5e-8f60-000000000002", "table"},
			{"event=" + strings.Repeat("e", 1025), "event"},
			{"from=2024-05-32", "from"},
			{"to=25/07/2024", "to"},
			{"from=2024-05-02&to=2024-05-01", "to"},
		}
		for _, tc := range tests {
			var e errorAnswer
			st := fx.call("GET", "/api/failures?"+tc.query, "", &e)
			if st != 400 || !strings.Contains(e.Detail, tc.names) {
				t.Errorf("%s: status %d, detail %q; want 400 naming %q", tc.query, st, e.Detail, tc.names)
			}
		}
	})

	t.Run("Show_DeliveryFailureWithNormalizedEvent", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		var got struct {
			ID       string          `json:"id"`
			Status   string          `json:"status"`
			Attempts int             `json:"attempts"`
			Payload  dataverse.Event `json:"payload"`
			Note     string          `json:"payloadNote"`
		}
		if st := fx.call("GET", "/api/failures/"+f.ID, "", &got); st != 200 {
			t.Fatalf("show: status %d", st)
		}
		if _, ok := got.Payload.Row["emailaddress1"]; ok {
			t.Errorf("the route excludes emailaddress1 for erp, but show displays it")
		}
		if !strings.Contains(got.Note, "emailaddress1") {
			t.Errorf("payloadNote %q does not say which columns are hidden", got.Note)
		}
		if got.ID != f.ID || got.Status != "pending" || got.Attempts != 4 {
			t.Errorf("show: id %s status %s attempts %d", got.ID, got.Status, got.Attempts)
		}
		if got.Payload.ID != f.EventID || got.Payload.Table != "contact" || got.Payload.Row["firstname"] != "Ada1" {
			t.Errorf("payload is not the normalized event: %+v", got.Payload)
		}
	})

	t.Run("Show_RouteGoneWithholdsTheRow", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(2), "erp", "route-since-removed", failures.KindDelivery)
		var got struct {
			Payload dataverse.Event `json:"payload"`
			Note    string          `json:"payloadNote"`
		}
		if st := fx.call("GET", "/api/failures/"+f.ID, "", &got); st != 200 {
			t.Fatalf("show: status %d", st)
		}
		if got.Payload.ID != f.EventID || got.Payload.Row != nil || !strings.Contains(got.Note, "route-since-removed") {
			t.Errorf("show of a failure whose route is gone: row %v, note %q; want no row and a note naming the route", got.Payload.Row, got.Note)
		}
	})

	t.Run("Show_UnknownOrMalformedIDIs404", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		absent := f.ID[:len(f.ID)-4] + "0000"
		if absent == f.ID {
			absent = f.ID[:len(f.ID)-4] + "1111"
		}
		for _, path := range []string{"/api/failures/" + absent, "/api/failures/nope", "/api/failures/0a-123", "/api/failures/" + absent + "/replay"} {
			method := "GET"
			if strings.HasSuffix(path, "/replay") {
				method = "POST"
			}
			var e errorAnswer
			if st := fx.call(method, path, "", &e); st != 404 || e.Error == "" {
				t.Errorf("%s %s: status %d %+v, want 404 with an error", method, path, st, e)
			}
		}
	})

	t.Run("Replay_DeliversShapedByTheRouteAsItIsNow", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		var res replayAnswer
		if st := fx.call("POST", "/api/failures/"+f.ID+"/replay", "", &res); st != 200 {
			t.Fatalf("replay: status %d", st)
		}
		if res.ID != f.ID || res.Result != "delivered" || res.Error != "" {
			t.Fatalf("replay: %+v", res)
		}
		reqs := fx.erp.Requests()
		if len(reqs) != 1 {
			t.Fatalf("consumer received %d requests, want 1", len(reqs))
		}
		var sent dataverse.Event
		if err := json.Unmarshal(reqs[0].Body, &sent); err != nil {
			t.Fatalf("consumer got %s: %v", reqs[0].Body, err)
		}
		if sent.ID != f.EventID || sent.Row["firstname"] != "Ada1" {
			t.Errorf("consumer got event %s row %v", sent.ID, sent.Row)
		}
		if _, ok := sent.Row["emailaddress1"]; ok {
			t.Errorf("the route excludes emailaddress1, but the replay sent it")
		}
		got := fx.get(f.ID)
		if got.Status != failures.StatusReplayed || got.UpdatedBy != "support" || time.Since(got.UpdatedAt) > time.Minute {
			t.Errorf("after replay: status %s by %q at %s", got.Status, got.UpdatedBy, got.UpdatedAt)
		}
		logged := fx.logs.lines("failure replayed")
		if len(logged) != 1 || logged[0]["who"] != "support" || logged[0]["id"] != f.ID || logged[0]["result"] != "delivered" {
			t.Errorf("log lines: %v", logged)
		}
	})

	t.Run("Replay_FailedAgainRaisesAttempts", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		fx.erp.Otherwise(testenv.Reply{Status: 500, Body: "database locked"})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		var res replayAnswer
		if st := fx.call("POST", "/api/failures/"+f.ID+"/replay", "", &res); st != 200 {
			t.Fatalf("replay: status %d", st)
		}
		if res.Result != "failed" || !strings.Contains(res.Error, "500") {
			t.Errorf("replay: %+v, want failed with the consumer's 500", res)
		}
		got := fx.get(f.ID)
		if got.Status != failures.StatusPending || got.Attempts != f.Attempts+1 || got.LastStatusCode != 500 || got.LastError != res.Error {
			t.Errorf("after failed replay: status %s attempts %d (was %d) code %d error %q",
				got.Status, got.Attempts, f.Attempts, got.LastStatusCode, got.LastError)
		}
	})

	t.Run("Replay_ConcurrentReplaysOnlyOneWins", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		fx.erp.Otherwise(testenv.ReplyStall(300 * time.Millisecond))
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		statuses := make([]int, 2)
		results := make([]replayAnswer, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				var raw json.RawMessage
				statuses[i] = fx.call("POST", "/api/failures/"+f.ID+"/replay", "", &raw)
				_ = json.Unmarshal(raw, &results[i])
			})
		}
		wg.Wait()
		slices.Sort(statuses)
		if statuses[0] != 200 || statuses[1] != 409 {
			t.Fatalf("statuses %v, want one 200 and one 409", statuses)
		}
		if results[0].Result != "delivered" && results[1].Result != "delivered" {
			t.Errorf("no replay delivered: %+v", results)
		}
		if n := fx.erp.Count(); n != 1 {
			t.Errorf("consumer received %d requests, want exactly 1", n)
		}
		if got := fx.get(f.ID); got.Status != failures.StatusReplayed {
			t.Errorf("status %s, want replayed", got.Status)
		}
	})

	t.Run("Replay_OfReplayedOrDiscardedIsConflict", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		replayed := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		discarded := fx.keep(contactEvent(2), "erp", "contacts-to-erp", failures.KindDelivery)
		if st := fx.call("POST", "/api/failures/"+replayed.ID+"/replay", "", nil); st != 200 {
			t.Fatalf("first replay: %d", st)
		}
		if st := fx.call("POST", "/api/failures/"+discarded.ID+"/discard", `{"reason":"sent by hand"}`, nil); st != 200 {
			t.Fatalf("discard: %d", st)
		}
		for id, status := range map[string]string{replayed.ID: "replayed", discarded.ID: "discarded"} {
			var e errorAnswer
			if st := fx.call("POST", "/api/failures/"+id+"/replay", "", &e); st != 409 || !strings.Contains(e.Error+e.Detail, status) {
				t.Errorf("replay of a %s failure: %d %+v, want 409 saying %s", status, st, e, status)
			}
		}
		if n := fx.erp.Count(); n != 1 {
			t.Errorf("consumer received %d requests, want 1", n)
		}
	})

	t.Run("Replay_RouteGoneIsRefusedNotSentUnshaped", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "retired-route", failures.KindDelivery)
		var e errorAnswer
		if st := fx.call("POST", "/api/failures/"+f.ID+"/replay", "", &e); st != 422 || !strings.Contains(e.Detail, "retired-route") {
			t.Errorf("replay: %d %+v, want 422 naming the route", st, e)
		}
		if n := fx.erp.Count(); n != 0 {
			t.Errorf("consumer received %d requests, want none", n)
		}
		if got := fx.get(f.ID); got.Status != failures.StatusPending || got.Attempts != f.Attempts {
			t.Errorf("after refusal: status %s attempts %d, want it untouched", got.Status, got.Attempts)
		}
	})

	t.Run("Discard_RecordsReasonAndWho", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		var got failures.Failure
		st := fx.call("POST", "/api/failures/"+f.ID+"/discard", `{"reason":"customer re-entered the order by hand"}`, &got)
		if st != 200 {
			t.Fatalf("discard: status %d", st)
		}
		if got.ID != f.ID || got.Status != failures.StatusDiscarded || got.Reason != "customer re-entered the order by hand" || got.UpdatedBy != "support" {
			t.Errorf("discard answered %+v", got)
		}
		if stored := fx.get(f.ID); stored.Status != failures.StatusDiscarded || stored.UpdatedBy != "support" {
			t.Errorf("stored: status %s by %s", stored.Status, stored.UpdatedBy)
		}
		logged := fx.logs.lines("failure discarded")
		if len(logged) != 1 || logged[0]["who"] != "support" || logged[0]["key"] != "support" || logged[0]["reason"] == nil {
			t.Errorf("log lines: %v", logged)
		}
	})

	t.Run("Discard_OfDiscardedIsConflict", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		if st := fx.call("POST", "/api/failures/"+f.ID+"/discard", `{"reason":"duplicate"}`, nil); st != 200 {
			t.Fatalf("first discard: %d", st)
		}
		var e errorAnswer
		if st := fx.call("POST", "/api/failures/"+f.ID+"/discard", `{"reason":"again"}`, &e); st != 409 || !strings.Contains(e.Error, "discarded") {
			t.Errorf("second discard: %d %+v, want 409", st, e)
		}
		if got := fx.get(f.ID); got.Reason != "duplicate" {
			t.Errorf("reason %q, want the first one kept", got.Reason)
		}
	})

	t.Run("Bodies_AreCheckedStrictly", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		discard := "/api/failures/" + f.ID + "/discard"
		tests := []struct {
			name, path, body, contentType string
			want                          int
			detail                        string
		}{
			{"no body", discard, "", "", 400, "JSON"},
			{"empty reason", discard, `{"reason":"  "}`, "application/json", 400, "reason"},
			{"text body", discard, `{"reason":"x"}`, "text/plain", 415, "text/plain"},
			{"unknown field", discard, `{"reason":"x","force":true}`, "application/json", 400, "force"},
			{"malformed", discard, `{"reason":"x"`, "application/json", 400, "ends early"},
			{"bad syntax", discard, `{"reason" "x"}`, "application/json", 400, "offset"},
			{"wrong type", discard, `{"reason":7}`, "application/json", 400, "reason"},
			{"trailing data", discard, `{"reason":"x"} {}`, "application/json", 400, "after"},
			{"too large", discard, `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, "application/json", 413, "limit"},
			{"bulk unknown field", "/api/failures/replay", `{"consumer":"erp","maximum":5}`, "application/json", 400, "maximum"},
			{"bulk bad max", "/api/failures/replay", `{"consumer":"erp","max":100001}`, "application/json", 400, "max"},
			{"bulk bad status", "/api/failures/replay", `{"consumer":"erp","status":"discarded"}`, "application/json", 400, "status"},
			{"bulk bad time", "/api/failures/replay", `{"consumer":"erp","from":"monday"}`, "application/json", 400, "from"},
			{"bulk no body", "/api/failures/replay", "", "", 400, "JSON"},
		}
		for _, tc := range tests {
			var e errorAnswer
			st := fx.call("POST", tc.path, tc.body, &e, "Content-Type", tc.contentType)
			if st != tc.want || !strings.Contains(e.Detail, tc.detail) {
				t.Errorf("%s: %d %+v, want %d with %q in the detail", tc.name, st, e, tc.want, tc.detail)
			}
		}
		if got := fx.get(f.ID); got.Status != failures.StatusPending {
			t.Errorf("a refused request changed the failure: status %s", got.Status)
		}
		var e errorAnswer
		if st := fx.call("DELETE", "/api/failures/"+f.ID, "", &e); st != 405 {
			t.Errorf("DELETE: %d, want 405", st)
		}
	})

	t.Run("Bulk_DryRunCountsAndSendsNothing", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		for i := range 5 {
			fx.keep(contactEvent(i), "erp", "contacts-to-erp", failures.KindDelivery)
		}
		fx.keep(accountEvent(9), "crm", "accounts-to-crm", failures.KindDelivery)
		var res bulkAnswer
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp","dryRun":true}`, &res); st != 200 {
			t.Fatalf("dry run: %d", st)
		}
		if res.Matched != 5 || !res.DryRun || res.Delivered+res.Failed+res.Skipped != 0 || res.StoppedEarly {
			t.Errorf("dry run: %+v", res)
		}
		// A plain date as to takes in the whole day; as from, the day starts it.
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp","from":"2024-05-01","to":"2024-05-01","dryRun":true}`, &res); st != 200 || res.Matched != 5 {
			t.Errorf("dry run by date: %d %+v, want 5 matched", st, res)
		}
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp","to":"2024-04-30","dryRun":true}`, &res); st != 200 || res.Matched != 0 {
			t.Errorf("dry run to the day before: %d %+v, want 0 matched", st, res)
		}
		if n := fx.erp.Count() + fx.crm.Count(); n != 0 {
			t.Errorf("a dry run sent %d requests", n)
		}
		var page listAnswer
		fx.call("GET", "/api/failures?status=pending", "", &page)
		if len(page.Items) != 6 {
			t.Errorf("%d pending after a dry run, want 6", len(page.Items))
		}
	})

	t.Run("Bulk_WithoutConsumerOrTimeRangeNeedsAll", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
		fx.keep(accountEvent(2), "crm", "accounts-to-crm", failures.KindDelivery)
		for _, body := range []string{`{}`, `{"dryRun":true}`, `{"consumer":"  "}`, `{"table":"contact"}`, `{"kind":"delivery","all":false}`} {
			var e errorAnswer
			if st := fx.call("POST", "/api/failures/replay", body, &e); st != 400 || !strings.Contains(e.Detail, `"all": true`) {
				t.Errorf("bulk replay %s: %d %+v, want 400 asking for all", body, st, e)
			}
		}
		if n := fx.erp.Count() + fx.crm.Count(); n != 0 {
			t.Fatalf("refused bulk replays sent %d requests", n)
		}
		// A blank consumer is no consumer; a time range alone, or all, is enough.
		var res bulkAnswer
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":" erp ","dryRun":true}`, &res); st != 200 || res.Matched != 1 {
			t.Errorf("consumer with spaces: %d %+v, want it trimmed and 1 matched", st, res)
		}
		if st := fx.call("POST", "/api/failures/replay", `{"from":"2000-01-01T00:00:00Z","dryRun":true}`, &res); st != 200 || res.Matched != 2 {
			t.Errorf("time range: %d %+v, want 2 matched", st, res)
		}
		if st := fx.call("POST", "/api/failures/replay", `{"all":true}`, &res); st != 200 || res.Matched != 2 || res.Delivered != 2 {
			t.Errorf("all: %d %+v, want both replayed", st, res)
		}
	})

	t.Run("Bulk_ReplaysMatchingOnly", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		for i := range 12 {
			fx.keep(contactEvent(i), "erp", "contacts-to-erp", failures.KindDelivery)
		}
		fx.keep(accountEvent(20), "crm", "accounts-to-crm", failures.KindDelivery)
		var res bulkAnswer
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp"}`, &res); st != 200 {
			t.Fatalf("bulk: %d", st)
		}
		if res.Matched != 12 || res.Delivered != 12 || res.Failed != 0 || res.Skipped != 0 || res.StoppedEarly || res.Continuation != "" {
			t.Errorf("bulk: %+v", res)
		}
		if n := fx.erp.Count(); n != 12 {
			t.Errorf("erp received %d requests, want 12", n)
		}
		if n := fx.crm.Count(); n != 0 {
			t.Errorf("crm received %d requests, want 0", n)
		}
		if m := fx.erp.MaxInFlight(); m > 8 {
			t.Errorf("%d replays in flight at once, want at most 8", m)
		}
	})

	t.Run("Bulk_StopsEarlyWhenTheBreakerOpens", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{
			breaker: config.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Minute, HalfOpenRequests: 1},
		})
		fx.erp.Otherwise(testenv.ReplyStatus(503))
		const n = 40
		for i := range n {
			fx.keep(contactEvent(i), "erp", "contacts-to-erp", failures.KindDelivery)
		}
		var res bulkAnswer
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp"}`, &res); st != 200 {
			t.Fatalf("bulk: %d", st)
		}
		if !res.StoppedEarly || !strings.Contains(res.Reason, "breaker") || res.Continuation != "" {
			t.Errorf("bulk: %+v, want stopped early because of the breaker", res)
		}
		if res.Delivered != 0 || res.Failed < 2 || res.Delivered+res.Failed+res.Skipped >= n || res.Matched > n {
			t.Errorf("bulk counts: %+v", res)
		}
		if got := fx.erp.Count(); got >= n/2 {
			t.Errorf("consumer received %d requests after its breaker opened early", got)
		}
		var page listAnswer
		fx.call("GET", "/api/failures?status=pending&top=100", "", &page)
		if len(page.Items) != n {
			t.Errorf("%d failures pending, want all %d", len(page.Items), n)
		}
		// A single replay now is refused without counting an attempt.
		id := page.Items[len(page.Items)-1]["id"].(string)
		before := fx.get(id).Attempts
		var e errorAnswer
		if st := fx.call("POST", "/api/failures/"+id+"/replay", "", &e); st != 503 || !strings.Contains(e.Detail, "breaker") {
			t.Errorf("single replay with the breaker open: %d %+v", st, e)
		}
		if after := fx.get(id).Attempts; after != before {
			t.Errorf("attempts %d -> %d for a replay that was not tried", before, after)
		}
	})

	t.Run("Replay_EventSentAgainAfterReplayStaysReplayed", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		fx.erp.Otherwise(testenv.ReplyStatus(503))
		ctx := context.Background()
		ev, err := dataverse.Decode(contactEvent(1))
		if err != nil {
			t.Fatal(err)
		}
		res, err := fx.dispatcher.Dispatch(ctx, ev)
		if err != nil || len(res.Failed) != 1 {
			t.Fatalf("dispatch while down: %+v %v", res, err)
		}
		fx.erp.Otherwise(testenv.Reply{})
		var bulk bulkAnswer
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp"}`, &bulk); st != 200 || bulk.Delivered != 1 {
			t.Fatalf("replay: status %d %+v", st, bulk)
		}
		// Dataverse sends the same event again (a webhook retry) and the consumer fails it.
		fx.erp.Otherwise(testenv.ReplyStatus(503))
		ev, _ = dataverse.Decode(contactEvent(1))
		if res, err := fx.dispatcher.Dispatch(ctx, ev); err != nil || len(res.Failed) != 1 {
			t.Fatalf("dispatch again: %+v %v", res, err)
		}
		var page struct {
			Items []supportapi.Failure `json:"items"`
		}
		if st := fx.call("GET", "/api/failures?consumer=erp&status=", "", &page); st != 200 || len(page.Items) != 1 {
			t.Fatalf("list: status %d, %d items", st, len(page.Items))
		}
		got := fx.get(page.Items[0].ID)
		if got.Status != failures.StatusReplayed || got.Attempts < 2 {
			t.Errorf("after the event came again: status %s attempts %d, want replayed with the new attempt counted", got.Status, got.Attempts)
		}
	})

	t.Run("Replay_DeliversEventsKeptWhileTheConsumerWasDown", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		fx.erp.Otherwise(testenv.ReplyStatus(503))
		ctx := context.Background()
		for i := range 6 {
			ev, err := dataverse.Decode(contactEvent(i))
			if err != nil {
				t.Fatal(err)
			}
			res, err := fx.dispatcher.Dispatch(ctx, ev)
			if err != nil || len(res.Failed) != 1 {
				t.Fatalf("dispatch while down: %+v %v", res, err)
			}
		}
		fx.erp.Otherwise(testenv.Reply{})
		var res bulkAnswer
		if st := fx.call("POST", "/api/failures/replay", `{"consumer":"erp"}`, &res); st != 200 {
			t.Fatalf("bulk: %d", st)
		}
		if res.Matched != 6 || res.Delivered != 6 {
			t.Errorf("bulk: %+v", res)
		}
		ids := map[string]bool{}
		for _, r := range fx.erp.Requests()[6:] {
			ids[r.Header.Get("Idempotency-Key")] = true
		}
		if len(ids) != 6 {
			t.Errorf("the consumer got %d distinct events after recovering, want 6", len(ids))
		}
	})

	t.Run("Poison_ThatDecodesNowIsRouted", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		// A JSON event resubmitted from the dead-letter queue by a tool that labelled it
		// application/xml: the queue refused it on its content type and kept it as poison.
		body := contactEvent(3)
		err := fx.dispatcher.RecordPoison(context.Background(), dispatch.Poison{
			Body: body, MessageID: "msg-3", EnqueuedTime: time.Now().UTC(),
			Reason: fmt.Errorf("message is in Dataverse's XML format; set the service endpoint's message format to JSON"),
		})
		if err != nil {
			t.Fatalf("record poison: %v", err)
		}
		var page listAnswer
		fx.call("GET", "/api/failures?kind=poison", "", &page)
		if len(page.Items) != 1 {
			t.Fatalf("%d poison failures listed, want 1", len(page.Items))
		}
		id := page.Items[0]["id"].(string)
		var shown struct {
			Payload string `json:"payload"`
		}
		if st := fx.call("GET", "/api/failures/"+id, "", &shown); st != 200 || shown.Payload != string(body) {
			t.Errorf("show poison: %d, payload is not the raw text", st)
		}
		var res replayAnswer
		if st := fx.call("POST", "/api/failures/"+id+"/replay", "", &res); st != 200 {
			t.Fatalf("replay poison: %d", st)
		}
		if res.Result != "delivered" || res.Dispatch == nil || !slices.Equal(res.Dispatch.Matched, []string{"contacts-to-erp"}) ||
			!slices.Equal(res.Dispatch.Delivered, []string{"erp"}) {
			t.Errorf("replay poison: %+v %+v", res, res.Dispatch)
		}
		if n := fx.erp.Count(); n != 1 {
			t.Errorf("erp received %d requests, want 1", n)
		}
		if got := fx.get(id); got.Status != failures.StatusReplayed {
			t.Errorf("poison status %s, want replayed", got.Status)
		}
	})

	t.Run("Poison_KeptInBinaryXMLIsRoutedOnReplay", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		// A message in Dataverse's default .NET binary format, kept as poison when such messages
		// could not be read: its replay now decodes it (the format told from its bytes).
		body, err := os.ReadFile(filepath.Join("..", "testdata", "servicebus", "create-contact-sync.msbin1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.dispatcher.RecordPoison(context.Background(), dispatch.Poison{
			Body: body, MessageID: "msg-msbin1", Reason: fmt.Errorf("message is in Dataverse's binary XML format (application/msbin1)"),
		}); err != nil {
			t.Fatalf("record poison: %v", err)
		}
		var page listAnswer
		fx.call("GET", "/api/failures?kind=poison", "", &page)
		if len(page.Items) != 1 {
			t.Fatalf("%d poison failures listed, want 1", len(page.Items))
		}
		id := page.Items[0]["id"].(string)
		var res replayAnswer
		if st := fx.call("POST", "/api/failures/"+id+"/replay", "", &res); st != 200 || res.Result != "delivered" {
			t.Fatalf("replay: %d %+v", st, res)
		}
		if n := fx.erp.Count(); n != 1 {
			t.Errorf("erp received %d requests, want 1", n)
		}
	})

	t.Run("Poison_ThatStillFailsRaisesAttempts", func(t *testing.T) {
		fx := newAPIFixture(t, az, fixtureOptions{})
		// The start of a .NET binary XML message (messageformat 1): never JSON.
		body := []byte{0x40, 0x19, 'R', 'e', 'm', 'o', 't', 'e', 0x09, 0x01, 0xff, 0xfe, 0x99}
		err := fx.dispatcher.RecordPoison(context.Background(), dispatch.Poison{
			Body: body, MessageID: "msg-bin", Reason: fmt.Errorf("message is in Dataverse's binary XML format (application/msbin1)"),
		})
		if err != nil {
			t.Fatalf("record poison: %v", err)
		}
		var page listAnswer
		fx.call("GET", "/api/failures?kind=poison", "", &page)
		if len(page.Items) != 1 {
			t.Fatalf("%d poison failures listed, want 1", len(page.Items))
		}
		id := page.Items[0]["id"].(string)
		var shown struct {
			Payload  string `json:"payload"`
			Encoding string `json:"payloadEncoding"`
		}
		if st := fx.call("GET", "/api/failures/"+id, "", &shown); st != 200 || shown.Encoding != "base64" {
			t.Errorf("show binary poison: %d %+v", st, shown)
		}
		var res replayAnswer
		if st := fx.call("POST", "/api/failures/"+id+"/replay", "", &res); st != 200 || res.Result != "failed" || res.Error == "" {
			t.Errorf("replay: %d %+v, want result failed with the decode error", st, res)
		}
		if got := fx.get(id); got.Status != failures.StatusPending || got.Attempts != 2 || got.LastError != res.Error {
			t.Errorf("after replay: status %s attempts %d error %q", got.Status, got.Attempts, got.LastError)
		}
	})
}

func TestFailuresAPI_Auth(t *testing.T) {
	az := testenv.StartAzurite(t)
	keys := []config.AdminKey{{Name: "support", Key: supportKey}}
	tests := []struct {
		name     string
		settings *config.Settings
		headers  []string
		want     int
		detail   string
	}{
		{"standalone without admin keys", &config.Settings{}, nil, 403, config.EnvAdminKeys},
		{"standalone with a wrong key", &config.Settings{AdminKeys: keys}, []string{"x-functions-key", "support-key-0123456780"}, 401, "x-functions-key"},
		{"standalone without a key", &config.Settings{AdminKeys: keys}, []string{"x-functions-key", ""}, 401, "x-functions-key"},
		{"standalone with a key", &config.Settings{AdminKeys: keys}, nil, 200, ""},
		// The Failures function is anonymous (App Service authentication or dvrouter's own keys
		// decide), so a function key the host would have taken is no credential here.
		{"under the Functions host, a function key is not enough", &config.Settings{UnderFunctionsHost: true, AdminKeys: keys},
			[]string{"x-functions-key", "a-function-key-0123456789"}, 401, "x-functions-key"},
		{"under the Functions host without admin keys", &config.Settings{UnderFunctionsHost: true}, nil, 403, config.EnvAppServiceAuth},
		{"App Service authentication declared, nobody signed in", &config.Settings{AppServiceAuth: true}, []string{"x-functions-key", ""}, 401, "sign in"},
		{"App Service authentication declared, a principal that is not one", &config.Settings{AppServiceAuth: true},
			[]string{"x-ms-client-principal", "bm90IGpzb24="}, 401, "x-ms-client-principal"},
		{"App Service authentication declared, signed in without a role", &config.Settings{AppServiceAuth: true},
			[]string{"x-ms-client-principal", principal("eve@contoso.com")}, 403, "eve@contoso.com"},
		{"App Service authentication declared, a reader", &config.Settings{AppServiceAuth: true},
			[]string{"x-ms-client-principal", principal("rita@contoso.com", "reader")}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newAPIFixture(t, az, fixtureOptions{settings: tc.settings})
			var e errorAnswer
			st := fx.call("GET", "/api/failures", "", &e, tc.headers...)
			if st != tc.want || !strings.Contains(e.Detail, tc.detail) {
				t.Errorf("status %d %+v, want %d mentioning %q", st, e, tc.want, tc.detail)
			}
		})
	}
}

// principal is the x-ms-client-principal App Service authentication sends for a user signed in
// with Entra ID holding the given app roles (claim type "roles", one claim per role).
func principal(upn string, roles ...string) string {
	type claim struct {
		Typ string `json:"typ"`
		Val string `json:"val"`
	}
	claims := []claim{
		{"http://schemas.microsoft.com/identity/claims/objectidentifier", "0b0c3a57-1d2e-4f60-9a8b-7c6d5e4f3a2b"},
		{"name", "Display " + upn},
		{"preferred_username", upn},
	}
	for _, r := range roles {
		claims = append(claims, claim{"roles", r})
	}
	b, _ := json.Marshal(map[string]any{
		"auth_typ": "aad", "claims": claims,
		"name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "role_typ": "roles",
	})
	return base64.StdEncoding.EncodeToString(b)
}

const readerKey = "reader-key-0123456789"

// TestFailuresAPI_ReaderCannotChangeAnything: a reader lists, shows and asks who they are; every
// replay and discard is 403 and leaves the failure and the consumer untouched.
func TestFailuresAPI_ReaderCannotChangeAnything(t *testing.T) {
	az := testenv.StartAzurite(t)
	readers := map[string][]string{
		"reader key":                     {"x-functions-key", readerKey},
		"reader signed in with Entra ID": {"x-functions-key", "", "x-ms-client-principal", principal("rita@contoso.com", "reader")},
	}
	for name, headers := range readers {
		t.Run(name, func(t *testing.T) {
			s := &config.Settings{AppServiceAuth: true, AdminKeys: []config.AdminKey{
				{Name: "support", Key: supportKey, Role: config.RoleOperator}, {Name: "desk", Key: readerKey, Role: config.RoleReader}}}
			fx := newAPIFixture(t, az, fixtureOptions{settings: s})
			f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)

			var me supportapi.Me
			if st := fx.call("GET", "/api/me", "", &me, headers...); st != 200 || !slices.Equal(me.Roles, []string{"reader"}) {
				t.Errorf("me: %d %+v, want the reader role only", st, me)
			}
			if st := fx.call("GET", "/api/failures", "", nil, headers...); st != 200 {
				t.Errorf("list: %d", st)
			}
			if st := fx.call("GET", "/api/failures/"+f.ID, "", nil, headers...); st != 200 {
				t.Errorf("show: %d", st)
			}
			for _, c := range []struct{ path, body string }{
				{"/api/failures/" + f.ID + "/replay", ""},
				{"/api/failures/replay", `{"consumer":"erp"}`},
				{"/api/failures/replay", `{"consumer":"erp","dryRun":true}`},
				{"/api/failures/" + f.ID + "/discard", `{"reason":"not mine to decide"}`},
			} {
				var e errorAnswer
				if st := fx.call("POST", c.path, c.body, &e, headers...); st != 403 || !strings.Contains(e.Detail, "operator") {
					t.Errorf("POST %s: %d %+v, want 403 naming the operator role", c.path, st, e)
				}
			}
			got := fx.get(f.ID)
			if got.Status != failures.StatusPending || got.Attempts != f.Attempts || got.UpdatedBy != f.UpdatedBy {
				t.Errorf("a reader changed the failure: %+v", got)
			}
			if n := fx.erp.Count(); n != 0 {
				t.Errorf("a reader's replay reached the consumer %d times", n)
			}
		})
	}
}

// TestFailuresAPI_ForgedPrincipalIsIgnoredWithoutAppServiceAuth: without App Service
// authentication declared, principal headers are whatever the caller wrote: they neither grant a
// role nor change the name recorded.
func TestFailuresAPI_ForgedPrincipalIsIgnoredWithoutAppServiceAuth(t *testing.T) {
	az := testenv.StartAzurite(t)
	s := &config.Settings{UnderFunctionsHost: true, AdminKeys: []config.AdminKey{
		{Name: "support", Key: supportKey}, {Name: "desk", Key: readerKey, Role: config.RoleReader}}}
	fx := newAPIFixture(t, az, fixtureOptions{settings: s})
	f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
	forged := []string{"x-ms-client-principal", principal("ceo@contoso.com", "operator"), "x-ms-client-principal-name", "ceo@contoso.com"}

	if st := fx.call("GET", "/api/failures", "", nil, append([]string{"x-functions-key", ""}, forged...)...); st != 401 {
		t.Errorf("forged principal without a key: %d, want 401", st)
	}
	if st := fx.call("POST", "/api/failures/"+f.ID+"/replay", "", nil, append([]string{"x-functions-key", readerKey}, forged...)...); st != 403 {
		t.Errorf("reader key with a forged operator principal: replay %d, want 403", st)
	}
	var me supportapi.Me
	fx.call("GET", "/api/me", "", &me, forged...)
	if me.Name != "support" || me.Via != "key" {
		t.Errorf("me with a forged principal: %+v, want the key's name", me)
	}
	var got failures.Failure
	if st := fx.call("POST", "/api/failures/"+f.ID+"/discard", `{"reason":"duplicate"}`, &got, forged...); st != 200 {
		t.Fatalf("discard: %d", st)
	}
	if stored := fx.get(f.ID); stored.UpdatedBy != "support" || got.UpdatedBy != "support" {
		t.Errorf("updatedBy %q (answered %q), want the key's name support", stored.UpdatedBy, got.UpdatedBy)
	}
}

// TestFailuresAPI_SignedInUserIsTheActor: behind App Service authentication the user's sign-in
// name is recorded on the failure, in its history and in the log.
func TestFailuresAPI_SignedInUserIsTheActor(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: &config.Settings{AppServiceAuth: true, UnderFunctionsHost: true}})
	replayed := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
	discarded := fx.keep(contactEvent(2), "erp", "contacts-to-erp", failures.KindDelivery)
	bob := []string{"x-functions-key", "", "x-ms-client-principal", principal("bob@contoso.com", "reader", "operator"),
		"x-ms-client-principal-name", "bob@contoso.com"}

	var me supportapi.Me
	if st := fx.call("GET", "/api/me", "", &me, bob...); st != 200 ||
		me.Name != "bob@contoso.com" || me.Via != "appservice" || !slices.Equal(me.Roles, []string{"reader", "operator"}) {
		t.Errorf("me: %d %+v", st, me)
	}
	if st := fx.call("POST", "/api/failures/"+replayed.ID+"/replay", "", nil, bob...); st != 200 {
		t.Fatalf("replay: %d", st)
	}
	if st := fx.call("POST", "/api/failures/"+discarded.ID+"/discard", `{"reason":"entered by hand"}`, nil, bob...); st != 200 {
		t.Fatalf("discard: %d", st)
	}
	for id, want := range map[string][]string{
		replayed.ID:  {"recorded", "replay-started", "replayed"},
		discarded.ID: {"recorded", "discarded"},
	} {
		var shown supportapi.ShownFailure
		if st := fx.call("GET", "/api/failures/"+id, "", &shown, bob...); st != 200 {
			t.Fatalf("show: %d", st)
		}
		if shown.UpdatedBy != "bob@contoso.com" {
			t.Errorf("%s: updatedBy %q, want bob@contoso.com", id, shown.UpdatedBy)
		}
		var actions []string
		for _, c := range shown.History {
			actions = append(actions, c.Action)
		}
		if !slices.Equal(actions, want) {
			t.Errorf("%s: history %v, want %v", id, actions, want)
		}
		if last := shown.History[len(shown.History)-1]; last.By != "bob@contoso.com" || last.At.IsZero() {
			t.Errorf("%s: last change %+v, want by bob@contoso.com with a time", id, last)
		}
	}
	if logged := fx.logs.lines("failure replayed"); len(logged) != 1 || logged[0]["who"] != "bob@contoso.com" {
		t.Errorf("log lines: %v", logged)
	}
}

// TestSupportAPI_WithoutAStore: with no failure store configured, /api/me still answers (the
// console can say who is signed in) and the failures calls say what is missing.
func TestSupportAPI_WithoutAStore(t *testing.T) {
	s := &config.Settings{AdminKeys: []config.AdminKey{{Name: "support", Key: supportKey}}}
	api := handlers.NewFailuresAPI(handlers.FailuresDeps{Settings: s})
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: s, Dispatcher: &dispatch.Dispatcher{}, Failures: api, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		method, path string
		want         int
		body         string
	}{
		{"GET", "/api/me", 200, `"name":"support"`},
		{"POST", "/api/me", 405, "GET"},
		{"GET", "/api/failures", 503, "DVROUTER_TABLES"},
		{"GET", "/api/failures/replay/extra/parts", 404, "not an endpoint"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		req.Header.Set("x-functions-key", supportKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(raw), c.body) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s, want %d with %q in JSON", c.method, c.path, resp.StatusCode, raw, c.want, c.body)
		}
	}
}

func TestFailuresAPI_StoreDownSaysWhatFailedNotWhere(t *testing.T) {
	az := testenv.StartAzurite(t) // its own: this test stops it
	fx := newAPIFixture(t, az, fixtureOptions{})
	f := fx.keep(contactEvent(1), "erp", "contacts-to-erp", failures.KindDelivery)
	az.Stop()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/failures", ""},
		{"GET", "/api/failures/" + f.ID, ""},
		{"POST", "/api/failures/" + f.ID + "/discard", `{"reason":"test"}`},
		{"POST", "/api/failures/replay", `{"consumer":"erp"}`},
	} {
		var e errorAnswer
		if st := fx.call(c.method, c.path, c.body, &e); st != http.StatusServiceUnavailable {
			t.Errorf("%s %s with the store down: %d, want 503", c.method, c.path, st)
		}
		// (The fixture's table is named Failures<digits>.)
		if infra := regexp.MustCompile(`127\.0\.0\.1|devstoreaccount1|https?:|Failures\d`).FindString(e.Error + " " + e.Detail); infra != "" {
			t.Errorf("%s %s: answer %q / %q names infrastructure (%q)", c.method, c.path, e.Error, e.Detail, infra)
		}
		if !strings.Contains(e.Detail, "failure store did not answer") {
			t.Errorf("%s %s: detail %q does not say what failed", c.method, c.path, e.Detail)
		}
	}
	if len(fx.logs.lines("failure store error")) == 0 {
		t.Error("the log does not keep the store's own error")
	}
}
