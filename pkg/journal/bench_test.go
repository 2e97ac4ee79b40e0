package journal

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkJournal_WriteOutcomes is the flusher's cost alone: b.N outcomes of one consumer
// (with record and correlation ids, so every index) added and flushed into a fresh table of the
// in-memory Azurite. It reports this process's CPU per outcome (cpu-ns/op, the flusher's
// encoding, the SDK's batching and HTTP) and Azurite's (azurite-cpu-ns/op). Azurite's cost per
// entity grows with the table, so compare runs of the same count:
//
//	go test -run '^$' -bench 'Journal_WriteOutcomes' -benchtime 3000x -count 3 ./pkg/journal
func BenchmarkJournal_WriteOutcomes(b *testing.B) {
	az := sharedAzurite(b)
	j := openJournal(b, az.ConnectionString(), Config{})
	cpu := func() (self, store time.Duration) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		store, err := az.CPUTime()
		if err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), store
	}
	self0, store0 := cpu()
	i := 0
	for b.Loop() {
		j.Add(entry(i, "erp", Delivered))
		i++
		if i%1000 == 0 {
			time.Sleep(100 * time.Millisecond) // about the rate of one busy instance, not a burst into a full buffer
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	self1, store1 := cpu()
	if s := j.Stats(); s.Lost+s.Dropped > 0 {
		b.Fatalf("stats %+v", s)
	}
	b.ReportMetric(float64(self1-self0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(store1-store0)/float64(b.N), "azurite-cpu-ns/op")
}
