package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/breaker"
)

func ctx5s(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPause_TakenOnOneInstanceHoldsEveryInstance(t *testing.T) {
	store := openStore(t, testenv.StartAzurite(t))
	a := startInstance(t, store, policy(time.Minute), 0)
	b := startInstance(t, store, policy(time.Minute), 0)

	p, err := a.cb.Pause(ctx5s(t), "alice", "  ERP maintenance until 14:00 ")
	if err != nil {
		t.Fatal(err)
	}
	if p.By != "alice" || p.Reason != "ERP maintenance until 14:00" || time.Since(p.At) > 5*time.Second {
		t.Errorf("pause = %+v, want by alice, the reason trimmed, now", p)
	}
	if got := a.cb.Paused(); got == nil || got.By != "alice" {
		t.Fatalf("a.Paused() = %+v right after pausing on a, want alice's pause at once", got)
	}
	took := waitFor(t, "b sees the pause", 2*time.Second, func() bool { return b.cb.Paused() != nil })
	if got := b.cb.Paused(); got.By != "alice" || got.Reason != p.Reason || !got.At.Equal(p.At) {
		t.Errorf("b.Paused() = %+v, want %+v", got, p)
	}
	if st := b.cb.Status(); st.Paused == nil || st.Paused.By != "alice" {
		t.Errorf("b's status = %+v, want the pause in it", st)
	}
	t.Logf("b saw the pause %s after a took it (sync every %s)", took.Round(time.Millisecond), syncEvery)

	// Pausing again keeps the first pause: who paused it, and why, are not overwritten.
	again, err := b.cb.Pause(ctx5s(t), "bob", "other")
	if err != nil || again.By != "alice" {
		t.Errorf("second pause = %+v, %v; want alice's, unchanged", again, err)
	}

	// Outcomes merged meanwhile (a write of the same row) keep the pause.
	for range 3 {
		if err := b.deliver(breaker.Success); err != nil {
			t.Fatal(err)
		}
	}
	b.sh.Sync(ctx5s(t))
	a.sh.Sync(ctx5s(t))
	if a.cb.Paused() == nil {
		t.Fatal("a merge of counts lost the pause")
	}

	lifted, err := b.cb.Resume(ctx5s(t))
	if err != nil || lifted == nil || lifted.By != "alice" {
		t.Fatalf("resume = %+v, %v; want alice's pause lifted", lifted, err)
	}
	if b.cb.Paused() != nil {
		t.Error("b still paused right after resuming on b")
	}
	waitFor(t, "a sees the resume", 2*time.Second, func() bool { return a.cb.Paused() == nil })
	if lifted, err := a.cb.Resume(ctx5s(t)); err != nil || lifted != nil {
		t.Errorf("resume of a consumer not paused = %+v, %v; want nil, nil", lifted, err)
	}
}

func TestPause_NewInstanceStartsPaused(t *testing.T) {
	store := openStore(t, testenv.StartAzurite(t))
	a := startInstance(t, store, policy(time.Minute), 0)
	if _, err := a.cb.Pause(ctx5s(t), "alice", ""); err != nil {
		t.Fatal(err)
	}
	// Start syncs before returning: an instance that starts later obeys the pause from its
	// first delivery.
	b := startInstance(t, store, policy(time.Minute), 0)
	if p := b.cb.Paused(); p == nil || p.By != "alice" || p.Reason != "" {
		t.Errorf("new instance's pause = %+v, want alice's, no reason", p)
	}
}

func TestReset_ClosesASharedOpenBreakerForAll(t *testing.T) {
	store := openStore(t, testenv.StartAzurite(t))
	a := startInstance(t, store, policy(time.Hour), 0)
	b := startInstance(t, store, policy(time.Hour), 0)
	for range 4 {
		_ = a.deliver(breaker.Failure)
	}
	waitFor(t, "b sees the breaker open", 2*time.Second, b.cb.Refusing)

	from, err := b.cb.Reset(ctx5s(t))
	if err != nil || from != gobreaker.StateOpen {
		t.Fatalf("reset = %v, %v; want it was open", from, err)
	}
	if b.cb.Refusing() {
		t.Error("b refuses right after its own reset")
	}
	waitFor(t, "a sees the reset", 2*time.Second, func() bool { return !a.cb.Refusing() })
	if err := a.deliver(breaker.Success); err != nil {
		t.Errorf("a.Allow after the reset = %v, want allowed", err)
	}
	if st := a.cb.Status(); st.State != "closed" || st.ChangedBy != b.sh.Instance() || st.Opened != 1 {
		t.Errorf("a's status = %+v, want closed by %s, opened once", st, b.sh.Instance())
	}
	if got := b.changesMade(); len(got) != 1 || got[0] != [2]gobreaker.State{gobreaker.StateOpen, gobreaker.StateClosed} {
		t.Errorf("b made changes %v, want open -> closed (the reset)", got)
	}
}

func TestPauseAndReset_WithoutAStoreAreThisInstancesOwn(t *testing.T) {
	cb := breaker.New("erp", policy(time.Hour), nil, nil)
	ctx := context.Background()
	if _, err := cb.Pause(ctx, "alice", "why"); err != nil || cb.Paused() == nil {
		t.Fatalf("pause: %v, paused %+v", err, cb.Paused())
	}
	if lifted, err := cb.Resume(ctx); err != nil || lifted == nil || cb.Paused() != nil {
		t.Fatalf("resume: %+v %v, paused %+v", lifted, err, cb.Paused())
	}
	for range 4 {
		done, err := cb.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(breaker.Failure)
	}
	if !cb.Refusing() {
		t.Fatal("breaker not open after 4 failures")
	}
	if from, err := cb.Reset(ctx); err != nil || from != gobreaker.StateOpen || cb.Refusing() {
		t.Errorf("reset = %v, %v; refusing %v; want it was open, now closed", from, err, cb.Refusing())
	}
}

func TestPause_StoreDownIsRefusedNotAppliedHalfway(t *testing.T) {
	az := testenv.StartAzurite(t)
	store := openStore(t, az)
	az.Stop()
	sh := breaker.NewShared(store, breaker.SharedOptions{Interval: syncEvery, Logger: zerolog.Nop()})
	cb := breaker.New("erp", policy(time.Minute), sh, nil)
	if _, err := cb.Pause(ctx5s(t), "alice", ""); !errors.Is(err, breaker.ErrNotShared) {
		t.Errorf("pause with the table down = %v, want ErrNotShared", err)
	}
	if cb.Paused() != nil {
		t.Error("a pause the table did not take was applied here")
	}
}
