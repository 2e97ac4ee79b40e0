package handlers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// Sender makes one delivery to one consumer, through its breaker and retry policy, and records
// nothing; *deliver.Deliverer is one.
type Sender interface {
	Send(ctx context.Context, ev *dataverse.Event, t deliver.Target) deliver.Result
	BreakerOpen(consumer string) bool
}

// FailuresDeps is what the failures API needs, wired in main.
type FailuresDeps struct {
	Settings   *config.Settings
	Store      *failures.Store
	Routes     *route.Set // the routes now: a replay is shaped by its route's current select/exclude
	Sender     Sender
	Dispatcher Dispatcher // routes a poison message that decodes now
	Log        zerolog.Logger

	// BulkTimeLimit bounds one bulk replay request; 0 means defaultBulkTimeLimit. It stays under
	// the 230 s the Functions front end allows an HTTP answer.
	BulkTimeLimit time.Duration
}

const (
	failuresPath         = "/api/failures"
	maxFailuresBody      = 64 << 10
	defaultListTop       = 50
	maxListTop           = 1000
	defaultBulkMax       = 1000
	maxBulkMax           = 100000
	bulkConcurrency      = 8
	bulkPageSize         = 200
	defaultBulkTimeLimit = 3 * time.Minute
	maxBulkErrors        = 20
	maxWhoChars          = 256
	maxReasonChars       = 1024
	maxFilterChars       = 256
	// storeTimeout bounds the store writes around one replay beyond the delivery budget.
	storeTimeout = 30 * time.Second
)

// Replay results.
const (
	resultDelivered = "delivered"
	resultFailed    = "failed"
	resultSkipped   = "skipped" // bulk only: not tried (someone else had it, or it cannot be replayed)
)

// failuresAPI serves /api/failures: list, show, replay (one or many) and discard kept failures.
type failuresAPI struct {
	settings   *config.Settings
	store      *failures.Store
	routes     *route.Set
	sender     Sender
	dispatcher Dispatcher
	log        zerolog.Logger
	bulkLimit  time.Duration
	budget     time.Duration
}

// NewFailuresAPI returns the handler for /api/failures and everything under it:
//
//	GET  /api/failures                  list (filters in the query), newest first, paged
//	GET  /api/failures/{id}             one failure with its payload
//	POST /api/failures/{id}/replay      deliver it again now
//	POST /api/failures/replay           replay every failure a filter matches
//	POST /api/failures/{id}/discard     give up on it, with a reason
func NewFailuresAPI(d FailuresDeps) http.Handler {
	a := &failuresAPI{
		settings:   d.Settings,
		store:      d.Store,
		routes:     d.Routes,
		sender:     d.Sender,
		dispatcher: d.Dispatcher,
		log:        d.Log,
		bulkLimit:  d.BulkTimeLimit,
	}
	if a.settings == nil {
		a.settings = &config.Settings{}
	}
	if a.routes == nil {
		a.routes, _ = route.Compile(nil, route.Options{})
	}
	if a.bulkLimit <= 0 {
		a.bulkLimit = defaultBulkTimeLimit
	}
	a.budget = a.settings.DeliveryBudget
	if a.budget <= 0 {
		a.budget = deliver.DefaultBudget
	}
	return a
}

// actor is who asked for an action: the name recorded with it, and the admin key used, if any.
type actor struct {
	who string
	key string
}

func (a *failuresAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	if a.store == nil {
		writeError(w, http.StatusServiceUnavailable, "no failure store configured", "set DVROUTER_TABLES or DVROUTER_TABLES__tableServiceUri")
		return
	}
	parts, ok := pathParts(r)
	if !ok {
		writeError(w, http.StatusNotFound, "not found", r.URL.Path+" is not an endpoint of the failures API")
		return
	}
	switch {
	case len(parts) == 0:
		if allow(w, r, http.MethodGet) {
			a.list(w, r)
		}
	case len(parts) == 1 && parts[0] == "replay":
		if allow(w, r, http.MethodPost) {
			a.replayMany(w, r, who)
		}
	case len(parts) == 1:
		if allow(w, r, http.MethodGet) {
			a.show(w, r, parts[0])
		}
	case len(parts) == 2 && parts[1] == "replay":
		if allow(w, r, http.MethodPost) {
			a.replayOne(w, r, parts[0], who)
		}
	case len(parts) == 2 && parts[1] == "discard":
		if allow(w, r, http.MethodPost) {
			a.discard(w, r, parts[0], who)
		}
	default:
		writeError(w, http.StatusNotFound, "not found", r.URL.Path+" is not an endpoint of the failures API")
	}
}

