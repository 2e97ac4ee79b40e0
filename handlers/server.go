package handlers

import (
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/console"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// Deps is what the handlers need from the rest of the program, wired in main.
type Deps struct {
	Settings   *config.Settings
	Dispatcher Dispatcher
	Queue      Enqueuer     // nil in direct mode
	Failures   http.Handler // the support API (/api/failures..., /api/me); nil answers 503
	Purger     Purger       // the failure store, for the Retention timer; nil when none is configured
	Consumers  Consumers    // for /api/consumers: breakers, pause, reset, test; nil: no consumers
	History    History      // the delivery journal, for GET /api/history; nil answers 503
	Health     Health
	// Lookups are the route file's lookup hints, for decoding what the webhook and the queue
	// receive (dataverse.DecodeOptions.Lookups).
	Lookups dataverse.Lookups
	Log     zerolog.Logger
}

// New returns the HTTP handler for every path the Functions host forwards or invokes:
//
//	GET  /                       the host's start-up probe
//	GET  /api/health             Health (anonymous)
//	GET  /api/console/...        Console: the support console's files (anonymous)
//	POST /api/dataverse/webhook  DataverseWebhook (forwarded as is)
//	POST /DataverseQueue         DataverseQueue (custom-handler invocation envelope)
//	POST /Retention              Retention (timer invocation envelope)
//	     /api/failures...        Failures (the support API)
//	GET  /api/me                 Me (the support API: who is signed in)
//	     /api/consumers...       Consumers: each consumer's breaker and pause, and the operator's
//	                             pause, resume, reset and test of one (failures API auth)
//	GET  /api/history            History: the delivery journal's lookups (failures API auth)
func New(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", ping)
	mux.Handle("GET /api/health", healthHandler(d.Health))
	consoleFiles := newConsole(console.Files())
	mux.Handle("/api/console", consoleFiles)
	mux.Handle("/api/console/", consoleFiles)
	mux.Handle("/api/dataverse/webhook", &webhook{settings: d.Settings, dispatcher: d.Dispatcher, queue: d.Queue, lookups: d.Lookups, log: d.Log})
	mux.Handle("/DataverseQueue", &queueInvocation{settings: d.Settings, dispatcher: d.Dispatcher, lookups: d.Lookups, log: d.Log})
	mux.Handle("/Retention", &retentionInvocation{settings: d.Settings, purger: d.Purger, log: d.Log})
	failures := d.Failures
	if failures == nil {
		failures = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "no failure store configured", "set DVROUTER_TABLES or DVROUTER_TABLES__tableServiceUri")
		})
	}
	mux.Handle("/api/failures", failures)
	mux.Handle("/api/failures/", failures)
	mux.Handle("/api/me", failures)
	consumers := consumersAPI(d.Settings, d.Consumers, d.Log)
	mux.Handle("/api/consumers", consumers)
	mux.Handle("/api/consumers/", consumers)
	mux.Handle(supportapi.HistoryPath, historyAPI(d.Settings, d.History))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found", r.Method+" "+r.URL.Path+" is not an endpoint of dvrouter")
	})
	return recoverer(d.Log, accessLog(d.Log, mux))
}

// recoverer turns a panic into a 500 JSON answer and a log line instead of a dropped
// connection. Nothing should panic; this keeps one bug from looking like a network fault.
func recoverer(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error().Interface("panic", v).Str("path", r.URL.Path).Msg("handler panicked")
				writeError(w, http.StatusInternalServerError, "internal error", "the request could not be handled; see the logs")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// headerInvocationID is X-Azure-Functions-InvocationId in canonical form, which Header.Get finds
// without first rewriting the name.
const headerInvocationID = "X-Azure-Functions-Invocationid"

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (read deadlines, flushing).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLog logs each request at debug, and at warn when it was refused or failed.
func accessLog(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := zerolog.DebugLevel
		if rec.status >= 400 {
			level = zerolog.WarnLevel
		}
		// A line below the log level is nil: skip building its fields.
		if e := log.WithLevel(level); e != nil {
			e.Str("method", r.Method).Str("path", r.URL.Path).Int("status", rec.status).
				Dur("took", time.Since(start)).Str("invocationId", r.Header.Get(headerInvocationID)).Msg("request")
		}
	})
}
