package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// WebAPI is a TEST STAND-IN for the Dataverse Web API of one environment, over plain HTTP on
// loopback. It answers what dvrouter asks, in the shapes Microsoft's public documentation gives
// (each handler names its page), and can be told to misbehave: throttle with 429 and Retry-After
// after N requests, answer 5xx, answer slowly.
//
//	GET  /api/data/v9.2/EntityDefinitions?$filter=LogicalName eq 'x'&$select=...
//	GET  /api/data/v9.2/EntityDefinitions(LogicalName='x')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName
//	GET  /api/data/v9.2/<entityset>(<id>)?$select=a,b   (Prefer: odata.include-annotations="*")
//
// Other helpers add operations (PATCH, DELETE, $batch) with Handle; they get the same token
// check, throttling, failures and stalls as the built-in ones.
type WebAPI struct {
	URL string // the environment URL, http://127.0.0.1:PORT

	srv   *httptest.Server
	mux   *http.ServeMux
	token string

	mu          sync.Mutex
	tables      map[string]*WebAPITable // by logical name
	requests    []WebAPIRequest
	served      int // requests past the token check
	throttleAt  int // the first request (1-based, counting served) to throttle; 0: never
	throttleN   int // how many to throttle from there
	retryAfter  string
	failures    []int // statuses the next requests get
	stall       time.Duration
	inFlight    int
	maxInFlight int
}

// WebAPITable is one table of the stand-in: its definition and its rows.
type WebAPITable struct {
	LogicalName   string
	EntitySetName string
	PrimaryID     string // the primary key column, accountid
	// Columns are the table's Web API property names: logical names, and _x_value for lookups
	// (a lookup is anything spelled _x_value here). $select of any other name is refused, as
	// Dataverse refuses it.
	Columns []string
	// Rows hold each row in full Web API shape, annotations included, by lower-case id.
	Rows map[string]map[string]any
}

// WebAPIRequest is one request the stand-in received.
type WebAPIRequest struct {
	Time   time.Time
	Method string
	Path   string // unescaped, without the query
	Query  url.Values
	Header http.Header
	Status int // what it was answered
}

// StartWebAPI starts the stand-in; it stops when the test ends.
func StartWebAPI(tb testing.TB) *WebAPI {
	tb.Helper()
	w := &WebAPI{token: fmt.Sprintf("dataverse-test-token-%d", time.Now().UnixNano()), tables: map[string]*WebAPITable{},
		retryAfter: "1", mux: http.NewServeMux()}
	w.mux.HandleFunc("GET /api/data/v9.2/", w.serveGet)
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	w.URL = w.srv.URL
	tb.Cleanup(w.srv.Close)
	return w
}

// Credential hands out the token the stand-in accepts, for the environment's scope only
// (<environment URL>/.default), as Microsoft Entra ID would for an application user.
func (w *WebAPI) Credential() azcore.TokenCredential {
	return webapiCredential{w.token, w.URL + "/.default"}
}

type webapiCredential struct{ token, scope string }

func (c webapiCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 || opts.Scopes[0] != c.scope {
		return azcore.AccessToken{}, fmt.Errorf("test credential: token asked for scopes %v, want [%s]", opts.Scopes, c.scope)
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Handle adds an operation, such as "PATCH /api/data/v9.2/" or "POST /api/data/v9.2/$batch"
// (http.ServeMux patterns). It runs after the token check and the scripted misbehaviour.
func (w *WebAPI) Handle(pattern string, h http.HandlerFunc) { w.mux.HandleFunc(pattern, h) }

// AddTable adds a table (rows may be nil).
func (w *WebAPI) AddTable(t WebAPITable) *WebAPITable {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.Rows == nil {
		t.Rows = map[string]map[string]any{}
	}
	w.tables[t.LogicalName] = &t
	return &t
}

// SetRow stores a row (Web API shape, annotations included) under its id.
func (w *WebAPI) SetRow(table, id string, row map[string]any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.tables[table]
	if t == nil {
		panic("testenv.WebAPI: SetRow on unknown table " + table)
	}
	t.Rows[strings.ToLower(id)] = row
}

// Row returns a copy of a stored row, or nil.
func (w *WebAPI) Row(table, id string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t := w.tables[table]; t != nil {
		if r := t.Rows[strings.ToLower(id)]; r != nil {
			out := make(map[string]any, len(r))
			for k, v := range r {
				out[k] = v
			}
			return out
		}
	}
	return nil
}

// TableBySet returns the table with this entity set name, or nil; for handlers added with Handle.
func (w *WebAPI) TableBySet(set string) *WebAPITable {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.tables {
		if t.EntitySetName == set {
			return t
		}
	}
	return nil
}

// Lock and Unlock guard the tables for handlers added with Handle.
func (w *WebAPI) Lock()   { w.mu.Lock() }
func (w *WebAPI) Unlock() { w.mu.Unlock() }

// ThrottleAfter lets n requests through, then answers the next count with 429 and Retry-After
// retryAfter (delta-seconds, "1"; fractions are the stand-in's own liberty to keep tests short).
func (w *WebAPI) ThrottleAfter(n, count int, retryAfter string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.throttleAt, w.throttleN, w.retryAfter = w.served+n+1, count, retryAfter
}

// FailNext answers the next requests with these statuses (500, 503, ...), one each.
func (w *WebAPI) FailNext(statuses ...int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, statuses...)
}

// Stall makes every answer wait d (less when the client gives up first); 0 stops stalling.
func (w *WebAPI) Stall(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stall = d
}

// Requests returns every request received so far.
func (w *WebAPI) Requests() []WebAPIRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.requests)
}

