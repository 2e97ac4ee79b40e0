// Package breaker holds the consumers' circuit breakers. A breaker judges a consumer by whole
// deliveries (an event that succeeded on its second attempt is a success) over a rolling window,
// and opens when enough of them failed. With a Shared store its state lives in Table Storage and
// every instance of dvrouter obeys the same breaker: one that opens is open for all, and one
// instance at a time runs the half-open trials. When the store cannot be reached, each instance
// falls back to its own gobreaker breaker until it answers again. The same row of the table
// holds an operator's pause of the consumer (pause.go), which every instance reads at the same
// sync.
//
// gobreaker's DistributedCircuitBreaker was not used: it takes the store's lock, reads and writes
// the state around every request and holds the lock while the request runs, which would put four
// table calls on every delivery and let one delivery at a time reach a consumer across all
// instances. Here the hot path reads a local copy of the shared state, outcomes are merged into the
// table in the background (Shared.interval), and only the rare transitions (a trial claimed, a
// trial's verdict) wait for the table.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dvrouter/dvrouter/pkg/config"
)

// DefaultWindow is the rolling window when config.Breaker.Window is zero.
const DefaultWindow = 30 * time.Second

// buckets is how many parts the window is cut into: counts age out one part at a time.
const buckets = 6

// ErrOpen is what Allow returns when the breaker refuses a delivery: it is open, or half-open
// with its trials already running (here or on another instance).
var ErrOpen = errors.New("circuit breaker open")

// Outcome is how a delivery the breaker let through ended, as the breaker counts it.
type Outcome int

const (
	// Success: the consumer took the event, or refused it for good (it is up, it just does not
	// want that payload).
	Success Outcome = iota
	// Failure: the consumer failed every attempt it got.
	Failure
	// Excluded: the delivery says nothing about the consumer (its time ran out, its caller left).
	Excluded
)

// Change is a state change this instance made, for logs and metrics.
type Change func(consumer string, from, to gobreaker.State)

// Breaker is one consumer's circuit breaker. It is safe for concurrent use.
type Breaker struct {
	name     string
	policy   config.Breaker
	period   time.Duration // one bucket of the window
	onChange Change
	// local is the fallback breaker (the only one when sh is nil); Reset swaps in a new one.
	local atomic.Pointer[gobreaker.TwoStepCircuitBreaker[struct{}]]
	sh    *Shared // nil: the local breaker only
	// paused is the operator's pause in force, nil when none (pause.go). An atomic, so the
	// delivery hot path reads it without a lock.
	paused atomic.Pointer[Pause]

	// done funcs bound once, so that Allow allocates nothing.
	doneShared, doneTrial, doneLocalSuccess func(Outcome)

	mu       sync.Mutex
	view     record    // the shared state as last read or written
	seen     time.Time // when the store last confirmed view; zero: never
	pending  []bucket  // outcomes counted here and not yet merged into the store
	trials   uint32    // half-open trials in flight here, while this instance holds the probe
	passed   uint32    // of this probe's trials, those that succeeded
	claiming bool      // a goroutine is claiming the probe; the others refuse meanwhile
	localLog localLog
}

// localLog is what the local breaker's own state changes leave for Status.
type localLog struct {
	opened    int64
	openedAt  time.Time
	changedAt time.Time
}

var (
	errFailed   = errors.New("delivery failed")
	errExcluded = errors.New("delivery not counted")
)

// New returns the breaker of consumer name with policy p, shared through sh (nil: this instance
// only). onChange, when set, is told of every state change this instance makes.
func New(name string, p config.Breaker, sh *Shared, onChange Change) *Breaker {
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	p.HalfOpenRequests = max(p.HalfOpenRequests, 1)
	p.MinRequests = max(p.MinRequests, 1)
	b := &Breaker{name: name, policy: p, period: max(p.Window/buckets, time.Millisecond), onChange: onChange, sh: sh}
	b.local.Store(b.newLocal())
	b.doneShared, b.doneTrial = b.countShared, b.settleTrial
	if sh != nil {
		sh.add(b)
	}
	return b
}

