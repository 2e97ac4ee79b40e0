package webapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
)

const (
	orgID     = "2d3b6a62-1b8a-4e2c-9f33-0e5c8a7b4d10"
	accountID = "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
	contactID = "a3c5e7f9-1b2d-4f6a-8c0e-2d4f6a8c0e1b"
)

// standIn starts the Web API stand-in with an account table holding one row.
func standIn(t *testing.T) *testenv.WebAPI {
	t.Helper()
	w := testenv.StartWebAPI(t)
	w.AddTable(testenv.WebAPITable{
		LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid",
		Columns: []string{"name", "revenue", "statecode", "industrycode", "_primarycontactid_value", "_ownerid_value", "description"},
	})
	w.SetRow("account", accountID, map[string]any{
		"accountid": accountID,
		"name":      "Fourth Coffee",
		"revenue":   json.Number("20000.0000"), "revenue@OData.Community.Display.V1.FormattedValue": "$20,000.00",
		"statecode": json.Number("0"), "statecode@OData.Community.Display.V1.FormattedValue": "Active",
		"industrycode":            nil,
		"_primarycontactid_value": contactID,
		"_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname":            "contact",
		"_primarycontactid_value@Microsoft.Dynamics.CRM.associatednavigationproperty": "primarycontactid",
		"_primarycontactid_value@OData.Community.Display.V1.FormattedValue":           "Yvonne McKay",
		"description": "A long text that no route reads",
	})
	return w
}

func client(t *testing.T, w *testenv.WebAPI, opts webapi.Options) (*webapi.Client, *webapi.Environment) {
	t.Helper()
	if opts.Credential == nil {
		opts.Credential = w.Credential()
	}
	c, err := webapi.New(map[string]string{orgID: w.URL}, opts)
	if err != nil {
		t.Fatal(err)
	}
	env := c.Environment(orgID, "", "")
	if env == nil {
		t.Fatal("environment not found by organization id")
	}
	return c, env
}

func TestGetRow_SelectsColumnsAndKeepsTheWebAPIShape(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{})
	row, err := env.GetRow(context.Background(), "account", accountID, []string{"name", "primarycontactid", "statecode", "industrycode"})
	if err != nil {
		t.Fatal(err)
	}
	want := dataverse.Row{
		"accountid": accountID,
		"name":      "Fourth Coffee",
		"statecode": json.Number("0"), "statecode@OData.Community.Display.V1.FormattedValue": "Active",
		"industrycode":            nil,
		"_primarycontactid_value": contactID,
		"_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname":            "contact",
		"_primarycontactid_value@Microsoft.Dynamics.CRM.associatednavigationproperty": "primarycontactid",
		"_primarycontactid_value@OData.Community.Display.V1.FormattedValue":           "Yvonne McKay",
	}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row =\n%v\nwant\n%v", row, want)
	}
	var get testenv.WebAPIRequest
	for _, r := range w.Requests() {
		if r.Path == "/api/data/v9.2/accounts("+accountID+")" {
			get = r
		}
	}
	if sel := get.Query.Get("$select"); sel != "name,_primarycontactid_value,statecode,industrycode" {
		t.Errorf("$select = %q: a lookup is selected as _x_value", sel)
	}
	if p := get.Header.Get("Prefer"); p != `odata.include-annotations="*"` {
		t.Errorf("Prefer = %q", p)
	}
}

func TestTable_ReadOnceFromEntityDefinitions(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := env.GetRow(context.Background(), "account", accountID, []string{"name"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	defs := 0
	for _, r := range w.Requests() {
		if strings.HasPrefix(r.Path, "/api/data/v9.2/EntityDefinitions") {
			defs++
		}
	}
	if defs != 2 {
		t.Errorf("%d EntityDefinitions requests for 8 reads of one table, want 2 (entity set, lookups) once", defs)
	}
	tbl, err := env.Table(context.Background(), "account")
	if err != nil || tbl.EntitySetName != "accounts" || tbl.PrimaryIDAttribute != "accountid" ||
		!reflect.DeepEqual(tbl.Lookups, []string{"ownerid", "primarycontactid"}) {
		t.Fatalf("table = %+v (err %v)", tbl, err)
	}
}

func TestGetRow_ErrorsNameEnvironmentTableIDAndCode(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{})
	missing := "00000000-0000-0000-0000-000000000001"
	cases := []struct {
		name, table, id string
		cols            []string
		status          int
		code            string
	}{
		{"row missing", "account", missing, []string{"name"}, 404, "0x80040217"},
		{"unknown column", "account", accountID, []string{"nosuchcolumn"}, 400, "0x0"},
		{"unknown table", "nosuchtable", accountID, []string{"name"}, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.GetRow(context.Background(), tc.table, tc.id, tc.cols)
			var we *webapi.Error
			if !errors.As(err, &we) {
				t.Fatalf("err = %v (%T), want *webapi.Error", err, err)
			}
			if we.Status != tc.status || we.Code != tc.code || we.Table != tc.table {
				t.Fatalf("error = %+v", we)
			}
			for _, part := range []string{w.URL, tc.table} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%q does not name %q", err, part)
				}
			}
			if tc.table == "account" && !strings.Contains(err.Error(), tc.id) || tc.code != "" && !strings.Contains(err.Error(), tc.code) {
				t.Errorf("%q does not name the id and code", err)
			}
		})
	}
}