// authenticate checks the admin key when running standalone, and says who is acting.
//
// Who: the signed-in user App Service authentication puts in x-ms-client-principal-name (the
// platform replaces any value a client sends), else the admin key's name, else "functions-key"
// (the Functions host let the request in with a function or host key we cannot name). Run
// standalone without App Service authentication in front, a key holder could set that header
// themselves; the key's name is logged beside it so the record can always be traced to a key.
func (a *failuresAPI) authenticate(w http.ResponseWriter, r *http.Request) (actor, bool) {
	var act actor
	if k := r.Header.Get("x-functions-key"); k != "" {
		act.key, _ = a.settings.AdminKeyName(k)
	}
	if !a.settings.UnderFunctionsHost {
		if len(a.settings.AdminKeys) == 0 {
			writeError(w, http.StatusForbidden, "failures API disabled",
				"dvrouter runs standalone and no admin key is configured: set "+config.EnvAdminKeys+" (name=key,name=key) to enable the failures API")
			return act, false
		}
		if act.key == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"header x-functions-key is missing or matches no key in "+config.EnvAdminKeys)
			return act, false
		}
	}
	act.who = clean(r.Header.Get("x-ms-client-principal-name"), maxWhoChars)
	switch {
	case act.who != "":
	case act.key != "":
		act.who = act.key
	default:
		act.who = "functions-key"
	}
	return act, true
}

// pathParts splits the path below /api/failures into its unescaped segments.
func pathParts(r *http.Request) ([]string, bool) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), failuresPath)
	if !ok || (rest != "" && rest[0] != '/') {
		return nil, false
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return nil, true
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed", r.URL.Path+" accepts "+method+" only")
	return false
}

// FailureList is the answer to GET /api/failures. Continuation is empty on the last page.
type FailureList struct {
	Items        []failures.Failure `json:"items"`
	Continuation string             `json:"continuation"`
}

func (a *failuresAPI) list(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid query", err.Error())
		return
	}
	page, err := a.store.List(r.Context(), q)
	if err != nil {
		a.storeError(w, "", err)
		return
	}
	items := page.Items
	if items == nil {
		items = []failures.Failure{}
	}
	writeJSON(w, http.StatusOK, FailureList{Items: items, Continuation: page.Continuation})
}

// listParams are the query parameters GET /api/failures understands. `code` is the Functions
// host's key parameter: the host forwards the query string as it came.
var listParams = map[string]bool{
	"consumer": true, "status": true, "kind": true, "table": true, "from": true, "to": true,
	"top": true, "continuation": true, "code": true,
}

func parseListQuery(v url.Values) (failures.Query, error) {
	for name, vals := range v {
		if !listParams[name] {
			return failures.Query{}, fmt.Errorf("unknown parameter %q; known: consumer, status, kind, table, from, to, top, continuation", name)
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
	Consumer string `json:"consumer"`
	Status   string `json:"status"`
	Kind     string `json:"kind"`
	Table    string `json:"table"`
	From     string `json:"from"`
	To       string `json:"to"`
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
	case "", failures.KindDelivery, failures.KindBreakerOpen, failures.KindPoison:
		q.Kind = string(k)
	default:
		return q, fmt.Errorf("kind: %q must be delivery, breaker-open or poison", f.Kind)
	}
	var err error
	if q.From, err = parseTime("from", f.From); err != nil {
		return q, err
	}
	if q.To, err = parseTime("to", f.To); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, fmt.Errorf("to: %s must be after from %s (from is inclusive, to exclusive)", f.To, f.From)
	}
	return q, nil
}

