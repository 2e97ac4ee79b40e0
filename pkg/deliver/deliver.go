// Package deliver hands each routed event to its consumers: every consumer concurrently, each
// delivery through that consumer's circuit breaker (package breaker, which judges whole
// deliveries) and each attempt through its concurrency limit, timeout and retry policy, all
// inside one time budget per event; and it records every delivery that still fails with the
// failure store before reporting the outcome, so nothing is acknowledged before it is durable.
// It counts each consumer's deliveries and logs them once per interval (metrics.go).
//
// The destination kinds live in their own folders (httpdest, sbdest, dvdest) behind dest.Kind;
// the whole delivery policy is stacked in one place, policy().
package deliver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
	"github.com/dvrouter/dvrouter/pkg/deliver/dvdest"
	"github.com/dvrouter/dvrouter/pkg/deliver/httpdest"
	"github.com/dvrouter/dvrouter/pkg/deliver/sbdest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// DefaultBudget is how long all of one event's deliveries may take together when
// Options.Budget is zero: well inside the 60 s Dataverse waits for a webhook's answer.
const DefaultBudget = 20 * time.Second

// recordTimeout bounds one call to the Recorder. It is measured from when the delivery ended,
// not from the event's budget, so a slow consumer cannot leave its own failure unrecorded.
const recordTimeout = 10 * time.Second

// ErrNotDurable means a failed delivery could not be recorded: the caller must not acknowledge
// the event (the webhook answers 503, the queue invocation non-2xx) so that it comes back.
var ErrNotDurable = errors.New("delivery outcome not durable")

// Recorder keeps failed deliveries; the failure store implements it.
type Recorder interface {
	Record(ctx context.Context, f failures.Failure) (failures.Failure, error)
}

// Target is one consumer an event goes to, through the route that matched first.
type Target struct {
	Route    string
	Consumer string
	Select   []string // the route's select: columns sent (empty: all)
	Exclude  []string // the route's exclude: columns never sent; wins over Select
}

// Result is how one (event, consumer) delivery ended.
type Result struct {
	Route      string        `json:"route"`
	Consumer   string        `json:"consumer"`
	Delivered  bool          `json:"delivered"`
	Attempts   int           `json:"attempts"`             // attempts that reached the consumer
	StatusCode int           `json:"statusCode,omitempty"` // last HTTP status, when there was one
	Error      string        `json:"error,omitempty"`
	Kind       failures.Kind `json:"kind,omitempty"` // delivery, breaker-open or paused, when failed
	// Tries is every attempt, oldest first (the newest failures.MaxTries): when it started, how
	// long it took, its HTTP status and error. A successful attempt has no status: a publisher
	// reports only how an attempt failed. Read-only: the journal may still hold it.
	Tries []failures.Try `json:"tries,omitempty"`
}

// Outcome is every Result of one event, split; both lists are non-nil.
type Outcome struct {
	Delivered []Result `json:"delivered"`
	Failed    []Result `json:"failed"`
}

// Options are the settings that are not per consumer.
type Options struct {
	Budget     time.Duration // all of one event's deliveries; 0 means DefaultBudget
	Logger     zerolog.Logger
	Credential azcore.TokenCredential // for servicebus `namespace:` and dataverse consumers; nil: azidentity's default chain, built on first need
	// WebAPI, when set, is the Dataverse Web API client dataverse consumers write through: the
	// one the reads use, with the identity DVROUTER_DATAVERSE_CLIENT_ID names, holding every
	// consumer's environment. Nil: each environment gets a client of its own, with Credential.
	WebAPI *webapi.Client
	// Breakers shares the consumers' breakers with the other instances; nil: each breaker is
	// this instance's own. The caller starts and closes it.
	Breakers *breaker.Shared
	// MetricsInterval is how often a "consumer metrics" line is logged per consumer that had
	// deliveries; 0: never (Close still logs what was counted).
	MetricsInterval time.Duration
}

// Deliverer delivers events to the configured consumers. It is safe for concurrent use.
type Deliverer struct {
	consumers map[string]*consumer
	rec       Recorder
	budget    time.Duration
	log       zerolog.Logger
	client    *http.Client
	names     []string // consumers in file order, for status and metrics
	metrics   *metricsLoop
}

type consumer struct {
	cfg   config.Consumer
	pub   dest.Publisher
	cb    *breaker.Breaker
	send  sendFunc
	stats stats
}

