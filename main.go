// Command dvrouter routes Microsoft Dataverse plugin events to downstream consumers. It runs as an
// Azure Functions custom handler (`dvrouter serve`, started by the host) or on its own, and carries
// the tools that go with it: inspect, validate, match, import-flow, failures, consumers,
// history and changes.
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/dvdest"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/queue"
	"github.com/dvrouter/dvrouter/pkg/route"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `dvrouter routes Dataverse plugin events to consumers.

Usage:
  dvrouter serve [--routes FILE]            run the service (what the Functions host starts)
  dvrouter inspect [--routes FILE [--consumer NAME]] [--pretty] FILE|-   print the normalized event of a payload, or the body a consumer receives
  dvrouter validate [--no-resolve] --routes FILE   check a route file (--no-resolve: without the settings)
  dvrouter match --routes FILE EVENT|-      show which routes an event matches, and why
  dvrouter import-flow --consumer NAME FLOW.json   turn a Power Automate flow's trigger into a route
  dvrouter failures list|show|replay|discard   work with kept failures (see --help)
  dvrouter consumers [list]|pause|resume|reset|test NAME   the consumers' breakers and pauses (see --help)
  dvrouter history --event ID | --record TABLE/ID | --correlation ID | --consumer NAME --since DATE
                                            every delivery outcome of an event (see --help)
  dvrouter changes status | reset --table NAME   change tracking's tables and tokens (see --help)
  dvrouter version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		// host.json has the Functions host pass `serve`; a host whose arguments were lost is
		// still recognized by the port it sets, and anyone else is shown the commands.
		if getenv(config.EnvCustomHandlerPort) == "" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		args = []string{"serve"}
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr, getenv)
	case "inspect":
		return runInspect(args[1:], stdin, stdout, stderr, getenv)
	case "validate":
		return runValidate(args[1:], stdout, stderr, getenv)
	case "match":
		return runMatch(args[1:], stdin, stdout, stderr, getenv)
	case "import-flow":
		return runImportFlow(args[1:], stdout, stderr)
	case "history":
		return runHistory(args[1:], stdout, stderr, getenv)
	case "changes":
		return runChanges(args[1:], stdout, stderr, getenv)
	case "failures":
		return runFailures(args[1:], stdout, stderr, getenv)
	case "consumers":
		return runConsumers(args[1:], stdout, stderr, getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "dvrouter: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// runServe listens first, so the host's GET / probe is answered within milliseconds, then loads
// the routes and connects to its stores; requests other than the probe wait for that to finish.
func runServe(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	routesFlag := ""
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--routes" && i+1 < len(args):
			routesFlag = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--routes="):
			routesFlag = strings.TrimPrefix(args[i], "--routes=")
		default:
			fmt.Fprintf(stderr, "dvrouter serve: unknown argument %q\n", args[i])
			return 2
		}
	}
	addr, _, err := config.ListenAddr(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter: invalid settings:\n%v\n", err)
		return 1
	}
	vault, err := config.LoadVault(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter: invalid settings:\n%v\n", err)
		return 1
	}

	// Listen first, so the host's GET / probe is answered while secrets and stores load.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter: cannot listen on %s: %v\n", addr, err)
		return 1
	}
	gate := newGate()
	srv := &http.Server{Handler: gate, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "dvrouter: "+format+"\n", args...)
		_ = srv.Close()
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Settings held in Key Vault are read before the others are validated, so they are
	// validated alike.
	baseGetenv := getenv
	var reader *config.VaultReader
	var secrets map[string]string
	if vault.Configured() {
		if reader, err = openVault(vault); err != nil {
			return fail("%v", err)
		}
		readCtx, cancel := context.WithTimeout(ctx, 25*time.Second)
		secrets, err = reader.Read(readCtx)
		cancel()
		if err != nil {
			return fail("invalid settings:\n%v", err)
		}
		getenv = config.Overlay(baseGetenv, secrets)
	}
	settings, err := loadServeSettings(getenv, routesFlag)
	if err != nil {
		return fail("invalid settings:\n%v", err)
	}
	log := newLogger(stdout, settings.LogLevel)
	log.Info().Str("addr", ln.Addr().String()).Str("version", version).Str("mode", settings.Mode()).Int("vaultSettings", len(vault.Secrets)).Msg("listening")

	started, err := buildApp(ctx, settings, getenv, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return fail("%v", err)
	}
	gate.open(started.handler)
	log.Info().Int("routes", started.routes).Bool("store", settings.Tables.Configured()).Msg("ready")

	var current struct {
		sync.Mutex
		app *app
	}
	current.app = started
	if reader != nil {
		// A rotated secret is applied without a restart: the whole service is built again
		// with the new values and swapped in; the old one finishes its in-flight work first.
		// A rotation that does not validate leaves the running service as it is.
		go reader.Watch(ctx, secrets, func(values map[string]string) {
			env := config.Overlay(baseGetenv, values)
			s, err := loadServeSettings(env, routesFlag)
			if err != nil {
				log.Error().Err(err).Msg("secrets changed in Key Vault, but the settings they give are invalid: keeping the ones in use")
				return
			}
			next, err := buildApp(ctx, s, env, log)
			if err != nil {
				log.Error().Err(err).Msg("secrets changed in Key Vault, but the service cannot start with them: keeping the one in use")
				return
			}
			current.Lock()
			old := current.app
			current.app = next
			current.Unlock()
			gate.swap(next.handler)
			log.Info().Msg("secrets changed in Key Vault: settings reloaded")
			time.AfterFunc(s.DeliveryBudget+10*time.Second, func() { old.close(context.Background()) })
		}, func(err error) {
			log.Warn().Err(err).Msg("re-reading Key Vault secrets failed: keeping the values in use")
		})
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		log.Error().Err(err).Msg("server stopped")
	}
	// Let in-flight deliveries finish and their failures be recorded before exiting.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), settings.DeliveryBudget+10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	current.Lock()
	current.app.close(shutdownCtx)
	current.Unlock()
	log.Info().Msg("stopped")
	return 0
}

func loadServeSettings(getenv func(string) string, routesFlag string) (*config.Settings, error) {
	s, err := config.LoadSettings(getenv)
	if err != nil {
		return nil, err
	}
	if routesFlag != "" {
		s.RoutesPath = routesFlag
	}
	return s, nil
}

// vaultCredential and vaultOptions reach Key Vault; tests point them at a stand-in.
var (
	vaultCredential = func(clientID string) (azcore.TokenCredential, error) {
		if clientID != "" {
			return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
		}
		return azidentity.NewDefaultAzureCredential(nil)
	}
	vaultOptions *azsecrets.ClientOptions
	// vaultRefresh, when set, replaces DVROUTER_KEYVAULT_REFRESH (at least a minute) so that
	// tests can see a rotation applied.
	vaultRefresh time.Duration
)

// webAPICredential reaches the Dataverse Web API; tests point it at a stand-in's.
var webAPICredential = func(clientID string) (azcore.TokenCredential, error) {
	if clientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

// openWebAPI makes the one Dataverse Web API client of the process: it completes size-exceeded
// events, serves the routes' fetch and carries the dataverse consumers' writes, so that each
// environment's concurrency limit and the waits its 429s ask for hold for all of them (Dataverse
// counts its service protection limits per user, and they all use one identity). It holds the
// environments DVROUTER_DATAVERSE_ENVIRONMENTS names and those the consumers name by URL; nil
// when there are none, which is said when routes need one.
func openWebAPI(dv config.Dataverse, consumers []config.Consumer, routes *route.Set, log zerolog.Logger) (*webapi.Client, error) {
	if !dv.Configured() {
		for _, r := range routes.Routes() {
			if r.Fetches() {
				log.Warn().Str("route", r.Name).Msg("route has fetch but no Dataverse environment is configured (set " + config.EnvDataverseEnvs + "): it is matched on what the event carries")
			}
		}
	}
	envs := maps.Clone(dv.Environments)
	if envs == nil {
		envs = map[string]string{}
	}
	for _, u := range dvdest.Environments(consumers) {
		host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		if _, ok := envs[host]; !ok {
			envs[host] = u
		}
	}
	if len(envs) == 0 {
		return nil, nil
	}
	cred, err := webAPICredential(dv.ClientID)
	if err != nil {
		return nil, fmt.Errorf("dataverse web api: credential: %w", err)
	}
	c, err := webapi.New(envs, webapi.Options{Credential: cred, Concurrency: dv.Concurrency,
		// The Web API's own limit for one request: a consumer's timeout is usually shorter.
		HTTPClient: webapi.NewHTTPClient(dv.Concurrency, 2*time.Minute),
		// A consumer's write is sent once: its retry policy and breaker decide about more.
		WriteAttempts: 1})
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", config.EnvDataverseEnvs, err)
	}
	for _, e := range c.Environments() {
		log.Info().Str("environment", e.URL()).Msg("dataverse web api: this environment is read (size-exceeded events, fetch routes) and written (dataverse consumers) through one client")
	}
	return c, nil
}

func openVault(v config.Vault) (*config.VaultReader, error) {
	if vaultRefresh > 0 {
		v.Refresh = vaultRefresh
	}
	cred, err := vaultCredential(v.ClientID)
	if err != nil {
		return nil, fmt.Errorf("key vault %s: credential: %w", v.URI, err)
	}
	return config.NewVaultReader(v, cred, vaultOptions)
}

type app struct {
	handler http.Handler
	routes  int
	close   func(context.Context)
}

// buildApp loads the route file and connects the failure store, delivery and the queue.
func buildApp(ctx context.Context, s *config.Settings, getenv func(string) string, log zerolog.Logger) (*app, error) {
	file := &config.RouteFile{}
	if s.RoutesPath == "" {
		log.Warn().Msg("no route file (set DVROUTER_ROUTES or --routes): every event is accepted and matches nothing")
	} else {
		f, err := config.LoadRoutes(s.RoutesPath, lookup(getenv))
		if err != nil {
			return nil, fmt.Errorf("route file: %w", err)
		}
		file = f
		for _, w := range f.Warnings {
			log.Warn().Str("file", s.RoutesPath).Msg(w)
		}
	}
	routes, err := route.Compile(file, route.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("route file: %w", err)
	}
	for _, w := range routes.Warnings() {
		log.Warn().Str("file", s.RoutesPath).Msg(w.String())
	}

	var store *failures.Store
	var recorder deliver.Recorder = noStore{}
	if s.Tables.Configured() {
		store, err = openStore(ctx, s.Tables, log)
		if err != nil {
			return nil, err
		}
		recorder = store
	} else {
		log.Warn().Msg("no failure store (set DVROUTER_TABLES): a delivery that fails cannot be kept, so the event is refused with 503 and left to Dataverse or Service Bus to retry")
	}

	shared, err := sharedBreakers(s, log)
	if err != nil {
		return nil, err
	}
	rows, err := openWebAPI(s.Dataverse, file.Consumers, routes, log)
	if err != nil {
		return nil, err
	}
	deliverer, err := deliver.New(file.Consumers, recorder, deliver.Options{
		Budget: s.DeliveryBudget, Logger: log, Breakers: shared, MetricsInterval: s.MetricsInterval,
		WebAPI: rows,
	})
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	closers := []func(context.Context){func(ctx context.Context) { _ = deliverer.Close(ctx) }}
	if shared != nil {
		syncCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		shared.Start(syncCtx)
		cancel()
		closers = append(closers, shared.Close)
	}

	var enqueuer handlers.Enqueuer
	if s.ServiceBus.Configured() {
		q, err := queue.Open(ctx, queue.Config{
			ConnectionString: s.ServiceBus.ConnectionString,
			Namespace:        s.ServiceBus.Namespace,
			ClientID:         s.ServiceBus.ClientID,
			Queue:            s.Queue,
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("service bus queue %s: %w", s.Queue, err)
		}
		enqueuer = q
		closers = append(closers, func(ctx context.Context) { _ = q.Close(ctx) })
	}

	d := &dispatch.Dispatcher{Routes: routes, Deliver: deliverer, Log: log}
	if store != nil {
		d.Recorder = store
	}
	if rows != nil && s.Dataverse.Configured() {
		// Reads only where the setting names environments: a consumer's URL alone is no
		// promise that the events come from there.
		d.Rows = rows
	}
	jnl, err := openJournal(s, log)
	if err != nil {
		return nil, err
	}
	if jnl != nil {
		d.Journal = jnl
		closers = append(closers, jnl.Close)
	}
	switch {
	case s.AppServiceAuth:
		log.Info().Msg("App Service authentication is declared (" + config.EnvAppServiceAuth + "): the support API takes the signed-in user from x-ms-client-principal")
	case len(s.AdminKeys) == 0:
		log.Warn().Msg("neither " + config.EnvAdminKeys + " nor " + config.EnvAppServiceAuth + " is set: the support API refuses every request (403)")
	}
	var replayer *failures.Replayer
	if store != nil {
		replayer = &failures.Replayer{Store: store, Sender: deliverer, Router: d, Lookups: file.Lookups, Budget: s.DeliveryBudget, Log: log}
		if jnl != nil {
			replayer.Observe = jnl.ObserveFailure
		}
	}
	failuresAPI := handlers.NewFailuresAPI(handlers.FailuresDeps{Settings: s, Replayer: replayer, Log: log})
	var purger handlers.Purger
	if store != nil {
		purger = store
		if jnl != nil {
			purger = journalPurger{Purger: store, journal: jnl, retention: s.JournalRetention, log: log}
		}
		if !s.UnderFunctionsHost {
			// Standalone there is no timer trigger: run retention here, on the same schedule.
			loopCtx, stop := context.WithCancel(context.Background())
			go retentionLoop(loopCtx, purger, handlers.RetentionOf(s), log)
			closers = append(closers, func(context.Context) { stop() })
		}
	}
	var changeRunner handlers.Changes // a nil interface when off
	if s.Changes.Configured() {
		var hist changes.History // a nil interface without a journal
		if jnl != nil {
			hist = jnl
		}
		cr, err := openChanges(s, file, routes, d, hist, rows, log)
		if err != nil {
			return nil, err
		}
		changeRunner = cr
		if !s.UnderFunctionsHost {
			loopCtx, stop := context.WithCancel(context.Background())
			go changesLoop(loopCtx, cr, max(s.Changes.StaleAfter/3, time.Minute), log)
			closers = append(closers, func(context.Context) { stop() })
		}
	}
	h := handlers.New(handlers.Deps{
		Settings:   s,
		Changes:    changeRunner,
		Purger:     purger,
		Dispatcher: d,
		Queue:      enqueuer,
		Failures:   failuresAPI,
		Consumers:  &dispatch.Consumers{Deliverer: deliverer, Journal: d.Journal},
		History:    history(jnl),
		Health:     handlers.Health{Version: version, Mode: s.Mode(), Queue: queueName(s), Routes: routes.Len(), Store: store != nil},
		Lookups:    file.Lookups,
		Log:        log,
	})
	return &app{handler: h, routes: routes.Len(), close: func(ctx context.Context) {
		for _, c := range closers {
			c(ctx)
		}
	}}, nil
}

// sharedBreakers is the consumers' breakers shared with the other instances through the
// failure store's account; nil (each instance its own) without one.
func sharedBreakers(s *config.Settings, log zerolog.Logger) (*breaker.Shared, error) {
	if !s.Tables.Configured() {
		return nil, nil
	}
	store, err := breaker.OpenStore(breaker.StoreConfig{
		ConnectionString: s.Tables.ConnectionString, ServiceURI: s.Tables.ServiceURI, ClientID: s.Tables.ClientID, Table: s.BreakerTable,
	})
	if err != nil {
		return nil, err
	}
	// A trial's claim outlives the longest delivery, so only a prober that died loses it.
	sh := breaker.NewShared(store, breaker.SharedOptions{Interval: s.BreakerSync, ProbeLease: s.DeliveryBudget + 10*time.Second, Logger: log})
	log.Info().Str("table", s.BreakerTable).Str("instance", sh.Instance()).Msg("consumer breakers shared through Table Storage")
	return sh, nil
}

// openStore connects the failure store, retrying for a while: under `make run` or after a
// deployment, storage may come up a moment after we do.
func openStore(ctx context.Context, t config.Tables, log zerolog.Logger) (*failures.Store, error) {
	cfg := failures.Config{ConnectionString: t.ConnectionString, ServiceURI: t.ServiceURI, ClientID: t.ClientID, Table: t.Table}
	deadline := time.Now().Add(30 * time.Second)
	for delay := 250 * time.Millisecond; ; delay = min(delay*2, 4*time.Second) {
		openCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		store, err := failures.Open(openCtx, cfg)
		cancel()
		if err == nil {
			return store, nil
		}
		if time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("failure store (table %s): %w", t.Table, err)
		}
		log.Warn().Err(err).Dur("retryIn", delay).Msg("failure store not reachable yet")
		time.Sleep(delay)
	}
}

// openJournal starts the delivery journal when the settings ask for it and a store is
// configured; nil otherwise. It does not wait on Table Storage: the failure store was just
// opened on the same account, and a journal that cannot write only counts what it loses.
func openJournal(s *config.Settings, log zerolog.Logger) (*journal.Journal, error) {
	if !s.Journal || !s.Tables.Configured() {
		return nil, nil
	}
	acct := tables.Account{ConnectionString: s.Tables.ConnectionString, ServiceURI: s.Tables.ServiceURI, ClientID: s.Tables.ClientID}
	j, err := journal.OpenLazy(journal.Config{Account: acct, Table: s.JournalTable, Log: log})
	if err != nil {
		return nil, fmt.Errorf("delivery journal (table %s): %w", s.JournalTable, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.CreateTable(ctx); err != nil {
		log.Warn().Err(err).Str("table", s.JournalTable).Msg("delivery journal table not created at start; the first batch that finds it missing creates it and writes again")
	}
	return j, nil
}

// history is the journal as the handlers' History; a nil interface when there is none.
func history(j *journal.Journal) handlers.History {
	if j == nil {
		return nil
	}
	return j
}

// journalPurger runs the journal's retention with the failures' on the same timer.
type journalPurger struct {
	handlers.Purger
	journal   *journal.Journal
	retention time.Duration
	log       zerolog.Logger
}

func (p journalPurger) Purge(ctx context.Context, now time.Time, r failures.Retention) (failures.PurgeResult, error) {
	res, err := p.Purger.Purge(ctx, now, r)
	if p.retention > 0 {
		n, jerr := p.journal.Purge(ctx, now, p.retention)
		ev := p.log.Info()
		if jerr != nil {
			ev = p.log.Warn().Str("error", jerr.Error())
		}
		ev.Int("deleted", n).Dur("retention", p.retention).Msg("journal retention run")
	}
	return res, err
}

// retentionLoop purges kept failures a minute after start and then every hour, as the Retention
// timer function does under the Functions host.
func retentionLoop(ctx context.Context, p handlers.Purger, r failures.Retention, log zerolog.Logger) {
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = time.Hour
		if _, err := handlers.RunRetention(ctx, p, r, log); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("retention run failed; the next one, in an hour, tries again")
		}
	}
}

// noStore stands in for the failure store when none is configured: every failure is reported
// as not durable, so the event is not acknowledged and its sender retries.
type noStore struct{}

func (noStore) Record(context.Context, failures.Failure) (failures.Failure, error) {
	return failures.Failure{}, dispatch.ErrNoStore
}

func queueName(s *config.Settings) string {
	if s.ServiceBus.Configured() {
		return s.Queue
	}
	return ""
}

func lookup(getenv func(string) string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
}

func newLogger(w io.Writer, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// gate answers the host's probe while the service starts, and holds other requests until the
// service is ready (or their client gives up).
type gate struct {
	ready   chan struct{}
	handler atomic.Pointer[http.Handler]
}

func newGate() *gate { return &gate{ready: make(chan struct{})} }

func (g *gate) open(h http.Handler) {
	g.handler.Store(&h)
	close(g.ready)
}

// swap replaces the handler of an open gate; requests already inside the old one finish there.
func (g *gate) swap(h http.Handler) { g.handler.Store(&h) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := g.handler.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"starting"}`+"\n")
		return
	}
	select {
	case <-g.ready:
		(*g.handler.Load()).ServeHTTP(w, r)
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"starting","detail":"dvrouter is still starting"}`+"\n")
	}
}
