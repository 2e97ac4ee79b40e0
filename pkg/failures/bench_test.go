package failures

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// BenchmarkRecordFailure and BenchmarkRawTableInsert are compared side by side (same Azurite,
// same ~5 KB event): recording must keep at least 80% of the raw insert throughput.
// BenchmarkRecordVsRawInterleaved measures the ratio directly, both under the same load.
//
//	go test -p 1 -run '^$' -bench 'RecordFailure$|RawTableInsert|Interleaved' -benchtime 3000x -count 3 ./pkg/failures/

var benchPayload = eventJSON(0, 5000)

var benchSeq int

// warmAzurite sends Azurite (node) some traffic first, so that whichever benchmark runs first
// does not pay for its warm-up.
var warmed sync.Once

func warmAzurite(b *testing.B) {
	warmed.Do(func() {
		s := newStore(b)
		for i := range 500 {
			f := deliveryFailure(i, "warmup")
			f.Payload = benchPayload
			if _, err := s.Record(context.Background(), f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRecordFailure records a new (event, consumer) failure per iteration.
func BenchmarkRecordFailure(b *testing.B) { benchRecord(b, benchPayload) }

// BenchmarkRecordFailureIncompressible is the worst case for compression: it costs time and
// saves nothing.
func BenchmarkRecordFailureIncompressible(b *testing.B) {
	benchRecord(b, randomBytes(9, len(benchPayload)))
}

func benchRecord(b *testing.B, payload []byte) {
	s := newStore(b)
	warmAzurite(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		benchSeq++
		f := deliveryFailure(benchSeq, "erp")
		f.Payload = payload
		if _, err := s.Record(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawTableInsert is the baseline: a plain aztables AddEntity of an entity with the
// same columns and the same payload as one binary property.
func BenchmarkRawTableInsert(b *testing.B) {
	benchRawInsert(b, context.Background())
}

// BenchmarkRawTableInsertNoContent is the baseline with the one request option Record uses
// (the service does not echo the entity back), to show what that option alone is worth.
func BenchmarkRawTableInsertNoContent(b *testing.B) {
	benchRawInsert(b, policy.WithHTTPHeader(context.Background(), http.Header{"Prefer": []string{"return-no-content"}}))
}

func benchRawInsert(b *testing.B, ctx context.Context) {
	c := rawClient(b)
	warmAzurite(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := rawInsert(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordVsRawInterleaved alternates one Record and one raw insert, so both see the
// same load on a shared machine; it reports each one's time and their throughput ratio.
func BenchmarkRecordVsRawInterleaved(b *testing.B) {
	s := newStore(b)
	c := rawClient(b)
	warmAzurite(b)
	ctx := context.Background()
	var record, raw time.Duration
	for b.Loop() {
		benchSeq++
		f := deliveryFailure(benchSeq, "erp")
		f.Payload = benchPayload
		start := time.Now()
		if _, err := s.Record(ctx, f); err != nil {
			b.Fatal(err)
		}
		record += time.Since(start)
		start = time.Now()
		if err := rawInsert(ctx, c); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)
	}
	b.ReportMetric(float64(record.Nanoseconds())/float64(b.N), "record-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(raw)/float64(record), "record/raw-throughput")
}

func rawClient(b *testing.B) *aztables.Client {
	svc, err := aztables.NewServiceClientFromConnectionString(sharedAzurite(b).ConnectionString(), nil)
	if err != nil {
		b.Fatal(err)
	}
	table := tableName(b)
	if _, err := svc.CreateTable(context.Background(), table, nil); err != nil {
		b.Fatal(err)
	}
	return svc.NewClient(table)
}

var benchNow = aztables.EDMDateTime(time.Now())

// rawInsert adds an entity with the columns of a failure and the payload as one property.
func rawInsert(ctx context.Context, c *aztables.Client) error {
	benchSeq++
	f := deliveryFailure(benchSeq, "erp")
	e := aztables.EDMEntity{
		Entity: aztables.Entity{PartitionKey: fmt.Sprintf("s%02x", benchSeq%shardCount), RowKey: fmt.Sprintf("r%019d", benchSeq)},
		Properties: map[string]any{
			pEventID: f.EventID, pConsumer: f.Consumer, pRoute: f.Route, pTable: f.Table,
			pMessage: f.Message, pRecordID: f.RecordID, pCorrelationID: f.CorrelationID,
			pKind: string(f.Kind), pStatus: string(StatusPending), pAttempts: int32(1),
			pOccurredAt: aztables.EDMDateTime(f.OccurredAt), pFirstFailedAt: benchNow, pLastFailedAt: benchNow,
			pLastError: f.LastError, pLastStatusCode: int32(503), pUpdatedBy: "dvrouter", pUpdatedAt: benchNow,
			"payload": aztables.EDMBinary(benchPayload),
		},
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = c.AddEntity(ctx, body, nil)
	return err
}
