package breaker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
)

// Each Shared below stands for one instance of dvrouter: its own breakers and background sync,
// one Azurite table between them.

const syncEvery = 50 * time.Millisecond

func policy(openFor time.Duration) config.Breaker {
	return config.Breaker{FailureRatio: 0.5, MinRequests: 4, OpenFor: openFor, HalfOpenRequests: 1, Window: 10 * time.Second}
}

type instance struct {
	sh *breaker.Shared
	cb *breaker.Breaker

	mu      sync.Mutex
	changes [][2]gobreaker.State
}

func openStore(t *testing.T, az *testenv.Azurite) *breaker.Store {
	t.Helper()
	store, err := breaker.OpenStore(breaker.StoreConfig{ConnectionString: az.ConnectionString(), Table: "Breakers"})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func startInstance(t *testing.T, store *breaker.Store, p config.Breaker, lease time.Duration) *instance {
	t.Helper()
	in := &instance{}
	in.sh = breaker.NewShared(store, breaker.SharedOptions{Interval: syncEvery, ProbeLease: lease, Logger: zerolog.Nop()})
	in.cb = breaker.New("erp", p, in.sh, func(_ string, from, to gobreaker.State) {
		in.mu.Lock()
		in.changes = append(in.changes, [2]gobreaker.State{from, to})
		in.mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in.sh.Start(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.sh.Close(ctx)
	})
	return in
}

func (in *instance) changesMade() [][2]gobreaker.State {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([][2]gobreaker.State(nil), in.changes...)
}

// deliver runs one delivery through the breaker that ends with o, or reports the refusal.
func (in *instance) deliver(o breaker.Outcome) error {
	done, err := in.cb.Allow()
	if err != nil {
		return err
	}
	done(o)
	return nil
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestShared_OpenedByOneInstanceIsOpenForAll(t *testing.T) {
	store := openStore(t, testenv.StartAzurite(t))
	a := startInstance(t, store, policy(time.Minute), 0)
	b := startInstance(t, store, policy(time.Minute), 0)

	for i := range 4 {
		if err := a.deliver(breaker.Failure); err != nil {
			t.Fatalf("delivery %d refused: %v", i+1, err)
		}
	}
	took := waitFor(t, "b sees the breaker open", 2*time.Second, b.cb.Refusing)

	if err := b.deliver(breaker.Success); !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("b.Allow = %v, want ErrOpen", err)
	}
	st := b.cb.Status()
	if st.State != "open" || !st.Shared || st.Opened != 1 || st.ChangedBy != a.sh.Instance() || st.HalfOpenAt == nil ||
		st.HalfOpenAt.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("b's status = %+v, want open, shared, opened once by %s, half-opening in about a minute", st, a.sh.Instance())
	}
	if got := a.changesMade(); len(got) != 1 || got[0] != [2]gobreaker.State{gobreaker.StateClosed, gobreaker.StateOpen} {
		t.Errorf("a made changes %v, want closed -> open", got)
	}
	if got := b.changesMade(); len(got) != 0 {
		t.Errorf("b made changes %v, want none: it only saw a's", got)
	}
	t.Logf("b saw the breaker open %s after a tripped it", took.Round(time.Millisecond))
}

func TestShared_OutcomesFromEveryInstanceAddUp(t *testing.T) {
	store := openStore(t, testenv.StartAzurite(t))
	p := policy(time.Minute)
	p.MinRequests = 1000 // counting only
	var all []*instance
	for range 4 {
		all = append(all, startInstance(t, store, p, 0))
	}

	// Four instances count at once, so their merges race for the entity: the ETag makes the
	// losers read again, and no count is lost or counted twice.
	var wg sync.WaitGroup
	for _, in := range all {
		wg.Go(func() {
			for i := range 50 {
				o := breaker.Success
				if i%5 == 0 {
					o = breaker.Failure
				}
				if err := in.deliver(o); err != nil {
					t.Error(err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	// Each instance merges its counts by itself; on a loaded machine a merge can miss its
	// context and wait for the next sync. So sync until the sum is in, or it is clear it will
	// never be: a count lost never arrives, a count merged twice overshoots.
	deadline := time.Now().Add(20 * time.Second)
	var st breaker.Status
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, in := range all {
			in.sh.Sync(ctx)
		}
		all[0].sh.Sync(ctx)
		cancel()
		st = all[0].cb.Status()
		done := st.Successes == 160 && st.Failures == 40
		if done || st.Successes > 160 || st.Failures > 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Successes != 160 || st.Failures != 40 || st.State != "closed" {
		t.Errorf("status = %+v, want 160 successes and 40 failures from the 4 instances, closed", st)
	}
}

func TestShared_OnlyOneInstanceRunsTheTrial(t *testing.T) {
	const openFor = 300 * time.Millisecond
	store := openStore(t, testenv.StartAzurite(t))
	all := []*instance{
		startInstance(t, store, policy(openFor), 0),
		startInstance(t, store, policy(openFor), 0),
		startInstance(t, store, policy(openFor), 0),
	}
	for range 4 {
		_ = all[0].deliver(breaker.Failure)
	}
	for _, in := range all {
		waitFor(t, "open everywhere", 2*time.Second, in.cb.Refusing)
	}
	time.Sleep(openFor)

	// Every instance wants to deliver, many times at once: one trial goes through, in all.
	var admitted atomic.Int32
	var dones []func(breaker.Outcome)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, in := range all {
		for range 5 {
			wg.Go(func() {
				if done, err := in.cb.Allow(); err == nil {
					admitted.Add(1)
					mu.Lock()
					dones = append(dones, done)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if n := admitted.Load(); n != 1 {
		t.Fatalf("%d deliveries admitted while half-open, want exactly 1 (one instance probes, the others wait)", n)
	}
	var prober *instance
	for _, in := range all {
		if st := in.cb.Status(); st.Prober != "" {
			if st.Prober != all[0].sh.Instance() && st.Prober != all[1].sh.Instance() && st.Prober != all[2].sh.Instance() {
				t.Fatalf("prober %q is none of the instances", st.Prober)
			}
			for _, c := range all {
				if c.sh.Instance() == st.Prober {
					prober = c
				}
			}
		}
	}
	if prober == nil {
		t.Fatal("no instance shows who probes")
	}

	dones[0](breaker.Success)

	for _, in := range all {
		waitFor(t, "closed everywhere after the trial", 2*time.Second, func() bool { return in.cb.Status().State == "closed" })
	}
	if err := all[1].deliver(breaker.Success); err != nil {
		t.Errorf("delivery after the trial closed it: %v", err)
	}
	want := [][2]gobreaker.State{{gobreaker.StateOpen, gobreaker.StateHalfOpen}, {gobreaker.StateHalfOpen, gobreaker.StateClosed}}
	got := prober.changesMade()
	if prober == all[0] {
		got = got[1:] // all[0] also opened it
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("prober's changes = %v, want %v", got, want)
	}
}

func TestShared_FailedTrialReopensForAll(t *testing.T) {
	const openFor = 200 * time.Millisecond
	store := openStore(t, testenv.StartAzurite(t))
	a := startInstance(t, store, policy(openFor), 0)
	b := startInstance(t, store, policy(openFor), 0)
	for range 4 {
		_ = a.deliver(breaker.Failure)
	}
	time.Sleep(openFor + 20*time.Millisecond)

	if err := b.deliver(breaker.Failure); err != nil {
		t.Fatalf("b's trial refused: %v", err)
	}

	waitFor(t, "a sees it open again", 2*time.Second, a.cb.Refusing)
	if st := a.cb.Status(); st.State != "open" || st.Opened != 2 || st.ChangedBy != b.sh.Instance() {
		t.Errorf("a's status = %+v, want open, opened twice, last by %s", st, b.sh.Instance())
	}
}

func TestShared_ProberThatVanishesIsReplaced(t *testing.T) {
	// The lease is long beside the sync interval so that b, on a loaded machine, still syncs
	// while a's claim holds.
	const openFor, lease = 100 * time.Millisecond, 1500 * time.Millisecond
	store := openStore(t, testenv.StartAzurite(t))
	a := startInstance(t, store, policy(openFor), lease)
	b := startInstance(t, store, policy(openFor), lease)
	for range 4 {
		_ = a.deliver(breaker.Failure)
	}
	time.Sleep(openFor + 20*time.Millisecond)
	if _, err := a.cb.Allow(); err != nil { // a claims the trial and never reports back
		t.Fatalf("a's trial refused: %v", err)
	}
	waitFor(t, "b sees a probing", lease, b.cb.Refusing)
	if err := b.deliver(breaker.Success); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("b.Allow while a probes = %v, want ErrOpen", err)
	}

	waitFor(t, "b takes the trial over once a's claim lapsed", 2*lease, func() bool { return !b.cb.Refusing() })
	if err := b.deliver(breaker.Success); err != nil {
		t.Fatalf("b's trial refused: %v", err)
	}
	waitFor(t, "a sees it closed", 2*time.Second, func() bool { return a.cb.Status().State == "closed" })
}

func TestShared_FallsBackToItsOwnBreakerWhileTheStoreIsDown(t *testing.T) {
	az := testenv.StartAzurite(t)
	store := openStore(t, az)
	a := startInstance(t, store, policy(time.Minute), 0)
	if st := a.cb.Status(); !st.Shared {
		t.Fatalf("status before the outage = %+v, want shared", st)
	}

	az.Stop()
	waitFor(t, "the breaker stops trusting the store", 10*time.Second, func() bool { return !a.cb.Status().Shared })
	for i := range 4 {
		if err := a.deliver(breaker.Failure); err != nil {
			t.Fatalf("delivery %d refused: %v", i+1, err)
		}
	}
	if err := a.deliver(breaker.Failure); !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("after 4 failures with the store down, Allow = %v, want ErrOpen from the local breaker", err)
	}
	if st := a.cb.Status(); st.State != "open" || st.Shared || st.Opened != 1 {
		t.Errorf("status = %+v, want open, not shared, opened once", st)
	}

	az.Start(t)
	waitFor(t, "shared again once the store answers", 10*time.Second, func() bool { return a.cb.Status().Shared })
	// The store never heard of the outage's failures: the shared breaker is closed.
	if err := a.deliver(breaker.Success); err != nil {
		t.Errorf("delivery once the store is back: %v, want the shared (closed) breaker to decide", err)
	}
}

func TestLocal_WithoutAStoreItIsAGobreakerBreaker(t *testing.T) {
	cb := breaker.New("erp", policy(time.Minute), nil, nil)
	for range 3 {
		done, err := cb.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(breaker.Failure)
	}
	done, _ := cb.Allow()
	done(breaker.Excluded) // says nothing: still 3 of 3
	if cb.Refusing() {
		t.Fatal("open after 3 counted deliveries, want minRequests 4 first")
	}
	done, _ = cb.Allow()
	done(breaker.Failure)
	if !cb.Refusing() {
		t.Fatal("closed after 4 of 4 failed, want open")
	}
	if st := cb.Status(); st.Shared || st.State != "open" || st.HalfOpenAt == nil {
		t.Errorf("status = %+v, want open, not shared, with its half-open time", st)
	}
}

func TestLocal_StatusWhenOpenForRanOutHalfOpensIt(t *testing.T) {
	cb := breaker.New("erp", policy(50*time.Millisecond), nil, func(string, gobreaker.State, gobreaker.State) {})
	for range 4 {
		done, _ := cb.Allow()
		done(breaker.Failure)
	}
	time.Sleep(60 * time.Millisecond)

	// Reading the state moves gobreaker to half-open and calls back into the breaker: that must
	// not wait on the lock Status holds.
	got := make(chan breaker.Status)
	go func() { got <- cb.Status() }()
	select {
	case st := <-got:
		if st.State != "half-open" {
			t.Errorf("status = %+v, want half-open once openFor ran out", st)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Status blocked")
	}
}
