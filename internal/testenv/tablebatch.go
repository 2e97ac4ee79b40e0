package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TableBatchSink is test infrastructure: a stand-in for Table Storage that takes entity group
// transactions and keeps nothing, running in a process of its own. It answers a $batch request
// the way the Table service does ("Performing entity group transactions" in the Table service
// REST reference: 202 Accepted, a multipart/mixed batch response holding one changeset response
// with one "HTTP/1.1 204 No Content" part per operation). Every other request goes to the
// upstream it was started with (an Azurite: table creation, a shared breaker's entities), or,
// without one, a table's creation is answered 204 and the rest 501.
//
// It exists for benchmarks that measure what writing to Table Storage costs the writer alone:
// Azurite shares the machine and spends milliseconds of CPU on each request, and a stand-in in
// the measured process would have its own reading counted; Azure's service, remote in
// production, charges neither to dvrouter.
//
// A request it cannot read (no multipart boundary, no changeset, an operation that is not a
// PUT of one entity) is answered 400, so a writer that breaks the format fails loudly.
type TableBatchSink struct {
	url, account string
	cmd          *exec.Cmd
	stdin        io.Closer
	exited       chan struct{}
}

var sinkProgram program

// BuildTableBatchSink builds the stand-in's program (internal/testenv/cmd/tablesink) once per
// test binary run and returns its path.
func BuildTableBatchSink() (string, error) {
	path, err := sinkProgram.build("tablesink", "./internal/testenv/cmd/tablesink")
	if err != nil {
		return "", fmt.Errorf("build the table stand-in: %w", err)
	}
	return path, nil
}

// StartTableBatchSink starts the stand-in, without an upstream, and stops it when the test ends.
func StartTableBatchSink(t testing.TB) *TableBatchSink { return StartTableBatchSinkTo(t, nil) }

// StartTableBatchSinkTo starts the stand-in in front of upstream (nil: none) and stops it when
// the test ends. Its connection string names upstream's account, so that requests it passes on
// are signed for it.
func StartTableBatchSinkTo(t testing.TB, upstream *Azurite) *TableBatchSink {
	t.Helper()
	bin, err := BuildTableBatchSink()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-listen", "127.0.0.1:0", "-exit-with-stdin"}
	if upstream != nil {
		args = append(args, "-upstream", fmt.Sprintf("http://127.0.0.1:%d", upstream.Port()))
	}
	s, err := startSink(bin, args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func startSink(bin string, args []string) (*TableBatchSink, error) {
	cmd := exec.Command(bin, args...)
	// The stand-in exits when its stdin closes: when Stop closes it, or when this process
	// dies without calling Stop.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr processOutput
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the table stand-in: %w", err)
	}
	s := &TableBatchSink{account: devAccountName, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(s.exited) }()
	select {
	case line, ok := <-lines:
		if u, found := strings.CutPrefix(line, "listening "); ok && found {
			s.url = u
			return s, nil
		}
	case <-time.After(10 * time.Second):
	}
	s.Stop()
	return nil, fmt.Errorf("the table stand-in did not start: %s", stderr.String())
}

// Stop ends the stand-in's process and waits for it.
func (s *TableBatchSink) Stop() {
	_ = s.stdin.Close()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// ConnectionString is a connection string for the stand-in, with the development account (the
// stand-in checks that a request is signed, not the signature).
func (s *TableBatchSink) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + s.account +
		";AccountKey=" + devAccountKey +
		";TableEndpoint=" + s.url + "/" + s.account + ";"
}

// CPUTime is the user and system CPU time the stand-in's process has used so far (Linux).
func (s *TableBatchSink) CPUTime() (time.Duration, error) { return processCPUTime(s.cmd.Process.Pid) }

// Counts are the transactions the stand-in took and the entities they held.
func (s *TableBatchSink) Counts() (batches, operations int64, err error) {
	resp, err := http.Get(s.url + sinkStatsPath)
	if err != nil {
		return 0, 0, fmt.Errorf("table stand-in counts: %w", err)
	}
	defer resp.Body.Close()
	if _, err := fmt.Fscan(resp.Body, &batches, &operations); err != nil {
		return 0, 0, fmt.Errorf("table stand-in counts: %w", err)
	}
	return batches, operations, nil
}

// sinkStatsPath answers "<batches> <operations>".
const sinkStatsPath = "/_tablesink/counts"

// TableBatchHandler is the stand-in's HTTP handler (internal/testenv/cmd/tablesink serves it),
// passing what is not a transaction to upstream, when not nil.
func TableBatchHandler(upstream *url.URL) http.Handler {
	h := &sinkHandler{}
	if upstream != nil {
		h.upstream = httputil.NewSingleHostReverseProxy(upstream)
	}
	return h
}

type sinkHandler struct {
	batches, operations atomic.Int64
	upstream            http.Handler
}

func (s *sinkHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == sinkStatsPath {
		fmt.Fprintf(w, "%d %d\n", s.batches.Load(), s.operations.Load())
		return
	}
	// SharedKey (dvrouter's batch writer) or SharedKeyLite (the SDK's table client), of any
	// account: the stand-in checks that a request is signed, not the signature.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "SharedKey") || !strings.Contains(auth, ":") {
		http.Error(w, "unsigned request", http.StatusForbidden)
		return
	}
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/$batch"):
		s.batch(w, r)
	case s.upstream != nil:
		s.upstream.ServeHTTP(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Tables"):
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent) // created (Prefer: return-no-content)
	default:
		http.Error(w, "the stand-in without an upstream takes only table creation and $batch", http.StatusNotImplemented)
	}
}

var sinkBodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *sinkHandler) batch(w http.ResponseWriter, r *http.Request) {
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