// kinds are the destination kinds, in the order messages list them: adding a kind is one
// folder and one line here. Each owns its route file keys (registered with package config
// below, so that loading a route file knows them) and builds its publishers.
var kinds = []dest.Kind{httpdest.Kind, sbdest.Kind, dvdest.Kind}

func init() {
	for _, k := range kinds {
		config.RegisterKind(k.Config)
	}
}

func kindOf(name string) (dest.Kind, bool) {
	for _, k := range kinds {
		if k.Config.Name == name {
			return k, true
		}
	}
	return dest.Kind{}, false
}

// sharedValues is dest.Deps.Shared for one Deliverer.
type sharedValues struct {
	mu     sync.Mutex
	values map[string]any
}

func (s *sharedValues) get(key string, build func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[key]; ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	if s.values == nil {
		s.values = map[string]any{}
	}
	s.values[key] = v
	return v, nil
}

// New makes a Deliverer for consumers (as loaded and validated by package config). rec keeps
// failures; with a nil rec every failure makes Deliver return ErrNotDurable.
func New(consumers []config.Consumer, rec Recorder, opts Options) (*Deliverer, error) {
	d := &Deliverer{
		consumers: make(map[string]*consumer, len(consumers)),
		rec:       rec,
		budget:    opts.Budget,
		log:       opts.Logger,
	}
	if d.budget <= 0 {
		d.budget = DefaultBudget
	}
	idle := 0
	for _, c := range consumers {
		if c.Type == "http" || c.Type == "dataverse" { // the kinds that send through d.client
			idle += max(c.MaxConcurrency, 1)
		}
	}
	d.client = httpdest.NewClient(min(idle, 1024))
	shared := dest.Deps{
		HTTPClient: d.client,
		Credential: sync.OnceValues(func() (azcore.TokenCredential, error) {
			if opts.Credential != nil {
				return opts.Credential, nil
			}
			return azidentity.NewDefaultAzureCredential(nil)
		}),
		Shared: (&sharedValues{}).get,
	}
	shared.WebAPI = opts.WebAPI
	for _, c := range consumers {
		if _, dup := d.consumers[c.Name]; dup {
			_ = d.Close(context.Background())
			return nil, fmt.Errorf("consumer %s: defined twice", c.Name)
		}
		switch c.Format {
		case FormatRow, FormatRaw, FormatCloudEvent, "":
		default:
			_ = d.Close(context.Background())
			return nil, fmt.Errorf("consumer %s: unknown format %q", c.Name, c.Format)
		}
		kind, ok := kindOf(c.Type)
		if !ok {
			_ = d.Close(context.Background())
			return nil, fmt.Errorf("consumer %s: unknown type %q", c.Name, c.Type)
		}
		pub, err := kind.New(c, shared)
		if err != nil {
			_ = d.Close(context.Background())
			return nil, err
		}
		cs := &consumer{cfg: c, pub: pub}
		cs.cb = breaker.New(c.Name, c.Breaker, opts.Breakers, func(name string, from, to gobreaker.State) {
			cs.stats.breakerChanges.Add(1)
			d.logStateChange(name, from, to, opts.Breakers != nil)
		})
		slots := make(chan struct{}, max(c.MaxConcurrency, 1))
		cs.send = policy(c, slots, cs.cb, pub)
		d.consumers[c.Name] = cs
		d.names = append(d.names, c.Name)
	}
	d.metrics = startMetrics(d, opts.MetricsInterval)
	return d, nil
}

// logStateChange writes the line the deployment's breaker alert looks for: keep the message and
// field names. Only the instance that made a shared breaker's change logs it, so an alert
// counts one line per change however many instances there are.
func (d *Deliverer) logStateChange(name string, from, to gobreaker.State, shared bool) {
	d.log.Warn().Str("consumer", name).Str("from", from.String()).Str("to", to.String()).Bool("shared", shared).Msg("breaker state changed")
}

