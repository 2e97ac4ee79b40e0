package deliver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// delivery is one event on its way to one consumer, with what the policy layers learn about it.
type delivery struct {
	msg      dest.Message
	attempts int // attempts that reached the publisher
	// deadline is the end of the event's budget (or the caller's deadline, when sooner): no
	// attempt, wait for a slot or wait between attempts runs past it. It is a time, not a
	// context of its own, so that each attempt costs one context (see timeout), not two.
	deadline time.Time
	// tries is every attempt, oldest first, the newest failures.MaxTries (see track). It starts
	// in first, inside the delivery, so that the common single attempt costs no allocation.
	tries []failures.Try
	first [1]failures.Try
}

// over reports whether d's time is up: its budget spent, or its caller gone.
func (d *delivery) over(ctx context.Context) bool {
	return ctx.Err() != nil || !time.Now().Before(d.deadline)
}

// sendFunc delivers d, or says why not. The policy is a stack of wrappers around one sendFunc.
type sendFunc func(ctx context.Context, d *delivery) error

type wrapper func(sendFunc) sendFunc

// policy is a consumer's whole delivery policy, outermost first. The breaker judges whole
// deliveries: it lets one through or refuses it, and counts how it ended after all its retries.
// Each attempt waits for a free slot and gets its own timeout; retry decides whether there is
// another attempt and when, and stops when the breaker opens meanwhile. Every layer gets the
// caller's context and the delivery, whose deadline is the event's budget.
func policy(c config.Consumer, slots chan struct{}, cb *breaker.Breaker, pub dest.Publisher) sendFunc {
	return stack(publish(pub),
		guard(cb),          // open => fail fast; counts the delivery's outcome, after retries
		retry(c.Retry, cb), // attempts, backoff with full jitter, Retry-After, never past the budget
		limit(slots),       // maxConcurrency: at most that many attempts in flight
		track,              // each attempt's start, duration, status and error (Result.Tries)
		timeout(c.Timeout), // per attempt, and the budget
	)
}

func stack(send sendFunc, outermostFirst ...wrapper) sendFunc {
	for i := len(outermostFirst) - 1; i >= 0; i-- {
		send = outermostFirst[i](send)
	}
	return send
}

func publish(pub dest.Publisher) sendFunc {
	return func(ctx context.Context, d *delivery) error {
		d.attempts++
		return pub.Publish(ctx, d.msg)
	}
}

// errBudget says the event's delivery budget ran out before the delivery could finish.
var errBudget = errors.New("delivery budget exhausted")

// errBreakerOpen says the consumer's breaker refused the delivery, or a retry of it.
var errBreakerOpen = errors.New("circuit breaker open")

// retry makes up to p.Attempts attempts. It retries only what dest.Retryable allows; it waits
// the consumer's Retry-After when there is one, else a random delay up to
// InitialDelay*2^(retry-1) (full jitter), both capped at MaxDelay; it never starts a wait that
// would end past the delivery's deadline (the event's budget): it fails with the last error. It
// makes no retry while cb refuses deliveries: other deliveries found the consumer down.
func retry(p config.Retry, cb *breaker.Breaker) wrapper {
	attempts := max(p.Attempts, 1)
	return func(next sendFunc) sendFunc {
		return func(ctx context.Context, d *delivery) error {
			var last error
			for n := 1; ; n++ {
				d.msg.Attempt = n
				err := next(ctx, d)
				if err == nil {
					return nil
				}
				if errors.Is(err, errBreakerOpen) || errors.Is(err, errBudget) {
					if last != nil {
						return fmt.Errorf("%w; last attempt: %w", err, last)
					}
					return err
				}
				last = err
				if n >= attempts || !dest.Retryable(err) {
					return err
				}
				if d.over(ctx) {
					return fmt.Errorf("%w: %w", errBudget, err)
				}
				if cb.Refusing() {
					return fmt.Errorf("%w before attempt %d: %w", errBreakerOpen, n+1, err)
				}
				wait := backoff(p, n, dest.RetryAfter(err))
				if time.Until(d.deadline) <= wait {
					return fmt.Errorf("%w before attempt %d (would wait %s): %w", errBudget, n+1, wait.Round(time.Millisecond), err)
				}
				// The wait ends inside the budget (checked above): only the caller can cut it short.
				if err := sleep(ctx, wait); err != nil {
					return fmt.Errorf("%w: %w", errBudget, last)
				}
				if cb.Refusing() { // it may have opened during the wait
					return fmt.Errorf("%w before attempt %d: %w", errBreakerOpen, n+1, err)
				}
			}
		}
	}
}

