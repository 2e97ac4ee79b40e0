package webapi_test

import (
	"fmt"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
)

// The cost of a $batch of 100 upserts against one upsert, each a round trip on loopback to the
// stand-in, with the table holding the 100 rows (every write an update). Compare the ns/op of
//
//	go test -run '^$' -bench 'BenchmarkDataverse(Upsert|Batch100)$' -benchtime 2s ./pkg/dataverse/webapi
//
// (Batch100's op is the whole batch.)

func benchWrites(b *testing.B) (*webapi.Environment, []webapi.Write) {
	w, env := writable(b)
	_ = w
	writes := make([]webapi.Write, 100)
	for i := range writes {
		writes[i] = upsert(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf(`{"firstname": "First %d", "lastname": "Last %d"}`, i, i), webapi.CreateOrUpdate)
	}
	if err := env.Batch(b.Context(), writes); err != nil { // creates the rows, reads the table's definition
		b.Fatal(err)
	}
	return env, writes
}

func BenchmarkDataverseUpsert(b *testing.B) {
	env, writes := benchWrites(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := env.Apply(b.Context(), writes[i%len(writes)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDataverseBatch100(b *testing.B) {
	env, writes := benchWrites(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := env.Batch(b.Context(), writes); err != nil {
			b.Fatal(err)
		}
	}
}
