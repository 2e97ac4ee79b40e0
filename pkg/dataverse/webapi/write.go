package webapi

// Writes: upsert and delete of one row by its alternate key, and a $batch change set of them.
//
// The Web API pages they follow: Use Upsert to Create or Update a record
// (https://learn.microsoft.com/power-apps/developer/data-platform/use-upsert-insert-update-record),
// Update and delete table rows using the Web API ("Upsert a table row", "Prevent create in
// upsert", "Prevent update in upsert";
// https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api),
// Use an alternate key to reference a record
// (https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record)
// and Execute batch operations using the Web API
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// MaxBatch is the most requests Dataverse takes in one $batch.
const MaxBatch = 1000

// KeyPart is one column of an alternate key with its value.
type KeyPart struct {
	Column string // logical name
	Value  any    // string, bool, a number (float64, int, json.Number)
}

// Key names one row by an alternate key: its columns in the key's order.
type Key []KeyPart

// Segment is the key as it goes between the parentheses of a row's URL, each value an OData
// literal, percent-encoded: accountnumber='A-1',address1_postalcode='98052'.
func (k Key) Segment() (string, error) {
	var b strings.Builder
	for i, p := range k {
		if !validName(p.Column) {
			return "", fmt.Errorf("key column %q is not a logical name", p.Column)
		}
		lit, err := Literal(p.Value)
		if err != nil {
			return "", fmt.Errorf("key column %s: %w", p.Column, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Column)
		b.WriteByte('=')
		// The quotes stay as they are, as the Web API's own examples write them.
		b.WriteString(strings.ReplaceAll(url.PathEscape(lit), "%27", "'"))
	}
	if b.Len() == 0 {
		return "", errors.New("empty key")
	}
	return b.String(), nil
}

// Literal writes v as an OData literal: text in single quotes (a quote doubled), numbers and
// booleans as they are. A key cannot be null.
func Literal(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'", nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return "", fmt.Errorf("%q is not a number", string(x))
		}
		return string(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case nil:
		return "", errors.New("no value (a key value cannot be null)")
	}
	return "", fmt.Errorf("a %T cannot be a key value", v)
}

// Condition limits what an upsert may do.
type Condition int

const (
	// CreateOrUpdate is a plain upsert: the row is updated when the key finds it, else created.
	CreateOrUpdate Condition = iota
	// UpdateOnly sends If-Match: *, so a row the key does not find is not created: 404.
	UpdateOnly
	// CreateOnly sends If-None-Match: *, so a row the key finds is not updated: 412.
	CreateOnly
)

// Write is one change to one row: an upsert of Body (a JSON object of columns, lookups as
// <nav>@odata.bind), or with Delete, a delete.
type Write struct {
	Table     string // logical name
	Key       Key
	Delete    bool
	Body      []byte
	Condition Condition
}

// request is w as a method, a path under the Web API root and its headers.
func (e *Environment) request(ctx context.Context, w Write) (method, path string, h http.Header, err error) {
	set, err := e.EntitySetName(ctx, w.Table)
	if err != nil {
		return "", "", nil, err
	}
	seg, err := w.Key.Segment()
	if err != nil {
		return "", "", nil, &Error{Env: e.url, Table: w.Table, Message: err.Error()}
	}
	path = set + "(" + seg + ")"
	h = http.Header{}
	if w.Delete {
		return http.MethodDelete, path, h, nil
	}
	switch w.Condition {
	case UpdateOnly:
		h.Set("If-Match", "*")
	case CreateOnly:
		h.Set("If-None-Match", "*")
	}
	return http.MethodPatch, path, h, nil
}

// Apply sends one write. It returns nil when Dataverse carried it out (204), else an *Error
// naming the table and key with the Web API's status and error code: 404 for an update-only
// upsert or a delete whose row does not exist, 412 for a create-only upsert whose row does.
func (e *Environment) Apply(ctx context.Context, w Write) error {
	method, path, h, err := e.request(ctx, w)
	if err != nil {
		return err
	}
	var body []byte
	if !w.Delete {
		body = w.Body
	}
	req, err := e.NewRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := e.do(req, e.client.opts.WriteAttempts)
	id := keyText(w.Key)
	if err != nil {
		return nameWrite(err, method, w.Table, id)
	}
	if resp.StatusCode/100 != 2 {
		return ResponseError(e, method, w.Table, id, resp)
	}
	drain(resp)
	return nil
}

// BatchError is a $batch whose change set failed: Dataverse rolled every write of it back.
// Index is the write that failed (-1 when the answer did not say), Err its error.
type BatchError struct {
	Index int
	Err   *Error
}

func (e *BatchError) Error() string {
	if e.Index < 0 {
		return "change set rolled back: " + e.Err.Error()
	}
	return fmt.Sprintf("change set rolled back at write %d: %s", e.Index+1, e.Err.Error())
}

func (e *BatchError) Unwrap() error { return e.Err }

