package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TableBatchSink is test infrastructure: a loopback stand-in for Table Storage that takes
// entity group transactions and keeps nothing. It answers a table's creation, and a $batch
// request the way the Table service does ("Performing entity group transactions" in the Table
// service REST reference: 202 Accepted, a multipart/mixed batch response holding one changeset
// response with one "HTTP/1.1 204 No Content" part per operation). It exists for benchmarks
// that measure what writing to Table Storage costs the writer alone: Azurite shares the
// machine and spends milliseconds of CPU on each request, which Azure's service, remote in
// production, does not charge to dvrouter.
//
// A request it cannot read (no multipart boundary, no changeset, an operation that is not a
// PUT of one entity) is answered 400, so a writer that breaks the format fails loudly.
type TableBatchSink struct {
	srv                 *httptest.Server
	batches, operations atomic.Int64
}

// StartTableBatchSink starts the stand-in on a loopback port and stops it when the test ends.
func StartTableBatchSink(t testing.TB) *TableBatchSink {
	s := &TableBatchSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// ConnectionString is a connection string for the stand-in, with the development account (the
// stand-in checks that a request is signed, not the signature).
func (s *TableBatchSink) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + devAccountName +
		";AccountKey=" + devAccountKey +
		";TableEndpoint=" + s.srv.URL + "/" + devAccountName + ";"
}

// Batches and Operations count the transactions taken and the entities they held.
func (s *TableBatchSink) Batches() int64    { return s.batches.Load() }
func (s *TableBatchSink) Operations() int64 { return s.operations.Load() }

func (s *TableBatchSink) serve(w http.ResponseWriter, r *http.Request) {
	// SharedKey (dvrouter's batch writer) or SharedKeyLite (the SDK's table client).
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "SharedKey") || !strings.Contains(auth, " "+devAccountName+":") {
		http.Error(w, "unsigned request", http.StatusForbidden)
		return
	}
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Tables"):
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent) // created (Prefer: return-no-content)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/$batch"):
		s.batch(w, r)
	default:
		http.Error(w, "the stand-in takes only table creation and $batch", http.StatusNotImplemented)
	}
}

var sinkBodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *TableBatchSink) batch(w http.ResponseWriter, r *http.Request) {
	// The stand-in runs in the process a benchmark measures: it reads into a reused buffer and
	// answers from a prepared part, so that what it costs stays small next to the writer's.
	body := sinkBodies.Get().(*bytes.Buffer)
	defer sinkBodies.Put(body)
	body.Reset()
	if _, err := body.ReadFrom(r.Body); err != nil {
		return
	}
	ops, err := changesetOperations(r.Header.Get("Content-Type"), body.Bytes())
	if err != nil {
		http.Error(w, "batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.batches.Add(1)
	s.operations.Add(int64(ops))
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+sinkBatch)
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, sinkHead)
	for range ops {
		_, _ = io.WriteString(w, sinkPart)
	}
	_, _ = io.WriteString(w, sinkTail)
}

// The answer's pieces: the service's own boundaries are "batchresponse_<uuid>" and
// "changesetresponse_<uuid>".
const (
	sinkBatch     = "batchresponse_7a1f0e52-3c4d-4b6e-9f80-1d2c3b4a5e6f"
	sinkChangeset = "changesetresponse_0b9c8d7e-6f5a-4e3d-8c2b-1a0f9e8d7c6b"
	sinkHead      = "--" + sinkBatch + "\r\nContent-Type: multipart/mixed; boundary=" + sinkChangeset + "\r\n\r\n"
	sinkPart      = "--" + sinkChangeset + "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n" +
		"Preference-Applied: return-no-content\r\nDataServiceVersion: 3.0;\r\n\r\n"
	sinkTail = "--" + sinkChangeset + "--\r\n--" + sinkBatch + "--\r\n"
)

// changesetOperations counts the operations of a batch's one changeset, each of which must be
// a PUT of one entity.
func changesetOperations(contentType string, body []byte) (int, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return 0, fmt.Errorf("content type %q names no boundary", contentType)
	}
	rest, ok := bytes.CutPrefix(body, []byte("--"+params["boundary"]+"\r\n"))
	if !ok {
		return 0, errors.New("the body does not start with its boundary")
	}
	_, cs, ok := bytes.Cut(rest, []byte("boundary="))
	end := bytes.IndexByte(cs, '\r')
	if !ok || end <= 0 {
		return 0, errors.New("no changeset")
	}
	sep := append([]byte("--"), cs[:end]...)
	cs = cs[end:]
	ops := 0
	for {
		i := bytes.Index(cs, sep)
		if i < 0 {
			return 0, errors.New("the changeset is not closed")
		}
		cs = cs[i+len(sep):]
		if bytes.HasPrefix(cs, []byte("--")) {
			return ops, nil
		}
		_, req, _ := bytes.Cut(cs, []byte("\r\n\r\n"))
		if !bytes.HasPrefix(req, []byte("PUT ")) || !bytes.Contains(req[:min(len(req), 2048)], []byte("(PartitionKey='")) {
			return 0, fmt.Errorf("operation %d is not a PUT of an entity", ops)
		}
		if ops++; ops > 100 {
			return 0, errors.New("more than 100 operations: a changeset holds at most 100")
		}
	}
}
