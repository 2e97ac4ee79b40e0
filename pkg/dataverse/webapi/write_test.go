package webapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

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

// RoundTrip may return before the body is written (a server may answer first; HTTP/2 writes the
// body alongside reading the answer); httptrace's WroteRequest says when the transport is done
// with it. A batch written meanwhile must not go into the buffer still being sent.
func TestBatch_BodyKeptUntilTheTransportHasWrittenIt(t *testing.T) {
	const n = 100
	lagging := &laggingTransport{n: n}
	c, err := webapi.New(map[string]string{orgID: "http://127.0.0.1:1"}, webapi.Options{Credential: cannedToken{}, HTTPClient: &http.Client{Transport: lagging}})
	if err != nil {
		t.Fatal(err)
	}
	env := c.Environment(orgID, "", "")
	for b := range 8 {
		writes := make([]webapi.Write, n)
		for i := range writes {
			writes[i] = upsert(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf(`{"description": "batch %d"}`, b), webapi.CreateOrUpdate)
		}
		if err := env.Batch(t.Context(), writes); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
	}
	lagging.wg.Wait()
	if lagging.bodies != 8 || len(lagging.problems) > 0 {
		t.Errorf("%d bodies written, want 8; %d torn: %v", lagging.bodies, len(lagging.problems), lagging.problems)
	}
}

// A credential may fetch its token over HTTP with the context it is given (azidentity does,
// when a token is near its expiry); that write must not count as one of the batch's, or its
// body could go back to the pool while an earlier attempt's write is still reading it.
func TestBatch_TokenRequestIsNotCountedAsTheBatchsWrite(t *testing.T) {
	const n = 10
	lagging := &laggingTransport{n: n}
	cred := &tracedToken{}
	c, err := webapi.New(map[string]string{orgID: "http://127.0.0.1:1"}, webapi.Options{Credential: cred, HTTPClient: &http.Client{Transport: lagging}})
	if err != nil {
		t.Fatal(err)
	}
	env := c.Environment(orgID, "", "")
	writes := make([]webapi.Write, n)
	for i := range writes {
		writes[i] = upsert(fmt.Sprintf("c%d@example.com", i), `{"description": "x"}`, webapi.CreateOrUpdate)
	}
	if err := env.Batch(t.Context(), writes); err != nil {
		t.Fatal(err)
	}
	lagging.wg.Wait()
	cred.mu.Lock()
	defer cred.mu.Unlock()
	if cred.calls == 0 || cred.traced > 0 {
		t.Errorf("%d token requests, %d of them with the batch's write trace on their context; want none", cred.calls, cred.traced)
	}
	if lagging.bodies != 1 || len(lagging.problems) > 0 {
		t.Errorf("%d bodies written, want 1; torn: %v", lagging.bodies, lagging.problems)
	}
}

// tracedToken is a token that is always about to expire, so every request fetches a new one;
// it counts the fetches whose context carries an httptrace WroteRequest, which a real token
// request over HTTP with that context would fire.
type tracedToken struct {
	mu            sync.Mutex
	calls, traced int
}

func (c *tracedToken) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.WroteRequest != nil {
		c.traced++
	}
	return azcore.AccessToken{Token: "short", ExpiresOn: time.Now().Add(time.Minute)}, nil
}

// laggingTransport answers a $batch of n upserts with every write carried out at once, and reads
// its body 5 ms later, as a transport still writing it would; then it calls WroteRequest. It
// answers the table's definition too.
type laggingTransport struct {
	n  int
	wg sync.WaitGroup

	mu       sync.Mutex
	bodies   int
	problems []string
}

func (l *laggingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	answer := func(contentType, body string) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {contentType}},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}
	}
	switch {
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/Attributes"):
		return answer("application/json", `{"value":[]}`), nil
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/EntityDefinitions"):
		return answer("application/json", `{"value":[{"EntitySetName":"contacts","PrimaryIdAttribute":"contactid","MetadataId":"608861bc-50a4-4c5f-a02c-21fe1943e2cf"}]}`), nil
	}
	trace := httptrace.ContextClientTrace(req.Context())
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		time.Sleep(5 * time.Millisecond)
		problem := checkBatchBody(req, l.n)
		req.Body.Close()
		if trace != nil && trace.WroteRequest != nil {
			trace.WroteRequest(httptrace.WroteRequestInfo{})
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.bodies++
		if problem != "" {
			l.problems = append(l.problems, problem)
		}
	}()
	var a strings.Builder
	a.WriteString("--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n")
	for i := range l.n {
		fmt.Fprintf(&a, "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n", i+1)
	}
	a.WriteString("--changesetresponse_2--\r\n--batchresponse_1--\r\n")
	return answer("multipart/mixed; boundary=batchresponse_1", a.String()), nil
}

// checkBatchBody reads a one-change-set $batch of n upserts and says what is wrong with it: every
// part must parse, carry its declared Content-Length, and hold the same description as the first.
func checkBatchBody(r *http.Request, n int) string {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return err.Error()
	}
	outer, err := multipart.NewReader(r.Body, params["boundary"]).NextPart()
	if err != nil {
		return "batch: " + err.Error()
	}
	_, params, err = mime.ParseMediaType(outer.Header.Get("Content-Type"))
	if err != nil {
		return "change set: " + err.Error()
	}
	changes := multipart.NewReader(outer, params["boundary"])
	var batch string
	for i := 0; ; i++ {
		p, err := changes.NextPart()
		if err == io.EOF {
			if i != n {
				return fmt.Sprintf("%d parts, want %d", i, n)
			}
			return ""
		}
		if err != nil {
			return fmt.Sprintf("part %d: %v", i+1, err)
		}
		req, err := http.ReadRequest(bufio.NewReader(p))
		if err != nil {
			return fmt.Sprintf("part %d: %v", i+1, err)
		}
		var body struct{ Description string }
		data, err := io.ReadAll(req.Body)
		if err != nil || int64(len(data)) != req.ContentLength || json.Unmarshal(data, &body) != nil {
			return fmt.Sprintf("part %d: a body of %d bytes (Content-Length %d) that is not the write's JSON (%v)", i+1, len(data), req.ContentLength, err)
		}
		if i == 0 {
			batch = body.Description
		} else if body.Description != batch {
			return fmt.Sprintf("part %d is of %q, part 1 of %q", i+1, body.Description, batch)
		}
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
