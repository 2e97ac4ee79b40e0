package failures

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// Sender delivers an event once more to one consumer, through the consumer's breaker, retries
// and timeout, and records nothing: the Replayer records the outcome on the failure itself.
// *deliver.Deliverer is one.
type Sender interface {
	Resend(ctx context.Context, ev *dataverse.Event, route, consumer string, shape Shape) Attempt
	BreakerOpen(consumer string) bool
	// Paused says who paused consumer, when and why; "" when it is not paused. Nothing is sent
	// to a paused consumer, replays included.
	Paused(consumer string) string
}

// Router knows the routes as the route file has them now, and routes an event as if it had just
// arrived, recording its own failures. *dispatch.Dispatcher is one.
type Router interface {
	// Shape is what route sends now; false when the route file no longer has it.
	Shape(route string) (Shape, bool)
	Reroute(ctx context.Context, ev *dataverse.Event) (Routed, error)
}

// Shape is how a route shapes the event it sends: the columns it selects (empty: all) and the
// ones it never sends (personal data; wins over Select).
type Shape struct {
	Select, Exclude []string
}

// Attempt is how one resend ended.
type Attempt struct {
	Delivered  bool
	Attempts   int // attempts that reached the consumer
	StatusCode int // the last HTTP status, when there was one
	Error      string
	Tries      []Try // every attempt, oldest first
	// BreakerRefused says the consumer's breaker refused the delivery; with Attempts 0 nothing
	// was sent at all.
	BreakerRefused bool
	// Paused says the consumer is paused: nothing was sent.
	Paused bool
}

// Routed is what routing a poison message that now decodes did. Its own failed deliveries are
// recorded as new failures.
type Routed struct {
	ID        string   `json:"id"`
	Matched   []string `json:"matched"`
	Delivered []string `json:"delivered"`
	Failed    []string `json:"failed"`
}

// Actor is who asked for an action: the name recorded with it, and the name of the admin key
// used, if one was (logged beside the name, so a record can always be traced to a key).
type Actor struct {
	Name string
	Key  string
}

// Replay results.
const (
	ResultDelivered = "delivered"
	ResultFailed    = "failed"
	ResultSkipped   = "skipped" // bulk only: not tried (someone else had it, or it cannot be replayed)
)

var (
	// ErrRouteGone: the failure's route is not in the route file any more, so the columns it
	// must not send are unknown and the event is not sent.
	ErrRouteGone = errors.New("route no longer exists")
	// ErrBreakerOpen: the consumer's breaker refused the delivery; nothing was sent and no
	// attempt counted.
	ErrBreakerOpen = errors.New("consumer unavailable")
	// ErrPaused: an operator paused the consumer; nothing was sent and the failure is as it was.
	ErrPaused = errors.New("consumer paused")
	// ErrCannotReplay: this process has no delivery (or no routing, for poison) configured.
	ErrCannotReplay = errors.New("cannot replay")
	// ErrRead: rerouting an event needed its row from the Dataverse Web API, and the read
	// failed; nothing was matched or delivered. Router.Reroute returns it (wrapped).
	ErrRead = errors.New("reading the row from the Dataverse Web API failed")
	// ErrNotSaved: the replay was carried out but its outcome could not be saved.
	ErrNotSaved = errors.New("replay outcome not saved")
)

// Defaults and bounds of a Replayer.
const (
	DefaultBudget        = 20 * time.Second // a replay's delivery budget when Replayer.Budget is 0
	DefaultBulkTimeLimit = 3 * time.Minute  // under the 230 s the Functions front end allows an HTTP answer
	MaxReasonChars       = 1024
	bulkConcurrency      = 8
	bulkPageSize         = 200
	maxBulkErrors        = 20
	// storeTimeout bounds the store writes around one replay beyond the delivery budget.
	storeTimeout = 30 * time.Second
)

