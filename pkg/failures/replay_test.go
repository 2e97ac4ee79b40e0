package failures_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/httpdest"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// The Replayer's rules, with real delivery (breakers, retries) to a loopback consumer and a real
// store on Azurite. How the API maps them to HTTP is tested in handlers.

type replayFixture struct {
	t         *testing.T
	store     *failures.Store
	erp       *testenv.Consumer
	deliverer *deliver.Deliverer
	replayer  *failures.Replayer
}

var replayTables int

func newReplayFixture(t *testing.T, az *testenv.Azurite, breaker config.Breaker) *replayFixture {
	t.Helper()
	replayTables++
	store, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: fmt.Sprintf("Replayer%d", replayTables)})
	if err != nil {
		t.Fatal(err)
	}
	fx := &replayFixture{t: t, store: store, erp: testenv.StartConsumer(t)}
	file := &config.RouteFile{
		Consumers: []config.Consumer{{
			Name: "erp", Type: "http", Format: "row", Timeout: 3 * time.Second, MaxConcurrency: 16,
			Retry:   config.Retry{Attempts: 1, InitialDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
			Breaker: breaker, Spec: httpdest.Spec{URL: fx.erp.URL, Method: http.MethodPost},
		}},
		Routes: []config.Route{{Name: "contacts-to-erp", Table: "contact", Consumers: []string{"erp"}}},
	}
	log := zerolog.Nop()
	routes, err := route.Compile(file, route.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	fx.deliverer, err = deliver.New(file.Consumers, store, deliver.Options{Budget: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.deliverer.Close(context.Background()) })
	d := &dispatch.Dispatcher{Routes: routes, Deliver: fx.deliverer, Recorder: store, Log: log}
	fx.replayer = &failures.Replayer{Store: store, Sender: fx.deliverer, Router: d, Budget: 5 * time.Second, Log: log}
	return fx
}

// keep records the i-th contact Create as a delivery failure for erp, 4 attempts so far.
func (fx *replayFixture) keep(i int) failures.Failure {
	fx.t.Helper()
	at := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	id := fmt.Sprintf("%08x-3d4e-4f60-8b70-%012x", i, i)
	raw := fmt.Appendf(nil, `{"BusinessUnitId":"7e2d4c19-3a1b-ef11-8409-000d3a1b2c3d","CorrelationId":"%[1]s","Depth":1,
"InitiatingUserId":"9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d","InputParameters":[{"key":"Target","value":{
"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Attributes":[{"key":"contactid","value":"%[1]s"}],
"EntityState":null,"FormattedValues":[],"Id":"%[1]s","KeyAttributes":[],"LogicalName":"contact","RelatedEntities":[],
"RowVersion":null}}],"IsExecutingOffline":false,"IsInTransaction":false,"IsOfflinePlayback":false,"IsolationMode":1,
"MessageName":"Create","Mode":1,"OperationCreatedOn":"\/Date(%[2]d)\/","OperationId":"%[1]s",
"OrganizationId":"4ef5b371-e89e-e711-8122-000d3aa2331c","OrganizationName":"contoso","OutputParameters":[],
"OwningExtension":{"Id":"75417616-4ea2-e711-8122-000d3aa2331c","KeyAttributes":[],"LogicalName":"sdkmessageprocessingstep",
"Name":null,"RowVersion":null},"ParentContext":null,"PostEntityImages":[],"PreEntityImages":[],"PrimaryEntityId":"%[1]s",
"PrimaryEntityName":"contact","RequestId":null,"SecondaryEntityName":"none","SharedVariables":[],"Stage":40,
"UserId":"9b3f1e77-3a1b-ef11-8409-000d3a1b2c3d"}`, id, at.UnixMilli())
	ev, err := dataverse.Decode(raw)
	if err != nil {
		fx.t.Fatalf("decode test event: %v", err)
	}
	f, err := fx.store.Record(context.Background(), failures.Failure{
		EventID: ev.ID, Consumer: "erp", Route: "contacts-to-erp", Table: "contact", Message: "Create",
		Kind: failures.KindDelivery, Attempts: 4, OccurredAt: at, LastError: "503", LastStatusCode: 503, Payload: raw,
	})
	if err != nil {
		fx.t.Fatalf("record: %v", err)
	}
	return f
}

var closedBreaker = config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1}