// newLocal makes the breaker this instance uses on its own: when no store is shared, or the
// store has not answered lately.
func (b *Breaker) newLocal() *gobreaker.TwoStepCircuitBreaker[struct{}] {
	p := b.policy
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         b.name,
		MaxRequests:  p.HalfOpenRequests,
		Interval:     p.Window,
		BucketPeriod: b.period,
		Timeout:      p.OpenFor,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return b.trips(c.TotalSuccesses, c.TotalFailures) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			b.mu.Lock()
			now := time.Now()
			b.localLog.changedAt = now
			if to == gobreaker.StateOpen {
				b.localLog.opened++
				b.localLog.openedAt = now
			}
			b.mu.Unlock()
			b.changed(from, to)
		},
	})
}

// trips is the rule that opens a closed breaker: at least MinRequests deliveries finished in the
// window, and at least FailureRatio of them failed.
func (b *Breaker) trips(successes, failures uint32) bool {
	done := successes + failures
	return done >= b.policy.MinRequests && float64(failures) >= b.policy.FailureRatio*float64(done)
}

func (b *Breaker) changed(from, to gobreaker.State) {
	if b.onChange != nil && from != to {
		b.onChange(b.name, from, to)
	}
}

// Allow asks whether a delivery may go to the consumer now. When it may, done must be called once
// with how the delivery ended; when it may not, err wraps ErrOpen.
func (b *Breaker) Allow() (done func(Outcome), err error) {
	if b.sh == nil {
		return b.allowLocal()
	}
	now := time.Now()
	b.mu.Lock()
	if !b.freshLocked(now) {
		// The store has not answered for a while. An open breaker it last showed stays open until
		// its time is up; after that the instance judges the consumer on its own.
		v := b.view
		b.mu.Unlock()
		if v.State == gobreaker.StateOpen && now.Before(v.OpenUntil) {
			return nil, ErrOpen
		}
		return b.allowLocal()
	}
	state, prober := b.view.effective(now)
	switch {
	case state == gobreaker.StateClosed:
		b.mu.Unlock()
		return b.doneShared, nil
	case state == gobreaker.StateOpen:
		b.mu.Unlock()
		return nil, ErrOpen
	case prober == b.sh.instance:
		if b.trials >= b.policy.HalfOpenRequests {
			b.mu.Unlock()
			return nil, ErrOpen
		}
		b.trials++
		b.mu.Unlock()
		return b.doneTrial, nil
	case prober != "" || b.claiming:
		b.mu.Unlock()
		return nil, ErrOpen
	}
	// Half-open and nobody probing: try to become the instance that does.
	b.claiming = true
	b.mu.Unlock()
	won := b.claim()
	b.mu.Lock()
	b.claiming = false
	if won {
		b.trials++
	}
	b.mu.Unlock()
	if !won {
		return nil, ErrOpen
	}
	return b.doneTrial, nil
}

func (b *Breaker) allowLocal() (func(Outcome), error) {
	done, err := b.local.Load().Allow()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	return func(o Outcome) {
		switch o {
		case Success:
			done(nil)
		case Failure:
			done(errFailed)
		default:
			done(errExcluded)
		}
	}, nil
}

// Refusing reports whether Allow would refuse now without asking anyone: the breaker is open, or
// half-open with another instance running the trials. Retries stop when it turns true.
func (b *Breaker) Refusing() bool {
	if b.sh == nil {
		return b.local.Load().State() == gobreaker.StateOpen
	}
	now := time.Now()
	b.mu.Lock()
	fresh := b.freshLocked(now)
	v := b.view
	b.mu.Unlock()
	state, prober := v.effective(now)
	if !fresh {
		if v.State == gobreaker.StateOpen && now.Before(v.OpenUntil) {
			return true
		}
		return b.local.Load().State() == gobreaker.StateOpen
	}
	return state == gobreaker.StateOpen || (state == gobreaker.StateHalfOpen && prober != "" && prober != b.sh.instance)
}

func (b *Breaker) freshLocked(now time.Time) bool {
	return !b.seen.IsZero() && now.Sub(b.seen) < b.sh.staleAfter
}

