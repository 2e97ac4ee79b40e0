package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// The console's list page makes one API call for its first page: GET /api/failures?top=50 with
// whatever filters are set. These benchmarks make that call to the real binary over loopback
// with 10,000 pending failures in Azurite, beside the store's own List of the same page (no
// HTTP, no JSON) as the baseline:
//
//	go test -p 1 -run '^$' -bench 'FirstPage' -benchtime 200x -count 3 ./test/console

const benchFailures = 10_000

var bench struct {
	once  sync.Once
	az    *testenv.Azurite
	srv   *dvrouter
	store *failures.Store
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.srv != nil {
		bench.srv.stop()
	}
	if bench.az != nil {
		bench.az.Stop()
	}
	os.Exit(code)
}

// benchFixture starts one in-memory Azurite with 10,000 pending failures (four consumers, two
// tables, over a week) and dvrouter on it, shared by the benchmarks of this run.
func benchFixture(b *testing.B) (*dvrouter, *failures.Store) {
	b.Helper()
	bench.once.Do(func() {
		bin := buildDvrouter(b)
		if bench.az, bench.err = testenv.LaunchAzurite(); bench.err != nil {
			return
		}
		const table = "ConsoleBench"
		bench.store = openStore(b, bench.az, table)
		contact := event(b, "create-contact-sync.json")
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		consumers := []string{"erp", "crm", "ledger", "warehouse"}
		fs := make([]failures.Failure, benchFailures)
		for i := range fs {
			fs[i] = failures.Failure{
				EventID: fmt.Sprintf("evt-%05d", i), Consumer: consumers[i%len(consumers)], Route: "new-contacts",
				Table: []string{"contact", "account"}[i%2], Message: "Create", Kind: failures.KindDelivery, Attempts: 4,
				OccurredAt: start.Add(time.Duration(i) * time.Minute), LastStatusCode: 503,
				LastError: "HTTP 503: the consumer is down for maintenance", Payload: contact,
			}
		}
		recordAll(b, bench.store, fs)
		bench.srv, bench.err = launchDvrouter(bin,
			"DVROUTER_TABLES="+bench.az.ConnectionString(),
			"DVROUTER_FAILURES_TABLE="+table,
			"DVROUTER_ADMIN_KEYS="+adminKeyName+"="+adminKey)
	})
	if bench.err != nil || bench.srv == nil {
		b.Fatalf("bench fixture: %v", bench.err)
	}
	return bench.srv, bench.store
}

// firstPage is what the console asks for on opening the list (no filter) and with a
// consumer and status set.
var firstPages = []struct {
	name  string
	query string
	q     failures.Query
}{
	{"unfiltered", "top=50", failures.Query{Top: 50}},
	{"consumer+status", "consumer=erp&status=pending&top=50", failures.Query{Consumer: "erp", Status: "pending", Top: 50}},
}

func BenchmarkConsoleFirstPage(b *testing.B) {
	srv, _ := benchFixture(b)
	client := &http.Client{Timeout: 30 * time.Second}
	for _, p := range firstPages {
		b.Run(p.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/failures?"+p.query, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("x-functions-key", adminKey)
			req.Header.Set("Accept", "application/json")
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n < 1000 {
					b.Fatalf("GET /api/failures?%s = %d, %d bytes", p.query, resp.StatusCode, n)
				}
			}
		})
	}
}

// BenchmarkStoreListFirstPage is the baseline: the same page from the store, in process.
func BenchmarkStoreListFirstPage(b *testing.B) {
	_, store := benchFixture(b)
	for _, p := range firstPages {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				page, err := store.List(context.Background(), p.q)
				if err != nil || len(page.Items) != 50 {
					b.Fatalf("list: %d items, %v", len(page.Items), err)
				}
			}
		})
	}
}
