package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// FailuresDeps is what the support API needs, wired in main.
type FailuresDeps struct {
	Settings *config.Settings
	// Replayer carries out replays and discards on its Store; nil (no failure store
	// configured) makes every failures call answer 503, while /api/me still answers.
	Replayer *failures.Replayer
	Log      zerolog.Logger
}

const (
	maxFailuresBody = 64 << 10
	defaultListTop  = 50
	maxListTop      = 1000
	defaultBulkMax  = 1000
	maxBulkMax      = 100000
	maxFilterChars  = 256
)

// failuresAPI parses support API requests, calls the failure store or the Replayer, and maps
// their answers and errors to HTTP. It holds no rules of its own.
type failuresAPI struct {
	replayer *failures.Replayer
	log      zerolog.Logger
}

// NewFailuresAPI returns the handler of the support API, behind one authentication middleware
// (see authenticate):
//
//	GET  /api/me                        who the caller is and what they may do
//	GET  /api/failures                  list (filters in the query), newest first, paged
//	GET  /api/failures/{id}             one failure with its payload and history
//	POST /api/failures/{id}/replay      deliver it again now             (operator)
//	POST /api/failures/replay           replay every failure a filter matches (operator)
//	POST /api/failures/{id}/discard     give up on it, with a reason     (operator)
func NewFailuresAPI(d FailuresDeps) http.Handler {
	s := d.Settings
	if s == nil {
		s = &config.Settings{}
	}
	a := &failuresAPI{replayer: d.Replayer, log: d.Log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+supportapi.MePath, a.me)
	mux.HandleFunc("GET /api/failures", a.withStore(a.list))
	mux.HandleFunc("GET /api/failures/{$}", a.withStore(a.list))
	mux.HandleFunc("GET /api/failures/{id}", a.withStore(a.show))
	mux.HandleFunc("POST /api/failures/replay", requireOperator(a.withStore(a.replayMany)))
	mux.HandleFunc("POST /api/failures/{id}/replay", requireOperator(a.withStore(a.replayOne)))
	mux.HandleFunc("POST /api/failures/{id}/discard", requireOperator(a.withStore(a.discard)))
	mux.HandleFunc(supportapi.MePath, methodNotAllowed(http.MethodGet))
	mux.HandleFunc("/api/failures", methodNotAllowed(http.MethodGet))
	mux.HandleFunc("/api/failures/{rest...}", otherFailuresPaths)
	return authenticate(s, mux)
}

func (a *failuresAPI) withStore(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.replayer == nil || a.replayer.Store == nil {
			writeError(w, http.StatusServiceUnavailable, "no failure store configured", "set DVROUTER_TABLES or DVROUTER_TABLES__tableServiceUri")
			return
		}
		next(w, r)
	}
}

// otherFailuresPaths answers what the patterns above do not match: a known path with another
// method (405, naming the one it takes), or no endpoint at all (404).
func otherFailuresPaths(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.PathValue("rest"), "/"), "/")
	allowed := ""
	switch {
	case len(parts) == 1 && parts[0] == "replay":
		allowed = http.MethodPost
	case len(parts) == 1 && parts[0] != "":
		allowed = http.MethodGet
	case len(parts) == 2 && (parts[1] == "replay" || parts[1] == "discard") && parts[0] != "":
		allowed = http.MethodPost
	}
	if allowed == "" {
		writeError(w, http.StatusNotFound, "not found", r.URL.Path+" is not an endpoint of the failures API")
		return
	}
	methodNotAllowed(allowed)(w, r)
}

func methodNotAllowed(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", r.URL.Path+" accepts "+method+" only")
	}
}

func (a *failuresAPI) me(w http.ResponseWriter, r *http.Request) {
	id := identityOf(r)
	writeJSON(w, http.StatusOK, supportapi.Me{Name: id.name, Roles: roleNames(id.role), Via: id.via})
}

func actorOf(r *http.Request) failures.Actor {
	id := identityOf(r)
	return failures.Actor{Name: id.name, Key: id.key}
}

func (a *failuresAPI) list(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid query", err.Error())
		return
	}
	page, err := a.replayer.Store.List(r.Context(), q)
	if err != nil {
		a.storeError(w, "", err)
		return
	}
	items := make([]supportapi.Failure, 0, len(page.Items))
	for _, f := range page.Items {
		items = append(items, wireFailure(f))
	}
	writeJSON(w, http.StatusOK, supportapi.FailureList{Items: items, Continuation: page.Continuation})
}