// countShared counts a closed-state delivery; the next merge adds it to the shared counts. A
// failure that would trip the breaker asks for that merge at once.
func (b *Breaker) countShared(o Outcome) {
	if o == Excluded {
		return
	}
	now := time.Now()
	b.mu.Lock()
	b.pending = addOutcome(b.pending, b.bucketOf(now), o == Success)
	trip := false
	if o == Failure {
		s, f := sumWindow(b.view.Buckets, b.bucketOf(now))
		ps, pf := sumWindow(b.pending, b.bucketOf(now))
		trip = b.trips(s+ps, f+pf)
	}
	b.mu.Unlock()
	if trip {
		b.sh.poke()
	}
}

// settleTrial records a half-open trial's verdict: one failure reopens the breaker, enough
// successes close it, for every instance.
func (b *Breaker) settleTrial(o Outcome) {
	b.mu.Lock()
	b.trials--
	if o == Success {
		b.passed++
	}
	closeIt := o == Success && b.passed >= b.policy.HalfOpenRequests
	b.mu.Unlock()
	switch {
	case o == Failure:
		b.settle(gobreaker.StateOpen)
	case closeIt:
		b.settle(gobreaker.StateClosed)
	}
}

// bucketOf is the number of the window bucket that holds t. Buckets are numbered from the Unix
// epoch, so every instance cuts the window at the same instants.
func (b *Breaker) bucketOf(t time.Time) int64 { return t.UnixNano() / int64(b.period) }

// Status is a breaker as GET /api/consumers shows it.
type Status struct {
	Consumer string `json:"consumer"`
	State    string `json:"state"` // closed, open or half-open
	// Shared is false when this instance judges the consumer alone: no breaker table is
	// configured, or the table has not answered lately.
	Shared    bool   `json:"shared"`
	Window    string `json:"window"`
	Successes uint32 `json:"successes"` // deliveries in the window, closed state only
	Failures  uint32 `json:"failures"`
	// HalfOpenAt is when an open breaker lets its trials through.
	HalfOpenAt *time.Time `json:"halfOpenAt,omitempty"`
	// Prober is the instance running the half-open trials, until ProbeUntil.
	Prober     string     `json:"prober,omitempty"`
	ProbeUntil *time.Time `json:"probeUntil,omitempty"`
	Opened     int64      `json:"opened"` // times it opened: ever when shared, since start-up when not
	ChangedAt  *time.Time `json:"changedAt,omitempty"`
	ChangedBy  string     `json:"changedBy,omitempty"` // the instance that made the last change
	SyncedAt   *time.Time `json:"syncedAt,omitempty"`  // when the table last confirmed this state
	// Paused is the operator's pause in force, if any: nothing is sent to the consumer, its
	// deliveries are kept as failures of kind paused.
	Paused *Pause `json:"paused,omitempty"`
}

