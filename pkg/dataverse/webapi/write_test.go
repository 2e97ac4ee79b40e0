package webapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
)

// writable starts the stand-in with writes and a contact table keyed by emailaddress1.
func writable(t testing.TB) (*testenv.WebAPI, *webapi.Environment) {
	t.Helper()
	w := testenv.StartWebAPI(t).EnableWrites()
	w.AddTable(testenv.WebAPITable{LogicalName: "contact", EntitySetName: "contacts", PrimaryID: "contactid",
		Columns: []string{"emailaddress1", "firstname", "lastname", "_parentcustomerid_value"}})
	w.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid",
		Columns: []string{"accountnumber", "name"}})
	c, err := webapi.New(map[string]string{orgID: w.URL}, webapi.Options{Credential: w.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	return w, c.Environment(orgID, "", "")
}

func byEmail(email string) webapi.Key { return webapi.Key{{Column: "emailaddress1", Value: email}} }

func upsert(email, body string, cond webapi.Condition) webapi.Write {
	return webapi.Write{Table: "contact", Key: byEmail(email), Body: []byte(body), Condition: cond}
}

func TestApply_UpsertCreatesThenUpdatesByAlternateKey(t *testing.T) {
	w, env := writable(t)

	if err := env.Apply(t.Context(), upsert("o'neil@example.com", `{"firstname": "Shaun"}`, webapi.CreateOrUpdate)); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := env.Apply(t.Context(), upsert("o'neil@example.com", `{"lastname": "O'Neil", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')"}`, webapi.CreateOrUpdate)); err != nil {
		t.Fatalf("update: %v", err)
	}

	row := w.RowByKey("contact", map[string]any{"emailaddress1": "o'neil@example.com"})
	if row == nil || row["firstname"] != "Shaun" || row["lastname"] != "O'Neil" || row["parentcustomerid_account@odata.bind"] != "/accounts(accountnumber='A-1')" {
		t.Fatalf("row = %v, want the create's and the update's columns", row)
	}
	if n := w.RowCount("contact"); n != 1 {
		t.Errorf("%d rows, want 1: the second upsert found the first's row by its key", n)
	}
	reqs := w.Requests()
	if got := reqs[len(reqs)-1]; got.Method != http.MethodPatch || got.Path != "/api/data/v9.2/contacts(emailaddress1='o''neil@example.com')" {
		t.Errorf("request = %s %s", got.Method, got.Path)
	}
}

func TestApply_ConditionsRefuseWithTheWebAPIsStatusAndCode(t *testing.T) {
	w, env := writable(t)
	if err := env.Apply(t.Context(), upsert("a@example.com", `{"firstname": "A"}`, webapi.CreateOnly)); err != nil {
		t.Fatalf("create-only of a new row: %v", err)
	}
	err := env.Apply(t.Context(), upsert("a@example.com", `{"firstname": "B"}`, webapi.CreateOnly))
	var we *webapi.Error
	if !errors.As(err, &we) || we.Status != http.StatusPreconditionFailed || we.Code == "" || we.Table != "contact" || we.ID != "emailaddress1='a@example.com'" {
		t.Fatalf("create-only of an existing row: %v, want 412 naming table and key", err)
	}
	err = env.Apply(t.Context(), upsert("missing@example.com", `{"firstname": "C"}`, webapi.UpdateOnly))
	if !errors.As(err, &we) || we.Status != http.StatusNotFound || we.Code != "0x80040217" {
		t.Fatalf("update-only of a missing row: %v, want 404 0x80040217", err)
	}
	if row := w.RowByKey("contact", map[string]any{"emailaddress1": "a@example.com"}); row["firstname"] != "A" {
		t.Errorf("row = %v: a refused write changed it", row)
	}
	if w.RowCount("contact") != 1 {
		t.Errorf("update-only created a row")
	}
}

func TestApply_DeleteByKey(t *testing.T) {
	w, env := writable(t)
	if err := env.Apply(t.Context(), upsert("a@example.com", `{}`, webapi.CreateOrUpdate)); err != nil {
		t.Fatal(err)
	}
	if err := env.Apply(t.Context(), webapi.Write{Table: "contact", Key: byEmail("a@example.com"), Delete: true}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if w.RowCount("contact") != 0 {
		t.Fatal("row still there")
	}
	err := env.Apply(t.Context(), webapi.Write{Table: "contact", Key: byEmail("a@example.com"), Delete: true})
	var we *webapi.Error
	if !errors.As(err, &we) || !we.NotFound() {
		t.Fatalf("delete of a missing row: %v, want 404", err)
	}
}

func TestBatch_OneChangeSetOfAHundred(t *testing.T) {
	w, env := writable(t)
	var writes []webapi.Write
	for i := range 100 {
		writes = append(writes, upsert(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf(`{"firstname": "C%d"}`, i), webapi.CreateOrUpdate))
	}

	if err := env.Batch(t.Context(), writes); err != nil {
		t.Fatal(err)
	}

	if n := w.RowCount("contact"); n != 100 {
		t.Errorf("%d rows, want 100", n)
	}
	writesSent := 0
	for _, r := range w.Requests() {
		if r.Method != http.MethodGet {
			writesSent++
		}
	}
	if writesSent != 1 {
		t.Errorf("%d write requests, want one $batch", writesSent)
	}
}

func TestBatch_AFailedChangeSetKeepsNothingAndNamesTheWrite(t *testing.T) {
	w, env := writable(t)
	if err := env.Apply(t.Context(), upsert("taken@example.com", `{}`, webapi.CreateOrUpdate)); err != nil {
		t.Fatal(err)
	}
	writes := []webapi.Write{
		upsert("new1@example.com", `{}`, webapi.CreateOrUpdate),
		upsert("taken@example.com", `{}`, webapi.CreateOnly),
		upsert("new2@example.com", `{}`, webapi.CreateOrUpdate),
	}

	err := env.Batch(t.Context(), writes)

	var be *webapi.BatchError
	if !errors.As(err, &be) || be.Index != 1 || be.Err.Status != http.StatusPreconditionFailed {
		t.Fatalf("err = %v, want a BatchError at write 2 with 412", err)
	}
	if n := w.RowCount("contact"); n != 1 {
		t.Errorf("%d rows, want 1: the change set is all or nothing", n)
	}
}

func TestBatch_ThrottledBatchWaitsAndGoesThrough(t *testing.T) {
	w, env := writable(t)
	w.ThrottleAfter(0, 2, "0.05")
	start := time.Now()

	if err := env.Batch(t.Context(), []webapi.Write{upsert("a@example.com", `{}`, webapi.CreateOrUpdate)}); err != nil {
		t.Fatal(err)
	}

	if w.RowCount("contact") != 1 || time.Since(start) < 100*time.Millisecond {
		t.Errorf("rows %d after %s: want the batch carried out after two Retry-After waits", w.RowCount("contact"), time.Since(start))
	}
}

func TestKey_SegmentQuotesAndEscapes(t *testing.T) {
	k := webapi.Key{{Column: "name", Value: "O'Neil & Sons/#1"}, {Column: "number", Value: 42}, {Column: "active", Value: true}}
	got, err := k.Segment()
	if want := "name='O''Neil%20&%20Sons%2F%231',number=42,active=true"; err != nil || got != want {
		t.Errorf("Segment = %q, %v; want %q", got, err, want)
	}
	if _, err := (webapi.Key{{Column: "name", Value: nil}}).Segment(); err == nil {
		t.Error("a null key value was accepted")
	}
}

// The stand-in's Written count, which the fault suite's accounting rests on: writes carried
// out, a delete of a missing row alone, never a write of a rolled-back change set.
func TestStandIn_WrittenCountsWhatWasCarriedOut(t *testing.T) {
	w, env := writable(t)
	key := map[string]any{"emailaddress1": "A@example.com"}
	_ = env.Apply(t.Context(), webapi.Write{Table: "contact", Key: byEmail("a@example.com"), Delete: true})
	if n := w.Written("contact", key); n != 1 {
		t.Errorf("after a delete of a missing row: %d, want 1 (done, compared ignoring case)", n)
	}
	_ = env.Apply(t.Context(), upsert("taken@example.com", `{}`, webapi.CreateOrUpdate))
	_ = env.Batch(t.Context(), []webapi.Write{
		upsert("b@example.com", `{}`, webapi.CreateOrUpdate),
		{Table: "contact", Key: byEmail("missing@example.com"), Delete: true},
	})
	if n, m := w.Written("contact", map[string]any{"emailaddress1": "b@example.com"}), w.Written("contact", map[string]any{"emailaddress1": "missing@example.com"}); n != 0 || m != 0 {
		t.Errorf("rolled-back change set counted: %d, %d", n, m)
	}
}
