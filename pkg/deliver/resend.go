package deliver

import (
	"context"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// Resend is Send for a replay of a kept failure: the failures.Sender the failures.Replayer uses.
func (d *Deliverer) Resend(ctx context.Context, ev *dataverse.Event, route, consumer string, shape failures.Shape) failures.Attempt {
	r := d.Send(ctx, ev, Target{Route: route, Consumer: consumer, Select: shape.Select, Exclude: shape.Exclude})
	return failures.Attempt{
		Delivered:      r.Delivered,
		Attempts:       r.Attempts,
		StatusCode:     r.StatusCode,
		Error:          r.Error,
		Tries:          r.Tries,
		BreakerRefused: !r.Delivered && r.Kind == failures.KindBreakerOpen,
		Paused:         !r.Delivered && r.Kind == failures.KindPaused,
	}
}
