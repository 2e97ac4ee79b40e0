package changes

import (
	"context"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// History is the part of the delivery journal reconciliation reads; *journal.Journal is one.
type History interface {
	Lookup(ctx context.Context, q journal.Query) ([]journal.Entry, error)
}

// Reconciling is the delivery of change-tracking events for routes with `reconcile: true`
// (source: both): a consumer the plugin step already reached with this row's version, or a
// later one, is left out, as the delivery journal records it (same table, record and consumer,
// delivered or replayed, from the plugin path, version at least the change's). What the plugin
// step never delivered goes on. Anything in doubt is sent: a consumer without a journal entry,
// a plugin event without a version (the step's post-image must hold versionnumber), a journal
// that does not answer, or an entry still waiting in the journal's buffer (it flushes within
// a second). A repeat costs the consumer a duplicate; a skip would cost it a change.
type Reconciling struct {
	Next    dispatch.Deliverer
	History History
	Routes  *route.Set
	Log     zerolog.Logger
}

// Deliver delivers ev to the targets the plugin step has not already reached.
func (r *Reconciling) Deliver(ctx context.Context, ev *dataverse.Event, targets []deliver.Target) (deliver.Outcome, error) {
	if ev.Source != dataverse.SourceChanges || ev.Version == "" || r.History == nil {
		return r.Next.Deliver(ctx, ev, targets)
	}
	version, ok := parseVersion(ev.Version)
	reconciled := false
	for _, t := range targets {
		if rt := r.Routes.Route(t.Route); rt != nil && rt.Config.Reconcile {
			reconciled = true
		}
	}
	if !ok || !reconciled {
		return r.Next.Deliver(ctx, ev, targets)
	}
	entries, err := r.History.Lookup(ctx, journal.Query{Table: ev.Table, RecordID: ev.RecordID, Limit: journal.MaxLimit})
	if err != nil {
		dispatch.EventLog(r.Log.Warn(), ev).Err(err).Msg("reconcile: the journal did not answer; delivering the change to every consumer")
		return r.Next.Deliver(ctx, ev, targets)
	}
	kept := make([]deliver.Target, 0, len(targets))
	var skipped []string
	for _, t := range targets {
		if rt := r.Routes.Route(t.Route); rt != nil && rt.Config.Reconcile && pluginReached(entries, t.Consumer, version) {
			skipped = append(skipped, t.Consumer)
			continue
		}
		kept = append(kept, t)
	}
	if len(skipped) > 0 {
		dispatch.EventLog(r.Log.Info(), ev).Str("version", ev.Version).Strs("consumers", skipped).
			Msg("reconcile: already delivered by the plugin step, not sent again")
	}
	if len(kept) == 0 {
		return deliver.Outcome{}, nil
	}
	return r.Next.Deliver(ctx, ev, kept)
}

// pluginReached reports whether the journal shows the plugin path reaching consumer with the
// row at version or later.
func pluginReached(entries []journal.Entry, consumer string, version uint64) bool {
	for _, e := range entries {
		if e.Consumer != consumer || e.Source != "" || (e.Outcome != journal.Delivered && e.Outcome != journal.Replayed) {
			continue
		}
		if v, ok := parseVersion(e.Version); ok && v >= version {
			return true
		}
	}
	return false
}

func parseVersion(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
