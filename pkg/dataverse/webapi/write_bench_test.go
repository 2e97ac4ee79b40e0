package webapi_test

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
)

// Two pairs: a $batch of 100 upserts against one upsert, each a round trip on loopback.
//
//	go test -run '^$' -bench 'BenchmarkDataverse(Upsert|Batch100)(Canned)?$' -benchtime 2s ./pkg/dataverse/webapi
//
// (a Batch100 op is the whole batch), and the canned pair interleaved in one benchmark,
// BenchmarkDataverseBatchVsUpsertCanned.
//
//   - Upsert, Batch100: against the test stand-in, which parses every part, decodes every body
//     and updates its row store, all on the same two cores as dvrouter. Its per-write work is
//     what Dataverse does on its own machines.
//   - UpsertCanned, Batch100Canned: against a loopback server that reads the request and
//     answers what Dataverse answers when every write was carried out (a 204; a change set
//     response of 100 parts, 204 each, as "Execute batch operations using the Web API" shows).
//     What is left is dvrouter's side: building the request, sending it, reading the answer.
//     The batch target (under 2x one upsert) is judged on this pair.

func benchWrites() []webapi.Write {
	writes := make([]webapi.Write, 100)
	for i := range writes {
		writes[i] = upsert(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf(`{"firstname": "First %d", "lastname": "Last %d"}`, i, i), webapi.CreateOrUpdate)
	}
	return writes
}

func standInWrites(b *testing.B) (*webapi.Environment, []webapi.Write) {
	_, env := writable(b)
	writes := benchWrites()
	if err := env.Batch(b.Context(), writes); err != nil { // creates the rows, reads the table's definition
		b.Fatal(err)
	}
	return env, writes
}

func benchUpsert(b *testing.B, env *webapi.Environment, writes []webapi.Write) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := env.Apply(b.Context(), writes[i%len(writes)]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBatch(b *testing.B, env *webapi.Environment, writes []webapi.Write) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := env.Batch(b.Context(), writes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDataverseUpsert(b *testing.B) {
	env, writes := standInWrites(b)
	benchUpsert(b, env, writes)
}

func BenchmarkDataverseBatch100(b *testing.B) {
	env, writes := standInWrites(b)
	benchBatch(b, env, writes)
}

func BenchmarkDataverseUpsertCanned(b *testing.B) {
	env, writes := cannedWrites(b)
	benchUpsert(b, env, writes)
}

func BenchmarkDataverseBatch100Canned(b *testing.B) {
	env, writes := cannedWrites(b)
	benchBatch(b, env, writes)
}

// BenchmarkDataverseBatchVsUpsertCanned is the canned pair interleaved: each op is one upsert then
// one batch of 100, on the same environment, server and connection, each timed on its own. Run
// one after the other, the two benchmarks of the pair see whatever load the machine has at the
// time, and a load that comes or goes between them moves their ratio; interleaved, both see the
// same. It reports the median of each (a median, not a mean: a preempted round trip is the
// machine's, not the client's) and batch/upsert, the target's ratio (under 2).
func BenchmarkDataverseBatchVsUpsertCanned(b *testing.B) {
	env, writes := cannedWrites(b)
	var upserts, batches []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := env.Apply(b.Context(), writes[i%len(writes)]); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := env.Batch(b.Context(), writes); err != nil {
			b.Fatal(err)
		}
		upserts, batches = append(upserts, mid.Sub(start)), append(batches, time.Since(mid))
	}
	up, batch := median(upserts), median(batches)
	b.ReportMetric(float64(up.Nanoseconds())/1e3, "upsert-µs")
	b.ReportMetric(float64(batch.Nanoseconds())/1e3, "batch-µs")
	b.ReportMetric(float64(batch)/float64(up), "batch/upsert")
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// cannedWrites is an environment on a loopback server with Dataverse's answers written out
// beforehand: the table's definition, 204 to an upsert, and to a $batch of 100 the change set
// response carrying a 204 per write.
func cannedWrites(b *testing.B) (*webapi.Environment, []webapi.Write) {
	writes := benchWrites()
	var srv *httptest.Server
	const entity = "/api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)"
	var batchAnswer []byte
	srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer canned" {
			http.Error(rw, "no token", http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		rw.Header().Set("OData-Version", "4.0")
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Attributes"):
			rw.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
			_, _ = io.WriteString(rw, `{"value":[]}`)
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/EntityDefinitions"):
			rw.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
			_, _ = io.WriteString(rw, `{"value":[{"EntitySetName":"contacts","PrimaryIdAttribute":"contactid","MetadataId":"608861bc-50a4-4c5f-a02c-21fe1943e2cf"}]}`)
		case r.Method == http.MethodPatch:
			rw.Header().Set("OData-EntityId", srv.URL+entity)
			rw.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/$batch"):
			if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
				http.Error(rw, "not a batch", http.StatusBadRequest)
				return
			}
			rw.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f")
			rw.Header().Set("Content-Length", strconv.Itoa(len(batchAnswer)))
			_, _ = rw.Write(batchAnswer)
		default:
			http.Error(rw, "not canned", http.StatusNotFound)
		}
	}))
	b.Cleanup(srv.Close)
	var a strings.Builder
	a.WriteString("--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\nContent-Type: multipart/mixed; boundary=changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc\r\n\r\n")
	for i := range writes {
		fmt.Fprintf(&a, "--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n"+
			"HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nLocation: %s%s\r\nOData-EntityId: %s%s\r\n\r\n\r\n", i+1, srv.URL, entity, srv.URL, entity)
	}
	a.WriteString("--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc--\r\n--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f--\r\n")
	batchAnswer = []byte(a.String())

	c, err := webapi.New(map[string]string{orgID: srv.URL}, webapi.Options{Credential: cannedToken{}})
	if err != nil {
		b.Fatal(err)
	}
	env := c.Environment(orgID, "", "")
	if err := env.Batch(b.Context(), writes); err != nil { // reads the table's definition
		b.Fatal(err)
	}
	return env, writes
}

type cannedToken struct{}

func (cannedToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "canned", ExpiresOn: time.Now().Add(time.Hour)}, nil
}
