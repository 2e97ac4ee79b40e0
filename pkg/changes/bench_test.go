package changes_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkRead_10000ChangedRows reads 10,000 changed rows and delivers each through dispatch
// and delivery to a loopback HTTP consumer, at two page sizes. It reports the change-tracking
// requests one read takes (the pages; the table's definition is read once per process and is
// not counted) and the time per 1,000 rows, delivery included.
//
//	go test -run '^$' -bench Read_10000 -benchtime 2x ./pkg/changes
func BenchmarkRead_10000ChangedRows(b *testing.B) {
	const rows = 10000
	for _, pageSize := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("page=%d", pageSize), func(b *testing.B) {
			r := newRig(b, rows)
			ctx := context.Background()
			host := strings.TrimPrefix(r.api.URL, "http://")
			rd := r.reader("bench", nil)
			rd.PageSize, rd.Parallel = pageSize, 16
			if _, err := r.env.Table(ctx, "account"); err != nil { // the definition, once
				b.Fatal(err)
			}
			var requests int
			var took time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := r.api.ChangeReads()
				start := time.Now()
				rep, err := rd.Read(ctx, accountTable)
				took += time.Since(start)
				if err != nil || !rep.Complete || rep.Changed != rows {
					b.Fatalf("read = %+v (err %v)", rep, err)
				}
				requests = r.api.ChangeReads() - before
				if limit := (rows+pageSize-1)/pageSize + 1; requests > limit {
					b.Fatalf("%d Web API requests for %d rows at page size %d, want at most %d", requests, rows, pageSize, limit)
				}
				b.StopTimer()
				if _, err := r.store.Reset(ctx, host, "account", "bench"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(requests), "requests/read")
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N)/(rows/1000), "ms/1000rows")
			b.ReportMetric(0, "ns/op")
		})
	}
}
