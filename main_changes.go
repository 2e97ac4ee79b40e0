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
//
// When the Web API client of the reads (DVROUTER_DATAVERSE_ENVIRONMENTS) already holds the
// environment with the same identity, change tracking uses that Environment, so both share one
// concurrency limit and one Retry-After, as Dataverse counts them per user.
func openChanges(s *config.Settings, file *config.RouteFile, routes *route.Set, d *dispatch.Dispatcher, hist changes.History, reads *webapi.Client, log zerolog.Logger) (*changes.Runner, error) {
	env, err := changesEnvironment(s, reads)
	if err != nil {
		return nil, err
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
		Reader: &changes.Reader{Env: env, Store: store, Dispatcher: &cd,
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

func changesEnvironment(s *config.Settings, reads *webapi.Client) (*webapi.Environment, error) {
	u, err := webapi.ParseEnvironmentURL(s.Changes.Environment)
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", config.EnvChangesEnvironment, err)
	}
	if reads != nil && (s.Changes.ClientID == "" || s.Changes.ClientID == s.Dataverse.ClientID) {
		for _, e := range reads.Environments() {
			if e.URL() == u {
				return e, nil
			}
		}
	}
	cred, err := webAPICredential(s.Changes.ClientID)
	if err != nil {
		return nil, fmt.Errorf("change tracking: credential: %w", err)
	}
	client, err := webapi.New(map[string]string{u: u}, webapi.Options{Credential: cred})
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", config.EnvChangesEnvironment, err)
	}
	return client.Environments()[0], nil
}