// Replayer carries out what support staff ask of kept failures: replay one (claim it, send it,
// then mark it replayed, record the failed attempt, or give it back untried), replay every
// pending failure a query matches (stopping when the consumer's breaker opens), and discard one.
// It is safe for concurrent use.
type Replayer struct {
	Store  *Store
	Sender Sender // nil: delivery failures cannot be replayed
	Router Router // nil: no route is known, so nothing can be replayed
	// Lookups are the route file's lookup hints: a payload is decoded again for each replay,
	// and must give the row it gives when it first arrives.
	Lookups dataverse.Lookups
	// Budget bounds one delivery, retries included; DefaultBudget when 0.
	Budget time.Duration
	// BulkTimeLimit bounds one ReplayMatching; DefaultBulkTimeLimit when 0.
	BulkTimeLimit time.Duration
	// Observe, when set, is told of every replay and discard once it is saved (the delivery
	// journal); it must not block.
	Observe func(Observed)
	Log     zerolog.Logger
}

// Observed is one replay or discard, as Replayer.Observe is told of it.
type Observed struct {
	Failure    Failure // as it was before (no payload)
	Result     string  // ResultDelivered, ResultFailed, ResultSkipped, or "discarded"
	At         time.Time
	Duration   time.Duration
	StatusCode int
	Error      string // the delivery's error, or the discard's reason
	Paused     bool   // ResultSkipped because the consumer is paused (else its breaker refused)
	Tries      []Try  // the replay's attempts at the consumer
}

// journaled says whether a replay or discard of f that ended in result is observed. A rerouted
// failure (poison, reread) that routes now is not: each of its deliveries is an outcome of its
// own. One that fails again or is discarded is, when it names its event (a poison message that
// never decoded has no event to look it up by).
func journaled(f Failure, result string) bool {
	if !f.Kind.Rerouted() {
		return true
	}
	return f.EventID != "" && result != ResultDelivered
}

func (r *Replayer) observe(o Observed) {
	if r.Observe != nil {
		o.Failure.Payload = nil
		r.Observe(o)
	}
}

// ReplayOutcome is how one replay ended.
type ReplayOutcome struct {
	ID     string
	Result string // ResultDelivered, ResultFailed, or (bulk) ResultSkipped
	Error  string
	Routed *Routed // poison only: what routing it did
	// breaker says the consumer's breaker refused the delivery; untried that it refused
	// before any attempt, so the failure was put back as it was; paused that the consumer was
	// paused (untried too).
	breaker, untried, paused bool
	tries                    []Try // the attempts at the consumer, kept with the failure
}

// Replay delivers failure id again now. Errors: ErrNotFound; a *StatusError (already replayed
// or discarded); ErrConflict (someone else is replaying it); ErrRouteGone; ErrBreakerOpen or
// ErrPaused (nothing was sent, the failure is as it was); ErrCannotReplay; ErrNotSaved (sent, but the outcome is not recorded: the
// failure stays replaying until its claim times out). A replay that fails again is not an
// error: its outcome says so.
func (r *Replayer) Replay(ctx context.Context, id string, by Actor) (ReplayOutcome, error) {
	f, etag, err := r.Store.Get(ctx, id)
	if err != nil {
		return ReplayOutcome{}, err
	}
	shape, err := r.replayable(f)
	if err != nil {
		return ReplayOutcome{}, err
	}
	if !f.Kind.Rerouted() {
		if p := r.Sender.Paused(f.Consumer); p != "" {
			return ReplayOutcome{}, pausedError(f, p)
		}
		if r.Sender.BreakerOpen(f.Consumer) {
			return ReplayOutcome{}, fmt.Errorf("%w: consumer %s's circuit breaker is open after recent failures; nothing was sent, replay again once it recovers", ErrBreakerOpen, f.Consumer)
		}
	}
	etag, err = r.Store.Claim(ctx, id, etag, by.Name)
	if err != nil {
		return ReplayOutcome{}, err
	}
	// The replay runs to its end and is recorded even if the caller goes away meanwhile.
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.budget()+storeTimeout)
	defer cancel()
	out, err := r.replay(runCtx, f, etag, shape, by)
	if err != nil {
		return out, err
	}
	if out.paused {
		// Paused between the check above and the send.
		why := r.Sender.Paused(f.Consumer)
		if why == "" {
			why = out.Error
		}
		return out, pausedError(f, why)
	}
	if out.untried {
		// The breaker opened (or is half-open and busy) between the check above and the send.
		return out, fmt.Errorf("%w: consumer %s's circuit breaker refused the delivery; nothing was sent, replay again once it recovers", ErrBreakerOpen, f.Consumer)
	}
	return out, nil
}