// RowReads counts the GETs of rows (not of definitions) that were answered 200.
func (w *WebAPI) RowReads() int {
	n := 0
	for _, r := range w.Requests() {
		if r.Method == http.MethodGet && r.Status == http.StatusOK && !strings.Contains(r.Path, "EntityDefinitions") {
			n++
		}
	}
	return n
}

// MaxInFlight is the most requests the stand-in was answering at once.
func (w *WebAPI) MaxInFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxInFlight
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (w *WebAPI) serve(rw http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: rw}
	w.mu.Lock()
	w.inFlight++
	w.maxInFlight = max(w.maxInFlight, w.inFlight)
	stall := w.stall
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.requests = append(w.requests, WebAPIRequest{Time: time.Now(), Method: r.Method, Path: r.URL.Path,
			Query: r.URL.Query(), Header: r.Header.Clone(), Status: rec.status})
		w.mu.Unlock()
	}()
	if stall > 0 {
		select {
		case <-time.After(stall):
		case <-r.Context().Done():
			return
		}
	}
	rec.Header().Set("OData-Version", "4.0")
	// A missing or wrong token: 401 with a Bearer challenge naming the authority
	// (https://learn.microsoft.com/power-apps/developer/data-platform/authenticate-oauth).
	if r.Header.Get("Authorization") != "Bearer "+w.token {
		rec.Header().Set("WWW-Authenticate", `Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize, resource_id=`+w.URL+`/`)
		rec.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.mu.Lock()
	w.served++
	n := w.served
	throttled := w.throttleAt > 0 && n >= w.throttleAt && n < w.throttleAt+w.throttleN
	retryAfter := w.retryAfter
	fail := 0
	if !throttled && len(w.failures) > 0 {
		fail, w.failures = w.failures[0], w.failures[1:]
	}
	w.mu.Unlock()
	if throttled {
		// Service protection: 429 with Retry-After in seconds and the error code of the limit
		// reached, here the number of requests (0x80072322), as
		// https://learn.microsoft.com/power-apps/developer/data-platform/api-limits lists them.
		rec.Header().Set("Retry-After", retryAfter)
		WebAPIError(rec, http.StatusTooManyRequests, "0x80072322",
			"Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
		return
	}
	if fail != 0 {
		// An unexpected server error, in the error shape of
		// https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors.
		WebAPIError(rec, fail, "0x80040216", "An unexpected error occurred.")
		return
	}
	w.mux.ServeHTTP(rec, r)
}

// WebAPIError writes the Web API's error body, {"error": {"code": "0x...", "message": "..."}}
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors,
// "Parse errors from the response").
func WebAPIError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": message}})
}

func (w *WebAPI) writeJSON(rw http.ResponseWriter, v any) {
	rw.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	_ = json.NewEncoder(rw).Encode(v)
}

func (w *WebAPI) serveGet(rw http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api/data/v9.2/")
	switch {
	case path == "EntityDefinitions":
		w.entityDefinitions(rw, r)
	case strings.HasPrefix(path, "EntityDefinitions(LogicalName='") && strings.HasSuffix(path, "')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata"):
		name := strings.TrimSuffix(strings.TrimPrefix(path, "EntityDefinitions(LogicalName='"), "')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata")
		w.lookupAttributes(rw, name)
	default:
		w.retrieve(rw, r, path)
	}
}

// entityDefinitions answers a query of table definitions filtered by logical name, as "Query
// table definitions using the Web API"
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api)
// shows it: a collection whose items hold the selected properties and MetadataId.
func (w *WebAPI) entityDefinitions(rw http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("$filter")
	name, ok := strings.CutPrefix(filter, "LogicalName eq '")
	name, ok2 := strings.CutSuffix(name, "'")
	if !ok || !ok2 {
		WebAPIError(rw, http.StatusBadRequest, "0x80060888", "The test stand-in only answers $filter=LogicalName eq '<name>'.")
		return
	}
	w.mu.Lock()
	t := w.tables[name]
	w.mu.Unlock()
	value := []any{}
	if t != nil {
		value = append(value, map[string]any{
			"EntitySetName":      t.EntitySetName,
			"PrimaryIdAttribute": t.PrimaryID,
			"MetadataId":         metadataID(t.LogicalName),
		})
	}
	w.writeJSON(rw, map[string]any{
		"@odata.context": w.URL + "/api/data/v9.2/$metadata#EntityDefinitions(" + r.URL.Query().Get("$select") + ")",
		"value":          value,
	})
}

