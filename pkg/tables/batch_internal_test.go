package tables

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// An entity's address is written as the SDK writes it: quotes doubled, then url.PathEscape.
func TestAppendKeyInURL_IsPathEscapeOfTheODataLiteral(t *testing.T) {
	var all strings.Builder
	for c := range 256 {
		all.WriteByte(byte(c))
	}
	for _, k := range []string{"", "plain", "c|erp|2024072510|3", "ev-'1'|a b%7C", "ünï/co?de#", all.String()} {
		want := url.PathEscape(strings.ReplaceAll(k, "'", "''"))
		if got := appendKeyInURL(nil, k); string(got) != want {
			t.Errorf("key %q: %q, want %q", k, got, want)
		}
		if got := appendKeyInURL([]byte("x"), []byte(k)); string(got) != "x"+want {
			t.Errorf("key %q as bytes: %q, want %q", k, got, "x"+want)
		}
	}
}

// A batch's buffer goes back to the free list only when every Submit of it was answered 202: a
// refusal (a 404 for a table not yet created, a 403) may come while the transport is still
// sending the body, so a resubmitted batch, even one then accepted, is not reused.
func TestBatch_BufferReusedOnlyWhenEverySubmitWasAccepted(t *testing.T) {
	var refuse atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if refuse.Load() {
			w.Header().Set("x-ms-error-code", "TableNotFound")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US","value":"The table specified does not exist."}}}`)
			return
		}
		w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_1")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n"+
			"--changesetresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"+
			"HTTP/1.1 204 No Content\r\n\r\n\r\n--changesetresponse_1--\r\n--batchresponse_1--\r\n")
	}))
	defer srv.Close()
	acct := Account{ConnectionString: "TableEndpoint=" + srv.URL + "/acct;SharedAccessSignature=sv=2019-02-02&ss=t&sig=c2ln"}
	w, err := acct.BatchWriter("T", &azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	submit := func(refused ...bool) {
		t.Helper()
		b := w.NewBatch("p")
		b.Put([]byte("r"), []byte(`{"PartitionKey":"p","RowKey":"r"}`))
		for _, r := range refused {
			refuse.Store(r)
			if err := w.Submit(context.Background(), b); (err != nil) != r {
				t.Fatalf("refused %v: error %v", r, err)
			}
		}
		b.Release()
	}
	submit(false)
	if len(w.free) != 1 {
		t.Fatalf("accepted batch: %d buffers free, want 1", len(w.free))
	}
	<-w.free
	submit(true, false)
	if len(w.free) != 0 {
		t.Errorf("batch refused, then accepted: %d buffers free, want 0", len(w.free))
	}
	submit(true)
	if len(w.free) != 0 {
		t.Errorf("refused batch: %d buffers free, want 0", len(w.free))
	}
}
