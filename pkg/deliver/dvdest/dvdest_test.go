package dvdest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// These tests deliver through package deliver (breaker, retries, budget, failure recording) to
// the Web API stand-in on loopback.

const mirrorRoutes = `consumers:
  - name: mirror
    type: dataverse
    environment: contoso
    table: new_contactmirror
    key: [new_sourceid]
    mode: %s
    timeout: 2s
    retry: {attempts: 4, initialDelay: 10ms, maxDelay: 200ms}
    columns:
      new_sourceid: contactid
      new_name: fullname
      new_origin: {value: dataverse}
      new_Account: {table: account, key: {accountnumber: new_accountnumber}}
routes:
  - {name: contacts, table: contact, consumers: [mirror]}
`

// mirrorStandIn is an environment with the target table and the account table lookups point at.
func mirrorStandIn(t *testing.T) *testenv.WebAPI {
	t.Helper()
	w := testenv.StartWebAPI(t).EnableWrites()
	w.AddTable(testenv.WebAPITable{LogicalName: "new_contactmirror", EntitySetName: "new_contactmirrors", PrimaryID: "new_contactmirrorid",
		Columns: []string{"new_sourceid", "new_name", "new_origin", "_new_account_value"}})
	w.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid", Columns: []string{"accountnumber"}})
	return w
}

// memRecorder keeps failures in memory (the Table Storage store has its own tests).
type memRecorder struct {
	mu  sync.Mutex
	got []failures.Failure
}

func (m *memRecorder) Record(_ context.Context, f failures.Failure) (failures.Failure, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, f)
	return f, nil
}

func (m *memRecorder) failures() []failures.Failure {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]failures.Failure(nil), m.got...)
}

