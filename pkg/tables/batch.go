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

	"github.com/dvrouter/dvrouter/pkg/odata"
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
	free     chan []byte // batch bodies the service has read, for the next batches
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
		free:     make(chan []byte, freeBatches),
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

// Batch is one transaction being built: each entity's InsertOrReplace operation is written
// into the request's body as it is added, so that its JSON is copied once, into a buffer
// reused from batch to batch. A Batch holds entities of one partition (the service's rule for
// a transaction) and is not safe for concurrent use.
type Batch struct {
	w       *BatchWriter
	n       int
	body    []byte
	opHead  string // an operation's part up to its RowKey: the changeset boundary, the PUT, the partition
	closing string // the changeset's and the batch's closing boundaries
	kind    string // the request's Content-Type, which names the batch's boundary
	read    bool   // the service answered 202: it has read the body, which can be reused
	spoiled bool   // a Submit was refused or went unanswered: its write may still be reading the body
}

// batchBuffer is the capacity a new batch's body starts with when the free list has none. It
// is small because a writer may hold many partly filled batches at once (the journal one per
// partition: a few per consumer and hour), most of which stay small; a full batch's grown
// buffer is what the free list keeps.
const batchBuffer = 8 << 10

// NewBatch starts a transaction of entities of partition pk.
func (w *BatchWriter) NewBatch(pk string) *Batch {
	var body []byte
	select {
	case body = <-w.free:
	default:
		body = make([]byte, 0, batchBuffer)
	}
	batchID, changesetID := "batch_"+uuid.Random(), "changeset_"+uuid.Random()
	body = append(body, "--"+batchID+"\r\nContent-Type: multipart/mixed; boundary="+changesetID+"\r\n\r\n"...)
	head := make([]byte, 0, 256+len(w.endpoint)+len(w.table)+3*len(pk))
	head = append(head, "--"+changesetID+"\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPUT "...)
	head = append(head, w.endpoint...)
	head = append(head, '/')
	head = append(head, w.table...)
	head = append(head, "(PartitionKey='"...)
	head = appendKeyInURL(head, pk)
	head = append(head, "',RowKey='"...)
	return &Batch{w: w, body: body, opHead: string(head),
		closing: "--" + changesetID + "--\r\n--" + batchID + "--\r\n", kind: "multipart/mixed; boundary=" + batchID}
}

// Put adds the InsertOrReplace of one entity of the batch's partition: rk is its RowKey and
// entity its JSON, keys included (typed properties with their "@odata.type" annotations).
// Both are copied. A transaction takes at most 100.
func (b *Batch) Put(rk, entity []byte) {
	b.body = append(b.body, b.opHead...)
	b.body = appendKeyInURL(b.body, rk)
	b.body = append(b.body, "') HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json;odata=nometadata\r\n"+
		"Prefer: return-no-content\r\nDataServiceVersion: 3.0\r\n\r\n"...)
	b.body = append(b.body, entity...)
	b.body = append(b.body, "\r\n"...)
	b.n++
}

// Len is how many entities the batch holds.
func (b *Batch) Len() int { return b.n }

// Release gives the batch's buffer back for a next batch, when the service is known to have
// read it (its last Submit was answered 202, and no earlier one was refused or went
// unanswered: a refusal may come while its body is still being sent); the batch is not used
// after.
func (b *Batch) Release() {
	if b.read && !b.spoiled && cap(b.body) <= 4<<20 {
		select {
		case b.w.free <- b.body[:0]:
		default:
		}
	}
	b.body = nil
}

// freeBatches is how many batch buffers a writer keeps for reuse: about as many as are sent
// at once, so that each new batch takes one.
const freeBatches = 16

// InsertOrReplace writes entities, all of one partition and at most 100, as one transaction:
// all of them or none.
func (w *BatchWriter) InsertOrReplace(ctx context.Context, entities []Entity) error {
	if len(entities) == 0 {
		return nil
	}
	b := w.NewBatch(entities[0].PartitionKey)
	defer b.Release()
	for _, e := range entities {
		b.Put([]byte(e.RowKey), e.JSON)
	}
	return w.Submit(ctx, b)
}

// Submit writes b as one transaction: all of its entities or none. A batch that failed can be
// submitted again.
func (w *BatchWriter) Submit(ctx context.Context, b *Batch) error {
	if b.n == 0 {
		return nil
	}
	size := len(b.body)
	b.body = append(b.body, b.closing...)
	defer func() { b.body = b.body[:size] }() // open for another Submit
	spoiled := b.spoiled
	b.read, b.spoiled = false, true // until a 202 says otherwise

	req, err := runtime.NewRequest(ctx, http.MethodPost, w.endpoint+"/$batch"+w.query)
	if err != nil {
		return fmt.Errorf("table %s: batch request: %w", w.table, err)
	}
	h := req.Raw().Header
	h.Set("x-ms-version", batchVersion)
	h.Set("DataServiceVersion", "3.0")
	h.Set("MaxDataServiceVersion", "3.0;NetFx")
	h.Set("Accept", "application/json;odata=nometadata")
	if err := req.SetBody(streaming.NopCloser(bytes.NewReader(b.body)), b.kind); err != nil {
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
	// Only after a 202 is the body known to be read whole: a server that answers early (a 403)
	// may leave the transport still sending it.
	b.read = resp.StatusCode == http.StatusAccepted
	if b.read {
		b.spoiled = spoiled
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

// appendKeyInURL appends a key for an entity's address: a quote doubled (OData's string
// literal), then percent-encoded as a path segment, as the SDK does (url.PathEscape's rules,
// without its allocation: every journal key has a "|" to encode).
func appendKeyInURL[K string | []byte](b []byte, k K) []byte {
	const hex = "0123456789ABCDEF"
	run := 0 // k[run:i] is kept as it is, not yet appended
	for i := 0; i < len(k); i++ {
		c := k[i]
		if odata.PathSafe[c] {
			continue
		}
		b = append(b, k[run:i]...)
		if c == '\'' {
			b = append(b, "%27%27"...)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
		}
		run = i + 1
	}
	return append(b, k[run:]...)
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
