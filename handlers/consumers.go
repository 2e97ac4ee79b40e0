package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// Consumers is what the consumers API needs of delivery: the breakers to list, and the
// operations on one consumer. *deliver.Deliverer is one, and *dispatch.Consumers (which
// journals test events) another.
type Consumers interface {
	Breakers() []breaker.Status
	Breaker(consumer string) (breaker.Status, error)
	Pause(ctx context.Context, consumer, by, reason string) (*breaker.Pause, error)
	Resume(ctx context.Context, consumer, by string) (*breaker.Pause, error)
	ResetBreaker(ctx context.Context, consumer, by string) (string, error)
	SendTest(ctx context.Context, consumer, by string) (deliver.TestResult, error)
}

// ConsumerList is the answer to GET /api/consumers: every consumer's breaker and pause as this
// instance sees it (shared ones as the breaker table holds them).
type ConsumerList = supportapi.ConsumerList

// maxPauseReasonChars bounds a pause's reason, as a discard's is bounded.
const maxPauseReasonChars = 1024

// consumersAPI serves, behind the support API's authentication:
//
//	GET  /api/consumers                every consumer's breaker and pause (any role)
//	POST /api/consumers/{name}/pause   hold its deliveries as paused failures (operator)
//	POST /api/consumers/{name}/resume  deliver to it again                    (operator)
//	POST /api/consumers/{name}/reset   close its circuit breaker              (operator)
//	POST /api/consumers/{name}/test    send it a test event, answer how it went (operator)
func consumersAPI(s *config.Settings, c Consumers, log zerolog.Logger) http.Handler {
	if s == nil {
		s = &config.Settings{}
	}
	a := &consumersHandler{c: c, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/consumers", a.list)
	mux.HandleFunc("GET /api/consumers/{$}", a.list)
	mux.HandleFunc("POST /api/consumers/{name}/pause", a.operator(a.pause))
	mux.HandleFunc("POST /api/consumers/{name}/resume", a.operator(a.resume))
	mux.HandleFunc("POST /api/consumers/{name}/reset", a.operator(a.reset))
	mux.HandleFunc("POST /api/consumers/{name}/test", a.operator(a.test))
	mux.HandleFunc("/api/consumers", methodNotAllowed(http.MethodGet))
	mux.HandleFunc("/api/consumers/{rest...}", otherConsumersPaths)
	return authenticate(s, mux)
}

type consumersHandler struct {
	c   Consumers
	log zerolog.Logger
}

// otherConsumersPaths answers what the patterns above do not match: an action with another
// method (405), or no endpoint at all (404).
func otherConsumersPaths(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.PathValue("rest"), "/"), "/")
	if len(parts) == 2 && parts[0] != "" {
		switch parts[1] {
		case "pause", "resume", "reset", "test":
			methodNotAllowed(http.MethodPost)(w, r)
			return
		}
	}
	writeError(w, http.StatusNotFound, "not found", r.URL.Path+" is not an endpoint of the consumers API (POST /api/consumers/{name}/pause, resume, reset or test)")
}

// operator refuses readers, and answers 503 when no consumers are configured at all.
func (a *consumersHandler) operator(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id := identityOf(r); id.role != config.RoleOperator {
			writeError(w, http.StatusForbidden, "operator role required",
				id.name+" holds the reader role: listing consumers is allowed, pausing, resuming, resetting and testing them needs the operator role")
			return
		}
		if a.c == nil {
			writeError(w, http.StatusNotFound, "consumer not found", fmt.Sprintf("no consumer named %q: the route file defines none", r.PathValue("name")))
			return
		}
		next(w, r)
	}
}