func parseTime(name, s string) (time.Time, error) {
	if s = strings.TrimSpace(s); s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2024-05-01T09:30:00Z", name, s)
	}
	return t.UTC(), nil
}

// ShownFailure is one failure with its payload: the normalized event, or for a poison message the
// raw text (base64, with payloadEncoding "base64", when it is not UTF-8).
type ShownFailure struct {
	failures.Failure
	Payload         json.RawMessage `json:"payload"`
	PayloadEncoding string          `json:"payloadEncoding,omitempty"`
	PayloadError    string          `json:"payloadError,omitempty"`
}

func (a *failuresAPI) show(w http.ResponseWriter, r *http.Request, id string) {
	f, _, err := a.store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, renderPayload(f))
}

func renderPayload(f failures.Failure) ShownFailure {
	s := ShownFailure{Failure: f, Payload: json.RawMessage("null")}
	if len(f.Payload) == 0 {
		return s
	}
	if f.Kind != failures.KindPoison {
		ev, err := dataverse.Decode(f.Payload)
		if err == nil {
			if b, err := json.Marshal(ev); err == nil {
				s.Payload = b
				return s
			}
		}
		// Not expected (it decoded when it was recorded), but the bytes must still be seen.
		s.PayloadError = fmt.Sprintf("payload no longer decodes: %v", err)
	}
	if utf8.Valid(f.Payload) {
		s.Payload, _ = json.Marshal(string(f.Payload))
	} else {
		s.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(f.Payload))
		s.PayloadEncoding = "base64"
	}
	return s
}

// ReplayResult is the answer to POST /api/failures/{id}/replay, and one item of a bulk replay.
type ReplayResult struct {
	ID     string `json:"id"`
	Result string `json:"result"` // delivered or failed
	Error  string `json:"error"`
	// Dispatch is what routing a poison message that now decodes did: its own failures, if
	// any, are recorded as new failures.
	Dispatch *dispatch.Result `json:"dispatch,omitempty"`
	// breaker says the consumer's breaker refused the delivery; untried says it refused before
	// any attempt, so the failure was put back as it was (no attempt counted).
	breaker, untried bool
}

func (a *failuresAPI) replayOne(w http.ResponseWriter, r *http.Request, id string, act actor) {
	var none struct{}
	if !readJSON(w, r, &none, false) {
		return
	}
	f, etag, err := a.store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	target, problem := a.replayable(f)
	if problem != nil {
		writeError(w, problem.status, problem.title, problem.detail)
		return
	}
	if f.Kind != failures.KindPoison && a.sender.BreakerOpen(f.Consumer) {
		// Not an attempt: the consumer was not tried, so the failure is left as it is.
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "consumer unavailable",
			fmt.Sprintf("consumer %s's circuit breaker is open after recent failures; nothing was sent, replay again once it recovers", f.Consumer))
		return
	}
	etag, err = a.store.Claim(r.Context(), id, etag, act.who)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	// The replay runs to its end and is recorded even if the caller goes away meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.budget+storeTimeout)
	defer cancel()
	res, err := a.replay(ctx, f, etag, target, act)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "replay outcome not saved", err.Error())
		return
	}
	if res.untried {
		// The breaker opened (or is half-open and busy) between the check above and the send.
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "consumer unavailable",
			fmt.Sprintf("consumer %s's circuit breaker refused the delivery; nothing was sent, replay again once it recovers", f.Consumer))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// problem is why a failure cannot be replayed, as an HTTP answer.
type problem struct {
	status        int
	title, detail string
}

