package journal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
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
	self0, store0 := cpuNow(b, az)
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
	self1, store1 := cpuNow(b, az)
	if s := j.Stats(); s.Lost+s.Dropped > 0 {
		b.Fatalf("stats %+v", s)
	}
	b.ReportMetric(float64(self1-self0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(store1-store0)/float64(b.N), "azurite-cpu-ns/op")
}

// BenchmarkJournal_WriteOutcomesStandin is the journal's cost to the process that delivers, per
// outcome: b.N outcomes such as the direct webhook path hands over (GUID ids, one successful
// attempt, every index), added at about one busy instance's rate and flushed into
// testenv.TableBatchSink, a stand-in for Table Storage in a process of its own that answers as
// the service does and keeps nothing. cpu-ns/op is this process's CPU (Add, the flusher's
// encoding, the batch requests and their answers, and the collection of what they allocate);
// standin-cpu-ns/op the stand-in's, Table Storage's in production.
//
//	go test -p 1 -run '^$' -bench 'Journal_WriteOutcomesStandin' -benchtime 20000x -count 3 ./pkg/journal
func BenchmarkJournal_WriteOutcomesStandin(b *testing.B) {
	sink := testenv.StartTableBatchSink(b)
	j := openJournal(b, sink.ConnectionString(), Config{})
	entries := make([]Entry, 4096)
	for i := range entries {
		id := fmt.Sprintf("7f8a9b0c-1d2e-4f3a-8b4c-%012x", i)
		entries[i] = Entry{EventID: id, CorrelationID: fmt.Sprintf("0f6b2c3d-8e9a-4b1c-9d2e-%012x", i),
			Table: "opportunity", RecordID: fmt.Sprintf("3c2b1a09-8f7e-4d6c-b5a4-%012x", i%1000), Message: "Update",
			Route: "opportunities", Consumer: "erp", Outcome: Delivered, AttemptCount: 1, StatusCode: 200,
			Attempts: []Attempt{{At: base, StatusCode: 200, Duration: 3 * time.Millisecond}},
			Duration: 3 * time.Millisecond}
	}
	self0, store0 := cpuNow(b, sink)
	i := 0
	for b.Loop() {
		e := entries[i%len(entries)]
		e.At = time.Now()
		j.Add(e)
		i++
		if i%1000 == 0 {
			time.Sleep(100 * time.Millisecond) // about the rate of one busy instance, not a burst into a full buffer
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	self1, store1 := cpuNow(b, sink)
	if s := j.Stats(); s.Lost+s.Dropped > 0 {
		b.Fatalf("stats %+v", s)
	}
	b.ReportMetric(float64(self1-self0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(store1-store0)/float64(b.N), "standin-cpu-ns/op")
}

// cpuNow is this process's CPU time so far and store's, the table's process.
func cpuNow(b *testing.B, store interface{ CPUTime() (time.Duration, error) }) (self, storeCPU time.Duration) {
	self, err := testenv.SelfCPUTime()
	if err != nil {
		b.Fatal(err)
	}
	if storeCPU, err = store.CPUTime(); err != nil {
		b.Fatal(err)
	}
	return self, storeCPU
}