// lookupAttributes answers the LookupAttributeMetadata cast of a table's Attributes ("Retrieve
// attributes", same page): each lookup column's LogicalName and MetadataId. A table that does
// not exist is 404 with 0x80040217, as a retrieve by key of a missing definition is.
func (w *WebAPI) lookupAttributes(rw http.ResponseWriter, name string) {
	w.mu.Lock()
	t := w.tables[name]
	w.mu.Unlock()
	if t == nil {
		WebAPIError(rw, http.StatusNotFound, "0x80040217", fmt.Sprintf("Could not find entity with name %s.", name))
		return
	}
	value := []any{}
	for _, c := range t.Columns {
		if l, ok := lookupName(c); ok {
			value = append(value, map[string]any{"LogicalName": l, "MetadataId": metadataID(name + "." + l)})
		}
	}
	w.writeJSON(rw, map[string]any{
		"@odata.context": w.URL + "/api/data/v9.2/$metadata#EntityDefinitions('" + name + "')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata(LogicalName)",
		"value":          value,
	})
}

// retrieve answers GET <entityset>(<id>)[?$select=...], as "Retrieve a table row using the Web
// API" (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/retrieve-entity-using-web-api)
// shows it: @odata.context and @odata.etag, the selected properties and the primary key
// (always returned), null for a column with no value; with Prefer
// odata.include-annotations="*" also each property's annotations
// (x@OData.Community.Display.V1.FormattedValue, and for a lookup
// _x_value@Microsoft.Dynamics.CRM.lookuplogicalname and ...associatednavigationproperty, as
// "Select columns using OData" describes them:
// https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/select-columns),
// without it none. Errors as "Troubleshoot Dataverse Web API client errors"
// (https://learn.microsoft.com/troubleshoot/power-platform/dataverse/dataverse-web-api-and-sdk/web-api-client-errors):
// an unknown entity set is 404 0x8006088a, an unknown property 400 0x0, and a missing row 404
// 0x80040217.
func (w *WebAPI) retrieve(rw http.ResponseWriter, r *http.Request, path string) {
	open := strings.IndexByte(path, '(')
	if open < 0 || !strings.HasSuffix(path, ")") {
		WebAPIError(rw, http.StatusNotFound, "0x8006088a", fmt.Sprintf("Resource not found for the segment '%s'.", path))
		return
	}
	set, id := path[:open], strings.ToLower(path[open+1:len(path)-1])
	t := w.TableBySet(set)
	if t == nil {
		WebAPIError(rw, http.StatusNotFound, "0x8006088a", fmt.Sprintf("Resource not found for the segment '%s'.", set))
		return
	}
	var sel []string
	if s := r.URL.Query().Get("$select"); s != "" {
		sel = strings.Split(s, ",")
	}
	for _, c := range sel {
		if c != t.PrimaryID && !slices.Contains(t.Columns, c) {
			WebAPIError(rw, http.StatusBadRequest, "0x0", fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", c, t.LogicalName))
			return
		}
	}
	w.mu.Lock()
	row := t.Rows[id]
	w.mu.Unlock()
	if row == nil {
		WebAPIError(rw, http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", t.LogicalName, id))
		return
	}
	annotations := strings.Contains(r.Header.Get("Prefer"), `odata.include-annotations="*"`)
	if sel == nil {
		sel = slices.Clone(t.Columns)
	}
	sel = append(sel, t.PrimaryID)
	out := map[string]any{
		"@odata.context": w.URL + "/api/data/v9.2/$metadata#" + set + "(" + r.URL.Query().Get("$select") + ")/$entity",
		"@odata.etag":    `W/"` + strconv.Itoa(len(row)*7919) + `"`,
	}
	for _, c := range sel {
		v, ok := row[c]
		if !ok {
			v = nil
		}
		out[c] = v
		if !annotations {
			continue
		}
		for k, a := range row {
			if strings.HasPrefix(k, c+"@") {
				out[k] = a
			}
		}
	}
	w.writeJSON(rw, out)
}

// lookupName returns x for a property spelled _x_value.
func lookupName(prop string) (string, bool) {
	if strings.HasPrefix(prop, "_") && strings.HasSuffix(prop, "_value") && len(prop) > len("__value") {
		return prop[1 : len(prop)-len("_value")], true
	}
	return "", false
}

// metadataID makes a stable, GUID-shaped MetadataId for a name.
func metadataID(name string) string {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	s := fmt.Sprintf("%016x%016x", h, h*31)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
