package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// recorder is a Deliverer that delivers everything and keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	events []*dataverse.Event
}

func (r *recorder) Deliver(_ context.Context, ev *dataverse.Event, targets []deliver.Target) (deliver.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	out := deliver.Outcome{Delivered: []deliver.Result{}, Failed: []deliver.Result{}}
	for _, t := range targets {
		out.Delivered = append(out.Delivered, deliver.Result{Route: t.Route, Consumer: t.Consumer, Delivered: true, Attempts: 1})
	}
	return out, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// sizeExceeded removes from a context what Dataverse removes from one over the size limit:
// ParentContext, InputParameters, PreEntityImages and PostEntityImages.
func sizeExceeded(t *testing.T, raw []byte) []byte {
	t.Helper()
	var ctx map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")), &ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"} {
		delete(ctx, k)
	}
	out, err := json.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// isColumn reports whether a row key is a column (not an annotation nor a pseudo-column).
func isColumn(k string) bool {
	switch k {
	case "SdkMessage", "ItemInternalId", "RunAsSystemUserId":
		return false
	}
	return !strings.Contains(k, "@")
}

// environmentFor serves the full event's row from the stand-in, as Dataverse holds it.
func environmentFor(t *testing.T, w *testenv.WebAPI, full *dataverse.Event) {
	t.Helper()
	var cols []string
	row := map[string]any{}
	for k, v := range full.Row {
		if k == "SdkMessage" || k == "ItemInternalId" || k == "RunAsSystemUserId" {
			continue
		}
		row[k] = v
		if isColumn(k) {
			cols = append(cols, k)
		}
	}
	w.AddTable(testenv.WebAPITable{LogicalName: full.Table, EntitySetName: full.Table + "s", PrimaryID: full.Table + "id", Columns: cols})
	w.SetRow(full.Table, full.RecordID, row)
}

// routesFor writes routes on the full event's own values: conditions and filters that hold on
// it, and one of each that does not.
func routesFor(full *dataverse.Event) string {
	var strs []string
	for k, v := range full.Row {
		if s, ok := v.(string); ok && isColumn(k) && !strings.HasPrefix(k, "_") && len(s) > 0 && len(s) < 60 &&
			!strings.ContainsAny(s, "'\\\"") && k != full.Table+"id" {
			strs = append(strs, k)
		}
	}
	sort.Strings(strs)
	if len(strs) > 3 {
		strs = strs[:3]
	}
	var b strings.Builder
	b.WriteString("consumers:\n  - {name: c, type: http, url: \"http://127.0.0.1:1/c\"}\nroutes:\n")
	for i, k := range strs {
		v := full.Row[k].(string)
		fmt.Fprintf(&b, "  - {name: cond-%d, table: %s, conditions: [\"@equals(triggerOutputs()?['body/%s'], '%s')\"], consumers: [c]}\n", i, full.Table, k, v)
		fmt.Fprintf(&b, "  - {name: filter-%d, table: %s, filter: \"%s eq '%s'\", consumers: [c]}\n", i, full.Table, k, v)
		fmt.Fprintf(&b, "  - {name: not-%d, table: %s, filter: \"%s eq 'no such value'\", consumers: [c]}\n", i, full.Table, k)
	}
	fmt.Fprintf(&b, "  - {name: any, table: %s, consumers: [c]}\n", full.Table)
	return b.String()
}

func corpus(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(), "..", "shared", "corpus", "dataverse")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", dir)
	}
	return files
}

func TestReread_SizeExceededEventsMatchAsTheFullEventWould(t *testing.T) {
	for _, file := range corpus(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			full, err := dataverse.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			if full.Message == "Delete" {
				t.Skip("a deleted row cannot be read")
			}
			w := testenv.StartWebAPI(t)
			environmentFor(t, w, full)
			_, routes := compile(t, routesFor(full))
			rows, err := webapi.New(map[string]string{full.OrganizationID: w.URL}, webapi.Options{Credential: w.Credential()})
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			d := &dispatch.Dispatcher{Routes: routes, Deliver: rec, Rows: rows, Log: zerolog.Nop()}

			want, err := d.Dispatch(context.Background(), full)
			if err != nil {
				t.Fatal(err)
			}
			small, err := dataverse.Decode(sizeExceeded(t, raw))
			if err != nil {
				t.Fatal(err)
			}
			if !small.SizeExceeded || small.ID != full.ID {
				t.Fatalf("stripped event: sizeExceeded %v, id %s (full %s)", small.SizeExceeded, small.ID, full.ID)
			}
			got, err := d.Dispatch(context.Background(), small)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Matched, want.Matched) {
				t.Fatalf("size-exceeded event matched %v, the full event %v", got.Matched, want.Matched)
			}
			if rec.count() != 2 || !small.Reread || full.Reread {
				t.Fatalf("deliveries %d, reread %v (full %v)", rec.count(), small.Reread, full.Reread)
			}
			// Every column the routes read has the full event's value, annotations included.
			for _, c := range routes.Columns(full.Table) {
				for k, v := range full.Row {
					if k == c || strings.HasPrefix(k, c+"@") {
						if !reflect.DeepEqual(small.Row[k], v) {
							t.Errorf("%s = %#v, the full event has %#v", k, small.Row[k], v)
						}
					}
				}
			}
			if n := w.RowReads(); n != 1 {
				t.Errorf("%d row reads, want 1 (the full event needs none)", n)
			}
		})
	}
}