func TestReplayer(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := context.Background()
	who := failures.Actor{Name: "ann", Key: "support"}

	t.Run("ReplayMatching_ContinuationResumesWithoutRepeats", func(t *testing.T) {
		fx := newReplayFixture(t, az, closedBreaker)
		fx.erp.Otherwise(testenv.ReplyStatus(500)) // everything fails again and stays pending
		for i := range 5 {
			fx.keep(i)
		}
		total, q := 0, failures.Query{Consumer: "erp"}
		for range 5 {
			out, err := fx.replayer.ReplayMatching(ctx, q, 2, false, who)
			if err != nil {
				t.Fatal(err)
			}
			total += out.Failed
			if q.Continuation = out.Continuation; q.Continuation == "" {
				break
			}
		}
		if total != 5 || fx.erp.Count() != 5 {
			t.Errorf("failed %d, consumer got %d requests; want each of the 5 tried once", total, fx.erp.Count())
		}
	})

	t.Run("ReplayMatching_BreakerRefusalsAreNotAttemptsAndStopTheRun", func(t *testing.T) {
		const openFor = 300 * time.Millisecond
		fx := newReplayFixture(t, az, config.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: openFor, HalfOpenRequests: 1})
		const n = 20
		for i := range n {
			fx.keep(i)
		}
		// Trip the breaker, then let it half-open: it lets one trial through and refuses the
		// rest until the trial ends, while BreakerOpen (open only) says false.
		fx.erp.Next(testenv.ReplyStatus(503), testenv.ReplyStatus(503))
		f := fx.keep(100)
		ev, err := dataverse.Decode(mustGet(t, fx.store, f.ID).Payload)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			fx.deliverer.Send(ctx, ev, deliver.Target{Route: "contacts-to-erp", Consumer: "erp"})
		}
		if !fx.deliverer.BreakerOpen("erp") {
			t.Fatal("breaker did not open")
		}
		time.Sleep(openFor + 50*time.Millisecond)
		fx.erp.Otherwise(testenv.ReplyStall(800 * time.Millisecond)) // the trial is slow

		out, err := fx.replayer.ReplayMatching(ctx, failures.Query{Consumer: "erp"}, 1000, false, who)
		if err != nil {
			t.Fatal(err)
		}
		if !out.StoppedEarly || out.Reason == "" {
			t.Errorf("bulk: %+v, want stopped early because the breaker refused", out)
		}
		if got := fx.erp.Count(); got != 3 {
			t.Errorf("consumer received %d requests, want 2 that tripped the breaker and 1 trial", got)
		}
		page, err := fx.store.List(ctx, failures.Query{Consumer: "erp", Top: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got := mustGet(t, fx.store, it.ID)
			if got.Status == failures.StatusReplayed {
				continue
			}
			if got.Status != failures.StatusPending || got.Attempts != 4 {
				t.Errorf("failure %s: status %s attempts %d, want pending with 4: a refused replay is no attempt", got.ID, got.Status, got.Attempts)
			}
		}
	})

	// The payload is decoded again on replay: the route file's lookups: hints must shape it as
	// they shaped the first delivery.
	t.Run("Replay_AppliesTheLookupHints", func(t *testing.T) {
		fx := newReplayFixture(t, az, closedBreaker)
		fx.replayer.Lookups = dataverse.Lookups{"contact": {"new_projectid"}}
		const raw = `{"MessageName":"Update","PrimaryEntityName":"contact","PrimaryEntityId":"11111111-2222-4333-8444-555555555555",` +
			`"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",` +
			`"Attributes":[{"key":"new_projectid","value":null}],"FormattedValues":[],` +
			`"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}]}`
		ev, err := dataverse.Decode([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		f, err := fx.store.Record(ctx, failures.Failure{
			EventID: ev.ID, Consumer: "erp", Route: "contacts-to-erp", Table: "contact", Message: "Update",
			Kind: failures.KindDelivery, Attempts: 1, OccurredAt: time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC),
			LastError: "503", LastStatusCode: 503, Payload: []byte(raw),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := fx.replayer.Replay(ctx, f.ID, who); err != nil || out.Result != failures.ResultDelivered {
			t.Fatalf("replay: %+v, %v", out, err)
		}
		reqs := fx.erp.Requests()
		if len(reqs) != 1 {
			t.Fatalf("consumer got %d requests, want 1", len(reqs))
		}
		var got struct {
			Row map[string]any `json:"row"`
		}
		if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
			t.Fatal(err)
		}
		if v, ok := got.Row["_new_projectid_value"]; !ok || v != nil {
			t.Errorf("row = %v, want _new_projectid_value: null", got.Row)
		}
		if _, ok := got.Row["new_projectid"]; ok {
			t.Errorf("row = %v, want no new_projectid", got.Row)
		}
	})
}

func mustGet(t *testing.T, s *failures.Store, id string) failures.Failure {
	t.Helper()
	f, _, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
