package dispatch

import (
	"context"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// Shape is how the named route shapes what it sends, as the route file has it now; false when
// the route is gone. With Reroute it makes the Dispatcher the failures.Router replays use.
func (d *Dispatcher) Shape(route string) (failures.Shape, bool) {
	if d.Routes == nil {
		return failures.Shape{}, false
	}
	rt := d.Routes.Route(route)
	if rt == nil {
		return failures.Shape{}, false
	}
	return failures.Shape{Select: rt.Select, Exclude: rt.Exclude}, true
}

// Reroute dispatches a poison message that decodes now, or a reread failure's event, as if it
// had just arrived. A read from the Web API that fails again is returned (failures.ErrRead),
// not recorded as a new failure: the replay records it on the failure it replays.
func (d *Dispatcher) Reroute(ctx context.Context, ev *dataverse.Event) (failures.Routed, error) {
	r, err := d.dispatch(ctx, ev, true)
	return failures.Routed{ID: r.ID, Matched: r.Matched, Delivered: r.Delivered, Failed: r.Failed}, err
}
