package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/route"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// The two benchmarks below run side by side in one run; the direct webhook path must keep at
// least 70% of the bare forwarder's throughput (BareForward ns/op / WebhookDirect ns/op):
//
//	go test -p 1 -run '^$' -bench 'WebhookDirect|BareForward' -benchmem -count 5 ./handlers
//
// Each has two sub-benchmarks, compared like with like:
//   - loopback: the event is POSTed to the handler served on a loopback HTTP server, as
//     Dataverse would, so each side is a whole forwarding service;
//   - inprocess: ServeHTTP is called with an httptest.ResponseRecorder, so neither side pays
//     for the ingress connection and only the handlers' own costs are compared.
//
// Both sides POST to the same kind of loopback consumer over a real HTTP connection, one
// request at a time, and run in this process: allocs/op counts the consumer's allocations too.

// benchConsumer reads and discards what it gets, and answers 200.
func benchConsumer(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// benchBody is the project's ~5 KB Update of an opportunity.
func benchBody(tb testing.TB) []byte {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// distinctBodies are n copies of body, each with an OperationId, RequestId and CorrelationId
// of its own (of the same length, so each decodes at the same cost): in production no two
// events share an id, and the delivery journal's copies of them spread over its partitions.
func distinctBodies(tb testing.TB, body []byte, n int) [][]byte {
	const operation, correlation = "7f8a9b0c-1d2e-4f3a-8b4c-6d7e8f9a0b1c", "0f6b2c3d-8e9a-4b1c-9d2e-3f4a5b6c7d8e"
	if !bytes.Contains(body, []byte(operation)) || !bytes.Contains(body, []byte(correlation)) {
		tb.Fatal("the bench body has lost the ids distinctBodies replaces")
	}
	out := make([][]byte, n)
	for i := range out {
		suffix := fmt.Sprintf("%012x", i)
		b := bytes.ReplaceAll(body, []byte(operation), []byte(operation[:24]+suffix))
		out[i] = bytes.ReplaceAll(b, []byte(correlation), []byte(correlation[:24]+suffix))
	}
	return out
}

// serveBench runs the loopback and inprocess sub-benchmarks of h with body.
func serveBench(b *testing.B, h http.Handler, body []byte) { serveBenchBodies(b, h, [][]byte{body}) }

// serveBenchBodies is serveBench sending bodies in turn.
func serveBenchBodies(b *testing.B, h http.Handler, bodies [][]byte) {
	serveBenchMetered(b, h, bodies, cpuMeter{})
}

// cpuMeter reports CPU time per request next to ns/op: this process's (cpu-ns/op, every
// goroutine, background writers included) and, when az is set, Azurite's (azurite-cpu-ns/op),
// which ns/op feels on a shared machine but the process's own count leaves out. settle, when
// set, runs inside the measurement after the last request: the background work the requests
// left behind (a journal's flush) is theirs.
type cpuMeter struct {
	az     *testenv.Azurite
	settle func()
	// store, when set, is a stand-in's process whose CPU is reported as <storeName>-cpu-ns/op.
	store     interface{ CPUTime() (time.Duration, error) }
	storeName string
}

type cpuMark struct{ self, az, store time.Duration }

func (m cpuMeter) mark(b *testing.B) cpuMark {
	self, err := testenv.SelfCPUTime()
	if err != nil {
		b.Fatal(err)
	}
	mk := cpuMark{self: self}
	if m.az != nil {
		if mk.az, err = m.az.CPUTime(); err != nil {
			b.Fatal(err)
		}
	}
	if m.store != nil {
		if mk.store, err = m.store.CPUTime(); err != nil {
			b.Fatal(err)
		}
	}
	return mk
}

func (m cpuMeter) report(b *testing.B, start cpuMark) {
	if m.settle != nil {
		m.settle()
	}
	end := m.mark(b)
	b.ReportMetric(float64(end.self-start.self)/float64(b.N), "cpu-ns/op")
	if m.az != nil {
		b.ReportMetric(float64(end.az-start.az)/float64(b.N), "azurite-cpu-ns/op")
	}
	if m.store != nil {
		b.ReportMetric(float64(end.store-start.store)/float64(b.N), m.storeName+"-cpu-ns/op")
	}
}

func serveBenchMetered(b *testing.B, h http.Handler, bodies [][]byte, m cpuMeter) {
	b.Run("loopback", func(b *testing.B) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := srv.Client()
		b.SetBytes(int64(len(bodies[0])))
		b.ReportAllocs()
		start := m.mark(b)
		for i := 0; b.Loop(); i++ {
			body := bodies[i%len(bodies)]
			resp, err := client.Post(srv.URL+"/api/dataverse/webhook", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		m.report(b, start)
	})
	b.Run("inprocess", func(b *testing.B) {
		b.SetBytes(int64(len(bodies[0])))
		b.ReportAllocs()
		start := m.mark(b)
		for i := 0; b.Loop(); i++ {
			body := bodies[i%len(bodies)]
			req := httptest.NewRequest(http.MethodPost, "/api/dataverse/webhook", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
		m.report(b, start)
	})
}

// BenchmarkWebhookDirect is the whole direct-mode webhook: bounds, decode, match one route,
// deliver a `row` event to one HTTP consumer through its breaker and retry policy, answer.
// It logs at info (the default level) to io.Discard, so building the log lines is counted.
func BenchmarkWebhookDirect(b *testing.B) { webhookDirect(b, nil) }

// BenchmarkWebhookDirectBreaker is BenchmarkWebhookDirect with the consumer's breaker this
// instance's own ("local") and shared through Table Storage ("shared", syncing every second in
// the background as in production). Azurite runs for both, so that both pay alike for its
// process on the machine. The shared breaker must add under 5%:
//
//	go test -p 1 -run '^$' -bench 'WebhookDirectBreaker' -benchmem -count 5 ./handlers
func BenchmarkWebhookDirectBreaker(b *testing.B) {
	az := testenv.StartAzurite(b)
	b.Run("local", func(b *testing.B) { webhookDirect(b, nil) })
	b.Run("shared", func(b *testing.B) {
		store, err := breaker.OpenStore(breaker.StoreConfig{ConnectionString: az.ConnectionString(), Table: "BenchBreakers"})
		if err != nil {
			b.Fatal(err)
		}
		webhookDirect(b, breaker.NewShared(store, breaker.SharedOptions{Logger: zerolog.Nop()}))
	})
}

// BenchmarkWebhookDirectJournal is BenchmarkWebhookDirect without ("off") and with ("on") the
// delivery journal writing every outcome to Azurite in the background, in the same run. Azurite
// runs for every sub-benchmark so that each pays alike for its process on the machine, but it
// shares the machine's cores and spends milliseconds of CPU on each request, which Table
// Storage, remote in production, charges nothing of to dvrouter: "on" here is slower by
// Azurite's work too. BenchmarkWebhookDirectJournalStandin is the same comparison with the
// journal writing to a stand-in that costs next to nothing; that one holds the journal to its
// 10%. "add-only" is the journal's Add with nothing written behind it: what delivery itself pays.
//
//	go test -p 1 -run '^$' -bench 'WebhookDirectJournal' -benchmem -count 3 ./handlers
//
// Besides ns/op each reports cpu-ns/op, this process's CPU per request ("on": the journal's
// flush of those requests included), and azurite-cpu-ns/op, the emulator's.
func BenchmarkWebhookDirectJournal(b *testing.B) {
	az, err := testenv.LaunchAzurite()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(az.Stop)
	meter := cpuMeter{az: az}
	bodies := distinctBodies(b, benchBody(b), 4096)
	b.Run("off", func(b *testing.B) { serveBenchMetered(b, directHandler(b, nil, nil), bodies, meter) })
	b.Run("on", func(b *testing.B) { journalOn(b, az.ConnectionString(), bodies, meter) })
	b.Run("add-only", func(b *testing.B) {
		serveBenchMetered(b, directHandler(b, nil, discardJournal{}), bodies, meter)
	})
}

// BenchmarkWebhookDirectJournalStandin is BenchmarkWebhookDirectJournal with the journal writing
// to testenv.TableBatchSink, a stand-in for Table Storage in a process of its own that answers
// transactions as the service does and keeps nothing, and no Azurite on the machine: what the
// journal costs dvrouter itself (cpu-ns/op counts this process only; standin-cpu-ns/op is the
// stand-in's, Table Storage's work in production). "off" and "on" alternate, journalRounds
// times, so that a machine whose load drifts weighs on both alike; compare each round's pair
// and their medians (-count repeats each sub-benchmark in place: it does not alternate). "on"
// must stay within 10% of "off":
//
//	go test -p 1 -run '^$' -bench 'WebhookDirectJournalStandin' -benchmem -benchtime 4000x ./handlers
func BenchmarkWebhookDirectJournalStandin(b *testing.B) {
	sink := testenv.StartTableBatchSink(b)
	meter := cpuMeter{store: sink, storeName: "standin"}
	bodies := distinctBodies(b, benchBody(b), 4096)
	for r := 1; r <= journalRounds; r++ {
		b.Run(fmt.Sprintf("round%d", r), func(b *testing.B) {
			b.Run("off", func(b *testing.B) { serveBenchMetered(b, directHandler(b, nil, nil), bodies, meter) })
			b.Run("on", func(b *testing.B) { journalOn(b, sink.ConnectionString(), bodies, meter) })
		})
	}
	if batches, ops, err := sink.Counts(); err == nil {
		b.Logf("stand-in: %d transactions, %d entities", batches, ops)
	}
}

// journalRounds is how many times BenchmarkWebhookDirectJournalStandin alternates its sides.
const journalRounds = 5

// journalOn serves bodies through the direct handler with a journal writing to the tables of
// conn. Every event has ids of its own, as in production: the journal's index rows spread over
// their partitions rather than pile into one.
func journalOn(b *testing.B, conn string, bodies [][]byte, meter cpuMeter) {
	j, err := journal.Open(context.Background(), journal.Config{
		Account: tables.Account{ConnectionString: conn}, Table: "BenchJournal", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		j.Close(context.Background())
		b.Logf("journal: %+v", j.Stats())
	})
	meter.settle = func() {
		// A journal that cannot keep up loses entries (counted): the run says so rather than
		// fail, and its CPU figures then leave out what was still buffered.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := j.Flush(ctx); err != nil {
			b.Logf("journal flush: %v (%+v)", err, j.Stats())
		}
	}
	serveBenchMetered(b, directHandler(b, nil, j), bodies, meter)
}

// BenchmarkWebhookDirectDeployed is BenchmarkWebhookDirect as deployed: the delivery journal
// on and the consumer's breaker shared, both in Table Storage, as the Function App's settings
// configure them, and every event with ids of its own (see distinctBodies). It is the direct path
// whose CPU per request `make cost` holds against the bare forwarder's. The tables are those
// DVROUTER_BENCH_TABLES names (a connection string: scripts/cost.sh starts them outside the
// process it measures, so that the store's CPU, which is Azure's in production, is not counted),
// else an Azurite behind testenv.TableBatchSink that this process starts: the journal's
// transactions go to the stand-in, the breaker's entities and the tables' creation on to
// Azurite. Azurite is far slower than Table Storage: the
// journal's calls get a minute rather than their 10 s, so that every entry is written, and the
// run ends when the journal has written them all (its work is part of the cost).
//
//	go test -p 1 -run '^$' -bench 'WebhookDirectDeployed' -benchtime 2000x -benchmem ./handlers
func BenchmarkWebhookDirectDeployed(b *testing.B) {
	tablesConn := os.Getenv("DVROUTER_BENCH_TABLES")
	if tablesConn == "" {
		tablesConn = testenv.StartTableBatchSinkTo(b, testenv.StartAzurite(b)).ConnectionString()
	}
	store, err := breaker.OpenStore(breaker.StoreConfig{ConnectionString: tablesConn, Table: "BenchBreakers"})
	if err != nil {
		b.Fatal(err)
	}
	// A table of this process's own, dropped at the end: Azurite slows down as a table grows.
	account := tables.Account{ConnectionString: tablesConn}
	table := fmt.Sprintf("BenchJournal%d", os.Getpid())
	j, err := journal.Open(context.Background(), journal.Config{
		Account: account, Table: table, CallTimeout: time.Minute, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		j.Close(context.Background())
		if st := j.Stats(); st.Dropped > 0 || st.Lost > 0 {
			b.Errorf("journal: %+v: entries not written are work not counted", st)
		}
		if svc, err := account.Service(nil); err == nil {
			_, _ = svc.DeleteTable(context.Background(), table, nil)
		}
	})
	h := directHandler(b, breaker.NewShared(store, breaker.SharedOptions{Logger: zerolog.Nop()}), j)
	serveBenchBodies(b, h, distinctBodies(b, benchBody(b), 4096))
}

// discardJournal takes entries and keeps none.
type discardJournal struct{}

func (discardJournal) Add(journal.Entry) {}

func webhookDirect(b *testing.B, shared *breaker.Shared) { webhookDirectWith(b, shared, nil) }

func webhookDirectWith(b *testing.B, shared *breaker.Shared, jnl dispatch.Journal) {
	serveBench(b, directHandler(b, shared, jnl), benchBody(b))
}

// directHandler is the direct-mode handler of BenchmarkWebhookDirect: one route, one `row`
// HTTP consumer on loopback, logging at info to io.Discard, and the given journal (nil: none).
func directHandler(b testing.TB, shared *breaker.Shared, jnl dispatch.Journal) http.Handler {
	consumer := benchConsumer(b)
	settings, err := config.LoadSettings(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	routesYAML := "consumers:\n  - name: erp\n    type: http\n    format: row\n    url: " + consumer.URL + "/events\n" +
		"routes:\n  - name: opportunities\n    table: opportunity\n    messages: [Update]\n    consumers: [erp]\n"
	file, err := config.LoadRoutesBytes("routes.yaml", []byte(routesYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	log := zerolog.New(io.Discard).Level(zerolog.InfoLevel)
	routes, err := route.Compile(file, route.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	// No failure store: the consumer never fails here, so nothing is ever recorded.
	deliverer, err := deliver.New(file.Consumers, nil, deliver.Options{Logger: log, Breakers: shared})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = deliverer.Close(context.Background()) })
	if shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		shared.Start(ctx)
		cancel()
		b.Cleanup(func() { shared.Close(context.Background()) })
		if st := deliverer.Breakers()[0]; !st.Shared {
			b.Fatalf("breaker not shared: %+v", st)
		}
	}
	d := &dispatch.Dispatcher{Routes: routes, Deliver: deliverer, Log: log}
	d.Journal = jnl
	return handlers.New(handlers.Deps{
		Settings:   settings,
		Dispatcher: d,
		Log:        log,
	})
}

// BenchmarkBareForward is the floor: a handler that only reads the body and POSTs it to the
// same kind of consumer, then answers 200.
func BenchmarkBareForward(b *testing.B) {
	consumer := benchConsumer(b)
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Second}
	b.Cleanup(client.CloseIdleConnections)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := client.Post(consumer.URL+"/events", "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	})
	serveBench(b, h, benchBody(b))
}

// maxDirectAllocs bounds the allocations of one direct-mode event in process (decode, match,
// one `row` delivery over loopback, answer), the consumer's and the HTTP client's included: it
// is `make cost`'s WebhookDirect/inprocess allocs/req plus about 10%. Allocation counts are
// deterministic, so a change that crosses it has given back work saved on the hot path. When a
// change needs more on purpose, measure with `make cost` (or this test's log line) and set the
// bound to the new count plus 10%, saying why in the commit.
const maxDirectAllocs = 158

func TestWebhookDirect_AllocationsPerEventBounded(t *testing.T) {
	h := directHandler(t, nil, nil)
	body := benchBody(t)
	serve := func() {
		req := httptest.NewRequest(http.MethodPost, "/api/dataverse/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	serve() // the consumer's connection opened outside the count
	allocs := testing.AllocsPerRun(200, serve)
	t.Logf("%.0f allocations per event (bound %d)", allocs, maxDirectAllocs)
	if allocs > maxDirectAllocs {
		t.Errorf("the direct webhook path makes %.0f allocations per event, over the bound of %d: "+
			"find what a change added (go test -run ^$ -bench WebhookDirect/inprocess -memprofile), "+
			"or raise maxDirectAllocs in handlers/bench_test.go if it is meant", allocs, maxDirectAllocs)
	}
}
