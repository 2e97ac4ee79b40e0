package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/customhandler"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// Changes is change tracking, the second source of events; *changes.Runner is one.
type Changes interface {
	Run(ctx context.Context) ([]changes.Report, error)
	Status(ctx context.Context) ([]changes.TableStatus, error)
	Reset(ctx context.Context, table, by string) error
}

// ChangesTimeLimit bounds one ChangeTracking run, under host.json's functionTimeout of 5
// minutes. A run cut short stops between two pages, with every page before stored: the next run
// goes on from there.
const ChangesTimeLimit = 4 * time.Minute

// changesInvocation is POST /ChangeTracking: the Functions host's timer fires. It reads every
// table and answers 2xx when each was read (or skipped: another instance holds it), non-2xx
// when one failed, so a table that cannot be read shows up as a failed run; the reason is in
// the stdout lines, which the host keeps (it throws a non-2xx body away).
type changesInvocation struct {
	settings *config.Settings
	changes  Changes // nil: change tracking is off
	log      zerolog.Logger
}

func (h *changesInvocation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := readTimerInvocation(w, r, h.settings, h.log); !ok {
		return
	}
	if h.changes == nil {
		invocationReply(w, http.StatusOK, nil, "change tracking is off ("+config.EnvChangesEnvironment+" is not set): nothing read")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ChangesTimeLimit)
	defer cancel()
	reps, err := h.changes.Run(ctx)
	lines := make([]string, 0, len(reps)+1)
	for _, rep := range reps {
		lines = append(lines, reportLine(rep))
	}
	if len(reps) == 0 {
		lines = append(lines, "no route reads a table by change tracking")
	}
	out := customhandler.InvokeResponse{Outputs: map[string]any{}, Logs: lines, ReturnValue: reps}
	if err != nil {
		out.Logs = append(out.Logs, "failed: "+err.Error())
		writeJSON(w, http.StatusInternalServerError, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func reportLine(rep changes.Report) string {
	if rep.Skipped != "" {
		return fmt.Sprintf("%s: skipped: %s", rep.Table, rep.Skipped)
	}
	s := fmt.Sprintf("%s: %d changed, %d deleted in %d pages (%d Web API requests, %s)", rep.Table, rep.Changed, rep.Deleted,
		rep.Pages, rep.Requests, rep.Took.Round(time.Millisecond))
	if rep.FullRead {
		s += "; full read: " + rep.FullReadWhy
	}
	if !rep.Complete {
		s += "; not at the end yet, the next run goes on"
	}
	return s
}

// changesAPI serves change tracking's status and reset, behind the support API's
// authentication:
//
//	GET  /api/changes         every table: last token time, pending pages, full reads (any role)
//	POST /api/changes/reset   {"table": "account"}: the next read is a full read (operator)
func changesAPI(s *config.Settings, c Changes) http.Handler {
	if s == nil {
		s = &config.Settings{}
	}
	off := func(w http.ResponseWriter) {
		writeError(w, http.StatusServiceUnavailable, "change tracking is off", "set "+config.EnvChangesEnvironment+" (and DVROUTER_TABLES) and name tables with source: changes in the route file")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+supportapi.ChangesPath, func(w http.ResponseWriter, r *http.Request) {
		if c == nil {
			off(w)
			return
		}
		states, err := c.Status(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "change tracking store unavailable", "Table Storage did not answer; try again")
			return
		}
		out := supportapi.ChangesStatus{Environment: s.Changes.Environment, Schedule: s.Changes.Schedule,
			StaleAfter: s.Changes.StaleAfter.String(), Tables: []supportapi.ChangeTable{}}
		for _, st := range states {
			t := supportapi.ChangeTable{Table: st.Table, Columns: st.Columns, TokenAt: st.TokenAt, LastRunAt: st.LastRunAt,
				Pending: st.Pending, PagesRead: st.PagesRead, FullReads: st.FullReads, FullReadWhy: st.FullReadWhy,
				Changed: st.Changed, Deleted: st.Deleted, Stale: st.Stale, Configured: st.Configured,
				ResetBy: st.ResetBy, ResetAt: st.ResetAt}
			if st.LeaseOwner != "" && time.Now().Before(st.LeaseUntil) {
				t.ReadingBy = st.LeaseOwner
			}
			out.Tables = append(out.Tables, t)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST "+supportapi.ChangesResetPath, requireOperator(func(w http.ResponseWriter, r *http.Request) {
		if c == nil {
			off(w)
			return
		}
		var req supportapi.ChangesResetRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || strings.TrimSpace(req.Table) == "" {
			writeError(w, http.StatusBadRequest, "invalid request", `the body must be {"table": "<logical name>"}`)
			return
		}
		by := identityOf(r).name
		err := c.Reset(r.Context(), req.Table, by)
		switch {
		case errors.Is(err, changes.ErrUnknownTable):
			writeError(w, http.StatusNotFound, "unknown table", err.Error())
			return
		case errors.Is(err, changes.ErrLeased):
			writeError(w, http.StatusConflict, "table is being read", err.Error())
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "change tracking store unavailable", "Table Storage did not answer; try again")
			return
		}
		writeJSON(w, http.StatusOK, supportapi.ChangesResetResult{Table: strings.ToLower(strings.TrimSpace(req.Table)), ResetBy: by, ResetAt: time.Now().UTC()})
	}))
	mux.HandleFunc(supportapi.ChangesPath, methodNotAllowed(http.MethodGet))
	mux.HandleFunc(supportapi.ChangesResetPath, methodNotAllowed(http.MethodPost))
	return authenticate(s, mux)
}