func mirror(t *testing.T, w *testenv.WebAPI, mode string) (*deliver.Deliverer, *memRecorder) {
	t.Helper()
	rf, err := config.LoadRoutesBytes("routes.yaml", []byte(fmt.Sprintf(mirrorRoutes, mode)), func(k string) (string, bool) {
		if k == "DVROUTER_DATAVERSE_ENVIRONMENTS" {
			return "contoso=" + w.URL, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	d, err := deliver.New(rf.Consumers, rec, deliver.Options{Budget: 5 * time.Second, Logger: zerolog.Nop(), Credential: w.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d, rec
}

func contactEvent(i int, message string, row dataverse.Row) *dataverse.Event {
	id := fmt.Sprintf("%08x-3d4e-4f60-8b70-%012x", i, i)
	ev := &dataverse.Event{ID: fmt.Sprintf("evt-%d-%s", i, message), Message: message, Table: "contact", RecordID: id, Row: dataverse.Row{"contactid": id}}
	for k, v := range row {
		ev.Row[k] = v
	}
	if message == "Delete" {
		ev.Row, ev.PreImage = dataverse.Row{}, ev.Row
	}
	return ev
}

var target = []deliver.Target{{Route: "contacts", Consumer: "mirror"}}

func sourceKey(i int) map[string]any {
	return map[string]any{"new_sourceid": fmt.Sprintf("%08x-3d4e-4f60-8b70-%012x", i, i)}
}

func TestDataverse_CreateThenUpdateUpsertsByTheAlternateKey(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "upsert")

	out, err := d.Deliver(t.Context(), contactEvent(1, "Create", dataverse.Row{"fullname": "Yvonne McKay", "new_accountnumber": "A-1"}), target)
	if err != nil || len(out.Delivered) != 1 {
		t.Fatalf("create: %+v, %v", out, err)
	}
	// An Update's Target carries what changed: the other columns stay as they are.
	out, err = d.Deliver(t.Context(), contactEvent(1, "Update", dataverse.Row{"fullname": "Yvonne McKay-Lee"}), target)
	if err != nil || len(out.Delivered) != 1 {
		t.Fatalf("update: %+v, %v", out, err)
	}

	row := w.RowByKey("new_contactmirror", sourceKey(1))
	if row["new_name"] != "Yvonne McKay-Lee" || row["new_origin"] != "dataverse" || row["new_Account@odata.bind"] != "/accounts(accountnumber='A-1')" {
		t.Errorf("row = %v", row)
	}
	if n := w.RowCount("new_contactmirror"); n != 1 || len(rec.failures()) != 0 {
		t.Errorf("%d rows, %d failures; want 1 row, none", n, len(rec.failures()))
	}
}

func TestDataverse_CreateModeConflictIsKeptWithTheWebAPIsCode(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "create")
	if _, err := d.Deliver(t.Context(), contactEvent(2, "Create", dataverse.Row{"fullname": "A"}), target); err != nil {
		t.Fatal(err)
	}

	out, err := d.Deliver(t.Context(), contactEvent(2, "Update", dataverse.Row{"fullname": "B"}), target)

	if err != nil || len(out.Failed) != 1 {
		t.Fatalf("outcome %+v, %v: want the second write refused", out, err)
	}
	fs := rec.failures()
	if len(fs) != 1 || fs[0].Attempts != 1 || fs[0].LastStatusCode != http.StatusPreconditionFailed || !strings.Contains(fs[0].LastError, "0x80040237") {
		t.Fatalf("failures %+v: want one, kept after one attempt (412 is not retried), with the Web API's code", fs)
	}
	if row := w.RowByKey("new_contactmirror", sourceKey(2)); row["new_name"] != "A" {
		t.Errorf("row = %v: create-only changed an existing row", row)
	}
}

func TestDataverse_UpdateModeNeverCreates(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "update")

	out, _ := d.Deliver(t.Context(), contactEvent(3, "Update", dataverse.Row{"fullname": "A"}), target)

	if len(out.Failed) != 1 || w.RowCount("new_contactmirror") != 0 || len(rec.failures()) != 1 || rec.failures()[0].LastStatusCode != http.StatusNotFound {
		t.Fatalf("outcome %+v, failures %+v: want a kept 404 and no row", out, rec.failures())
	}
}

func TestDataverse_DeleteDeletesByKeyAndAMissingRowIsDone(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "upsert")
	if _, err := d.Deliver(t.Context(), contactEvent(4, "Create", dataverse.Row{"fullname": "A"}), target); err != nil {
		t.Fatal(err)
	}

	for range 2 { // the second finds nothing to delete: done, as the first made it
		out, err := d.Deliver(t.Context(), contactEvent(4, "Delete", nil), target)
		if err != nil || len(out.Delivered) != 1 {
			t.Fatalf("delete: %+v, %v", out, err)
		}
	}
	if w.RowCount("new_contactmirror") != 0 || len(rec.failures()) != 0 {
		t.Errorf("%d rows, failures %+v", w.RowCount("new_contactmirror"), rec.failures())
	}
}

func TestDataverse_ThrottlingKeepsGoingAndLosesNothing(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "upsert")
	w.ThrottleAfter(3, 6, "0.05") // after 3 requests, six 429s with Retry-After 50 ms
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := d.Deliver(t.Context(), contactEvent(100+i, "Create", dataverse.Row{"fullname": fmt.Sprint("C", i)}), target); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	throttled := 0
	for _, r := range w.Requests() {
		if r.Status == http.StatusTooManyRequests {
			throttled++
		}
	}
	kept := len(rec.failures())
	if throttled == 0 || w.RowCount("new_contactmirror")+kept != n || kept != 0 {
		t.Errorf("429s %d, rows %d, kept %d of %d: want throttling waited out, every event written", throttled, w.RowCount("new_contactmirror"), kept, n)
	}
}

func TestDataverse_EnvironmentDownIsKeptAfterRetries(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "upsert")
	w.FailNext(503, 503, 503, 503, 503, 503, 503, 503)

	out, err := d.Deliver(t.Context(), contactEvent(5, "Create", nil), target)

	if err != nil || len(out.Failed) != 1 {
		t.Fatalf("outcome %+v, %v", out, err)
	}
	if fs := rec.failures(); len(fs) != 1 || fs[0].Attempts != 4 || fs[0].LastStatusCode != 503 {
		t.Errorf("failures %+v: want one kept after its 4 attempts", fs)
	}
}

