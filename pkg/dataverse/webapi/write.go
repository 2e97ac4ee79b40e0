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
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"

	"github.com/dvrouter/dvrouter/pkg/odata"
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
	b, err := k.appendSegment(nil)
	return string(b), err
}

// appendSegment appends Segment to b: a $batch writes a hundred of them into its body.
func (k Key) appendSegment(b []byte) ([]byte, error) {
	if len(k) == 0 {
		return b, errors.New("empty key")
	}
	for i, p := range k {
		if !validName(p.Column) {
			return b, fmt.Errorf("key column %q is not a logical name", p.Column)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p.Column...)
		b = append(b, '=')
		if x, ok := p.Value.(string); ok {
			b = append(b, '\'')
			b = appendEscaped(b, x, true)
			b = append(b, '\'')
			continue
		}
		lit, err := Literal(p.Value)
		if err != nil {
			return b, fmt.Errorf("key column %s: %w", p.Column, err)
		}
		b = appendEscaped(b, lit, false)
	}
	return b, nil
}

// appendEscaped appends s as url.PathEscape writes it in a path segment, but for the single quote,
// which stays as it is, as the Web API's own examples write it (doubled, with quoteDoubled: s is
// the inside of a text literal). The bytes that need nothing are appended a run at a time.
func appendEscaped(b []byte, s string, quoteDoubled bool) []byte {
	for {
		i := 0
		for i < len(s) && odata.PathSafe[s[i]] {
			i++
		}
		b = append(b, s[:i]...)
		if i == len(s) {
			return b
		}
		switch c := s[i]; {
		case c == '\'' && quoteDoubled:
			b = append(b, "''"...)
		case c == '\'':
			b = append(b, c)
		default:
			const hex = "0123456789ABCDEF"
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
		s = s[i+1:]
	}
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

// request is w as a method, a path under the Web API root and the one conditional header an
// upsert may carry (If-Match or If-None-Match, both "*"; empty for none).
func (e *Environment) request(ctx context.Context, w Write) (method, path, condition string, err error) {
	set, err := e.EntitySetName(ctx, w.Table)
	if err != nil {
		return "", "", "", err
	}
	b, err := e.appendPath(nil, set, w)
	return w.method(), string(b), w.condition(), err
}

// appendPath appends w's row path, <entity set>(<key>), to b; set is its table's entity set.
func (e *Environment) appendPath(b []byte, set string, w Write) ([]byte, error) {
	b = append(b, set...)
	b = append(b, '(')
	b, err := w.Key.appendSegment(b)
	if err != nil {
		return b, &Error{Env: e.url, Table: w.Table, Message: err.Error()}
	}
	return append(b, ')'), nil
}

func (w Write) method() string {
	if w.Delete {
		return http.MethodDelete
	}
	return http.MethodPatch
}

// condition is the header that makes an upsert update- or create-only (its value is "*").
func (w Write) condition() string {
	switch {
	case w.Delete:
		return ""
	case w.Condition == UpdateOnly:
		return "If-Match"
	case w.Condition == CreateOnly:
		return "If-None-Match"
	}
	return ""
}

// Apply sends one write. It returns nil when Dataverse carried it out (204), else an *Error
// naming the table and key with the Web API's status and error code: 404 for an update-only
// upsert or a delete whose row does not exist, 412 for a create-only upsert whose row does.
func (e *Environment) Apply(ctx context.Context, w Write) error {
	method, path, condition, err := e.request(ctx, w)
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
	if condition != "" {
		req.Header[condition] = []string{"*"}
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
	body := newBatchBuffer()
	defer body.finish()
	contentType, err := e.batchBody(ctx, body, writes)
	if err != nil {
		return err
	}
	req, err := e.NewRequest(withWriteTrace(ctx, body.wrote), http.MethodPost, "$batch", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.ContentLength, req.Body, req.GetBody = int64(len(*body.buf)), http.NoBody, body.reader
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

// batchBody writes the multipart/mixed body into buf: one change set whose parts are the writes,
// each an application/http request with its Content-ID (1-based, the write's place), as "Batch
// requests" and "Change sets" of the batch page show them. Each part's MIME header is made once
// per batch: mime/multipart and fmt per part cost more than the rest of the batch on dvrouter's
// side (BenchmarkDataverseBatch100Canned).
func (e *Environment) batchBody(ctx context.Context, buf *batchBuffer, writes []Write) (string, error) {
	batch, changes := "batch_"+randomID(), "changeset_"+randomID()
	api := e.APIURL()
	size := 2*len(batch) + 2*len(changes) + 128
	for _, w := range writes {
		size += len(changes) + len(api) + len(w.Body) + 256
	}
	b := *buf.buf
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = b[:0]
	defer func() { *buf.buf = b }()
	b = append(b, "--"...)
	b = append(b, batch...)
	b = append(b, "\r\nContent-Type: multipart/mixed; boundary="...)
	b = append(b, changes...)
	b = append(b, "\r\n\r\n"...)
	partHeader := "--" + changes + "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: "
	var table, set string // the last write's: a batch is mostly of one table
	for i, w := range writes {
		var err error
		if w.Table != table || i == 0 {
			if set, err = e.EntitySetName(ctx, w.Table); err != nil {
				return "", err
			}
			table = w.Table
		}
		if i > 0 {
			b = append(b, "\r\n"...)
		}
		b = append(b, partHeader...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, "\r\n\r\n"...)
		b = append(b, w.method()...)
		b = append(b, ' ')
		b = append(b, api...)
		if b, err = e.appendPath(b, set, w); err != nil {
			return "", err
		}
		b = append(b, " HTTP/1.1\r\n"...)
		if c := w.condition(); c != "" {
			b = append(b, c...)
			b = append(b, ": *\r\n"...)
		}
		if w.Delete {
			b = append(b, "\r\n"...)
			continue
		}
		b = append(b, "Content-Type: application/json; type=entry\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(w.Body)), 10)
		b = append(b, "\r\n\r\n"...)
		b = append(b, w.Body...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n--"...)
	b = append(b, changes...)
	b = append(b, "--\r\n\r\n--"...)
	b = append(b, batch...)
	b = append(b, "--\r\n"...)
	return "multipart/mixed; boundary=" + batch, nil
}

// batchBodies holds the buffers $batch bodies are written into: one is some 35 KB for 100 writes.
// Allocating it for each batch cost a fifth of BenchmarkDataverseBatch100Canned (clearing it,
// and the collections its garbage brought on).
var batchBodies = sync.Pool{New: func() any { return new([]byte) }}

// batchBuffer is a $batch body whose buffer goes back to batchBodies only once net/http can no
// longer read it. RoundTrip returning does not say so: the transport may still be writing the
// body when the answer is in (a server may answer before reading the whole request). What does
// is httptrace's WroteRequest, called once each time the transport has finished writing a
// request, its body read and closed. So the buffer is put back when Batch is done with the
// request (finish) and every reader handed to the transport (the first send's and each retry's,
// all through GetBody) has been written. A reader that was never written (the connection failed
// before) keeps the buffer out of the pool for good: it is left to the garbage collector, never
// reused while something might still read it.
type batchBuffer struct {
	buf *[]byte

	mu      sync.Mutex
	readers int  // handed to the transport and not yet written
	done    bool // Batch is done with the request: no more readers will be asked for
	broken  bool // a write reported without a reader to match: never reuse this buffer
}

func newBatchBuffer() *batchBuffer {
	return &batchBuffer{buf: batchBodies.Get().(*[]byte)}
}

// reader is the request's GetBody: each send of the request (the first and every retry, by do
// and by the transport) reads the body through its own reader.
func (b *batchBuffer) reader() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil { // cannot happen: the buffer is put back only after the last send
		return nil, errors.New("batch body already released")
	}
	b.readers++
	// A *bytes.Reader in io.NopCloser is a body net/http knows is in memory: it writes it with
	// the header, in one write when it fits the transport's write buffer.
	return io.NopCloser(bytes.NewReader(*b.buf)), nil
}

// wrote is the request's httptrace WroteRequest.
func (b *batchBuffer) wrote(httptrace.WroteRequestInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.readers--
	if b.readers < 0 {
		b.broken = true
	}
	b.release()
}

// finish says Batch has the answer (or has given up): the transport asks for no more readers.
func (b *batchBuffer) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	b.release()
}

func (b *batchBuffer) release() {
	if !b.done || b.readers != 0 || b.broken || b.buf == nil {
		return
	}
	if cap(*b.buf) <= 1<<20 { // a batch of large rows is not worth keeping around
		batchBodies.Put(b.buf)
	}
	b.buf = nil
}

// batchAnswers holds the buffers $batch answers are read into: one is some 30 KB for 100 writes.
var batchAnswers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBatch reads the answer to a one-change-set batch: a changesetresponse with one 204 per
// write when it was carried out, or a single response with the error of the write that failed
// (the batch page's "Handling errors"), with its Content-ID when Dataverse gave one. The usual
// answer, every write carried out, is recognized by scanning each part's status line
// (carriedOut); anything else is read part by part as MIME, for the error it holds.
func (e *Environment) readBatch(resp *http.Response, n int) error {
	bad := func(msg string) error {
		return &Error{Env: e.url, Method: http.MethodPost, Table: "$batch", Status: resp.StatusCode, Message: "cannot read the batch answer: " + msg}
	}
	buf := batchAnswers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 { // an answer full of errors is not worth keeping around
			buf.Reset()
			batchAnswers.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 32<<20)); err != nil {
		return bad(err.Error())
	}
	// Nothing read from data outlives readBatch: the long way copies what it keeps.
	data := buf.Bytes()
	if carriedOut(data, resp.Header.Get("Content-Type"), n) {
		return nil
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
	if err := walk(bytes.NewReader(data), resp.Header.Get("Content-Type"), 0); err != nil {
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

// carriedOut reports whether data, a $batch answer of this content type, is one change set
// response holding exactly n application/http parts, each a 2xx status line:
//
//	--batchresponse_1
//	Content-Type: multipart/mixed; boundary=changesetresponse_2
//
//	--changesetresponse_2
//	Content-Type: application/http
//	Content-Transfer-Encoding: binary
//	Content-ID: 1
//
//	HTTP/1.1 204 No Content
//	...
//	--changesetresponse_2--
//	--batchresponse_1--
//
// False means only that it is not that answer; readBatch then reads it the long way.
func carriedOut(data []byte, contentType string, n int) bool {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return false
	}
	rest, ok := bytes.CutPrefix(bytes.TrimLeft(data, "\r\n"), []byte("--"+params["boundary"]+"\r\n"))
	if !ok {
		return false
	}
	header, rest, ok := bytes.Cut(rest, []byte("\r\n\r\n"))
	if !ok {
		return false
	}
	var ct string
	for line := range strings.SplitSeq(string(header), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Type") {
			ct = strings.TrimSpace(v)
		}
	}
	mt, cparams, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/mixed" || cparams["boundary"] == "" {
		return false
	}
	// From here, line by line: the change set's delimiter, a part's MIME header, its status line,
	// the answer's header, blank lines (a 204 has no body), the next delimiter ... One search for
	// the end of each line: searching for a blank line ("\r\n\r\n") stops, and compares, at
	// every line's end anyway.
	delim := []byte("--" + cparams["boundary"])
	var line []byte
	for parts := 0; ; parts++ {
		if line, rest, ok = cutLine(rest); !ok {
			return false
		}
		after, ok := bytes.CutPrefix(line, delim)
		switch {
		case !ok:
			return false
		case string(after) == "--":
			return parts == n
		case len(after) != 0:
			return false
		}
		if rest, ok = skipHeader(rest); !ok { // the part's MIME header, Content-ID and all
			return false
		}
		if line, rest, ok = cutLine(rest); !ok {
			return false
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 2")) || !isDigit(line[10]) || !isDigit(line[11]) || (len(line) > 12 && line[12] != ' ') {
			return false
		}
		if rest, ok = skipHeader(rest); !ok { // the answer's header
			return false
		}
		for bytes.HasPrefix(rest, []byte("\r\n")) {
			rest = rest[2:]
		}
	}
}

// cutLine cuts the CRLF-ended line at the start of b from what follows it.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// skipHeader returns what follows the header at the start of b: its CRLF-ended lines up to a
// blank one.
func skipHeader(b []byte) ([]byte, bool) {
	for {
		i := bytes.IndexByte(b, '\n')
		switch {
		case i < 1 || b[i-1] != '\r':
			return nil, false
		case i == 1:
			return b[2:], true
		}
		b = b[i+1:]
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

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
