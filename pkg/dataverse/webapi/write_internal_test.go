package webapi

import (
	"encoding/json"
	"fmt"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
)

// Segment writes what url.PathEscape of the OData literal writes, the single quote kept.
func TestSegment_EscapesAsPathEscape(t *testing.T) {
	for _, v := range []any{"plain", "O'Neil", "a/b?c;d,e f#g%h", "Zoë ü 日本", "$&+:=@~-_.", "\x00\x7f", true, 42, int64(-7), 1.5, json.Number("1e3")} {
		lit, err := Literal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := "k=" + strings.ReplaceAll(url.PathEscape(lit), "%27", "'")
		if got, err := (Key{{Column: "k", Value: v}}).Segment(); err != nil || got != want {
			t.Errorf("%#v: %q, %v; want %q", v, got, err, want)
		}
	}
}

func cannedBatchAnswer(statuses ...string) string {
	var b strings.Builder
	b.WriteString("--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n")
	for i, s := range statuses {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nHTTP/1.1 " + s + "\r\nOData-Version: 4.0\r\n\r\n")
	}
	b.WriteString("\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n")
	return b.String()
}

// carriedOut says yes only to a change set answer with exactly one 2xx per write; anything else
// is read the long way, which finds the error.
func TestCarriedOut_OnlyEveryWriteDone(t *testing.T) {
	const ct = "multipart/mixed; boundary=batchresponse_1"
	cases := []struct {
		name, body, ct string
		n              int
		want           bool
	}{
		{"three 204s", cannedBatchAnswer("204 No Content", "204 No Content", "200 OK"), ct, 3, true},
		{"one short", cannedBatchAnswer("204 No Content", "204 No Content"), ct, 3, false},
		{"one more", cannedBatchAnswer("204 No Content", "204 No Content"), ct, 1, false},
		{"a 412", cannedBatchAnswer("204 No Content", "412 Precondition Failed"), ct, 2, false},
		{"other boundary", cannedBatchAnswer("204 No Content"), "multipart/mixed; boundary=x", 1, false},
		{"single error part", "--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n{}\r\n--batchresponse_1--\r\n", ct, 1, false},
		{"not a status", strings.Replace(cannedBatchAnswer("204 No Content"), "HTTP/1.1 204", "HTTP/1.1 2xx", 1), ct, 1, false},
	}
	for _, c := range cases {
		if got := carriedOut([]byte(c.body), c.ct, c.n); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// A batch body goes back to the pool only when Batch is done and every reader handed to the
// transport has been written; a reader never written keeps it out for good.
func TestBatchBuffer_ReleasedOnlyWhenNothingCanReadIt(t *testing.T) {
	released := func(b *batchBuffer) bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.buf == nil
	}
	cases := []struct {
		name  string
		steps string // r: a reader handed out, w: a write reported, f: Batch done
		want  bool
	}{
		{"written, then done", "rwf", true},
		{"done, then written (the answer came first)", "rfw", true},
		{"a retry, both written", "rwrwf", true},
		{"a retry, the first written late", "rrwfw", true},
		{"done with a write outstanding", "rrwf", false},
		{"a reader never written", "rf", false},
		{"nothing sent", "f", true},
		{"a write with no reader", "wrwf", false},
		{"written, not done", "rw", false},
	}
	for _, c := range cases {
		b := newBatchBuffer()
		for _, s := range c.steps {
			switch s {
			case 'r':
				if _, err := b.reader(); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
			case 'w':
				b.wrote(httptrace.WroteRequestInfo{})
			case 'f':
				b.finish()
			}
		}
		if got := released(b); got != c.want {
			t.Errorf("%s: released %v, want %v", c.name, got, c.want)
		}
	}
}

// The two parts of a $batch that are dvrouter's own CPU, apart from net/http: writing the body of
// 100 upserts and recognizing the answer that every write was carried out (the answer of
// BenchmarkDataverseBatch100Canned, some 39 KB).
func BenchmarkBatchBody(b *testing.B) {
	e := newEnvironment("http://127.0.0.1:40000", &Client{opts: Options{Concurrency: 1}})
	e.tables["contact"] = &tableInfo{entitySet: "contacts", primaryID: "contactid"}
	writes := make([]Write, 100)
	for i := range writes {
		writes[i] = Write{Table: "contact", Key: Key{{Column: "emailaddress1", Value: fmt.Sprintf("c%d@example.com", i)}},
			Body: fmt.Appendf(nil, `{"firstname": "First %d", "lastname": "Last %d"}`, i, i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		buf := newBatchBuffer()
		if _, err := e.batchBody(b.Context(), buf, writes); err != nil {
			b.Fatal(err)
		}
		buf.finish()
	}
}

func BenchmarkCarriedOut(b *testing.B) {
	const entity = "http://127.0.0.1:40000/api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)"
	var a strings.Builder
	a.WriteString("--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\nContent-Type: multipart/mixed; boundary=changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc\r\n\r\n")
	for i := range 100 {
		fmt.Fprintf(&a, "--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n"+
			"HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nLocation: %s\r\nOData-EntityId: %s\r\n\r\n\r\n", i+1, entity, entity)
	}
	a.WriteString("--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc--\r\n--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f--\r\n")
	data := []byte(a.String())
	b.ReportAllocs()
	for b.Loop() {
		if !carriedOut(data, "multipart/mixed; boundary=batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f", 100) {
			b.Fatal("not recognized")
		}
	}
}