// Batch sends writes (at most MaxBatch) as one change set of one $batch request, so that they
// succeed or fail together. It returns nil when every write was carried out; a *BatchError when
// the change set failed (nothing of it was kept); any other error (an *Error for an answer
// other than 200, such as a 429) when the batch as a whole was not carried out.
func (e *Environment) Batch(ctx context.Context, writes []Write) error {
	if len(writes) == 0 {
		return nil
	}
	if len(writes) > MaxBatch {
		return fmt.Errorf("dataverse %s: %d writes in one batch, at most %d", e.url, len(writes), MaxBatch)
	}
	body, contentType, err := e.batchBody(ctx, writes)
	if err != nil {
		return err
	}
	req, err := e.NewRequest(ctx, http.MethodPost, "$batch", body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := e.do(req, e.client.opts.WriteAttempts)
	if err != nil {
		return nameWrite(err, http.MethodPost, "$batch", "")
	}
	if resp.StatusCode != http.StatusOK {
		return ResponseError(e, http.MethodPost, "$batch", "", resp)
	}
	defer drain(resp)
	return e.readBatch(resp, len(writes))
}

// batchBody writes the multipart/mixed body: one change set whose parts are the writes, each an
// application/http request with its Content-ID (1-based, the write's place), as "Batch requests"
// and "Change sets" of the batch page show them.
func (e *Environment) batchBody(ctx context.Context, writes []Write) ([]byte, string, error) {
	var buf bytes.Buffer
	batch := multipart.NewWriter(&buf)
	if err := batch.SetBoundary("batch_" + randomID()); err != nil {
		return nil, "", err
	}
	var cs bytes.Buffer
	changes := multipart.NewWriter(&cs)
	if err := changes.SetBoundary("changeset_" + randomID()); err != nil {
		return nil, "", err
	}
	for i, w := range writes {
		method, path, h, err := e.request(ctx, w)
		if err != nil {
			return nil, "", err
		}
		part, err := changes.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {"application/http"},
			"Content-Transfer-Encoding": {"binary"},
			"Content-Id":                {strconv.Itoa(i + 1)},
		})
		if err != nil {
			return nil, "", err
		}
		fmt.Fprintf(part, "%s %s HTTP/1.1\r\n", method, e.APIURL()+path)
		for k, vs := range h {
			for _, v := range vs {
				fmt.Fprintf(part, "%s: %s\r\n", k, v)
			}
		}
		if w.Delete {
			fmt.Fprintf(part, "\r\n")
			continue
		}
		fmt.Fprintf(part, "Content-Type: application/json; type=entry\r\nContent-Length: %d\r\n\r\n", len(w.Body))
		part.Write(w.Body)
		part.Write([]byte("\r\n"))
	}
	if err := changes.Close(); err != nil {
		return nil, "", err
	}
	part, err := batch.CreatePart(textproto.MIMEHeader{"Content-Type": {"multipart/mixed; boundary=" + changes.Boundary()}})
	if err != nil {
		return nil, "", err
	}
	part.Write(cs.Bytes())
	if err := batch.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "multipart/mixed; boundary=" + batch.Boundary(), nil
}

// readBatch reads the answer to a one-change-set batch: a changesetresponse with one 204 per
// write when it was carried out, or a single response with the error of the write that failed
// (the batch page's "Handling errors"), with its Content-ID when Dataverse gave one.
func (e *Environment) readBatch(resp *http.Response, n int) error {
	bad := func(msg string) error {
		return &Error{Env: e.url, Method: http.MethodPost, Table: "$batch", Status: resp.StatusCode, Message: "cannot read the batch answer: " + msg}
	}
	var responses []*http.Response
	var ids []string
	var walk func(r io.Reader, contentType string, depth int) error
	walk = func(r io.Reader, contentType string, depth int) error {
		mt, params, err := mime.ParseMediaType(contentType)
		if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" || depth > 2 {
			return fmt.Errorf("content type %q is not multipart/mixed", contentType)
		}
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if ct := p.Header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/") {
				if err := walk(p, ct, depth+1); err != nil {
					return err
				}
				continue
			}
			inner, err := http.ReadResponse(bufio.NewReader(p), nil)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(io.LimitReader(inner.Body, 64<<10))
			inner.Body = io.NopCloser(bytes.NewReader(body))
			responses = append(responses, inner)
			ids = append(ids, p.Header.Get("Content-Id"))
		}
	}
	if err := walk(resp.Body, resp.Header.Get("Content-Type"), 0); err != nil {
		return bad(err.Error())
	}
	for i, r := range responses {
		if r.StatusCode/100 == 2 {
			continue
		}
		index := -1
		if id, err := strconv.Atoi(ids[i]); err == nil && id >= 1 && id <= n {
			index = id - 1
		} else if len(responses) == n {
			index = i
		}
		return &BatchError{Index: index, Err: ResponseError(e, http.MethodPost, "$batch", "", r)}
	}
	if len(responses) != n {
		return bad(fmt.Sprintf("%d answers to %d writes", len(responses), n))
	}
	return nil
}

// keyText is the key as an Error names the row: accountnumber='A-1'.
func keyText(k Key) string {
	parts := make([]string, 0, len(k))
	for _, p := range k {
		lit, err := Literal(p.Value)
		if err != nil {
			lit = fmt.Sprint(p.Value)
		}
		parts = append(parts, p.Column+"="+lit)
	}
	return strings.Join(parts, ",")
}

// nameWrite is nameRequest for a write's method.
func nameWrite(err error, method, table, id string) error {
	var we *Error
	if errors.As(err, &we) && we.Table == "" {
		c := *we
		c.Table, c.ID, c.Method = table, id, method
		return &c
	}
	return fmt.Errorf("%w (%s %s %s)", err, method, table, id)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
