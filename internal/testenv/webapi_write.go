package testenv

// Writes for the Web API stand-in (TEST STAND-IN, see WebAPI): upsert and delete of a row by
// its alternate key (or its primary key), and $batch with change sets carried out all or
// nothing. They share the stand-in's token check, throttling (429 with Retry-After), scripted
// 5xx answers and stalls, which run before any handler.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// EnableWrites adds PATCH, DELETE and POST $batch to the stand-in.
func (w *WebAPI) EnableWrites() *WebAPI {
	w.Handle("PATCH /api/data/v9.2/", w.servePatch)
	w.Handle("DELETE /api/data/v9.2/", w.serveDelete)
	w.Handle("POST /api/data/v9.2/$batch", w.serveBatch)
	return w
}

// RowByKey returns a copy of the row whose columns hold these values, or nil.
func (w *WebAPI) RowByKey(table string, key map[string]any) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.tables[table]
	if t == nil {
		return nil
	}
	id := findByKey(t, key)
	if id == "" {
		return nil
	}
	out := map[string]any{}
	for k, v := range t.Rows[id] {
		out[k] = v
	}
	return out
}

// Written counts the writes carried out for the row of table with these key values, compared
// ignoring case (and the
// deletes that found it already gone, which dvrouter counts as done); a write of a change set
// that was rolled back does not count.
func (w *WebAPI) Written(table string, key map[string]any) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writeCounts[w][strings.ToLower(table+"\x00"+keySignature(key))]
}

// writeCounts are the Written counts of each stand-in; guarded by WebAPI.mu.
var writeCounts = map[*WebAPI]map[string]int{}

func (w *WebAPI) countWrite(t *WebAPITable, key map[string]any, n int) {
	if writeCounts[w] == nil {
		writeCounts[w] = map[string]int{}
	}
	writeCounts[w][strings.ToLower(t.LogicalName+"\x00"+keySignature(key))] += n
}

// Heal ends the scripted misbehaviour: no more 429s or 5xx answers are pending.
func (w *WebAPI) Heal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures, w.throttleAt, w.throttleN = nil, 0, 0
}

// RowCount is how many rows the table holds.
func (w *WebAPI) RowCount(table string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t := w.tables[table]; t != nil {
		return len(t.Rows)
	}
	return 0
}

// writeResult is what one write was answered, for a request of its own or a part of a batch.
type writeResult struct {
	status  int
	code    string // the Web API error code when status is not 2xx
	message string
	id      string // the row's id, for OData-EntityId
	set     string
	// gone is set for a delete that found no row: done, for dvrouter, when it is a request of
	// its own (in a change set it fails the set, which is rolled back).
	gone *undo
}

// undo restores what one write changed.
type undo struct {
	t   *WebAPITable
	id  string
	row map[string]any // nil: the write created the row
	key map[string]any // for the Written count
}

var newIDs atomic.Uint64

func (w *WebAPI) servePatch(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	w.mu.Lock()
	res, _ := w.applyWrite(r.Method, r.URL.Path, r.Header, body)
	w.mu.Unlock()
	w.writeResult(rw, res)
}

func (w *WebAPI) serveDelete(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	res, _ := w.applyWrite(r.Method, r.URL.Path, r.Header, nil)
	if res.gone != nil {
		w.countWrite(res.gone.t, res.gone.key, 1)
	}
	w.mu.Unlock()
	w.writeResult(rw, res)
}

// writeResult answers a write of its own: 204 No Content with OData-EntityId naming the row
// ("Basic update" and "Upsert a table row", Update and delete table rows using the Web API:
// https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api),
// or the Web API's error body.
func (w *WebAPI) writeResult(rw http.ResponseWriter, res writeResult) {
	if res.status/100 != 2 {
		WebAPIError(rw, res.status, res.code, res.message)
		return
	}
	if res.id != "" {
		rw.Header().Set("OData-EntityId", w.URL+"/api/data/v9.2/"+res.set+"("+res.id+")")
	}
	rw.WriteHeader(res.status)
}