// listParams are the query parameters GET /api/failures understands. `code` is the Functions
// host's key parameter: the host forwards the query string as it came.
var listParams = map[string]bool{
	"consumer": true, "status": true, "kind": true, "table": true, "from": true, "to": true,
	"event": true, "record": true, "correlation": true, "top": true, "continuation": true, "code": true,
}

func parseListQuery(v url.Values) (failures.Query, error) {
	for name, vals := range v {
		if !listParams[name] {
			return failures.Query{}, fmt.Errorf("unknown parameter %q; known: consumer, status, kind, table, record, event, correlation, from, to, top, continuation", name)
		}
		if len(vals) > 1 {
			return failures.Query{}, fmt.Errorf("parameter %q is given %d times", name, len(vals))
		}
	}
	f := filter{
		Consumer: v.Get("consumer"), Status: v.Get("status"), Kind: v.Get("kind"),
		Table: v.Get("table"), From: v.Get("from"), To: v.Get("to"),
	}
	q, err := f.query(true)
	if err != nil {
		return q, err
	}
	q.EventID = strings.TrimSpace(v.Get("event"))
	q.RecordID = strings.TrimSpace(v.Get("record"))
	q.CorrelationID = strings.TrimSpace(v.Get("correlation"))
	for _, p := range []struct{ name, v string }{{"event", q.EventID}, {"record", q.RecordID}, {"correlation", q.CorrelationID}} {
		if len(p.v) > maxFilterChars {
			return q, fmt.Errorf("%s: longer than %d characters", p.name, maxFilterChars)
		}
	}
	if q.RecordID != "" && q.Table == "" {
		return q, fmt.Errorf("record: %q needs its table too (table=contact&record=...), since a record id is unique only within its table", q.RecordID)
	}
	q.Top = defaultListTop
	if s := v.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListTop {
			return q, fmt.Errorf("top: %q must be a whole number from 1 to %d", s, maxListTop)
		}
		q.Top = n
	}
	q.Continuation = v.Get("continuation")
	if len(q.Continuation) > 4096 {
		return q, errors.New("continuation: too long to be one of ours")
	}
	return q, nil
}

// filter is the part of a query shared by list and bulk replay, as text to be checked.
type filter struct {
	Consumer, Status, Kind, Table, From, To string
}

// query checks the filter and turns it into a store query; every error names its parameter.
func (f filter) query(anyStatus bool) (failures.Query, error) {
	q := failures.Query{Consumer: strings.TrimSpace(f.Consumer), Table: strings.TrimSpace(f.Table)}
	if len(q.Consumer) > maxFilterChars {
		return q, fmt.Errorf("consumer: longer than %d characters", maxFilterChars)
	}
	if len(q.Table) > maxFilterChars {
		return q, fmt.Errorf("table: longer than %d characters", maxFilterChars)
	}
	switch s := failures.Status(f.Status); s {
	case "":
	case failures.StatusPending, failures.StatusReplayed, failures.StatusDiscarded, failures.StatusReplaying:
		if !anyStatus && s != failures.StatusPending {
			return q, fmt.Errorf("status: only pending failures can be replayed, not %s ones", s)
		}
		q.Status = string(s)
	default:
		return q, fmt.Errorf("status: %q must be pending, replaying, replayed or discarded", f.Status)
	}
	switch k := failures.Kind(f.Kind); k {
	case "", failures.KindDelivery, failures.KindBreakerOpen, failures.KindPoison, failures.KindPaused, failures.KindReread:
		q.Kind = string(k)
	default:
		return q, fmt.Errorf("kind: %q must be delivery, breaker-open, paused, poison or reread", f.Kind)
	}
	var err error
	if q.From, err = parseTime("from", f.From, false); err != nil {
		return q, err
	}
	if q.To, err = parseTime("to", f.To, true); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, fmt.Errorf("to: %s must be after from %s (from is inclusive, to exclusive)", f.To, f.From)
	}
	return q, nil
}

// parseTime reads from or to (end): RFC 3339, or a plain date in UTC, which as from is the
// start of that day and as to takes in the whole day (to is exclusive: the next midnight).
func parseTime(name, s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := ParseFilterTime(s, false)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	if _, dateErr := time.Parse(time.DateOnly, s); end && dateErr == nil {
		t = t.AddDate(0, 0, 1)
	}
	return t.UTC(), nil
}

func (a *failuresAPI) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, _, err := a.replayer.Store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, renderPayload(f, a.shown))
}

