package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/customhandler"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// Purger deletes the failures retention no longer keeps; *failures.Store is one.
type Purger interface {
	Purge(ctx context.Context, now time.Time, r failures.Retention) (failures.PurgeResult, error)
}

// retentionBinding is the timerTrigger binding name in functions/Retention/function.json.
const retentionBinding = "timer"

// RetentionTimeLimit bounds one retention run, under host.json's functionTimeout of 5 minutes:
// what one run does not finish, the next one does.
const RetentionTimeLimit = 4 * time.Minute

// RetentionOf is the retention the settings ask for.
func RetentionOf(s *config.Settings) failures.Retention {
	r := failures.Retention{Failures: s.FailureRetention}
	if s.ResolvedRetention > 0 && (s.FailureRetention == 0 || s.ResolvedRetention < s.FailureRetention) {
		r.Resolved = s.ResolvedRetention
	}
	return r
}

// RunRetention purges once, for at most RetentionTimeLimit, and logs what it removed. A run cut
// short by the time limit is not an error (the next run goes on from where it stopped); the
// line says so.
func RunRetention(ctx context.Context, p Purger, r failures.Retention, log zerolog.Logger) (string, error) {
	if r == (failures.Retention{}) {
		return "retention is off (" + config.EnvFailureRetention + "=0): nothing purged", nil
	}
	ctx, cancel := context.WithTimeout(ctx, RetentionTimeLimit)
	defer cancel()
	start := time.Now()
	res, err := p.Purge(ctx, start, r)
	complete := err == nil
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil // the time limit: resumed by the next run
	}
	e := log.Info()
	if err != nil {
		e = log.Error().Err(err)
	}
	consumers := zerolog.Dict()
	for _, c := range res.Consumers() {
		name := c
		if name == "" {
			name = "(poison)"
		}
		consumers.Int(name, res.ByConsumer[c])
	}
	if !res.RecordedBefore.IsZero() {
		e = e.Time("recordedBefore", res.RecordedBefore)
	}
	if !res.ResolvedBefore.IsZero() {
		e = e.Time("resolvedBefore", res.ResolvedBefore)
	}
	e.Int("deleted", res.Deleted).Int("pending", res.ByStatus[failures.StatusPending]+res.ByStatus[failures.StatusReplaying]).
		Int("replayed", res.ByStatus[failures.StatusReplayed]).Int("discarded", res.ByStatus[failures.StatusDiscarded]).
		Int("payloadChunks", res.Chunks).Dict("byConsumer", consumers).
		Bool("complete", complete).Dur("took", time.Since(start)).Msg("failures purged")

	line := fmt.Sprintf("purged %d failures (%d pending, %d replayed, %d discarded) and %d payload chunks",
		res.Deleted, res.ByStatus[failures.StatusPending]+res.ByStatus[failures.StatusReplaying],
		res.ByStatus[failures.StatusReplayed], res.ByStatus[failures.StatusDiscarded], res.Chunks)
	if !res.RecordedBefore.IsZero() {
		line += "; recorded before " + res.RecordedBefore.Format(time.RFC3339)
	}
	if !res.ResolvedBefore.IsZero() {
		line += "; resolved before " + res.ResolvedBefore.Format(time.RFC3339)
	}
	if !complete && err == nil {
		line += fmt.Sprintf("; stopped at the %s time limit, the next run goes on", RetentionTimeLimit)
	}
	return line, err
}

// retentionInvocation is POST /Retention: the Functions host's timer fires. Any non-2xx answer
// fails the invocation, which is what a store that cannot be purged should do (it shows up as a
// failed run and in the function-errors alert).
type retentionInvocation struct {
	settings *config.Settings
	purger   Purger // nil: no failure store, nothing to purge
	log      zerolog.Logger
}

func (h *retentionInvocation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, ok := readTimerInvocation(w, r, h.settings, h.log)
	if !ok {
		return
	}
	log := h.log.With().Str("invocationId", r.Header.Get(headerInvocationID)).Bool("pastDue", timerPastDue(req)).Logger()
	if h.purger == nil {
		invocationReply(w, http.StatusOK, nil, "no failure store is configured: nothing to purge")
		return
	}
	line, err := RunRetention(r.Context(), h.purger, RetentionOf(h.settings), log)
	if err != nil {
		invocationReply(w, http.StatusInternalServerError, nil, line+"; then failed: "+err.Error())
		return
	}
	invocationReply(w, http.StatusOK, nil, line)
}

// timerPastDue reads IsPastDue from the timer binding: an object ({"Schedule", "ScheduleStatus",
// "IsPastDue"}) or that object JSON-encoded inside a string. Anything else reads as false: the
// run does the same either way.
func timerPastDue(req *customhandler.InvokeRequest) bool {
	data := req.Data[retentionBinding]
	var s string
	if json.Unmarshal(data, &s) == nil && strings.HasPrefix(strings.TrimSpace(s), "{") {
		data = json.RawMessage(s)
	}
	var timer struct{ IsPastDue bool }
	_ = json.Unmarshal(data, &timer)
	return timer.IsPastDue
}

// readTimerInvocation reads the Functions host's invocation of a timer function. When it is not
// one (not a POST, unreadable, malformed) the refusal is written and ok is false.
func readTimerInvocation(w http.ResponseWriter, r *http.Request, settings *config.Settings, log zerolog.Logger) (req *customhandler.InvokeRequest, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuseInvocation(w, log, http.StatusMethodNotAllowed, "method not allowed", "the Functions host POSTs invocations")
		return nil, false
	}
	raw, status, err := readBounded(w, r, 1<<20, settings.BodyReadTimeout)
	if err != nil {
		refuseInvocation(w, log, status, "invocation could not be read", err.Error())
		return nil, false
	}
	req, err = customhandler.ParseInvokeRequest(raw)
	if err != nil {
		refuseInvocation(w, log, http.StatusBadRequest, "malformed invocation", err.Error())
		return nil, false
	}
	return req, true
}