// pausedError says a failure was not replayed because its consumer is paused (why: who paused
// it, when and why).
func pausedError(f Failure, why string) error {
	return fmt.Errorf("%w: consumer %s is paused (%s); nothing was sent and failure %s is kept as it was: resume the consumer, then replay",
		ErrPaused, f.Consumer, why, f.ID)
}

func (r *Replayer) budget() time.Duration {
	if r.Budget > 0 {
		return r.Budget
	}
	return DefaultBudget
}

// replayable checks that f can be replayed now, and gives its route's shape as the route file
// has it now.
//
// When the route is gone the failure is refused rather than sent unshaped: the route's exclude
// list is what keeps personal data from a consumer, and sending the whole row could leak it.
// Support staff can restore the route or discard the failure.
func (r *Replayer) replayable(f Failure) (Shape, error) {
	switch f.Status {
	case StatusPending, StatusReplaying:
		// A replaying failure is held by another replay unless that replay died: Claim decides.
	default:
		return Shape{}, &StatusError{Failure: f, Op: "replayed"}
	}
	if r.Router == nil {
		return Shape{}, fmt.Errorf("%w: no routes are configured", ErrCannotReplay)
	}
	if f.Kind.Rerouted() {
		return Shape{}, nil
	}
	if r.Sender == nil {
		return Shape{}, fmt.Errorf("%w: no delivery is configured", ErrCannotReplay)
	}
	shape, ok := r.Router.Shape(f.Route)
	if !ok {
		return Shape{}, fmt.Errorf("%w: failure %s came through route %q, which is not in the route file any more; its select/exclude columns are unknown, so the event is not sent unshaped. Restore the route or discard the failure",
			ErrRouteGone, f.ID, f.Route)
	}
	return shape, nil
}

// replay delivers a claimed failure once and records the outcome with the claim's ETag. The
// error is non-nil only when the outcome could not be saved.
func (r *Replayer) replay(ctx context.Context, f Failure, etag ETag, shape Shape, by Actor) (ReplayOutcome, error) {
	out := ReplayOutcome{ID: f.ID}
	var statusCode int
	start := time.Now()
	// Any of the Service Bus message formats, told from the bytes: a poison message kept in XML
	// or binary XML form (as versions before those formats were read did) decodes now.
	ev, err := dataverse.DecodeBody(f.Payload, "", dataverse.DecodeOptions{OrganizationHost: f.OrganizationHost, Lookups: r.Lookups})
	switch {
	case err != nil:
		out.Result, out.Error = ResultFailed, fmt.Sprintf("payload does not decode: %v", err)
	case f.Kind.Rerouted():
		// It decodes now (poison), or its row can be read now (reread): route it like any new
		// event. Its deliveries that fail are recorded as failures of their own, so this entry
		// is done once that is durable. A read that fails again fails this replay instead.
		routed, err := r.Router.Reroute(ctx, ev)
		if errors.Is(err, ErrRead) {
			out.Result, out.Error = ResultFailed, err.Error()
		} else if err != nil {
			out.Result, out.Error = ResultFailed, fmt.Sprintf("routed, but an outcome could not be recorded: %v", err)
		} else {
			out.Result, out.Routed = ResultDelivered, &routed
		}
	default:
		a := r.Sender.Resend(ctx, ev, f.Route, f.Consumer, shape)
		statusCode, out.tries = a.StatusCode, a.Tries
		if a.Delivered {
			out.Result = ResultDelivered
		} else {
			out.Result, out.Error = ResultFailed, a.Error
			out.breaker = a.BreakerRefused
			out.paused = a.Paused
			out.untried = (a.BreakerRefused || a.Paused) && a.Attempts == 0
		}
	}

	err = r.save(ctx, f, etag, &out, statusCode, start, by)
	return out, err
}