func TestDataverse_KeyWithoutAValueIsAPermanentFailure(t *testing.T) {
	w := mirrorStandIn(t)
	d, rec := mirror(t, w, "upsert")
	ev := contactEvent(6, "Create", nil)
	delete(ev.Row, "contactid")
	ev.Table = "account" // so the record id is not contactid either

	out, _ := d.Deliver(t.Context(), ev, target)

	fs := rec.failures()
	if len(out.Failed) != 1 || len(fs) != 1 || fs[0].Attempts != 1 || !strings.Contains(fs[0].LastError, "key column new_sourceid") {
		t.Fatalf("failures %+v", fs)
	}
	if len(w.Requests()) != 0 {
		t.Error("a request was sent for a row without its key")
	}
}

// Given the process's Web API client (Options.WebAPI, as serve wires it), consumers write
// through its environment: a 429 a write gets makes the reads of that client wait too, as
// Dataverse counts its limits per user.
func TestDataverse_WritesShareTheWebAPIClientsThrottling(t *testing.T) {
	w := mirrorStandIn(t)
	rf, err := config.LoadRoutesBytes("routes.yaml", []byte(fmt.Sprintf(mirrorRoutes, "upsert")), func(k string) (string, bool) {
		if k == "DVROUTER_DATAVERSE_ENVIRONMENTS" {
			return "contoso=" + w.URL, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := webapi.New(map[string]string{"contoso": w.URL}, webapi.Options{Credential: w.Credential(), WriteAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := deliver.New(rf.Consumers, &memRecorder{}, deliver.Options{Budget: 5 * time.Second, Logger: zerolog.Nop(), WebAPI: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	if out, err := d.Deliver(t.Context(), contactEvent(1, "Create", dataverse.Row{"fullname": "A"}), target); err != nil || len(out.Delivered) != 1 {
		t.Fatalf("first write: %+v, %v", out, err) // the definitions are now known: the next request is the write
	}

	w.ThrottleAfter(0, 1, "1")
	done := make(chan deliver.Outcome, 1)
	go func() {
		out, _ := d.Deliver(t.Context(), contactEvent(2, "Create", dataverse.Row{"fullname": "B"}), target)
		done <- out
	}()
	for deadline := time.Now().Add(3 * time.Second); !throttledOnce(w); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the write was never answered 429")
		}
	}
	sent := len(w.Requests())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = c.EnvironmentAt(w.URL).GetRow(ctx, "new_contactmirror", "00000002-3d4e-4f60-8b70-000000000002", []string{"new_name"})
	if !webapi.IsThrottled(err) || len(w.Requests()) != sent {
		t.Errorf("read right after the write's 429: %v, %d requests sent; want it refused at once as throttled, nothing sent", err, len(w.Requests())-sent)
	}
	if out := <-done; len(out.Delivered) != 1 {
		t.Errorf("throttled write: %+v, want delivered after the wait", out)
	}
}

func throttledOnce(w *testenv.WebAPI) bool {
	for _, r := range w.Requests() {
		if r.Status == http.StatusTooManyRequests {
			return true
		}
	}
	return false
}

func TestDataverse_AnEnvironmentTheClientLacksIsAConfigurationError(t *testing.T) {
	w := mirrorStandIn(t)
	rf, err := config.LoadRoutesBytes("routes.yaml", []byte(fmt.Sprintf(mirrorRoutes, "upsert")), func(k string) (string, bool) {
		if k == "DVROUTER_DATAVERSE_ENVIRONMENTS" {
			return "contoso=" + w.URL, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := webapi.New(map[string]string{"other": "https://other.crm.dynamics.com"}, webapi.Options{Credential: w.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = deliver.New(rf.Consumers, &memRecorder{}, deliver.Options{Logger: zerolog.Nop(), WebAPI: c})
	if err == nil || !strings.Contains(err.Error(), "mirror") || !strings.Contains(err.Error(), w.URL) {
		t.Errorf("err = %v, want one naming the consumer and its environment", err)
	}
}