// replayable checks that f can be replayed now, and builds the delivery target from its route
// as the route file has it now.
//
// When the route is gone, the failure is refused rather than sent unshaped: the route's exclude
// list is what keeps personal data from the consumer, and the one recorded at the time is not
// kept. Support staff can restore the route or discard the failure.
func (a *failuresAPI) replayable(f failures.Failure) (deliver.Target, *problem) {
	switch f.Status {
	case failures.StatusPending, failures.StatusReplaying:
		// A replaying failure is held by another replay unless that replay died: Claim decides.
	default:
		return deliver.Target{}, &problem{http.StatusConflict, "failure already " + string(f.Status),
			fmt.Sprintf("failure %s is %s (by %s at %s); only pending failures can be replayed", f.ID, f.Status, orUnknown(f.UpdatedBy), stamp(f.UpdatedAt))}
	}
	if f.Kind == failures.KindPoison {
		if a.dispatcher == nil {
			return deliver.Target{}, &problem{http.StatusServiceUnavailable, "cannot route", "no dispatcher is configured"}
		}
		return deliver.Target{}, nil
	}
	if a.sender == nil {
		return deliver.Target{}, &problem{http.StatusServiceUnavailable, "cannot deliver", "no delivery is configured"}
	}
	rt := a.routes.Route(f.Route)
	if rt == nil {
		return deliver.Target{}, &problem{http.StatusUnprocessableEntity, "route no longer exists",
			fmt.Sprintf("failure %s came through route %q, which is not in the route file any more; its select/exclude columns are unknown, so the event is not sent unshaped. Restore the route or discard the failure", f.ID, f.Route)}
	}
	return deliver.Target{Route: rt.Name, Consumer: f.Consumer, Select: rt.Select, Exclude: rt.Exclude}, nil
}

// replay delivers a claimed failure once and records the outcome with the claim's ETag. The
// error is non-nil only when the outcome could not be saved.
func (a *failuresAPI) replay(ctx context.Context, f failures.Failure, etag failures.ETag, target deliver.Target, act actor) (ReplayResult, error) {
	res := ReplayResult{ID: f.ID}
	var statusCode int
	ev, err := dataverse.DecodeWith(f.Payload, dataverse.DecodeOptions{OrganizationHost: f.OrganizationHost})
	switch {
	case err != nil:
		res.Result, res.Error = resultFailed, fmt.Sprintf("payload does not decode: %v", err)
	case f.Kind == failures.KindPoison:
		// It decodes now: route it like any new event. Its deliveries that fail are recorded
		// as failures of their own, so the poison entry itself is done once that is durable.
		d, err := a.dispatcher.Dispatch(ctx, ev)
		if err != nil {
			res.Result, res.Error = resultFailed, fmt.Sprintf("routed, but an outcome could not be recorded: %v", err)
		} else {
			res.Result, res.Dispatch = resultDelivered, &d
		}
	default:
		out := a.sender.Send(ctx, ev, target)
		statusCode = out.StatusCode
		if out.Delivered {
			res.Result = resultDelivered
		} else {
			res.Result, res.Error = resultFailed, out.Error
			res.breaker = out.Kind == failures.KindBreakerOpen
			res.untried = res.breaker && out.Attempts == 0
		}
	}

	var saveErr error
	switch {
	case res.untried:
		// Not an attempt: the consumer was not tried, so the failure goes back as it was.
		res.Result = resultSkipped
		saveErr = a.store.Release(ctx, f.ID, etag, act.who)
	case res.Result == resultDelivered:
		saveErr = a.store.MarkReplayed(ctx, f.ID, etag, act.who)
	default:
		saveErr = a.store.RecordAttempt(ctx, f.ID, etag, res.Error, statusCode, act.who)
	}
	a.log.Info().Str("who", act.who).Str("key", act.key).Str("id", f.ID).Str("consumer", f.Consumer).
		Str("kind", string(f.Kind)).Str("eventId", f.EventID).Str("result", res.Result).Str("error", res.Error).
		AnErr("saveError", saveErr).Msg("failure replayed")
	if saveErr != nil {
		return res, fmt.Errorf("failure %s was %s but its new status could not be saved (it stays replaying and can be replayed again after the claim times out): %w",
			f.ID, res.Result, saveErr)
	}
	return res, nil
}

// bulkRequest is the body of POST /api/failures/replay.
type bulkRequest struct {
	filter
	Max    *int `json:"max"`
	DryRun bool `json:"dryRun"`
	// Continuation resumes after the last failure a previous bulk replay listed (its answer's
	// continuation), so a client can replay in chunks without meeting the same failure twice.
	Continuation string `json:"continuation"`
}