// Status reports the breaker's state as this instance sees it.
func (b *Breaker) Status() Status {
	now := time.Now()
	st := Status{Consumer: b.name, Window: b.policy.Window.String(), Paused: b.paused.Load()}
	// Read before taking b.mu: reading the local breaker may change its state, and its change
	// callback takes b.mu.
	local := b.local.Load()
	state, c := local.State(), local.Counts()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sh != nil && b.freshLocked(now) {
		v := b.view
		state, prober := v.effective(now)
		st.State, st.Shared, st.Opened, st.ChangedBy = state.String(), true, v.Opened, v.ChangedBy
		st.ChangedAt, st.SyncedAt = timePtr(v.ChangedAt), timePtr(b.seen)
		switch state {
		case gobreaker.StateClosed:
			st.Successes, st.Failures = sumWindow(v.Buckets, b.bucketOf(now))
			ps, pf := sumWindow(b.pending, b.bucketOf(now))
			st.Successes += ps
			st.Failures += pf
		case gobreaker.StateOpen:
			st.HalfOpenAt = timePtr(v.OpenUntil)
		default:
			if prober != "" {
				st.Prober, st.ProbeUntil = prober, timePtr(v.ProbeUntil)
			}
		}
		return st
	}
	st.State, st.Opened, st.ChangedAt = state.String(), b.localLog.opened, timePtr(b.localLog.changedAt)
	if b.sh != nil {
		st.SyncedAt = timePtr(b.seen)
		st.ChangedBy = b.sh.instance
	}
	switch state {
	case gobreaker.StateClosed:
		st.Successes, st.Failures = c.TotalSuccesses, c.TotalFailures
	case gobreaker.StateOpen:
		st.HalfOpenAt = timePtr(b.localLog.openedAt.Add(b.policy.OpenFor))
	}
	return st
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// claim makes this instance the one that runs the half-open trials, if no other instance is.
func (b *Breaker) claim() bool {
	ctx, cancel := context.WithTimeout(context.Background(), b.sh.callTimeout)
	defer cancel()
	won := false
	var from gobreaker.State
	rec, err := b.sh.store.update(ctx, b.name, nil, func(r *record, now time.Time) bool {
		won = false
		state, prober := r.effective(now)
		if state != gobreaker.StateHalfOpen || prober != "" {
			return false
		}
		from, won = r.State, true
		r.State, r.Prober, r.ProbeUntil = gobreaker.StateHalfOpen, b.sh.instance, now.Add(b.sh.probeLease)
		r.Buckets = nil
		r.stamp(now, b.sh.instance)
		return true
	})
	if err != nil {
		b.sh.log.Warn().Err(err).Str("consumer", b.name).Msg("breaker store: could not claim the half-open trial")
		return false
	}
	b.adopt(rec)
	if won {
		b.mu.Lock()
		b.passed = 0
		b.mu.Unlock()
		if from != gobreaker.StateHalfOpen {
			b.changed(from, gobreaker.StateHalfOpen)
		}
	}
	return won
}

// settle writes the verdict of this instance's trials, if it still holds the probe.
func (b *Breaker) settle(to gobreaker.State) {
	ctx, cancel := context.WithTimeout(context.Background(), b.sh.callTimeout)
	defer cancel()
	wrote := false
	rec, err := b.sh.store.update(ctx, b.name, nil, func(r *record, now time.Time) bool {
		wrote = false
		if r.State != gobreaker.StateHalfOpen || r.Prober != b.sh.instance {
			return false // the claim lapsed and another instance took over, or it was settled
		}
		wrote = true
		r.toState(to, now, b.policy.OpenFor)
		r.stamp(now, b.sh.instance)
		return true
	})
	if err != nil {
		// The verdict is known here even if the table cannot hear it: act on it on this instance
		// (the view goes stale, and the local breaker takes over) until the table answers.
		b.sh.log.Warn().Err(err).Str("consumer", b.name).Str("to", to.String()).Msg("breaker store: could not record the half-open verdict")
		now := time.Now()
		b.mu.Lock()
		b.view.toState(to, now, b.policy.OpenFor)
		b.mu.Unlock()
		b.changed(gobreaker.StateHalfOpen, to)
		return
	}
	b.adopt(rec)
	if wrote {
		b.changed(gobreaker.StateHalfOpen, to)
	}
}

// adopt takes rec, fresh from the store, as the shared state.
func (b *Breaker) adopt(rec record) {
	b.mu.Lock()
	b.view, b.seen = rec, time.Now()
	b.paused.Store(rec.Pause)
	b.mu.Unlock()
}

// merge adds the outcomes counted here since the last merge to the shared counts, opens the
// breaker for everyone when they trip it, and takes what the store then holds as the view. listed
// is the state just read in one query for every consumer (nil: none stored yet).
func (b *Breaker) merge(ctx context.Context, listed *record) error {
	b.mu.Lock()
	pending := b.pending
	b.pending = nil
	b.mu.Unlock()
	opened := false
	rec, err := b.sh.store.update(ctx, b.name, listed, func(r *record, now time.Time) bool {
		opened = false
		state, _ := r.effective(now)
		if state != gobreaker.StateClosed || len(pending) == 0 {
			// Outcomes counted while closed say nothing once it opened: drop them, as gobreaker
			// clears its counts on a change of state.
			return false
		}
		current := b.bucketOf(now)
		r.Buckets = pruneBuckets(mergeBuckets(r.Buckets, pending), current)
		if s, f := sumWindow(r.Buckets, current); b.trips(s, f) {
			r.toState(gobreaker.StateOpen, now, b.policy.OpenFor)
			r.stamp(now, b.sh.instance)
			opened = true
		}
		return true
	})
	if err != nil {
		b.mu.Lock()
		b.pending = mergeBuckets(pending, b.pending)
		b.mu.Unlock()
		return err
	}
	b.adopt(rec)
	if opened {
		b.changed(gobreaker.StateClosed, gobreaker.StateOpen)
	}
	return nil
}
