package changes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// rig is one environment's stand-in, Azurite, an HTTP consumer and the real dispatch and
// delivery between them, as main wires them.
type rig struct {
	api      *testenv.WebAPI
	env      *webapi.Environment
	store    *changes.Store
	consumer *testenv.Consumer
	disp     *dispatch.Dispatcher
	routes   *config.RouteFile
	az       *testenv.Azurite
	failures *failures.Store
}

const changesRoute = `{name: accounts, table: account, source: changes, messages: [Create, Update, Delete], select: [name, telephone1], consumers: [erp]}`

func newRig(t testing.TB, rows int) *rig { return newRigWith(t, rows, changesRoute, nil) }

// newRigWith is newRig with another route and, when jnl is set, the delivery journal.
func newRigWith(t testing.TB, rows int, routeYAML string, jnl dispatch.Journal) *rig {
	t.Helper()
	api := testenv.StartWebAPI(t)
	api.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid",
		Columns: []string{"name", "telephone1", "_parentaccountid_value"}})
	for i := range rows {
		api.SetRow("account", rowID(i), accountRow(i, "first"))
	}
	api.TrackChanges("account")
	client, err := webapi.New(map[string]string{"org": api.URL}, webapi.Options{Credential: api.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	az := testenv.StartAzurite(t)
	acct := tables.Account{ConnectionString: az.ConnectionString()}
	store, err := changes.OpenStore(acct, "ChangeTracking")
	if err != nil {
		t.Fatal(err)
	}
	fstore, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: "ChangeFailures"})
	if err != nil {
		t.Fatal(err)
	}
	consumer := testenv.StartConsumer(t)
	f, err := config.LoadRoutesBytes("routes.yaml", []byte(`
consumers:
  - {name: erp, type: http, url: "`+consumer.URL+`", retry: {attempts: 1}}
routes:
  - `+routeYAML+`
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := route.Compile(f, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := deliver.New(f.Consumers, fstore, deliver.Options{Budget: 10 * time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return &rig{api: api, env: client.Environments()[0], store: store, consumer: consumer, routes: f, az: az, failures: fstore,
		disp: &dispatch.Dispatcher{Routes: set, Deliver: d, Recorder: fstore, Journal: jnl, Log: zerolog.Nop()}}
}

func (r *rig) reader(owner string, d changes.Dispatcher) *changes.Reader {
	if d == nil {
		d = r.disp
	}
	return &changes.Reader{Env: r.env, Store: r.store, Dispatcher: d, Owner: owner, PageSize: 10, Log: zerolog.Nop()}
}

var accountTable = changes.Table{Name: "account", Columns: []string{"name", "telephone1"}}

func rowID(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }

func accountRow(i int, name string) map[string]any {
	return map[string]any{"name": fmt.Sprintf("%s %d", name, i), "telephone1": "555",
		"name@OData.Community.Display.V1.FormattedValue": fmt.Sprintf("%s %d", name, i)}
}

// received decodes what the consumer got: the row-format events.
func received(t *testing.T, c *testenv.Consumer) []dataverse.Event {
	t.Helper()
	var out []dataverse.Event
	for _, req := range c.Requests() {
		var ev dataverse.Event
		if err := json.Unmarshal(req.Body, &ev); err != nil {
			t.Fatalf("consumer got %s: %v", req.Body, err)
		}
		if req.Header.Get("Idempotency-Key") != ev.ID {
			t.Fatalf("Idempotency-Key %q, event id %q", req.Header.Get("Idempotency-Key"), ev.ID)
		}
		out = append(out, ev)
	}
	return out
}

func TestRead_FullReadPagesThenDeltaWithChangesAndDeletes(t *testing.T) {
	r := newRig(t, 25)
	ctx := context.Background()
	rep, err := r.reader("a", nil).Read(ctx, accountTable)
	if err != nil {
		t.Fatal(err)
	}
	// 25 rows in pages of 10: three requests, the last with the delta link.
	if !rep.Complete || !rep.FullRead || rep.Pages != 3 || rep.Requests != 3 || rep.Changed != 25 {
		t.Fatalf("first read = %+v", rep)
	}
	evs := received(t, r.consumer)
	if len(evs) != 25 {
		t.Fatalf("consumer got %d events, want 25", len(evs))
	}
	ev := evs[0]
	if ev.Source != "changes" || ev.Message != "Upsert" || ev.Table != "account" || ev.Version == "" ||
		ev.Row["name"] == nil || ev.Row["name@OData.Community.Display.V1.FormattedValue"] == nil {
		t.Fatalf("event = %+v", ev)
	}
	for _, req := range r.api.Requests() {
		if strings.HasPrefix(req.Path, "/api/data/v9.2/accounts") && req.Query.Get("$select") != "name,telephone1" {
			t.Fatalf("read %s?%s, want $select=name,telephone1", req.Path, req.Query.Encode())
		}
	}

	r.api.ChangeRow("account", rowID(3), accountRow(3, "changed"))
	r.api.ChangeRow("account", rowID(30), accountRow(30, "new"))
	r.api.DeleteRow("account", rowID(7))
	rep, err = r.reader("a", nil).Read(ctx, accountTable)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete || rep.FullRead || rep.Requests != 1 || rep.Changed != 2 || rep.Deleted != 1 {
		t.Fatalf("delta read = %+v", rep)
	}
	evs = received(t, r.consumer)[25:]
	if len(evs) != 3 {
		t.Fatalf("delta delivered %d events, want 3", len(evs))
	}
	byRecord := map[string]dataverse.Event{}
	for _, e := range evs {
		byRecord[e.RecordID] = e
	}
	if e := byRecord[rowID(3)]; e.Message != "Upsert" || e.Row["name"] != "changed 3" {
		t.Errorf("changed row = %+v", e)
	}
	if e := byRecord[rowID(7)]; e.Message != "Delete" || e.Version != "" {
		t.Errorf("deletion = %+v", e)
	}
	states, err := r.store.List(ctx)
	if err != nil || len(states) != 1 || states[0].Pending || states[0].TokenAt.IsZero() || states[0].Changed != 27 || states[0].Deleted != 1 {
		t.Fatalf("states = %+v (err %v)", states, err)
	}
}

// crashing fails every event after the first n, as a process killed in the middle of a page
// never reports them durable.
type crashing struct {
	next  changes.Dispatcher
	n     int64
	count atomic.Int64
}

func (c *crashing) Dispatch(ctx context.Context, ev *dataverse.Event) (dispatch.Result, error) {
	if c.count.Add(1) > c.n {
		return dispatch.Result{}, errors.New("killed")
	}
	return c.next.Dispatch(ctx, ev)
}

func TestRead_KillInTheMiddleOfAPageLosesNothingAndRepeatsKeepTheirIDs(t *testing.T) {
	r := newRig(t, 35)
	ctx := context.Background()
	crash := &crashing{next: r.disp, n: 15} // page 2 of 4 half delivered
	rd := r.reader("a", crash)
	rd.Parallel = 1
	if _, err := rd.Read(ctx, accountTable); err == nil {
		t.Fatal("the killed read reported no error")
	}
	st, _ := r.store.List(ctx)
	if len(st) != 1 || !st[0].Pending || st[0].PagesRead != 1 {
		t.Fatalf("after the kill: %+v, want page 1 stored and its next link pending", st)
	}
	rep, err := r.reader("b", nil).Read(ctx, accountTable)
	if err != nil || !rep.Complete || rep.FullRead || rep.Pages != 3 {
		t.Fatalf("resumed read = %+v (err %v)", rep, err)
	}
	seen := map[string]int{}
	ids := map[string]string{}
	for _, ev := range received(t, r.consumer) {
		seen[ev.RecordID]++
		if prev, ok := ids[ev.RecordID]; ok && prev != ev.ID {
			t.Fatalf("record %s came again with another id (%s, then %s)", ev.RecordID, prev, ev.ID)
		}
		ids[ev.RecordID] = ev.ID
	}
	if len(seen) != 35 {
		t.Fatalf("%d distinct rows delivered, want 35", len(seen))
	}
	repeats := 0
	for _, n := range seen {
		repeats += n - 1
	}
	// The five of page 2 delivered before the kill come again, no more.
	if repeats != 5 {
		t.Fatalf("%d repeats, want 5 (the part of page 2 delivered before the kill)", repeats)
	}
}

// killing cancels the run's context once n events were handed over, while deliveries are in
// flight: the process dying in the middle of a page.
type killing struct {
	next   changes.Dispatcher
	n      int64
	count  atomic.Int64
	cancel context.CancelFunc
}

func (k *killing) Dispatch(ctx context.Context, ev *dataverse.Event) (dispatch.Result, error) {
	if k.count.Add(1) == k.n {
		k.cancel()
	}
	return k.next.Dispatch(ctx, ev)
}

func TestRead_ContextKilledMidPageLosesNothing(t *testing.T) {
	r := newRig(t, 35)
	r.consumer.Otherwise(testenv.ReplyStall(20 * time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	rd := r.reader("a", &killing{next: r.disp, n: 15, cancel: cancel})
	rd.Parallel = 4
	rep, _ := rd.Read(ctx, accountTable)
	if rep.Complete {
		t.Fatalf("the killed read completed: %+v", rep)
	}
	r.consumer.Otherwise(testenv.ReplyStatus(200))
	if rep, err := r.reader("b", nil).Read(context.Background(), accountTable); err != nil || !rep.Complete {
		t.Fatalf("resumed read = %+v (err %v)", rep, err)
	}
	// Every row reached the consumer, or is kept as a failure to replay.
	reached := map[string]bool{}
	for _, ev := range received(t, r.consumer) {
		reached[ev.RecordID] = true
	}
	page, err := r.failures.List(context.Background(), failures.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range page.Items {
		reached[f.RecordID] = true
	}
	for i := range 35 {
		if !reached[rowID(i)] {
			t.Errorf("row %s neither delivered nor kept", rowID(i))
		}
	}
}

// overlap records whether two readers ever dispatched at the same time.
type overlap struct {
	next    changes.Dispatcher
	mu      sync.Mutex
	owners  map[string]int
	overlap bool
	owner   string
}

type tagged struct {
	o     *overlap
	owner string
}

func (t tagged) Dispatch(ctx context.Context, ev *dataverse.Event) (dispatch.Result, error) {
	t.o.mu.Lock()
	t.o.owners[t.owner]++
	if len(t.o.owners) > 1 {
		t.o.overlap = true
	}
	t.o.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	defer func() {
		t.o.mu.Lock()
		if t.o.owners[t.owner]--; t.o.owners[t.owner] == 0 {
			delete(t.o.owners, t.owner)
		}
		t.o.mu.Unlock()
	}()
	return t.o.next.Dispatch(ctx, ev)
}

func TestRead_TwoInstancesNeverReadOneTableAtOnce(t *testing.T) {
	r := newRig(t, 40)
	o := &overlap{next: r.disp, owners: map[string]int{}}
	var wg sync.WaitGroup
	reps := make([]changes.Report, 2)
	errs := make([]error, 2)
	for i, owner := range []string{"instance-1", "instance-2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = r.reader(owner, tagged{o, owner}).Read(context.Background(), accountTable)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if o.overlap {
		t.Fatal("both instances dispatched events of one table at the same time")
	}
	skipped := 0
	for _, rep := range reps {
		if rep.Skipped != "" {
			skipped++
		}
	}
	if skipped != 1 || len(received(t, r.consumer)) != 40 {
		t.Fatalf("reports %+v, %d delivered: want one reader, one skipped, 40 delivered", reps, len(received(t, r.consumer)))
	}
}

func TestRead_LeaseOfAKilledReaderRunsOut(t *testing.T) {
	r := newRig(t, 3)
	ctx := context.Background()
	// A reader that took the lease and died without releasing it.
	if _, err := r.store.Acquire(ctx, strings.TrimPrefix(r.api.URL, "http://"), "account", "dead", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	rep, err := r.reader("b", nil).Read(ctx, accountTable)
	if err != nil || rep.Skipped == "" || !strings.Contains(rep.Skipped, "dead") {
		t.Fatalf("read under a live lease = %+v (err %v), want skipped naming the holder", rep, err)
	}
	time.Sleep(400 * time.Millisecond)
	rep, err = r.reader("b", nil).Read(ctx, accountTable)
	if err != nil || !rep.Complete || rep.Changed != 3 {
		t.Fatalf("read after the lease ran out = %+v (err %v)", rep, err)
	}
}

func TestRead_ExpiredTokenStartsAFullReadNotAGap(t *testing.T) {
	r := newRig(t, 12)
	ctx := context.Background()
	if _, err := r.reader("a", nil).Read(ctx, accountTable); err != nil {
		t.Fatal(err)
	}
	r.api.ChangeRow("account", rowID(2), accountRow(2, "changed"))
	r.api.ExpireChangeTokens()
	rep, err := r.reader("a", nil).Read(ctx, accountTable)
	if err != nil {
		t.Fatal(err)
	}
	// One refused request, then the full read's two pages.
	if !rep.Complete || !rep.FullRead || !strings.Contains(rep.FullReadWhy, "refused") || rep.Requests != 3 || rep.Changed != 12 {
		t.Fatalf("read with an expired token = %+v", rep)
	}
	st, _ := r.store.List(ctx)
	if st[0].FullReads != 2 {
		t.Fatalf("full reads = %d, want 2", st[0].FullReads)
	}
	found := false
	for _, ev := range received(t, r.consumer)[12:] {
		found = found || ev.RecordID == rowID(2) && ev.Row["name"] == "changed 2"
	}
	if !found {
		t.Fatal("the change made before the token expired was not delivered")
	}
}

func TestRead_ThrottledPageWaitsForRetryAfter(t *testing.T) {
	r := newRig(t, 15)
	// Let the table definition's two requests through, then throttle the first page once.
	r.api.ThrottleAfter(2, 1, "0.3")
	start := time.Now()
	rep, err := r.reader("a", nil).Read(context.Background(), accountTable)
	if err != nil || !rep.Complete || rep.Changed != 15 {
		t.Fatalf("throttled read = %+v (err %v)", rep, err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("read took %s: the 429's Retry-After (0.3 s) was not waited out", took)
	}
	if r.api.ChangeReads() != 2 {
		t.Fatalf("%d pages answered, want 2", r.api.ChangeReads())
	}
}

func TestRead_OtherColumnsStartAFullRead(t *testing.T) {
	r := newRig(t, 4)
	ctx := context.Background()
	if _, err := r.reader("a", nil).Read(ctx, accountTable); err != nil {
		t.Fatal(err)
	}
	rep, err := r.reader("a", nil).Read(ctx, changes.Table{Name: "account", Columns: []string{"name", "parentaccountid"}})
	if err != nil || !rep.FullRead || !strings.Contains(rep.FullReadWhy, "other columns") {
		t.Fatalf("read with other columns = %+v (err %v)", rep, err)
	}
	last := r.api.Requests()[len(r.api.Requests())-1]
	if last.Query.Get("$select") != "_parentaccountid_value,name" {
		t.Fatalf("$select = %q, want the lookup as _parentaccountid_value", last.Query.Get("$select"))
	}
}

func TestReset_NextReadIsAFullRead(t *testing.T) {
	r := newRig(t, 4)
	ctx := context.Background()
	if _, err := r.reader("a", nil).Read(ctx, accountTable); err != nil {
		t.Fatal(err)
	}
	found, err := r.store.Reset(ctx, strings.TrimPrefix(r.api.URL, "http://"), "account", "op@example.com")
	if err != nil || !found {
		t.Fatalf("reset: found %v, err %v", found, err)
	}
	rep, err := r.reader("a", nil).Read(ctx, accountTable)
	if err != nil || !rep.FullRead || !strings.Contains(rep.FullReadWhy, "op@example.com") || rep.Changed != 4 {
		t.Fatalf("read after reset = %+v (err %v)", rep, err)
	}
}

func TestChangeID_StableAndDistinct(t *testing.T) {
	a := changes.ChangeID("contoso.crm.dynamics.com", "account", "60C4E274-0D87-E711-80E5-00155DB19E6D", "915244")
	if a != changes.ChangeID("contoso.crm.dynamics.com", "account", "60c4e274-0d87-e711-80e5-00155db19e6d", "915244") {
		t.Fatal("the id depends on the case of the record id")
	}
	for _, other := range []string{
		changes.ChangeID("contoso.crm.dynamics.com", "account", "60c4e274-0d87-e711-80e5-00155db19e6d", "915245"),
		changes.ChangeID("contoso.crm.dynamics.com", "contact", "60c4e274-0d87-e711-80e5-00155db19e6d", "915244"),
		changes.ChangeID("fabrikam.crm.dynamics.com", "account", "60c4e274-0d87-e711-80e5-00155db19e6d", "915244"),
	} {
		if other == a {
			t.Fatal("two changes share an id")
		}
	}
	if len(a) != 36 || a[14] != '8' {
		t.Fatalf("id %q is not a version-8 UUID", a)
	}
}