type wrongToken struct{}

func (wrongToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "not-the-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestGetRow_WrongTokenIs401(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{Credential: wrongToken{}})
	_, err := env.GetRow(context.Background(), "account", accountID, []string{"name"})
	var we *webapi.Error
	if !errors.As(err, &we) || we.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want 401", err)
	}
}

func TestDo_WaitsOutRetryAfterAndLosesNothing(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{MaxAttempts: 5})
	if _, err := env.Table(context.Background(), "account"); err != nil {
		t.Fatal(err)
	}
	w.ThrottleAfter(2, 3, "0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = env.GetRow(ctx, "account", accountID, []string{"name"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("read %d: %v", i, err)
		}
	}
	if w.RowReads() != 6 {
		t.Errorf("%d rows read, want 6", w.RowReads())
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("took %s: the Retry-After was not waited out", time.Since(start))
	}
}

func TestDo_RetryAfterBeyondTheDeadlineFailsAtOnce(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{})
	if _, err := env.Table(context.Background(), "account"); err != nil {
		t.Fatal(err)
	}
	w.ThrottleAfter(0, 1, "30")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := env.GetRow(ctx, "account", accountID, []string{"name"})
	if !webapi.IsThrottled(err) {
		t.Fatalf("err = %v, want a 429", err)
	}
	var we *webapi.Error
	errors.As(err, &we)
	if we.RetryAfter != 30*time.Second || we.Table != "account" || we.ID != accountID || we.Code != "0x80072322" {
		t.Errorf("error = %+v", we)
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %s: it should not wait for a Retry-After it cannot see the end of", time.Since(start))
	}
	// The next request to the environment is held back too, without being sent.
	before := len(w.Requests())
	if _, err := env.GetRow(ctx, "account", accountID, []string{"name"}); !webapi.IsThrottled(err) {
		t.Fatalf("second read: err = %v, want throttled", err)
	}
	if len(w.Requests()) != before {
		t.Error("a request was sent during the Retry-After")
	}
}

func TestDo_RetriesServerErrorsOfAGet(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{})
	if _, err := env.Table(context.Background(), "account"); err != nil {
		t.Fatal(err)
	}
	w.FailNext(503, 500)
	row, err := env.GetRow(context.Background(), "account", accountID, []string{"name"})
	if err != nil || row["name"] != "Fourth Coffee" {
		t.Fatalf("row = %v (err %v)", row, err)
	}
	w.FailNext(503, 503, 503, 503)
	_, err = env.GetRow(context.Background(), "account", accountID, []string{"name"})
	var we *webapi.Error
	if !errors.As(err, &we) || we.Status != 503 || we.Code != "0x80040216" {
		t.Fatalf("err = %v, want the last 503", err)
	}
}

func TestDo_SlowAnswerEndsWithTheContext(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{})
	if _, err := env.Table(context.Background(), "account"); err != nil {
		t.Fatal(err)
	}
	w.Stall(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := env.GetRow(ctx, "account", accountID, []string{"name"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}

func TestDo_ConcurrencyLimitPerEnvironment(t *testing.T) {
	w := standIn(t)
	_, env := client(t, w, webapi.Options{Concurrency: 2})
	if _, err := env.Table(context.Background(), "account"); err != nil {
		t.Fatal(err)
	}
	w.Stall(50 * time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := env.GetRow(context.Background(), "account", accountID, []string{"name"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := w.MaxInFlight(); m > 2 {
		t.Errorf("%d requests in flight at once, limit 2", m)
	}
}

func TestClient_EnvironmentByIDNameOrHost(t *testing.T) {
	c, err := webapi.New(map[string]string{
		orgID:                        "https://contoso.crm4.dynamics.com",
		"fabrikam":                   "https://fabrikam.crm.dynamics.com/",
		"adventure.crm.dynamics.com": "https://adventure.crm.dynamics.com",
	}, webapi.Options{Credential: wrongToken{}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ id, name, host, want string }{
		{strings.ToUpper(orgID), "", "", "https://contoso.crm4.dynamics.com"},
		{"", "Fabrikam", "", "https://fabrikam.crm.dynamics.com"},
		{"", "", "adventure.crm.dynamics.com", "https://adventure.crm.dynamics.com"},
		{"11111111-1111-1111-1111-111111111111", "other", "", ""},
	}
	for _, tc := range cases {
		e := c.Environment(tc.id, tc.name, tc.host)
		got := ""
		if e != nil {
			got = e.URL()
		}
		if got != tc.want {
			t.Errorf("Environment(%q, %q, %q) = %q, want %q", tc.id, tc.name, tc.host, got, tc.want)
		}
	}
}

func TestParseEnvironmentURL_RefusesWhatIsNotAnEnvironment(t *testing.T) {
	for _, bad := range []string{"contoso.crm.dynamics.com", "http://contoso.crm.dynamics.com", "https://contoso.crm.dynamics.com/api/data/v9.2", "https://x?sig=1"} {
		if _, err := webapi.ParseEnvironmentURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if u, err := webapi.ParseEnvironmentURL("https://Contoso.crm4.dynamics.com/"); err != nil || u != "https://contoso.crm4.dynamics.com" {
		t.Errorf("= %q, %v", u, err)
	}
}