func (a *consumersHandler) list(w http.ResponseWriter, r *http.Request) {
	list := ConsumerList{Items: []supportapi.Consumer{}}
	if a.c != nil {
		for _, st := range a.c.Breakers() {
			list.Items = append(list.Items, wireConsumer(st))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *consumersHandler) pause(w http.ResponseWriter, r *http.Request) {
	var req supportapi.PauseRequest
	if !readJSON(w, r, &req, false) {
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if utf8.RuneCountInString(req.Reason) > maxPauseReasonChars {
		writeError(w, http.StatusBadRequest, "invalid reason", fmt.Sprintf("reason: at most %d characters", maxPauseReasonChars))
		return
	}
	name, who := r.PathValue("name"), identityOf(r).name
	before, err := a.c.Breaker(name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	if _, err := a.c.Pause(r.Context(), name, who, req.Reason); err != nil {
		a.fail(w, name, err)
		return
	}
	a.answer(w, name, supportapi.ConsumerAction{Action: supportapi.ActionPaused, Changed: before.Paused == nil})
}

func (a *consumersHandler) resume(w http.ResponseWriter, r *http.Request) {
	var none struct{}
	if !readJSON(w, r, &none, false) {
		return
	}
	name := r.PathValue("name")
	lifted, err := a.c.Resume(r.Context(), name, identityOf(r).name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	a.answer(w, name, supportapi.ConsumerAction{Action: supportapi.ActionResumed, Changed: lifted != nil})
}

func (a *consumersHandler) reset(w http.ResponseWriter, r *http.Request) {
	var none struct{}
	if !readJSON(w, r, &none, false) {
		return
	}
	name := r.PathValue("name")
	was, err := a.c.ResetBreaker(r.Context(), name, identityOf(r).name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	a.answer(w, name, supportapi.ConsumerAction{Action: supportapi.ActionReset, Changed: was != "closed", Was: was})
}

func (a *consumersHandler) test(w http.ResponseWriter, r *http.Request) {
	var none struct{}
	if !readJSON(w, r, &none, false) {
		return
	}
	name := r.PathValue("name")
	res, err := a.c.SendTest(r.Context(), name, identityOf(r).name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, supportapi.TestResult{
		Consumer: res.Consumer, EventID: res.EventID, Message: deliver.TestMessage, Delivered: res.Delivered,
		Attempts: res.Attempts, StatusCode: res.StatusCode, DurationMs: float64(res.Duration) / float64(time.Millisecond),
		Error: res.Error, BreakerOpen: res.BreakerOpen,
	})
}

// answer completes an action's answer with the consumer as it is now.
func (a *consumersHandler) answer(w http.ResponseWriter, name string, out supportapi.ConsumerAction) {
	st, err := a.c.Breaker(name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	out.Consumer = wireConsumer(st)
	writeJSON(w, http.StatusOK, out)
}

func (a *consumersHandler) fail(w http.ResponseWriter, name string, err error) {
	switch {
	case errors.Is(err, deliver.ErrUnknownConsumer):
		writeError(w, http.StatusNotFound, "consumer not found", fmt.Sprintf("no consumer named %q in the route file", name))
	case errors.Is(err, breaker.ErrNotShared):
		// The table's own error can name its account: it goes to the log.
		a.log.Error().Err(err).Str("consumer", name).Msg("consumer operation not applied")
		writeError(w, http.StatusServiceUnavailable, "breaker table unavailable",
			fmt.Sprintf("the breaker table did not answer, so nothing was changed for consumer %s (every instance must see the same state); try again shortly", name))
	default:
		a.log.Error().Err(err).Str("consumer", name).Msg("consumer operation failed")
		writeError(w, http.StatusInternalServerError, "consumer operation failed", err.Error())
	}
}

// wireConsumer is a breaker's status as the API sends it.
func wireConsumer(st breaker.Status) supportapi.Consumer {
	c := supportapi.Consumer{
		Consumer: st.Consumer, State: st.State, Shared: st.Shared, Window: st.Window,
		Successes: st.Successes, Failures: st.Failures, HalfOpenAt: st.HalfOpenAt, Prober: st.Prober,
		ProbeUntil: st.ProbeUntil, Opened: st.Opened, ChangedAt: st.ChangedAt, ChangedBy: st.ChangedBy, SyncedAt: st.SyncedAt,
	}
	if p := st.Paused; p != nil {
		c.Paused = &supportapi.Pause{By: p.By, At: p.At, Reason: p.Reason}
	}
	return c
}
