package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// History answers the delivery journal's lookups; *journal.Journal is one.
type History interface {
	Lookup(ctx context.Context, q journal.Query) ([]journal.Entry, error)
}

// historyAPI serves GET /api/history, behind the support API's authentication (any role may
// read it):
//
//	GET /api/history?event=ID
//	GET /api/history?table=account&record=ID
//	GET /api/history?correlation=ID
//	GET /api/history?consumer=NAME&since=2024-07-25&until=2024-07-26
//
// since and until narrow any lookup; each is a plain date (until: the end of that day, UTC) or
// an RFC 3339 time. top bounds the answer (default 200, at most 1000).
func historyAPI(s *config.Settings, h History) http.Handler {
	if s == nil {
		s = &config.Settings{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+supportapi.HistoryPath, func(w http.ResponseWriter, r *http.Request) {
		if h == nil {
			writeError(w, http.StatusServiceUnavailable, "no delivery journal configured", "set DVROUTER_TABLES (and leave DVROUTER_JOURNAL on)")
			return
		}
		q, err := parseHistoryQuery(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid query", err.Error())
			return
		}
		items, err := h.Lookup(r.Context(), q)
		switch {
		case errors.Is(err, journal.ErrInvalid):
			writeError(w, http.StatusBadRequest, "invalid query", err.Error())
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "delivery journal unavailable", "Table Storage did not answer; try again")
			return
		}
		if items == nil {
			items = []journal.Entry{}
		}
		writeJSON(w, http.StatusOK, supportapi.History{Items: items})
	})
	mux.HandleFunc(supportapi.HistoryPath, methodNotAllowed(http.MethodGet))
	return authenticate(s, mux)
}

func parseHistoryQuery(v url.Values) (journal.Query, error) {
	q := journal.Query{
		EventID:       strings.TrimSpace(v.Get("event")),
		Table:         strings.TrimSpace(v.Get("table")),
		RecordID:      strings.TrimSpace(v.Get("record")),
		CorrelationID: strings.TrimSpace(v.Get("correlation")),
		Consumer:      strings.TrimSpace(v.Get("consumer")),
	}
	for _, s := range []string{q.EventID, q.Table, q.RecordID, q.CorrelationID, q.Consumer} {
		if len(s) > maxFilterChars {
			return q, fmt.Errorf("a filter is longer than %d characters", maxFilterChars)
		}
	}
	var err error
	if q.Since, err = ParseFilterTime(v.Get("since"), false); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.Until, err = ParseFilterTime(v.Get("until"), true); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	if s := v.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > journal.MaxLimit {
			return q, fmt.Errorf("top: %q must be a number from 1 to %d", s, journal.MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// ParseFilterTime reads a time filter: RFC 3339, or a plain date (2024-07-25, UTC), which as
// an end means the end of that day. Empty is the zero time.
func ParseFilterTime(s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2024-07-25) nor an RFC 3339 time (2024-07-25T10:00:00Z)", s)
	}
	if end {
		return d.Add(24*time.Hour - time.Nanosecond), nil
	}
	return d, nil
}