// shown is ev as support may see it: less the columns the failure's route excludes. When the
// route is gone nobody can say which columns were personal, so the row and images are withheld.
// ev is nil for a payload that no longer decodes: a non-empty note then withholds its text.
func (a *failuresAPI) shown(f failures.Failure, ev *dataverse.Event) (*dataverse.Event, string) {
	var sh failures.Shape
	ok := false
	if a.replayer.Router != nil {
		sh, ok = a.replayer.Router.Shape(f.Route)
	}
	if ev == nil {
		if !ok || len(sh.Exclude) > 0 {
			return nil, "the payload text is not shown: it does not decode, so the columns the route excludes cannot be left out"
		}
		return nil, ""
	}
	if !ok {
		out := *ev
		out.Row, out.PreImage, out.PostImage, out.ChangedColumns = nil, nil, nil, nil
		return &out, fmt.Sprintf("route %q is no longer configured: its row and images are not shown, since the columns it excludes are unknown", f.Route)
	}
	if len(sh.Exclude) == 0 {
		return ev, ""
	}
	return deliver.WithoutExcluded(ev, sh.Exclude), "columns the route excludes are not shown: " + strings.Join(sh.Exclude, ", ")
}

// renderPayload shows a failure's payload: the normalized event, or the raw text of a poison
// message (base64 when it is not UTF-8).
// show, when set, trims a decoded event to what support may see.
func renderPayload(f failures.Failure, show func(failures.Failure, *dataverse.Event) (*dataverse.Event, string)) supportapi.ShownFailure {
	s := supportapi.ShownFailure{Failure: wireFailure(f), Payload: json.RawMessage("null")}
	if len(f.Payload) == 0 {
		return s
	}
	if f.Kind != failures.KindPoison {
		ev, err := dataverse.Decode(f.Payload)
		if err == nil {
			if show != nil {
				ev, s.PayloadNote = show(f, ev)
			}
			if b, err := json.Marshal(ev); err == nil {
				s.Payload = b
				return s
			}
		}
		// Not expected (it decoded when it was recorded), but the bytes must still be seen,
		// unless they hold columns the route excludes.
		s.PayloadError = fmt.Sprintf("payload no longer decodes: %v", err)
		if show != nil {
			if _, s.PayloadNote = show(f, nil); s.PayloadNote != "" {
				return s
			}
		}
	}
	if utf8.Valid(f.Payload) {
		s.Payload, _ = json.Marshal(string(f.Payload))
	} else {
		s.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(f.Payload))
		s.PayloadEncoding = "base64"
	}
	return s
}

func (a *failuresAPI) replayOne(w http.ResponseWriter, r *http.Request) {
	var none struct{}
	if !readJSON(w, r, &none, false) {
		return
	}
	id := r.PathValue("id")
	out, err := a.replayer.Replay(r.Context(), id, actorOf(r))
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	res := supportapi.ReplayResult{ID: out.ID, Result: out.Result, Error: out.Error}
	if d := out.Routed; d != nil {
		res.Dispatch = &supportapi.Routed{ID: d.ID, Matched: d.Matched, Delivered: d.Delivered, Failed: d.Failed}
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *failuresAPI) replayMany(w http.ResponseWriter, r *http.Request) {
	var req supportapi.BulkReplayRequest
	if !readJSON(w, r, &req, true) {
		return
	}
	if err := req.Narrow(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid filter", err.Error())
		return
	}
	q, err := filter{Consumer: req.Consumer, Status: req.Status, Kind: req.Kind, Table: req.Table, From: req.From, To: req.To}.query(false)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid filter", err.Error())
		return
	}
	limit := defaultBulkMax
	if req.Max != nil {
		if *req.Max < 1 || *req.Max > maxBulkMax {
			writeError(w, http.StatusBadRequest, "invalid filter", fmt.Sprintf("max: %d must be from 1 to %d", *req.Max, maxBulkMax))
			return
		}
		limit = *req.Max
	}
	if len(req.Continuation) > 4096 {
		writeError(w, http.StatusBadRequest, "invalid filter", "continuation: too long to be one of ours")
		return
	}
	q.Continuation = req.Continuation
	out, err := a.replayer.ReplayMatching(r.Context(), q, limit, req.DryRun, actorOf(r))
	if err != nil {
		a.storeError(w, "", err)
		return
	}
	res := supportapi.BulkReplayResult{
		Matched: out.Matched, Delivered: out.Delivered, Failed: out.Failed, Skipped: out.Skipped,
		DryRun: out.DryRun, StoppedEarly: out.StoppedEarly, Reason: out.Reason, Continuation: out.Continuation,
	}
	for _, e := range out.Errors {
		res.Errors = append(res.Errors, supportapi.ItemError{ID: e.ID, Error: e.Error})
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *failuresAPI) discard(w http.ResponseWriter, r *http.Request) {
	var req supportapi.DiscardRequest
	if !readJSON(w, r, &req, true) {
		return
	}
	id := r.PathValue("id")
	f, err := a.replayer.Discard(r.Context(), id, actorOf(r), req.Reason)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, wireFailure(f))
}

