package failures

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// BenchmarkPurge (batch deletes per partition) and BenchmarkDeleteOneByOne (one DeleteEntity per
// failure, the baseline) remove the same b.N old failures from the same Azurite; ns/op is per
// failure removed.
//
//	go test -p 1 -run '^$' -bench 'Purge$|DeleteOneByOne$' -benchtime 2000x -count 3 ./pkg/failures/

// fillOld records n failures first kept a year ago.
func fillOld(b *testing.B, s *Store, n int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f := deliveryFailure(i, "erp")
				f.Payload = benchPayload
				f.FirstFailedAt = time.Now().Add(-365 * 24 * time.Hour)
				f.LastFailedAt = f.FirstFailedAt
				if _, err := s.Record(testCtx(b), f); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkPurge(b *testing.B) {
	warmAzurite(b)
	s := newStore(b)
	fillOld(b, s, b.N)
	b.ResetTimer()
	res, err := s.Purge(testCtx(b), time.Now(), Retention{Failures: 24 * time.Hour})
	b.StopTimer()
	if err != nil || res.Deleted != b.N {
		b.Fatalf("purge: %+v, %v; want %d deleted", res.Deleted, err, b.N)
	}
}

func BenchmarkDeleteOneByOne(b *testing.B) {
	warmAzurite(b)
	s := newStore(b)
	fillOld(b, s, b.N)
	sel := "PartitionKey,RowKey"
	var rows []struct{ PartitionKey, RowKey string }
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: &sel})
	for pager.More() {
		page, err := pager.NextPage(testCtx(b))
		if err != nil {
			b.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e struct{ PartitionKey, RowKey string }
			if err := json.Unmarshal(raw, &e); err != nil {
				b.Fatal(err)
			}
			rows = append(rows, e)
		}
	}
	b.ResetTimer()
	for _, e := range rows {
		if _, err := s.client.DeleteEntity(testCtx(b), e.PartitionKey, e.RowKey, nil); err != nil {
			b.Fatal(err)
		}
	}
}
