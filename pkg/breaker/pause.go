package breaker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Pause is an operator's hold on a consumer: while it stands nothing is sent to the consumer,
// and its deliveries are kept as failures of kind paused, to be replayed once it is resumed.
// It lives in the consumer's row of the breaker table, beside the breaker's state, so every
// instance reads it with the sync it already makes (Shared.interval); the instance that takes
// it obeys it at once. A Pause is never modified once made.
type Pause struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// ErrNotShared means a pause, resume or reset could not be written to the breaker table, so it
// was not applied: applying it here only would leave the other instances doing otherwise.
var ErrNotShared = errors.New("breaker table unavailable")

// Paused is the pause in force, nil when the consumer is not paused. It is one atomic read: the
// delivery path asks it for every event.
func (b *Breaker) Paused() *Pause { return b.paused.Load() }

// Pause holds the consumer. A consumer already paused stays paused as it was (by whom, since
// when, why), and that pause is returned.
func (b *Breaker) Pause(ctx context.Context, by, reason string) (*Pause, error) {
	p := &Pause{By: by, At: time.Now().UTC().Truncate(time.Millisecond), Reason: strings.TrimSpace(reason)}
	if b.sh == nil {
		if b.paused.CompareAndSwap(nil, p) {
			return p, nil
		}
		return b.paused.Load(), nil
	}
	rec, err := b.sh.store.update(ctx, b.name, nil, func(r *record, now time.Time) bool {
		if r.Pause != nil {
			return false
		}
		p.At = now.UTC().Truncate(time.Millisecond) // as the table keeps it
		r.Pause = p
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("%w: pause of consumer %s not applied: %w", ErrNotShared, b.name, err)
	}
	b.adopt(rec)
	return rec.Pause, nil
}

// Resume lifts the pause, and returns the one lifted (nil: the consumer was not paused).
func (b *Breaker) Resume(ctx context.Context) (*Pause, error) {
	if b.sh == nil {
		return b.paused.Swap(nil), nil
	}
	var lifted *Pause
	rec, err := b.sh.store.update(ctx, b.name, nil, func(r *record, now time.Time) bool {
		lifted = r.Pause
		r.Pause = nil
		return lifted != nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: resume of consumer %s not applied: %w", ErrNotShared, b.name, err)
	}
	b.adopt(rec)
	return lifted, nil
}

// Reset closes the breaker with its counts cleared, for every instance: an operator who knows
// the consumer is back need not wait for the breaker's own trials. It returns the state it was
// in. Half-open trials in flight here end without a verdict.
func (b *Breaker) Reset(ctx context.Context) (gobreaker.State, error) {
	from := gobreaker.StateClosed
	if b.sh == nil {
		from = b.local.Load().State()
		b.local.Store(b.newLocal())
		b.changed(from, gobreaker.StateClosed)
		return from, nil
	}
	rec, err := b.sh.store.update(ctx, b.name, nil, func(r *record, now time.Time) bool {
		from, _ = r.effective(now)
		if r.State == gobreaker.StateClosed && len(r.Buckets) == 0 {
			return false
		}
		r.toState(gobreaker.StateClosed, now, 0)
		r.stamp(now, b.sh.instance)
		return true
	})
	if err != nil {
		return from, fmt.Errorf("%w: reset of consumer %s's breaker not applied: %w", ErrNotShared, b.name, err)
	}
	b.mu.Lock()
	b.pending, b.passed = nil, 0
	b.mu.Unlock()
	// The fallback starts afresh too, so a store that stops answering does not bring back the
	// state just cleared.
	b.local.Store(b.newLocal())
	b.adopt(rec)
	b.changed(from, gobreaker.StateClosed)
	return from, nil
}
