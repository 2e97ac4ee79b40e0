package tables

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"

	"github.com/dvrouter/dvrouter/pkg/uuid"
)

// Entity is one entity to write: its keys, and its JSON (keys included, as the Table service
// takes it: typed properties carry their "@odata.type" annotations).
type Entity struct {
	PartitionKey, RowKey string
	JSON                 []byte
}

// BatchWriter writes entity group transactions to one table, each as one request written
// straight from the entities' JSON. It exists because the SDK's SubmitTransaction decodes each
// entity into a map and builds a request per entity, which was half of the delivery journal's
// CPU. It is safe for concurrent use.
type BatchWriter struct {
	pipeline runtime.Pipeline
	endpoint string // the table service URL, without a trailing slash or query
	query    string // a SAS token's query, with its "?", or ""
	table    string
}

// batchVersion is the Table service version the batches are written for.
const batchVersion = "2019-02-02"

// BatchWriter makes a writer of transactions to table; it makes no call. opts are the
// pipeline's (retries, transport).
func (a Account) BatchWriter(table string, opts *azcore.ClientOptions) (*BatchWriter, error) {
	ep, err := a.endpoint()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(ep.url)
	if err != nil || u.Host == "" {
		return nil, errors.New("table service URL is malformed")
	}
	query := ""
	if u.RawQuery != "" {
		query = "?" + u.RawQuery
	}
	u.RawQuery, u.Fragment = "", ""
	var auth policy.Policy
	switch {
	case ep.key != nil:
		auth = ep.key
	case ep.cred != nil:
		auth = runtime.NewBearerTokenPolicy(ep.cred, []string{storageScope}, nil)
	}
	var plOpts runtime.PipelineOptions
	if auth != nil {
		plOpts.PerRetry = []policy.Policy{auth}
	}
	var co policy.ClientOptions
	if opts != nil {
		co = *opts
	}
	return &BatchWriter{
		pipeline: runtime.NewPipeline("dvrouter/tables", "v1", plOpts, &co),
		endpoint: strings.TrimRight(u.String(), "/"),
		query:    query,
		table:    table,
	}, nil
}

// BatchError is a transaction the Table service refused; nothing of it was written. It
// unwraps to an *azcore.ResponseError with the failed operation's status and code, so that
// callers tell the store's errors from the batch's as they do the SDK's.
type BatchError struct {
	Table   string
	Index   int // the entity the service named, -1 when it named none
	Status  int
	Code    string
	Message string
	resp    *azcore.ResponseError
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s: batch refused: %d %s", e.Table, e.Status, cmp.Or(e.Code, "(no code)"))
	if e.Index >= 0 {
		fmt.Fprintf(&b, " at entity %d", e.Index)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

func (e *BatchError) Unwrap() error { return e.resp }

var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// InsertOrReplace writes entities, all of one partition and at most 100, as one transaction:
// all of them or none.
func (w *BatchWriter) InsertOrReplace(ctx context.Context, entities []Entity) error {
	if len(entities) == 0 {
		return nil
	}
	batchID, changesetID := "batch_"+uuid.Random(), "changeset_"+uuid.Random()
	body := bodies.Get().(*bytes.Buffer)
	body.Reset()
	w.writeBody(body, batchID, changesetID, entities)

	req, err := runtime.NewRequest(ctx, http.MethodPost, w.endpoint+"/$batch"+w.query)
	if err != nil {
		return fmt.Errorf("table %s: batch request: %w", w.table, err)
	}
	h := req.Raw().Header
	h.Set("x-ms-version", batchVersion)
	h.Set("DataServiceVersion", "3.0")
	h.Set("MaxDataServiceVersion", "3.0;NetFx")
	h.Set("Accept", "application/json;odata=nometadata")
	if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body.Bytes())), "multipart/mixed; boundary="+batchID); err != nil {
		return fmt.Errorf("table %s: batch request: %w", w.table, err)
	}
	// The answer is read here, only as far as readResponse needs, not downloaded whole by the
	// pipeline: a hundred operations are answered with a hundred parts.
	runtime.SkipBodyDownload(req)
	resp, err := w.pipeline.Do(req)
	if err != nil {
		return fmt.Errorf("table %s: batch: %w", w.table, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted && body.Cap() <= 4<<20 {
		// Only after a 202: the service read the whole body to answer it. A server that
		// answers early (a 403) may leave the transport still sending it.
		bodies.Put(body)
	}
	head := heads.Get().(*[answerHead]byte)
	defer heads.Put(head)
	n, err := io.ReadFull(resp.Body, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("table %s: batch: read the answer: %w", w.table, err)
	}
	// The rest is read to its end so that the connection is kept for the next batch.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("table %s: batch: read the answer: %w", w.table, err)
	}
	return w.readResponse(resp, head[:n])
}