// storeError answers for an error from the failure store or the Replayer.
func (a *failuresAPI) storeError(w http.ResponseWriter, id string, err error) {
	var status *failures.StatusError
	switch {
	case errors.As(err, &status):
		writeError(w, http.StatusConflict, "failure already "+string(status.Failure.Status), err.Error())
	case errors.Is(err, failures.ErrNotFound) && id == "":
		writeError(w, http.StatusNotFound, "no failures yet", "nothing has been kept in the failure store")
	case errors.Is(err, failures.ErrNotFound):
		writeError(w, http.StatusNotFound, "failure not found", fmt.Sprintf("no failure has id %q", id))
	case errors.Is(err, failures.ErrConflict):
		writeError(w, http.StatusConflict, "failure is being handled by someone else",
			fmt.Sprintf("another replay or discard got to failure %s first, nothing was done (%v); look at it again", id, err))
	case errors.Is(err, failures.ErrInvalid):
		title := "invalid request"
		if strings.Contains(err.Error(), "reason") {
			title = "invalid reason"
		}
		writeError(w, http.StatusBadRequest, title, err.Error())
	case errors.Is(err, failures.ErrRouteGone):
		writeError(w, http.StatusUnprocessableEntity, "route no longer exists", err.Error())
	case errors.Is(err, failures.ErrPaused):
		writeError(w, http.StatusConflict, "consumer paused", err.Error())
	case errors.Is(err, failures.ErrBreakerOpen):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "consumer unavailable", err.Error())
	case errors.Is(err, failures.ErrCannotReplay):
		writeError(w, http.StatusServiceUnavailable, "cannot replay", err.Error())
	// The store's own errors can name its account, table and address: they go to the log, and
	// the caller is told what failed, not where.
	case errors.Is(err, failures.ErrNotSaved):
		a.log.Error().Err(err).Str("id", id).Msg("replay outcome not saved")
		writeError(w, http.StatusServiceUnavailable, "replay outcome not saved",
			"the failure store did not answer after the delivery; the consumer may have the event, look at the failure again shortly")
	default:
		a.log.Error().Err(err).Str("id", id).Msg("failure store error")
		writeError(w, http.StatusServiceUnavailable, "failure store unavailable",
			"the failure store did not answer; try again shortly")
	}
}

// wireFailure is a failure as the API sends it.
func wireFailure(f failures.Failure) supportapi.Failure {
	w := supportapi.Failure{
		ID: f.ID, EventID: f.EventID, Consumer: f.Consumer, Route: f.Route, Table: f.Table,
		Message: f.Message, RecordID: f.RecordID, CorrelationID: f.CorrelationID, MessageID: f.MessageID,
		OrganizationHost: f.OrganizationHost,
		Kind:             string(f.Kind), Status: string(f.Status), Attempts: f.Attempts, OccurredAt: f.OccurredAt,
		FirstFailedAt: f.FirstFailedAt, LastFailedAt: f.LastFailedAt, LastError: f.LastError,
		LastStatusCode: f.LastStatusCode, UpdatedBy: f.UpdatedBy, UpdatedAt: f.UpdatedAt,
		ClaimedBy: f.ClaimedBy, ClaimedAt: f.ClaimedAt, Reason: f.Reason, PayloadSize: f.PayloadSize,
	}
	w.Tries = f.Tries
	for _, c := range f.History {
		w.History = append(w.History, supportapi.Change{At: c.At, By: c.By, Action: string(c.Action), Status: string(c.Status), Detail: c.Detail})
	}
	return w
}

// readJSON decodes a bounded JSON body into v, refusing unknown fields. A missing body is fine
// unless required; on false the answer has been written.
func readJSON(w http.ResponseWriter, r *http.Request, v any, required bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFailuresBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large", fmt.Sprintf("the body is over the limit of %d bytes", maxFailuresBody))
			return false
		}
		writeError(w, http.StatusBadRequest, "unreadable body", err.Error())
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if required {
			writeError(w, http.StatusBadRequest, "body required", "send a JSON object with Content-Type: application/json")
			return false
		}
		return true
	}
	if msg, ok := jsonContentType(r.Header.Get("Content-Type")); !ok {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported content type", msg)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed body", jsonProblem(err))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "malformed body", fmt.Sprintf("unexpected data after the JSON object at offset %d", dec.InputOffset()))
		return false
	}
	return true
}

func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at offset %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q at offset %d: want %s, got JSON %s", typ.Field, typ.Offset, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	default:
		return err.Error() // e.g. json: unknown field "x"
	}
}