// save records the outcome of a claimed failure's replay with the claim's ETag: replayed,
// failed again, or given back untried (out.Result becomes skipped). The error is non-nil only
// when it could not be saved.
func (r *Replayer) save(ctx context.Context, f Failure, etag ETag, out *ReplayOutcome, statusCode int, start time.Time, by Actor) error {
	var saveErr error
	switch {
	case out.untried:
		// Not an attempt: the consumer was not tried, so the failure goes back as it was.
		out.Result = ResultSkipped
		saveErr = r.Store.Release(ctx, f.ID, etag, by.Name)
	case out.Result == ResultDelivered:
		saveErr = r.Store.MarkReplayed(ctx, f.ID, etag, out.tries, by.Name)
	default:
		saveErr = r.Store.RecordAttempt(ctx, f.ID, etag, out.Error, statusCode, out.tries, by.Name)
	}
	r.Log.Info().Str("who", by.Name).Str("key", by.Key).Str("id", f.ID).Str("consumer", f.Consumer).
		Str("kind", string(f.Kind)).Str("eventId", f.EventID).Str("result", out.Result).Str("error", out.Error).
		AnErr("saveError", saveErr).Msg("failure replayed")
	if saveErr == nil && journaled(f, out.Result) {
		r.observe(Observed{Failure: f, Result: out.Result, At: time.Now(), Duration: time.Since(start), StatusCode: statusCode,
			Error: out.Error, Paused: out.paused, Tries: out.tries})
	}
	if saveErr != nil {
		return fmt.Errorf("%w: failure %s was %s but its new status could not be saved (it stays replaying and can be replayed again after the claim times out): %w",
			ErrNotSaved, f.ID, out.Result, saveErr)
	}
	return nil
}

// BulkOutcome is how a ReplayMatching ended. Matched counts the failures found (up to the
// limit); those neither delivered, failed nor skipped were left alone because the run stopped
// early.
type BulkOutcome struct {
	Matched, Delivered, Failed, Skipped int
	DryRun                              bool
	StoppedEarly                        bool
	Reason                              string
	// Continuation is set when more failures may match beyond this run: pass it back as
	// Query.Continuation to go on without meeting the same failure twice.
	Continuation string
	Errors       []ItemError // the first failed or skipped items, with why
}

// ItemError names one failure a bulk replay could not replay, and why.
type ItemError struct {
	ID    string
	Error string
}

// ReplayMatching replays, 8 at a time, up to limit pending failures that q matches (q.Status is
// ignored: only pending failures are replayed), newest first, from q.Continuation on. With dryRun
// it only counts them. It stops starting new replays when a consumer's breaker opens, when ctx
// ends or when BulkTimeLimit is reached; replays already started finish and are saved. A
// paused consumer's failures are skipped, left as they are, and the others' go on. The
// error is non-nil only when nothing could be listed at all.
func (r *Replayer) ReplayMatching(ctx context.Context, q Query, limit int, dryRun bool, by Actor) (BulkOutcome, error) {
	q.Status = string(StatusPending)
	run := &bulkRun{r: r, by: by, out: BulkOutcome{DryRun: dryRun}}
	limitTime := r.BulkTimeLimit
	if limitTime <= 0 {
		limitTime = DefaultBulkTimeLimit
	}
	deadline := time.Now().Add(limitTime)
	for remaining := limit; remaining > 0; {
		q.Top = min(remaining, bulkPageSize)
		page, err := r.Store.List(ctx, q)
		if err != nil {
			if run.out.Matched == 0 {
				return BulkOutcome{}, err
			}
			run.stop("the failure store failed: " + err.Error())
			break
		}
		items := page.Items
		if len(items) > remaining {
			items = items[:remaining]
		}
		run.out.Matched += len(items)
		remaining -= len(items)
		if !dryRun {
			run.replayAll(ctx, items)
		}
		q.Continuation = page.Continuation
		if run.stopped() || q.Continuation == "" {
			break
		}
		if time.Now().After(deadline) {
			run.out.Reason = fmt.Sprintf("time limit of %s for one request reached; pass the continuation to go on", limitTime)
			break
		}
	}
	if !run.stopped() {
		run.out.Continuation = q.Continuation
	}
	out := run.result()
	r.Log.Info().Str("who", by.Name).Str("key", by.Key).Str("consumer", q.Consumer).Str("kind", q.Kind).
		Str("table", q.Table).Bool("dryRun", out.DryRun).Int("matched", out.Matched).Int("delivered", out.Delivered).
		Int("failed", out.Failed).Int("skipped", out.Skipped).Bool("stoppedEarly", out.StoppedEarly).
		Str("reason", out.Reason).Msg("bulk replay")
	return out, nil
}

// bulkRun is one bulk replay's tally, shared by its workers.
type bulkRun struct {
	r   *Replayer
	by  Actor
	mu  sync.Mutex
	out BulkOutcome
}