// applyWrite carries out one PATCH or DELETE of <entityset>(<key>) with w.mu held, answering as
// the Web API documents:
//   - PATCH is an upsert: the row the key finds is updated, else one is created with the key's
//     values ("Use Upsert to Create or Update a record":
//     https://learn.microsoft.com/power-apps/developer/data-platform/use-upsert-insert-update-record;
//     the key is an alternate key, "Use an alternate key to reference a record":
//     https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record);
//   - with If-Match: * a row that does not exist is not created: 404 0x80040217 ("Prevent create
//     in upsert", Update and delete table rows using the Web API);
//   - with If-None-Match: * a row that exists is not updated: 412 ("Prevent update in upsert",
//     same page);
//   - x@odata.bind values set a lookup to "/<entityset>(<key>)" ("Associate and disassociate
//     table rows using the Web API":
//     https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api);
//     the stand-in keeps them as written, and refuses one whose value is not such a path;
//   - DELETE removes the row: 204, or 404 0x80040217 when it does not exist ("Basic delete",
//     same page as above).
//
// Unknown entity sets and properties are refused as retrieve refuses them.
func (w *WebAPI) applyWrite(method, path string, h http.Header, body []byte) (writeResult, *undo) {
	rel := strings.TrimPrefix(path, "/api/data/v9.2/")
	open := strings.IndexByte(rel, '(')
	if open < 0 || !strings.HasSuffix(rel, ")") {
		return writeResult{status: 404, code: "0x8006088a", message: fmt.Sprintf("Resource not found for the segment '%s'.", rel)}, nil
	}
	set := rel[:open]
	var t *WebAPITable
	for _, x := range w.tables {
		if x.EntitySetName == set {
			t = x
		}
	}
	if t == nil {
		return writeResult{status: 404, code: "0x8006088a", message: fmt.Sprintf("Resource not found for the segment '%s'.", set)}, nil
	}
	key, err := parseKey(t, rel[open+1:len(rel)-1])
	if err != nil {
		return writeResult{status: 400, code: "0x80060888", message: err.Error()}, nil
	}
	for col := range key {
		if col != t.PrimaryID && !contains(t.Columns, col) {
			return writeResult{status: 400, code: "0x80060888", message: fmt.Sprintf("Invalid key: '%s' is not an attribute of %s.", col, t.LogicalName)}, nil
		}
	}
	id := findByKey(t, key)
	if method == http.MethodDelete {
		if id == "" {
			return writeResult{status: 404, code: "0x80040217", message: fmt.Sprintf("%s with key %s Does Not Exist", t.LogicalName, rel[open:]),
				gone: &undo{t: t, key: key}}, nil
		}
		u := &undo{t: t, id: id, row: t.Rows[id], key: key}
		delete(t.Rows, id)
		w.countWrite(t, key, 1)
		return writeResult{status: 204}, u
	}
	var values map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil {
		return writeResult{status: 400, code: "0x80048d19", message: "Error identified in Payload provided by the user: " + err.Error()}, nil
	}
	for k, v := range values {
		if nav, ok := strings.CutSuffix(k, "@odata.bind"); ok {
			s, _ := v.(string)
			if nav == "" || !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, ")") || !strings.Contains(s, "(") {
				return writeResult{status: 400, code: "0x80048d19", message: fmt.Sprintf("Error identified in Payload provided by the user for Entity :'%s': %s must be a path such as /contacts(<id>), got %v", t.LogicalName, k, v)}, nil
			}
			continue
		}
		if k != t.PrimaryID && !contains(t.Columns, k) {
			return writeResult{status: 400, code: "0x80060888", message: fmt.Sprintf("The property '%s' does not exist on type 'Microsoft.Dynamics.CRM.%s'.", k, t.LogicalName)}, nil
		}
	}
	switch {
	case id == "" && h.Get("If-Match") == "*":
		return writeResult{status: 404, code: "0x80040217", message: fmt.Sprintf("%s with key %s Does Not Exist", t.LogicalName, rel[open:])}, nil
	case id != "" && h.Get("If-None-Match") == "*":
		return writeResult{status: 412, code: "0x80040237", message: "A record with matching key values already exists."}, nil
	}
	u := &undo{t: t, id: id, key: key}
	row := map[string]any{}
	if id != "" {
		u.row = t.Rows[id]
		for k, v := range u.row {
			row[k] = v
		}
	} else {
		if s, ok := key[t.PrimaryID].(string); ok {
			id = strings.ToLower(s)
		} else {
			id = fmt.Sprintf("00000000-0000-4000-8000-%012d", newIDs.Add(1))
		}
		u.id = id
		for k, v := range key {
			row[k] = v
		}
		row[t.PrimaryID] = id
	}
	for k, v := range values {
		row[k] = v
	}
	t.Rows[id] = row
	remember(t, keySignature(key), id)
	w.countWrite(t, key, 1)
	return writeResult{status: 204, id: id, set: set}, u
}