// Deliver sends ev to every target concurrently, all within one budget, and records each failed
// delivery with the Recorder before it returns. The error is non-nil (and wraps ErrNotDurable)
// exactly when some failure could not be recorded; the Outcome is complete either way.
func (d *Deliverer) Deliver(ctx context.Context, ev *dataverse.Event, targets []Target) (Outcome, error) {
	deadline := d.deadline(ctx)
	payloads := d.encodeOnce(ev, targets)
	results := make([]Result, len(targets))
	recordErrs := make([]error, len(targets))
	deliverOne := func(i int) {
		results[i] = d.send(ctx, deadline, ev, targets[i], payloads[i])
		if !results[i].Delivered {
			recordErrs[i] = d.record(ctx, ev, results[i])
		}
	}
	// Every target but the last gets its own goroutine; the last runs on this one, which would
	// otherwise only wait (and a single target, the common case, costs no goroutine at all).
	var wg sync.WaitGroup
	for i := range len(targets) - 1 {
		wg.Go(func() { deliverOne(i) })
	}
	if len(targets) > 0 {
		deliverOne(len(targets) - 1)
	}
	wg.Wait()

	// All delivered, the common outcome, or none: the list is results itself, not a copy.
	out := Outcome{Delivered: []Result{}, Failed: []Result{}}
	delivered := 0
	for i := range results {
		if results[i].Delivered {
			delivered++
		}
	}
	switch delivered {
	case len(results):
		out.Delivered = results
	case 0:
		out.Failed = results
	default:
		for _, r := range results {
			if r.Delivered {
				out.Delivered = append(out.Delivered, r)
			} else {
				out.Failed = append(out.Failed, r)
			}
		}
	}
	if err := errors.Join(recordErrs...); err != nil {
		return out, fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	return out, nil
}

// Send makes one delivery of ev to t's consumer through its breaker, retry policy and timeouts,
// within the same budget as Deliver, and records nothing (the failures API's replay records the
// outcome itself).
func (d *Deliverer) Send(ctx context.Context, ev *dataverse.Event, t Target) Result {
	return d.send(ctx, d.deadline(ctx), ev, t, d.encodeOnce(ev, []Target{t})[0])
}

// deadline is when the deliveries of an event that starts now must be over: the end of the
// budget, or the caller's own deadline when that is sooner. The policy enforces it (see
// delivery.deadline) without a context of its own.
func (d *Deliverer) deadline(ctx context.Context) time.Time {
	end := time.Now().Add(d.budget)
	if caller, ok := ctx.Deadline(); ok && caller.Before(end) {
		return caller
	}
	return end
}

// BreakerOpen reports whether the named consumer's breaker refuses deliveries now (open, or
// half-open with another instance running the trials).
func (d *Deliverer) BreakerOpen(consumer string) bool {
	c, ok := d.consumers[consumer]
	return ok && c.cb.Refusing()
}

// Breakers reports every consumer's breaker, in the order of the route file.
func (d *Deliverer) Breakers() []breaker.Status {
	out := make([]breaker.Status, 0, len(d.names))
	for _, name := range d.names {
		out = append(out, d.consumers[name].cb.Status())
	}
	return out
}

// Close logs the metrics counted since the last line and releases every consumer's connections.
func (d *Deliverer) Close(ctx context.Context) error {
	if d.metrics != nil {
		d.metrics.stop()
	}
	var errs []error
	for name, c := range d.consumers {
		if err := c.pub.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close consumer %s: %w", name, err))
		}
	}
	if d.client != nil {
		d.client.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// payload is an encoded message body, or why there is none.
type payload struct {
	body        []byte
	contentType string
	ce          *dest.CloudEvent // cloudevent consumers: the attributes
	err         error
}

// encodeOnce encodes ev once per distinct (format, select, exclude) among targets: consumers
// sharing a format and a route share the bytes.
func (d *Deliverer) encodeOnce(ev *dataverse.Event, targets []Target) []payload {
	out := make([]payload, len(targets))
	var seen map[string]payload // with one target (the common case) there is nothing to share
	for i, t := range targets {
		c, ok := d.consumers[t.Consumer]
		if !ok {
			continue
		}
		var key string
		if len(targets) > 1 {
			key = c.cfg.Format + "\x00" + strings.Join(t.Select, "\x00") + "\x00\x00" + strings.Join(t.Exclude, "\x00")
			if c.cfg.Format == FormatCloudEvent {
				ce := &c.cfg.CloudEvent
				key += "\x00\x00" + ce.Mode + "\x00" + ce.TypePrefix + "\x00" + ce.Source
			}
			if p, ok := seen[key]; ok {
				out[i] = p
				continue
			}
		}
		p := &out[i]
		*p = encode(ev, &c.cfg, t.Select, t.Exclude)
		if len(targets) > 1 {
			if seen == nil {
				seen = make(map[string]payload)
			}
			seen[key] = *p
		}
	}
	return out
}

func (d *Deliverer) send(ctx context.Context, deadline time.Time, ev *dataverse.Event, t Target, p payload) Result {
	r := Result{Route: t.Route, Consumer: t.Consumer}
	c, ok := d.consumers[t.Consumer]
	if !ok {
		r.Kind, r.Error = failures.KindDelivery, fmt.Sprintf("unknown consumer %q", t.Consumer)
		return r
	}
	if pause := c.cb.Paused(); pause != nil { // one atomic read (see operations.go)
		c.stats.paused.Add(1)
		r.Kind, r.Error = failures.KindPaused, pausedText(t.Consumer, pause)
		return r
	}
	if p.err != nil {
		r.Kind, r.Error = failures.KindDelivery, p.err.Error()
		return r
	}
	start := time.Now()
	dl := &delivery{msg: dest.Message{Event: ev, Route: t.Route, Body: p.body, ContentType: p.contentType, CloudEvent: p.ce}, deadline: deadline}
	err := c.send(ctx, dl)
	c.stats.count(err, dl.attempts, time.Since(start), errors.Is(err, errBreakerOpen) && dl.attempts == 0)
	r.Attempts = dl.attempts
	r.Tries = dl.tries
	r.StatusCode = dest.StatusCode(err)
	if err == nil {
		r.Delivered = true
		d.log.Debug().Str("eventId", ev.ID).Str("consumer", t.Consumer).Str("route", t.Route).
			Int("attempts", r.Attempts).Dur("took", time.Since(start)).Msg("delivered")
		return r
	}
	r.Error = err.Error()
	r.Kind = failures.KindDelivery
	if errors.Is(err, errBreakerOpen) {
		r.Kind = failures.KindBreakerOpen
	}
	return r
}

// record hands a failed delivery to the Recorder, under its own deadline: the budget may already
// have run out, or ctx been cancelled, and that must not cost the failure its record.
func (d *Deliverer) record(ctx context.Context, ev *dataverse.Event, r Result) error {
	if d.rec == nil {
		return fmt.Errorf("consumer %s: no failure recorder", r.Consumer)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := time.Now().UTC()
	// The failure's keys derive from OccurredAt, so it must be a property of the event: an
	// event without a time (OperationCreatedOn null) gets the zero time, never the clock, or
	// each redelivery of it would be recorded as one more failure instead of adding to one.
	occurred, _ := time.Parse(time.RFC3339Nano, ev.OperationCreatedOn) // zero on error
	f := failures.Failure{
		EventID:          ev.ID,
		Consumer:         r.Consumer,
		Route:            r.Route,
		Table:            ev.Table,
		Message:          ev.Message,
		RecordID:         ev.RecordID,
		CorrelationID:    ev.CorrelationID,
		OrganizationHost: ev.OrganizationHost,
		Kind:             r.Kind,
		Status:           failures.StatusPending,
		Attempts:         r.Attempts,
		OccurredAt:       occurred.UTC(),
		FirstFailedAt:    now,
		LastFailedAt:     now,
		LastError:        r.Error,
		LastStatusCode:   r.StatusCode,
		Tries:            r.Tries,
		Payload:          ev.Raw,
	}
	saved, err := d.rec.Record(ctx, f)
	if c, ok := d.consumers[r.Consumer]; ok {
		c.stats.recorded(err == nil)
	}
	if err != nil {
		d.log.Error().Str("eventId", ev.ID).Str("consumer", r.Consumer).Str("route", r.Route).
			Str("kind", string(r.Kind)).Str("error", r.Error).AnErr("recordError", err).Msg("failure not recorded")
		return fmt.Errorf("record failure of consumer %s: %w", r.Consumer, err)
	}
	if r.Kind == failures.KindPaused {
		// Kept as the operator asked: not an error, and not the line the failure alert counts.
		d.log.Info().Str("eventId", ev.ID).Str("consumer", r.Consumer).Str("route", r.Route).
			Str("failureId", saved.ID).Msg("delivery paused")
		return nil
	}
	// The deployment's failure alert looks for this message: keep it.
	d.log.Error().Str("eventId", ev.ID).Str("consumer", r.Consumer).Str("route", r.Route).
		Str("kind", string(r.Kind)).Str("error", r.Error).Str("failureId", saved.ID).Msg("failure recorded")
	return nil
}
