package breaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/breaker"
)

// BenchmarkAllow is what one delivery pays the breaker (Allow, then done), with the breaker
// this instance's own and shared through Azurite, syncing every second in the background:
//
//	go test -p 1 -run '^$' -bench 'Allow' -benchmem -count 5 ./pkg/breaker
func BenchmarkAllow(b *testing.B) {
	run := func(b *testing.B, cb *breaker.Breaker) {
		b.ReportAllocs()
		for b.Loop() {
			done, err := cb.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(breaker.Success)
		}
	}
	b.Run("local", func(b *testing.B) { run(b, breaker.New("erp", policy(time.Minute), nil, nil)) })
	b.Run("shared", func(b *testing.B) {
		az := testenv.StartAzurite(b)
		store, err := breaker.OpenStore(breaker.StoreConfig{ConnectionString: az.ConnectionString(), Table: "Breakers"})
		if err != nil {
			b.Fatal(err)
		}
		sh := breaker.NewShared(store, breaker.SharedOptions{Logger: zerolog.Nop()})
		cb := breaker.New("erp", policy(time.Minute), sh, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sh.Start(ctx)
		cancel()
		b.Cleanup(func() { sh.Close(context.Background()) })
		if !cb.Status().Shared {
			b.Fatal("not shared")
		}
		run(b, cb)
	})
}
