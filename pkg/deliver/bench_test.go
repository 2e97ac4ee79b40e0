package deliver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
)

// benchEvent is the test event grown to about 5 KB, in both its raw and its normalized form.
func benchEvent() *dataverse.Event {
	ev := testEvent()
	for i := range 40 {
		ev.Row[fmt.Sprintf("new_field%02d", i)] = strings.Repeat("x", 80)
	}
	ev.Raw = append(ev.Raw[:len(ev.Raw)-1], fmt.Sprintf(`,"Padding":"%s"}`, strings.Repeat("y", 4700))...)
	return ev
}

// sink is a consumer that only reads and discards what it gets: the same one for both benchmarks.
func sink(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkDeliverHTTP is one event delivered to one `row` HTTP consumer on loopback: encoding,
// breaker, retry policy, concurrency limit and request, and the Outcome.
func BenchmarkDeliverHTTP(b *testing.B) { benchmarkDeliver(b, deliver.FormatRow) }

// BenchmarkDeliverHTTPRaw is BenchmarkDeliverHTTP without the encoding: the cost of the policy
// alone.
func BenchmarkDeliverHTTPRaw(b *testing.B) { benchmarkDeliver(b, deliver.FormatRaw) }

func benchmarkDeliver(b *testing.B, format string) {
	srv := sink(b)
	c := consumerConfig("erp", srv.URL)
	c.Format = format
	d, err := deliver.New([]config.Consumer{c}, &memRecorder{}, deliver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) })
	ev := benchEvent()
	targets := []deliver.Target{target("erp")}
	body, _ := json.Marshal(ev)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := d.Deliver(context.Background(), ev, targets)
		if err != nil || len(out.Delivered) != 1 {
			b.Fatalf("Deliver = %+v, %v", out, err)
		}
	}
}

// BenchmarkBarePost is the floor BenchmarkDeliverHTTP is compared with: a plain http.Post of
// the same bytes to the same kind of consumer.
func BenchmarkBarePost(b *testing.B) {
	srv := sink(b)
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	b.Cleanup(client.CloseIdleConnections)
	body, err := json.Marshal(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