// BulkReplayResult is the answer to POST /api/failures/replay. Matched counts the failures found
// (up to max); those neither delivered, failed nor skipped were left alone because the replay
// stopped early.
type BulkReplayResult struct {
	Matched      int    `json:"matched"`
	Delivered    int    `json:"delivered"`
	Failed       int    `json:"failed"`
	Skipped      int    `json:"skipped"`
	DryRun       bool   `json:"dryRun"`
	StoppedEarly bool   `json:"stoppedEarly"`
	Reason       string `json:"reason,omitempty"`
	// Continuation is set when more failures may match beyond this answer: pass it back to go on.
	Continuation string      `json:"continuation,omitempty"`
	Errors       []ItemError `json:"errors,omitempty"` // the first failed or skipped items, with why
}

// ItemError names one failure a bulk replay could not replay, and why.
type ItemError struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

func (a *failuresAPI) replayMany(w http.ResponseWriter, r *http.Request, act actor) {
	var req bulkRequest
	if !readJSON(w, r, &req, true) {
		return
	}
	q, err := req.query(false)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid filter", err.Error())
		return
	}
	q.Status = string(failures.StatusPending)
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

	run := &bulkRun{api: a, act: act, resp: BulkReplayResult{DryRun: req.DryRun}}
	deadline := time.Now().Add(a.bulkLimit)
	for remaining := limit; remaining > 0; {
		q.Top = min(remaining, bulkPageSize)
		page, err := a.store.List(r.Context(), q)
		if err != nil {
			if run.resp.Matched == 0 {
				a.storeError(w, "", err)
				return
			}
			run.stop("the failure store failed: " + err.Error())
			break
		}
		items := page.Items
		if len(items) > remaining {
			items = items[:remaining]
		}
		run.resp.Matched += len(items)
		remaining -= len(items)
		if !req.DryRun {
			run.replayAll(r.Context(), items)
		}
		q.Continuation = page.Continuation
		if run.stopped() || q.Continuation == "" {
			break
		}
		if time.Now().After(deadline) {
			run.resp.Reason = fmt.Sprintf("time limit of %s for one request reached; pass the continuation to go on", a.bulkLimit)
			break
		}
	}
	if !run.stopped() {
		run.resp.Continuation = q.Continuation
	}
	resp := run.result()
	a.log.Info().Str("who", act.who).Str("key", act.key).Str("consumer", q.Consumer).Str("kind", q.Kind).
		Str("table", q.Table).Bool("dryRun", resp.DryRun).Int("matched", resp.Matched).Int("delivered", resp.Delivered).
		Int("failed", resp.Failed).Int("skipped", resp.Skipped).Bool("stoppedEarly", resp.StoppedEarly).
		Str("reason", resp.Reason).Msg("bulk replay")
	writeJSON(w, http.StatusOK, resp)
}

// bulkRun is one bulk replay's tally, shared by its workers.
type bulkRun struct {
	api  *failuresAPI
	act  actor
	mu   sync.Mutex
	resp BulkReplayResult
}

func (b *bulkRun) stop(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.resp.StoppedEarly {
		b.resp.StoppedEarly, b.resp.Reason = true, reason
	}
}

func (b *bulkRun) stopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resp.StoppedEarly
}

func (b *bulkRun) count(id, result, errText string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch result {
	case resultDelivered:
		b.resp.Delivered++
	case resultFailed:
		b.resp.Failed++
	case resultSkipped:
		b.resp.Skipped++
	}
	if errText != "" && len(b.resp.Errors) < maxBulkErrors {
		b.resp.Errors = append(b.resp.Errors, ItemError{ID: id, Error: errText})
	}
}

func (b *bulkRun) result() BulkReplayResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resp
}

// replayAll replays items with bounded concurrency. It starts no new item once the run has
// stopped (a breaker opened, the client went away); items already started finish and are saved.
func (b *bulkRun) replayAll(ctx context.Context, items []failures.Failure) {
	slots := make(chan struct{}, bulkConcurrency)
	var wg sync.WaitGroup
	for _, f := range items {
		if b.stopped() {
			break
		}
		if ctx.Err() != nil {
			b.stop("the request was cancelled")
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			b.replayItem(ctx, f)
		})
	}
	wg.Wait()
}