func (b *bulkRun) stop(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.out.StoppedEarly {
		b.out.StoppedEarly, b.out.Reason = true, reason
	}
}

func (b *bulkRun) stopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.StoppedEarly
}

func (b *bulkRun) count(id, result, errText string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch result {
	case ResultDelivered:
		b.out.Delivered++
	case ResultFailed:
		b.out.Failed++
	case ResultSkipped:
		b.out.Skipped++
	}
	if errText != "" && len(b.out.Errors) < maxBulkErrors {
		b.out.Errors = append(b.out.Errors, ItemError{ID: id, Error: errText})
	}
}

func (b *bulkRun) result() BulkOutcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out
}

// replayAll replays items with bounded concurrency. It starts no new item once the run has
// stopped (a breaker opened, the caller went away); items already started finish and are saved.
func (b *bulkRun) replayAll(ctx context.Context, items []Failure) {
	items = b.replayBatches(ctx, items)
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
func (b *bulkRun) replayItem(reqCtx context.Context, listed Failure) {
	r := b.r
	if b.stopped() {
		return
	}
	if !listed.Kind.Rerouted() && r.Sender != nil {
		// A paused consumer's failures stay as they are; the others' go on.
		if p := r.Sender.Paused(listed.Consumer); p != "" {
			b.count(listed.ID, ResultSkipped, pausedError(listed, p).Error())
			return
		}
		if r.Sender.BreakerOpen(listed.Consumer) {
			b.stop(breakerStopReason(listed.Consumer))
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), r.budget()+storeTimeout)
	defer cancel()
	f, etag, err := r.Store.Get(ctx, listed.ID)
	if err != nil {
		b.count(listed.ID, ResultSkipped, "read: "+err.Error())
		return
	}
	if f.Status != StatusPending {
		b.count(f.ID, ResultSkipped, "")
		return
	}
	shape, err := r.replayable(f)
	if err != nil {
		b.count(f.ID, ResultSkipped, err.Error())
		return
	}
	etag, err = r.Store.Claim(ctx, f.ID, etag, b.by.Name)
	if errors.Is(err, ErrConflict) {
		b.count(f.ID, ResultSkipped, "")
		return
	}
	if err != nil {
		b.count(f.ID, ResultSkipped, "claim: "+err.Error())
		return
	}
	out, err := r.replay(ctx, f, etag, shape, b.by)
	msg := out.Error
	if err != nil {
		msg = err.Error()
	}
	b.count(f.ID, out.Result, msg)
	if out.breaker && !out.paused {
		b.stop(breakerStopReason(f.Consumer))
	}
}

func breakerStopReason(consumer string) string {
	return fmt.Sprintf("consumer %s's circuit breaker is open after recent failures; the rest is left pending, replay again once it recovers", consumer)
}

// Discard gives up on failure id for good, with the reason (required, at most MaxReasonChars
// characters), and returns it as stored now, without its payload. Errors: ErrInvalid (the
// reason), ErrNotFound, a *StatusError (already replayed or discarded), ErrConflict (being
// replayed right now, or changed meanwhile).
func (r *Replayer) Discard(ctx context.Context, id string, by Actor, reason string) (Failure, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Failure{}, fmt.Errorf(`%w: reason required: say why the failure is given up, e.g. {"reason": "customer re-sent the order by hand"}`, ErrInvalid)
	}
	if utf8.RuneCountInString(reason) > MaxReasonChars {
		return Failure{}, fmt.Errorf("%w: reason: at most %d characters", ErrInvalid, MaxReasonChars)
	}
	if err := r.Store.Discard(ctx, id, "", by.Name, reason); err != nil {
		return Failure{}, err
	}
	f, _, err := r.Store.Get(ctx, id)
	if err != nil {
		return Failure{}, err
	}
	r.Log.Info().Str("who", by.Name).Str("key", by.Key).Str("id", f.ID).Str("consumer", f.Consumer).
		Str("kind", string(f.Kind)).Str("eventId", f.EventID).Str("reason", reason).Msg("failure discarded")
	if journaled(f, "discarded") {
		r.observe(Observed{Failure: f, Result: "discarded", At: time.Now(), Error: reason})
	}
	f.Payload = nil
	return f, nil
}