// answerHead is how much of a batch's answer is read: the first operation's status and, when
// the changeset failed, its one error part, or the error of a refused request, are well within.
const answerHead = 8 << 10

var heads = sync.Pool{New: func() any { return new([answerHead]byte) }}

// writeBody writes the multipart/mixed body of one changeset of InsertOrReplace operations, as
// "Performing entity group transactions" of the Table service's REST reference shows it.
func (w *BatchWriter) writeBody(b *bytes.Buffer, batchID, changesetID string, entities []Entity) {
	b.WriteString("--" + batchID + "\r\nContent-Type: multipart/mixed; boundary=" + changesetID + "\r\n\r\n")
	for _, e := range entities {
		b.WriteString("--" + changesetID + "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPUT ")
		b.WriteString(w.endpoint)
		b.WriteByte('/')
		b.WriteString(w.table)
		b.WriteString("(PartitionKey='")
		appendKeyInURL(b, e.PartitionKey)
		b.WriteString("',RowKey='")
		appendKeyInURL(b, e.RowKey)
		b.WriteString("') HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json;odata=nometadata\r\n" +
			"Prefer: return-no-content\r\nDataServiceVersion: 3.0\r\n\r\n")
		b.Write(e.JSON)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + changesetID + "--\r\n--" + batchID + "--\r\n")
}

// appendKeyInURL writes a key for an entity's address: a quote doubled (OData's string
// literal), then percent-encoded as a path segment, as the SDK does (url.PathEscape's rules,
// without its allocation: every journal key has a "|" to encode).
func appendKeyInURL(b *bytes.Buffer, k string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '\'':
			b.WriteString("%27%27")
		case pathSegmentKeeps(c):
			b.WriteByte(c)
		default:
			b.Write([]byte{'%', hex[c>>4], hex[c&0xf]})
		}
	}
}

// pathSegmentKeeps says url.PathEscape leaves c as it is.
func pathSegmentKeeps(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ':', '=', '@':
		return true
	}
	return false
}

// readResponse finds the first operation's status in the start of the batch's answer, body: the service answers
// 202 with one 204 per operation, or, when the changeset failed, with the one error that
// failed it, whose message starts with the failed operation's index ("3:The property ...").
func (w *BatchWriter) readResponse(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusAccepted {
		re := &azcore.ResponseError{StatusCode: resp.StatusCode, ErrorCode: resp.Header.Get("x-ms-error-code"), RawResponse: resp}
		code, msg := odataError(body)
		re.ErrorCode = cmp.Or(re.ErrorCode, code)
		return &BatchError{Table: w.table, Index: -1, Status: resp.StatusCode, Code: re.ErrorCode, Message: msg, resp: re}
	}
	i := bytes.Index(body, []byte("HTTP/1.1 "))
	if i < 0 || len(body) < i+12 {
		return fmt.Errorf("table %s: batch: an answer without an operation's status", w.table)
	}
	status, err := strconv.Atoi(string(body[i+9 : i+12]))
	if err != nil {
		return fmt.Errorf("table %s: batch: an operation's status %q is not a number", w.table, body[i+9:i+12])
	}
	if status >= 200 && status < 300 {
		return nil
	}
	code, msg := odataError(body[i:])
	index := -1
	if n, rest, ok := strings.Cut(msg, ":"); ok {
		if v, err := strconv.Atoi(n); err == nil {
			index, msg = v, rest
		}
	}
	msg, _, _ = strings.Cut(msg, "\n") // the service appends a request id and a time
	return &BatchError{Table: w.table, Index: index, Status: status, Code: code, Message: msg,
		resp: &azcore.ResponseError{StatusCode: status, ErrorCode: code, RawResponse: resp}}
}

// odataError reads the code and message of the first odata.error object in b.
func odataError(b []byte) (code, message string) {
	i := bytes.IndexByte(b, '{')
	if i < 0 {
		return "", ""
	}
	var v struct {
		Err struct {
			Code    string `json:"code"`
			Message struct {
				Value string `json:"value"`
			} `json:"message"`
		} `json:"odata.error"`
	}
	// A decoder stops at the object's end, before the boundary that follows it.
	if json.NewDecoder(bytes.NewReader(b[i:])).Decode(&v) != nil {
		return "", ""
	}
	return v.Err.Code, v.Err.Message.Value
}
