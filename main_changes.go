package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/route"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// openChanges wires change tracking: the environment's Web API client, the token and lease
// store in the failure store's account, and a reader that dispatches through d's routes,
// delivery, failure store and journal, with reconciliation against hist (nil: no journal).
func openChanges(s *config.Settings, file *config.RouteFile, routes *route.Set, d *dispatch.Dispatcher, hist changes.History, log zerolog.Logger) (*changes.Runner, error) {
	cred, err := webAPICredential(s.Changes.ClientID)
	if err != nil {
		return nil, fmt.Errorf("change tracking: credential: %w", err)
	}
	client, err := webapi.New(map[string]string{s.Changes.Environment: s.Changes.Environment}, webapi.Options{Credential: cred})
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", config.EnvChangesEnvironment, err)
	}
	acct := tables.Account{ConnectionString: s.Tables.ConnectionString, ServiceURI: s.Tables.ServiceURI, ClientID: s.Tables.ClientID}
	store, err := changes.OpenStore(acct, s.Changes.Table)
	if err != nil {
		return nil, err
	}
	cd := *d
	cd.Deliver = &changes.Reconciling{Next: d.Deliver, History: hist, Routes: routes, Log: log}
	host, _ := os.Hostname()
	r := &changes.Runner{
		Reader: &changes.Reader{Env: client.Environments()[0], Store: store, Dispatcher: &cd,
			Owner: fmt.Sprintf("%s/%d", host, os.Getpid()), PageSize: s.Changes.PageSize, Parallel: s.Changes.Parallel, Log: log},
		Tables:     changes.TablesFor(file, routes),
		StaleAfter: s.Changes.StaleAfter,
	}
	if len(r.Tables) == 0 {
		log.Warn().Msg(config.EnvChangesEnvironment + " is set, but no route has source: changes or both: change tracking reads nothing")
	}
	return r, nil
}

// changesLoop reads every change-tracking table every interval, for `dvrouter serve` on its own,
// where no timer trigger calls /ChangeTracking.
func changesLoop(ctx context.Context, r *changes.Runner, every time.Duration, log zerolog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		runCtx, cancel := context.WithTimeout(ctx, every)
		if _, err := r.Run(runCtx); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("change tracking run failed; the next one tries again from the last stored page")
		}
		cancel()
	}
}
