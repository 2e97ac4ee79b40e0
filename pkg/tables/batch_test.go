package tables_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// One in-memory Azurite serves every test; each test gets its own table.
var shared testenv.SharedAzurite

func TestMain(m *testing.M) { shared.Run(m) }

func azurite(t *testing.T) *testenv.Azurite {
	t.Helper()
	return shared.Get(t)
}

var tableSeq atomic.Int64

// newTable creates a fresh table and returns its name and an SDK client to read it with.
func newTable(t *testing.T, conn string) (string, *aztables.Client) {
	t.Helper()
	name := fmt.Sprintf("B%d%s", tableSeq.Add(1), strings.TrimPrefix(t.Name(), "TestBatchWriter_"))
	name = name[:min(len(name), 63)]
	svc, err := tables.Account{ConnectionString: conn}.Service(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := svc.CreateTable(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	return name, svc.NewClient(name)
}

func writer(t *testing.T, acct tables.Account, table string) *tables.BatchWriter {
	t.Helper()
	w, err := acct.BatchWriter(table, &azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// entity is a row of every property type the journal and the other stores use, with keys that
// need quoting in a URL.
func entity(t *testing.T, pk string, i int, extra map[string]any) tables.Entity {
	t.Helper()
	props := map[string]any{
		"PartitionKey":    pk,
		"RowKey":          fmt.Sprintf("%019d|ev-'%d'|a b%%7C", 9223372036854775807-int64(i), i),
		"Text":            fmt.Sprintf("text %d: ünïcode \"quoted\"", i),
		"Count":           i,
		"Ratio":           float64(i) + 0.25,
		"Flag":            i%2 == 0,
		"Big":             fmt.Sprint(int64(1)<<40 + int64(i)),
		"Big@odata.type":  "Edm.Int64",
		"When":            time.Date(2024, 7, 25, 10, 30, i%60, 1000*i, time.UTC).Format("2006-01-02T15:04:05.0000000Z"),
		"When@odata.type": "Edm.DateTime",
		"Attempts":        `[{"at":"2024-07-25T10:30:00Z","statusCode":503}]`,
	}
	for k, v := range extra {
		props[k] = v
	}
	b, err := json.Marshal(props)
	if err != nil {
		t.Fatal(err)
	}
	return tables.Entity{PartitionKey: pk, RowKey: props["RowKey"].(string), JSON: b}
}

// stored is an entity as read back, without what the service adds.
func stored(t *testing.T, c *aztables.Client, pk, rk string) map[string]any {
	t.Helper()
	resp, err := c.GetEntity(context.Background(), pk, rk, nil)
	if err != nil {
		t.Fatalf("get %s %s: %v", pk, rk, err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Value, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m {
		if strings.HasPrefix(k, "odata.") || strings.HasPrefix(k, "Timestamp") {
			delete(m, k)
		}
	}
	return m
}

func count(t *testing.T, c *aztables.Client) int {
	t.Helper()
	n := 0
	pager := c.NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Entities)
	}
	return n
}

func TestBatchWriter_WritesAHundredAsTheyWere(t *testing.T) {
	az := azurite(t)
	table, c := newTable(t, az.ConnectionString())
	w := writer(t, tables.Account{ConnectionString: az.ConnectionString()}, table)
	var es []tables.Entity
	for i := range 100 {
		es = append(es, entity(t, "c|crm%2Fsink|2024072510|1", i, nil))
	}
	if err := w.InsertOrReplace(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	// Again, changed: InsertOrReplace replaces.
	es[3] = entity(t, es[3].PartitionKey, 3, map[string]any{"Text": "replaced"})
	if err := w.InsertOrReplace(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	if n := count(t, c); n != 100 {
		t.Fatalf("%d entities stored, want 100", n)
	}
	for _, e := range es {
		var want map[string]any
		if err := json.Unmarshal(e.JSON, &want); err != nil {
			t.Fatal(err)
		}
		if got := stored(t, c, e.PartitionKey, e.RowKey); !reflect.DeepEqual(got, want) {
			t.Errorf("stored %v\nwant   %v", got, want)
		}
	}
}

func TestBatchWriter_AnInvalidEntityFailsTheWholeBatch(t *testing.T) {
	az := azurite(t)
	table, c := newTable(t, az.ConnectionString())
	w := writer(t, tables.Account{ConnectionString: az.ConnectionString()}, table)
	var es []tables.Entity
	for i := range 10 {
		es = append(es, entity(t, "p", i, nil))
	}
	es[7] = entity(t, "p", 7, map[string]any{"Text": strings.Repeat("x", 40000)}) // 80 KB as UTF-16: over 64 KiB
	err := w.InsertOrReplace(context.Background(), es)
	t.Logf("error: %v", err)
	var be *tables.BatchError
	if !errors.As(err, &be) || be.Index != 7 || be.Status != http.StatusBadRequest || be.Code == "" {
		t.Fatalf("error = %#v, want a 400 BatchError naming entity 7", err)
	}
	if !strings.Contains(err.Error(), "entity 7") || !strings.Contains(err.Error(), be.Code) {
		t.Errorf("error %q names neither the entity nor the code", err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != be.Code {
		t.Errorf("unwraps to %+v, want the operation's status and code", re)
	}
	if n := count(t, c); n != 0 {
		t.Errorf("%d entities stored of a failed batch", n)
	}
}

func TestBatchWriter_MissingTableIsTableNotFound(t *testing.T) {
	az := azurite(t)
	w := writer(t, tables.Account{ConnectionString: az.ConnectionString()}, "NoSuchTable")
	err := w.InsertOrReplace(context.Background(), []tables.Entity{entity(t, "p", 1, nil), entity(t, "p", 2, nil)})
	t.Logf("error: %v", err)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != string(aztables.TableNotFound) || re.StatusCode != http.StatusNotFound {
		t.Fatalf("error = %v, want 404 TableNotFound", err)
	}
}

func TestBatchWriter_WrongAccountKeyIsForbidden(t *testing.T) {
	az := azurite(t)
	table, _ := newTable(t, az.ConnectionString())
	wrong := strings.Replace(az.ConnectionString(), "AccountKey=", "AccountKey=AAAA", 1)
	err := writer(t, tables.Account{ConnectionString: wrong}, table).InsertOrReplace(context.Background(), []tables.Entity{entity(t, "p", 1, nil)})
	t.Logf("error: %v", err)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "403") {
		t.Fatalf("error = %v, want a 403", err)
	}
	if strings.Contains(err.Error(), "AAAA") {
		t.Errorf("the error %q shows the key", err)
	}
}

// tokenCredential hands out one token and remembers the scopes asked for.
type tokenCredential struct{ scopes chan []string }

func (c tokenCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	select {
	case c.scopes <- opts.Scopes:
	default:
	}
	return azcore.AccessToken{Token: "token-1", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// A token cannot be had from Entra ID in a test: this checks that a service URI with a token
// credential sends the storage scope's bearer token, against a loopback TLS server (the bearer
// policy refuses plain HTTP) that answers as the Table service does.
func TestBatchWriter_TokenCredentialSendsABearerToken(t *testing.T) {
	var auth, version, path string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, version, path = r.Header.Get("Authorization"), r.Header.Get("x-ms-version"), r.URL.Path
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "PUT "+"https://"+r.Host+"/T(PartitionKey='p',RowKey=") {
			http.Error(w, "unexpected body", http.StatusBadRequest)
			return
		}
		accepted(w)
	}))
	defer srv.Close()
	cred := tokenCredential{scopes: make(chan []string, 1)}
	w, err := tables.Account{ServiceURI: srv.URL, Credential: cred}.BatchWriter("T", &azcore.ClientOptions{
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.InsertOrReplace(context.Background(), []tables.Entity{entity(t, "p", 1, nil)}); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer token-1" || version == "" || path != "/$batch" {
		t.Errorf("Authorization %q, x-ms-version %q, path %q", auth, version, path)
	}
	if got := <-cred.scopes; !reflect.DeepEqual(got, []string{"https://storage.azure.com/.default"}) {
		t.Errorf("scopes %v", got)
	}
}

// accepted answers a batch of one as the Table service does when it is written.
func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_1")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprint(w, "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n"+
		"--changesetresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"+
		"HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nDataServiceVersion: 3.0;\r\n\r\n\r\n"+
		"--changesetresponse_1--\r\n--batchresponse_1--\r\n")
}

func TestBatchWriter_SASInTheConnectionStringGoesOnTheURL(t *testing.T) {
	var query, path, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query, path, auth = r.URL.RawQuery, r.URL.Path, r.Header.Get("Authorization")
		accepted(w)
	}))
	defer srv.Close()
	conn := "TableEndpoint=" + srv.URL + "/acct;SharedAccessSignature=sv=2019-02-02&ss=t&sig=c2ln"
	if err := writer(t, tables.Account{ConnectionString: conn}, "T").InsertOrReplace(context.Background(), []tables.Entity{entity(t, "p", 1, nil)}); err != nil {
		t.Fatal(err)
	}
	if query != "sv=2019-02-02&ss=t&sig=c2ln" || path != "/acct/$batch" || auth != "" {
		t.Errorf("query %q, path %q, Authorization %q", query, path, auth)
	}
}

func TestBatchWriter_RefusesAMalformedConnectionStringWithoutShowingIt(t *testing.T) {
	for _, conn := range []string{
		"AccountName=a;AccountKey=bm90IGJhc2U2NA!!;TableEndpoint=http://127.0.0.1:1/a",
		"AccountKey=c2VjcmV0;TableEndpoint=http://127.0.0.1:1/a",
		"AccountName=a;TableEndpoint=http://127.0.0.1:1/a",
		"nonsense",
	} {
		_, err := tables.Account{ConnectionString: conn}.BatchWriter("T", nil)
		if err == nil || !strings.Contains(err.Error(), "connection string is malformed") {
			t.Errorf("%q: error %v", conn, err)
		}
		if err != nil && (strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "bm90")) {
			t.Errorf("the error %q shows the key", err)
		}
	}
}

// The stand-in the journal's benchmark writes to takes what the writer sends as the service
// does, and answers so that the writer reads success.
func TestBatchWriter_TableBatchSinkTakesWhatTheServiceTakes(t *testing.T) {
	sink := testenv.StartTableBatchSink(t)
	w := writer(t, tables.Account{ConnectionString: sink.ConnectionString()}, "T")
	var es []tables.Entity
	for i := range 100 {
		es = append(es, entity(t, "p", i, nil))
	}
	for range 2 {
		if err := w.InsertOrReplace(context.Background(), es); err != nil {
			t.Fatal(err)
		}
	}
	batches, ops, err := sink.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if batches != 2 || ops != 200 {
		t.Fatalf("the stand-in took %d batches of %d entities, want 2 of 200", batches, ops)
	}
}
