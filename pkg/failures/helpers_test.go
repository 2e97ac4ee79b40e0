package failures

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// One in-memory Azurite serves every test that does not stop it; each test gets its own table.
var shared testenv.SharedAzurite

func TestMain(m *testing.M) { shared.Run(m) }

func sharedAzurite(t testing.TB) *testenv.Azurite {
	t.Helper()
	return shared.Get(t)
}

var tableSeq atomic.Int64

// tableName is a fresh table name per call, readable in Azurite's data when debugging.
func tableName(t testing.TB) string {
	var b strings.Builder
	fmt.Fprintf(&b, "T%d", tableSeq.Add(1))
	for _, r := range t.Name() {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()[:min(b.Len(), 63)]
}

// newStore opens a store on a new table of the shared Azurite.
func newStore(t testing.TB) *Store {
	t.Helper()
	return openStore(t, sharedAzurite(t).ConnectionString(), Config{})
}

func openStore(t testing.TB, conn string, cfg Config) *Store {
	t.Helper()
	cfg.ConnectionString, cfg.Table = conn, tableName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// randomBytes is incompressible and the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// eventJSON is a plausible normalized event of about size bytes (compressible, like real ones).
func eventJSON(i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":"evt-%06d","message":"Update","table":"contact","recordId":"%08d-0000-0000-0000-000000000000","row":{`, i, i)
	for n := 0; b.Len() < size-40; n++ {
		fmt.Fprintf(&b, `"new_field%03d":"value %d of record %d",`, n, n*7, i)
	}
	b.WriteString(`"x":1}}`)
	return []byte(b.String())
}

var baseTime = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// deliveryFailure is a failure of event i for consumer, occurring i minutes after baseTime.
func deliveryFailure(i int, consumer string) Failure {
	return Failure{
		EventID:        fmt.Sprintf("evt-%06d", i),
		Consumer:       consumer,
		Route:          "contacts-to-erp",
		Table:          "contact",
		Message:        "Update",
		RecordID:       fmt.Sprintf("%08d-0000-0000-0000-000000000000", i),
		CorrelationID:  fmt.Sprintf("corr-%d", i),
		Kind:           KindDelivery,
		OccurredAt:     baseTime.Add(time.Duration(i) * time.Minute),
		LastError:      "POST https://erp.example/api: 503 Service Unavailable",
		LastStatusCode: 503,
		Payload:        eventJSON(i, 1024),
	}
}