// replayItem replays one listed failure, counting it as delivered, failed or skipped (another
// replay or discard got to it first, or it cannot be replayed as it stands).
func (b *bulkRun) replayItem(reqCtx context.Context, listed failures.Failure) {
	a := b.api
	if b.stopped() {
		return
	}
	if listed.Kind != failures.KindPoison && a.sender != nil && a.sender.BreakerOpen(listed.Consumer) {
		b.stop(breakerStopReason(listed.Consumer))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), a.budget+storeTimeout)
	defer cancel()
	f, etag, err := a.store.Get(ctx, listed.ID)
	if err != nil {
		b.count(listed.ID, resultSkipped, "read: "+err.Error())
		return
	}
	if f.Status != failures.StatusPending {
		b.count(f.ID, resultSkipped, "")
		return
	}
	target, problem := a.replayable(f)
	if problem != nil {
		b.count(f.ID, resultSkipped, problem.detail)
		return
	}
	etag, err = a.store.Claim(ctx, f.ID, etag, b.act.who)
	if errors.Is(err, failures.ErrConflict) {
		b.count(f.ID, resultSkipped, "")
		return
	}
	if err != nil {
		b.count(f.ID, resultSkipped, "claim: "+err.Error())
		return
	}
	res, err := a.replay(ctx, f, etag, target, b.act)
	msg := res.Error
	if err != nil {
		msg = err.Error()
	}
	b.count(f.ID, res.Result, msg)
	if res.breaker {
		b.stop(breakerStopReason(f.Consumer))
	}
}

func breakerStopReason(consumer string) string {
	return fmt.Sprintf("consumer %s's circuit breaker is open after recent failures; the rest is left pending, replay again once it recovers", consumer)
}

// discardRequest is the body of POST /api/failures/{id}/discard.
type discardRequest struct {
	Reason string `json:"reason"`
}

func (a *failuresAPI) discard(w http.ResponseWriter, r *http.Request, id string, act actor) {
	var req discardRequest
	if !readJSON(w, r, &req, true) {
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		writeError(w, http.StatusBadRequest, "reason required", `say why the failure is given up, e.g. {"reason": "customer re-sent the order by hand"}`)
		return
	}
	if utf8.RuneCountInString(reason) > maxReasonChars {
		writeError(w, http.StatusBadRequest, "reason too long", fmt.Sprintf("reason: at most %d characters", maxReasonChars))
		return
	}
	f, etag, err := a.store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	switch f.Status {
	case failures.StatusPending, failures.StatusReplaying:
		// A replaying failure is held by a replay unless that replay died: Discard decides.
	default:
		writeError(w, http.StatusConflict, "failure already "+string(f.Status),
			fmt.Sprintf("failure %s is %s (by %s at %s); only pending failures can be discarded", f.ID, f.Status, orUnknown(f.UpdatedBy), stamp(f.UpdatedAt)))
		return
	}
	if err := a.store.Discard(r.Context(), id, etag, act.who, reason); err != nil {
		a.storeError(w, id, err)
		return
	}
	a.log.Info().Str("who", act.who).Str("key", act.key).Str("id", f.ID).Str("consumer", f.Consumer).
		Str("kind", string(f.Kind)).Str("eventId", f.EventID).Str("reason", reason).Msg("failure discarded")
	f, _, err = a.store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	f.Payload = nil
	writeJSON(w, http.StatusOK, f)
}

// storeError answers for an error from the failure store.
func (a *failuresAPI) storeError(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, failures.ErrNotFound):
		writeError(w, http.StatusNotFound, "failure not found", fmt.Sprintf("no failure has id %q", id))
	case errors.Is(err, failures.ErrConflict):
		writeError(w, http.StatusConflict, "failure is being handled by someone else",
			fmt.Sprintf("another replay or discard got to failure %s first, nothing was done (%v); look at it again", id, err))
	case errors.Is(err, failures.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid request", err.Error())
	default:
		a.log.Error().Err(err).Str("id", id).Msg("failure store error")
		writeError(w, http.StatusServiceUnavailable, "failure store unavailable", err.Error())
	}
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

// clean keeps a header value fit to record: no control characters, at most n characters.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n])
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "someone"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