// backoff is the wait before retry number n (1 = the second attempt).
func backoff(p config.Retry, n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		if p.MaxDelay > 0 {
			return min(retryAfter, p.MaxDelay)
		}
		return retryAfter
	}
	ceiling := p.InitialDelay
	for i := 1; i < n && (p.MaxDelay <= 0 || ceiling < p.MaxDelay); i++ {
		ceiling *= 2
	}
	if p.MaxDelay > 0 {
		ceiling = min(ceiling, p.MaxDelay)
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limit holds one of the consumer's slots for the length of each attempt. Waiting for a slot
// counts against the budget.
func limit(slots chan struct{}) wrapper {
	return func(next sendFunc) sendFunc {
		return func(ctx context.Context, d *delivery) error {
			select {
			case slots <- struct{}{}:
			default:
				if err := waitSlot(ctx, slots, d.deadline); err != nil {
					return err
				}
			}
			defer func() { <-slots }()
			return next(ctx, d)
		}
	}
}

// waitSlot waits for a free slot until the deadline or until the caller gives up. Only a full
// consumer gets here, so the common case, a free slot, costs no timer.
func waitSlot(ctx context.Context, slots chan struct{}, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	return fmt.Errorf("%w waiting for one of %d delivery slots", errBudget, cap(slots))
}

// track notes each attempt that reached the publisher: when it started (after any wait for a
// slot), how long it took, and how it failed, as the timeout layer below it put it.
func track(next sendFunc) sendFunc {
	return func(ctx context.Context, d *delivery) error {
		start, n := time.Now(), d.attempts
		err := next(ctx, d)
		if d.attempts > n {
			d.note(failures.Try{At: start, Duration: time.Since(start)}, err)
		}
		return err
	}
}

// note adds t, with err's text (cut to failures.MaxTryError bytes), to d's tries, dropping the
// oldest past failures.MaxTries.
func (d *delivery) note(t failures.Try, err error) {
	if err != nil { // only then: dest.StatusCode costs an allocation (errors.As)
		t.StatusCode, t.Error = dest.StatusCode(err), failures.CutError(err.Error())
	}
	if d.tries == nil {
		d.tries = d.first[:0]
	}
	if len(d.tries) == failures.MaxTries {
		d.tries = append(d.tries[:0], d.tries[1:]...)
	}
	d.tries = append(d.tries, t)
}

// guard asks cb before the delivery and tells it how the delivery ended.
func guard(cb *breaker.Breaker) wrapper {
	return func(next sendFunc) sendFunc {
		return func(ctx context.Context, d *delivery) error {
			done, err := cb.Allow()
			if err != nil {
				return fmt.Errorf("%w: %w", errBreakerOpen, err)
			}
			err = next(ctx, d)
			done(outcome(ctx, d, err))
			return err
		}
	}
}

// outcome is how the breaker counts a delivery that ended with err. Only a consumer that failed
// every attempt it got, retryably, counts against it: one that answers 4xx to a payload is up,
// it just refuses that payload. A delivery whose time ran out (the event's budget, the caller),
// that never reached the consumer, or whose retries the breaker itself stopped says nothing new.
func outcome(ctx context.Context, d *delivery, err error) breaker.Outcome {
	switch {
	case err == nil:
		return breaker.Success
	case d.attempts == 0 || d.over(ctx) || errors.Is(err, errBreakerOpen):
		return breaker.Excluded
	case dest.Retryable(err):
		return breaker.Failure
	}
	return breaker.Success
}

// timeout bounds one attempt by the consumer's timeout (d; none when d <= 0) and by the event's
// budget, whichever ends first, in the attempt's one context. An attempt that runs out of its
// own time (not the budget's) is a retryable failure of the consumer.
func timeout(d time.Duration) wrapper {
	return func(next sendFunc) sendFunc {
		return func(ctx context.Context, dl *delivery) error {
			deadline, own := dl.deadline, false
			if d > 0 {
				if t := time.Now().Add(d); t.Before(deadline) {
					deadline, own = t, true
				}
			}
			actx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			err := next(actx, dl)
			if err != nil && own && actx.Err() != nil && !dl.over(ctx) {
				return &dest.Error{Err: fmt.Errorf("no answer within %s: %w", d, err), Retryable: true}
			}
			return err
		}
	}
}