// accountEvent is testdata's size-exceeded account update, with its row in the stand-in.
func accountEvent(t *testing.T, w *testenv.WebAPI) *dataverse.Event {
	t.Helper()
	ev := event(t, "update-account-size-exceeded.json")
	w.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid",
		Columns: []string{"name", "creditlimit", "statecode", "_primarycontactid_value"}})
	w.SetRow("account", ev.RecordID, map[string]any{
		"accountid": ev.RecordID, "name": "Fourth Coffee", "creditlimit": json.Number("50000.0000"),
		"creditlimit@OData.Community.Display.V1.FormattedValue": "$50,000.00", "statecode": json.Number("0"),
	})
	return ev
}

func TestReread_FailedReadIsKeptAsARereadFailureAndReplayReadsAgain(t *testing.T) {
	az := testenv.StartAzurite(t)
	store, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: "RereadTest"})
	if err != nil {
		t.Fatal(err)
	}
	w := testenv.StartWebAPI(t)
	ev := accountEvent(t, w)
	good := testenv.StartConsumer(t)
	f, s := compile(t, `
consumers:
  - {name: erp, type: http, url: "`+good.URL+`"}
routes:
  - {name: big-accounts, table: account, filter: "creditlimit gt 10000", consumers: [erp]}
`)
	d, err := deliver.New(f.Consumers, store, deliver.Options{Budget: 5 * time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	rows, err := webapi.New(map[string]string{ev.OrganizationID: w.URL}, webapi.Options{Credential: w.Credential(), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(context.Background(), journal.Config{Account: tables.Account{ConnectionString: az.ConnectionString()}, Table: "RereadJournal", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(context.Background())
	disp := &dispatch.Dispatcher{Routes: s, Deliver: d, Recorder: store, Rows: rows, Journal: j, Log: zerolog.Nop()}

	w.FailNext(503, 503) // the definition read fails twice: the read fails
	res, err := disp.Dispatch(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matched) != 0 || len(good.Requests()) != 0 {
		t.Fatalf("a failed read was matched: %+v", res)
	}
	page, err := store.List(context.Background(), failures.Query{Kind: string(failures.KindReread)})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("reread failures = %+v (err %v)", page.Items, err)
	}
	kept := page.Items[0]
	if kept.EventID != ev.ID || kept.Table != "account" || kept.RecordID != ev.RecordID || !strings.Contains(kept.LastError, "503") {
		t.Fatalf("kept = %+v", kept)
	}
	if err := j.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]journal.Query{"event": {EventID: ev.ID}, "record": {Table: "account", RecordID: ev.RecordID}} {
		got, err := j.Lookup(context.Background(), q)
		if err != nil || len(got) != 1 {
			t.Fatalf("journal by %s = %+v (err %v), want the one reread-failed entry", name, got, err)
		}
		if e := got[0]; e.Outcome != journal.RereadFailed || e.Consumer != journal.NoConsumer || e.FailureID != kept.ID || !strings.Contains(e.Error, "503") {
			t.Errorf("journal by %s: %+v", name, e)
		}
	}

	replayer := &failures.Replayer{Store: store, Sender: d, Router: disp, Budget: 5 * time.Second, Observe: j.ObserveFailure, Log: zerolog.Nop()}
	w.FailNext(503, 503)
	out, err := replayer.Replay(context.Background(), kept.ID, failures.Actor{Name: "test"})
	if err != nil || out.Result != failures.ResultFailed || !strings.Contains(out.Error, "reading the row") {
		t.Fatalf("replay while the Web API fails = %+v (err %v)", out, err)
	}
	if page, _ := store.List(context.Background(), failures.Query{Kind: string(failures.KindReread)}); len(page.Items) != 1 || page.Items[0].Attempts != 2 {
		t.Fatalf("after a failed replay: %+v", page.Items)
	}
	out, err = replayer.Replay(context.Background(), kept.ID, failures.Actor{Name: "test"})
	if err != nil || out.Result != failures.ResultDelivered || out.Routed == nil || !slices.Equal(out.Routed.Delivered, []string{"erp"}) {
		t.Fatalf("replay = %+v (err %v)", out, err)
	}
	if err := j.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := j.Lookup(context.Background(), journal.Query{EventID: ev.ID})
	// Newest first: erp's delivery, the replay whose read failed again, the first read's failure.
	if err != nil || len(entries) != 3 || entries[0].Outcome != journal.Delivered || entries[0].Consumer != "erp" {
		t.Fatalf("journal after the replays = %+v (err %v), want erp delivered, then two reread-failed entries", entries, err)
	}
	for _, e := range entries[1:] {
		if e.Outcome != journal.RereadFailed || e.Consumer != journal.NoConsumer || e.FailureID != kept.ID {
			t.Errorf("journal entry %+v, want reread-failed for no consumer, naming failure %s", e, kept.ID)
		}
	}
	reqs := good.Requests()
	if len(reqs) != 1 {
		t.Fatalf("consumer got %d requests", len(reqs))
	}
	var sent dataverse.Event
	if err := json.Unmarshal(reqs[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if !sent.Reread || !sent.SizeExceeded || sent.Row["creditlimit"] == nil {
		t.Fatalf("the consumer's event: reread %v, sizeExceeded %v, row %v", sent.Reread, sent.SizeExceeded, sent.Row)
	}
}

func TestReread_ThrottlingKeepsGoingAndLosesNothing(t *testing.T) {
	w := testenv.StartWebAPI(t)
	ev := accountEvent(t, w)
	_, s := compile(t, `
consumers:
  - {name: c, type: http, url: "http://127.0.0.1:1/c"}
routes:
  - {name: big-accounts, table: account, filter: "creditlimit gt 10000", consumers: [c]}
`)
	rows, err := webapi.New(map[string]string{ev.OrganizationID: w.URL}, webapi.Options{Credential: w.Credential(), Concurrency: 4, MaxAttempts: 6})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	d := &dispatch.Dispatcher{Routes: s, Deliver: rec, Rows: rows, Log: zerolog.Nop()}
	w.ThrottleAfter(5, 4, "0.2")
	const n = 30
	var wg sync.WaitGroup
	errs := make([]error, n)
	matched := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e := *ev
			e.Row = maps(ev.Row)
			res, err := d.Dispatch(ctx, &e)
			errs[i], matched[i] = err, len(res.Matched)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || matched[i] != 1 {
			t.Errorf("event %d: matched %d, err %v", i, matched[i], errs[i])
		}
	}
	if rec.count() != n {
		t.Errorf("%d of %d events delivered", rec.count(), n)
	}
	throttled := 0
	for _, r := range w.Requests() {
		if r.Status == 429 {
			throttled++
		}
	}
	if throttled == 0 || w.MaxInFlight() > 4 {
		t.Errorf("throttled %d, max in flight %d", throttled, w.MaxInFlight())
	}
}

func maps(r dataverse.Row) dataverse.Row {
	out := make(dataverse.Row, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

func TestFetch_MissingReadsOnlyTheAbsentColumnsOnceForAllRoutes(t *testing.T) {
	w := testenv.StartWebAPI(t)
	ev := event(t, "update-account-async-images.json")
	if _, ok := ev.Row["creditlimit"]; ok {
		t.Fatal("test event already carries creditlimit")
	}
	w.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid",
		Columns: []string{"name", "creditlimit", "numberofemployees", "statecode"}})
	w.SetRow("account", ev.RecordID, map[string]any{"accountid": ev.RecordID, "name": "from the Web API",
		"creditlimit": json.Number("75000"), "numberofemployees": json.Number("12")})
	_, s := compile(t, `
consumers:
  - {name: c, type: http, url: "http://127.0.0.1:1/c"}
routes:
  - name: credit
    table: account
    fetch: missing
    conditions: ["@greater(triggerOutputs()?['body/creditlimit'], 50000)"]
    consumers: [c]
  - {name: staff, table: account, fetch: [numberofemployees, revenue], consumers: [c]}
  - {name: no-fetch, table: account, conditions: ["@equals(triggerBody()?['creditlimit'], null)"], consumers: [c]}
  - {name: contacts, table: contact, fetch: missing, filter: "lastname eq 'x'", consumers: [c]}
`)
	rows, err := webapi.New(map[string]string{ev.OrganizationID: w.URL}, webapi.Options{Credential: w.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	d := &dispatch.Dispatcher{Routes: s, Deliver: rec, Rows: rows, Log: zerolog.Nop()}
	name := ev.Row["name"]
	res, err := d.Dispatch(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Matched, []string{"credit", "staff"}) {
		t.Fatalf("matched %v", res.Matched)
	}
	var gets []testenv.WebAPIRequest
	for _, r := range w.Requests() {
		if strings.HasPrefix(r.Path, "/api/data/v9.2/accounts(") {
			gets = append(gets, r)
		}
	}
	if len(gets) != 1 || gets[0].Query.Get("$select") != "creditlimit,numberofemployees" {
		t.Fatalf("row reads: %+v", gets)
	}
	if ev.Row["name"] != name || !ev.Reread {
		t.Errorf("the event's own value was replaced (%v) or reread not set (%v)", ev.Row["name"], ev.Reread)
	}
}