// parseKey reads the key between a row URL's parentheses: a bare GUID (the primary key) or
// column=literal pairs, text in single quotes with a quote inside written twice.
func parseKey(t *WebAPITable, s string) (map[string]any, error) {
	if len(s) == 36 && !strings.ContainsAny(s, "='") {
		return map[string]any{t.PrimaryID: strings.ToLower(s)}, nil
	}
	key := map[string]any{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("Bad Request - Error in query syntax: key %q", s)
		}
		col := s[:eq]
		s = s[eq+1:]
		var v any
		if strings.HasPrefix(s, "'") {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("Bad Request - Error in query syntax: unterminated text in key")
			}
			v, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			lit := s[:end]
			switch lit {
			case "true", "false":
				v = lit == "true"
			default:
				if _, err := strconv.ParseFloat(lit, 64); err != nil {
					return nil, fmt.Errorf("Bad Request - Error in query syntax: %q is not a literal", lit)
				}
				v = json.Number(lit)
			}
			s = s[end:]
		}
		key[col] = v
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if s != "" {
			return nil, fmt.Errorf("Bad Request - Error in query syntax near %q", s)
		}
	}
	return key, nil
}

// findByKey returns the id of the row holding every value of key, or "". Rows found once are
// remembered by their key (checked again on every use, as SetRow may have changed them), so a
// batch of updates does not scan the table once per write.
func findByKey(t *WebAPITable, key map[string]any) string {
	if id, ok := key[t.PrimaryID].(string); ok && len(key) == 1 {
		if t.Rows[strings.ToLower(id)] != nil {
			return strings.ToLower(id)
		}
		return ""
	}
	sig := keySignature(key)
	idx := keyIndexes[t]
	if id, ok := idx[sig]; ok && t.Rows[id] != nil && rowHasKey(t.Rows[id], key) {
		return id
	}
	for id, row := range t.Rows {
		if rowHasKey(row, key) {
			remember(t, sig, id)
			return id
		}
	}
	return ""
}

// keyIndexes remember, per table, the row ids found by a key signature; guarded by WebAPI.mu.
var keyIndexes = map[*WebAPITable]map[string]string{}

func remember(t *WebAPITable, sig, id string) {
	if keyIndexes[t] == nil {
		keyIndexes[t] = map[string]string{}
	}
	keyIndexes[t][sig] = id
}

func keySignature(key map[string]any) string {
	cols := make([]string, 0, len(key))
	for c := range key {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(c)
		b.WriteByte('=')
		b.WriteString(valueText(key[c]))
		b.WriteByte(0)
	}
	return b.String()
}

func rowHasKey(row, key map[string]any) bool {
	for col, want := range key {
		if valueText(row[col]) != valueText(want) {
			return false
		}
	}
	return true
}

