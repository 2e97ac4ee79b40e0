package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dvrouter/dvrouter/pkg/breaker"
)

// Operations on one consumer that support staff with the operator role ask for: pause, resume,
// reset its breaker (and SendTest, testevent.go). The pause and the breaker live in the
// consumer's breaker (package breaker), shared with every instance when the breaker table is;
// a paused consumer's deliveries are recorded as failures of kind paused and nothing is sent.

// Paused says who paused consumer, since when and why; "" when it is not paused (or unknown).
// It is the failures.Sender's Paused.
func (d *Deliverer) Paused(consumer string) string {
	c, ok := d.consumers[consumer]
	if !ok {
		return ""
	}
	if p := c.cb.Paused(); p != nil {
		return pauseText(p)
	}
	return ""
}

// Pause pauses consumer; by names who asked. A consumer already paused keeps its pause, which
// is returned.
func (d *Deliverer) Pause(ctx context.Context, consumer, by, reason string) (*breaker.Pause, error) {
	c, err := d.consumer(consumer)
	if err != nil {
		return nil, err
	}
	p, err := c.cb.Pause(ctx, by, reason)
	if err == nil {
		d.log.Warn().Str("consumer", consumer).Str("who", p.By).Time("since", p.At).Str("reason", p.Reason).Msg("consumer paused")
	}
	return p, err
}

// Resume lifts consumer's pause and returns it (nil: it was not paused).
func (d *Deliverer) Resume(ctx context.Context, consumer, by string) (*breaker.Pause, error) {
	c, err := d.consumer(consumer)
	if err != nil {
		return nil, err
	}
	p, err := c.cb.Resume(ctx)
	if err == nil && p != nil {
		d.log.Warn().Str("consumer", consumer).Str("who", by).Str("pausedBy", p.By).Msg("consumer resumed")
	}
	return p, err
}

// ResetBreaker closes consumer's circuit breaker and returns the state it was in.
func (d *Deliverer) ResetBreaker(ctx context.Context, consumer, by string) (string, error) {
	c, err := d.consumer(consumer)
	if err != nil {
		return "", err
	}
	from, err := c.cb.Reset(ctx)
	if err != nil {
		return "", err
	}
	if from != gobreaker.StateClosed {
		d.log.Warn().Str("consumer", consumer).Str("who", by).Str("from", from.String()).Msg("breaker reset")
	}
	return from.String(), nil
}

// Breaker reports one consumer's breaker and pause, as Breakers does.
func (d *Deliverer) Breaker(consumer string) (breaker.Status, error) {
	c, err := d.consumer(consumer)
	if err != nil {
		return breaker.Status{}, err
	}
	return c.cb.Status(), nil
}

func (d *Deliverer) consumer(name string) (*consumer, error) {
	c, ok := d.consumers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q: the route file defines no consumer of that name", ErrUnknownConsumer, name)
	}
	return c, nil
}

// pauseText is a pause as failures and errors quote it.
func pauseText(p *breaker.Pause) string {
	s := "paused by " + p.By + " at " + p.At.UTC().Format(time.RFC3339)
	if p.Reason != "" {
		s += ": " + p.Reason
	}
	return s
}

// pausedText is the error of a delivery held by a pause, as the failure keeps it.
func pausedText(consumer string, p *breaker.Pause) string {
	return "consumer " + consumer + " is " + pauseText(p) + "; nothing was sent, replay once it is resumed"
}