func valueText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// serveBatch answers POST $batch as "Execute batch operations using the Web API"
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api)
// shows it: a multipart/mixed body of parts, each an application/http request or a change set
// (a nested multipart/mixed of requests with a Content-ID each). Requests run in order. A
// change set is one transaction: when a request of it fails, what it did is rolled back, and
// the answer for the change set is that request's error alone, with its Content-ID
// ("Handling errors"); when all succeed, a changesetresponse with one 204 per request. The
// batch answers 200 with a multipart/mixed batchresponse either way; a body it cannot read is
// 400. Processing stops at the first failure, as Dataverse does without
// odata.continue-on-error.
func (w *WebAPI) serveBatch(rw http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		WebAPIError(rw, http.StatusBadRequest, "0x80048d19", "The batch request must have a multipart/mixed Content-Type with a boundary.")
		return
	}
	var out bytes.Buffer
	resp := multipart.NewWriter(&out)
	_ = resp.SetBoundary("batchresponse_" + strconv.FormatUint(newIDs.Add(1), 10))
	mr := multipart.NewReader(io.LimitReader(r.Body, 64<<20), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			WebAPIError(rw, http.StatusBadRequest, "0x80048d19", "Cannot read the batch request: "+err.Error())
			return
		}
		ct := part.Header.Get("Content-Type")
		if cmt, cparams, err := mime.ParseMediaType(ct); err == nil && cmt == "multipart/mixed" {
			ok, err := w.changeSet(resp, multipart.NewReader(part, cparams["boundary"]))
			if err != nil {
				WebAPIError(rw, http.StatusBadRequest, "0x80048d19", "Cannot read the change set: "+err.Error())
				return
			}
			if !ok {
				break
			}
			continue
		}
		req, err := http.ReadRequest(bufio.NewReader(part))
		if err != nil {
			WebAPIError(rw, http.StatusBadRequest, "0x80048d19", "Cannot read a batch part: "+err.Error())
			return
		}
		body, _ := io.ReadAll(req.Body)
		w.mu.Lock()
		res, _ := w.applyWrite(req.Method, req.URL.Path, req.Header, body)
		if res.gone != nil {
			w.countWrite(res.gone.t, res.gone.key, 1)
		}
		w.mu.Unlock()
		w.writePart(resp, "", res)
		if res.status/100 != 2 {
			break
		}
	}
	_ = resp.Close()
	rw.Header().Set("Content-Type", "multipart/mixed; boundary="+resp.Boundary())
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(out.Bytes())
}

// changeSet carries out one change set, all or nothing, and writes its answer. It reports
// whether every request succeeded.
func (w *WebAPI) changeSet(resp *multipart.Writer, mr *multipart.Reader) (bool, error) {
	type op struct {
		contentID string
		req       *http.Request
		body      []byte
	}
	var ops []op
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
		req, err := http.ReadRequest(bufio.NewReader(part))
		if err != nil {
			return false, err
		}
		body, _ := io.ReadAll(req.Body)
		ops = append(ops, op{part.Header.Get("Content-Id"), req, body})
	}
	w.mu.Lock()
	var undos []*undo
	var results []writeResult
	failed := -1
	for i, o := range ops {
		res, u := w.applyWrite(o.req.Method, o.req.URL.Path, o.req.Header, o.body)
		if res.status/100 != 2 {
			failed = i
			results = append(results, res)
			break
		}
		undos = append(undos, u)
		results = append(results, res)
	}
	if failed >= 0 {
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			w.countWrite(u.t, u.key, -1)
			if u.row == nil {
				delete(u.t.Rows, u.id)
			} else {
				u.t.Rows[u.id] = u.row
			}
		}
	}
	w.mu.Unlock()
	if failed >= 0 {
		w.writePart(resp, ops[failed].contentID, results[failed])
		return false, nil
	}
	var cs bytes.Buffer
	csw := multipart.NewWriter(&cs)
	_ = csw.SetBoundary("changesetresponse_" + strconv.FormatUint(newIDs.Add(1), 10))
	for i, res := range results {
		w.writePart(csw, ops[i].contentID, res)
	}
	_ = csw.Close()
	p, _ := resp.CreatePart(textproto.MIMEHeader{"Content-Type": {"multipart/mixed; boundary=" + csw.Boundary()}})
	_, _ = p.Write(cs.Bytes())
	return true, nil
}

// writePart writes one answer as an application/http part.
func (w *WebAPI) writePart(mw *multipart.Writer, contentID string, res writeResult) {
	h := textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Transfer-Encoding": {"binary"}}
	if contentID != "" {
		h.Set("Content-Id", contentID)
	}
	p, _ := mw.CreatePart(h)
	fmt.Fprintf(p, "HTTP/1.1 %d %s\r\nOData-Version: 4.0\r\n", res.status, http.StatusText(res.status))
	if res.status/100 == 2 {
		if res.id != "" {
			fmt.Fprintf(p, "OData-EntityId: %s/api/data/v9.2/%s(%s)\r\n", w.URL, res.set, res.id)
		}
		fmt.Fprintf(p, "\r\n")
		return
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": res.code, "message": res.message}})
	fmt.Fprintf(p, "Content-Type: application/json; odata.metadata=minimal\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}
