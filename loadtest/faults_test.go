package loadtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/loadtest"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// The fault suite: N events go through `dvrouter serve` (a separate process) while consumers,
// the failure store and dvrouter itself fail in every way the issue lists. At the end every
// (event, consumer) pair the routes call for must have been delivered at least once or be
// kept in the failure store; after a bulk replay with healthy consumers, every pair must have
// been delivered. Duplicates are counted and reported, not failed: consumers deduplicate by
// event id, and at-least-once is the promise.
//
// Size and pace come from the environment, so `make test` runs a reduced suite and
// `make faults` the full one:
//
//	DVROUTER_FAULTS_N     events per mode (default 600; make faults: 10000)
//	DVROUTER_FAULTS_RATE  events per second (default N/60, at least 30)
//	DVROUTER_BIN          a dvrouter binary to use instead of building one

// faultRoutes is which consumers each table's events must reach: one route per table, so the
// expected pairs follow from the table alone, independently of dvrouter's matching. Email has
// no route: its events must reach nobody.
// Delta (randomFailer) fails 30% of its requests at random for the whole run.
var faultRoutes = map[string][]string{
	"account":     {"alpha", "bravo", randomFailer, webAPIConsumer},
	"contact":     {"bravo", "charlie"},
	"opportunity": {"alpha", "charlie", randomFailer},
	"lead":        {"alpha", randomFailer},
	"incident":    {"bravo"},
}

var faultConsumers = []string{"alpha", "bravo", "charlie", randomFailer}

// webAPIConsumer is a dataverse consumer: it upserts each account event's row, keyed by the
// record id, into new_ledger of the Web API stand-in, which throttles and goes down meanwhile.
// A pair counts as delivered when the stand-in carried out a write of that row.
const webAPIConsumer = "ledger"

// listedConsumers are every consumer whose failures are kept and replayed.
var listedConsumers = append(slices.Clone(faultConsumers), webAPIConsumer)

const (
	consumerTimeout = 300 * time.Millisecond
	breakerOpenFor  = time.Second
	faultQueue      = "dataverse-events"
)

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite starts Azurite, the Service Bus stand-in and dvrouter processes; run it without -short")
	}
	cfg := faultConfig(t)
	templates, err := loadtest.LoadTemplates(filepath.Join(testenv.RepoRoot(), "testdata", "events"))
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("DVROUTER_BIN")
	if bin == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if bin, err = loadtest.Build(ctx, testenv.RepoRoot(), t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("direct", func(t *testing.T) {
		s := newFaultSuite(t, cfg, bin, templates, false)
		s.run(s.directTimeline())
	})
	t.Run("queued", func(t *testing.T) {
		s := newFaultSuite(t, cfg, bin, templates, true)
		s.run(s.queuedTimeline())
	})
}

type suiteConfig struct {
	n    int
	rate float64
}

// sending is how long the events take to send at the configured rate.
func (c suiteConfig) sending() time.Duration {
	return time.Duration(float64(c.n) / c.rate * float64(time.Second))
}

func faultConfig(t *testing.T) suiteConfig {
	cfg := suiteConfig{n: 600}
	if v := os.Getenv("DVROUTER_FAULTS_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 12 {
			t.Fatalf("DVROUTER_FAULTS_N=%q: want a whole number of at least 12", v)
		}
		cfg.n = n
	}
	cfg.rate = max(30, float64(cfg.n)/60)
	if v := os.Getenv("DVROUTER_FAULTS_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("DVROUTER_FAULTS_RATE=%q: want events per second above 0", v)
		}
		cfg.rate = r
	}
	return cfg
}

// faultSuite is one run of the suite in one mode, with everything it started.
type faultSuite struct {
	t         *testing.T
	cfg       suiteConfig
	queued    bool
	runID     string // distinguishes this run's event ids from any other's
	next      func(seq int) loadtest.Event
	az        *testenv.Azurite
	sb        *testenv.ServiceBus
	host      *testenv.Host
	router    *loadtest.Router
	adminKey  string
	consumers map[string]*loadtest.Consumer
	webapi    *testenv.WebAPI   // the ledger consumer's environment
	records   map[string]string // event id -> record id, for the ledger's rows
	api       *http.Client
}

func newFaultSuite(t *testing.T, cfg suiteConfig, bin string, templates []*loadtest.Template, queued bool) *faultSuite {
	s := &faultSuite{
		t: t, cfg: cfg, queued: queued,
		runID:     t.Name() + "/" + randomHex(8),
		consumers: map[string]*loadtest.Consumer{},
		adminKey:  randomHex(16),
		api:       &http.Client{Timeout: 5 * time.Minute},
	}
	s.next = loadtest.Mix(templates, s.runID)
	dir := t.TempDir()
	s.az = testenv.StartAzurite(t)
	for _, name := range faultConsumers {
		c, err := loadtest.StartConsumer(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		s.consumers[name] = c
	}
	s.consumers[randomFailer].SetFault(randomFailures)
	s.records = map[string]string{}
	s.webapi = testenv.StartWebAPI(t).EnableWrites()
	s.webapi.AddTable(testenv.WebAPITable{LogicalName: "new_ledger", EntitySetName: "new_ledgers", PrimaryID: "new_ledgerid",
		Columns: []string{"new_sourceid", "new_name"}})
	identity := s.webapi.StartIdentityEndpoint(t)
	routes := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte(s.routesFile()), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"DVROUTER_ROUTES=" + routes,
		"DVROUTER_TABLES=" + s.az.ConnectionString(),
		"DVROUTER_FAILURES_TABLE=FaultSuite",
		"DVROUTER_ADMIN_KEYS=faults=" + s.adminKey,
		"DVROUTER_DELIVERY_BUDGET=5s",
		"DVROUTER_LOG_LEVEL=warn",
		"GOMAXPROCS=2",
		// The ledger's token, from the managed identity endpoint as in Azure.
		"IDENTITY_ENDPOINT=" + identity.Endpoint,
		"IDENTITY_HEADER=" + identity.Header,
	}
	if queued {
		// Duplicate detection on, as infra/modules/servicebus.bicep creates the queue: an event
		// posted again after an unanswered attempt (the kill) is enqueued again and dropped.
		s.sb = testenv.StartServiceBus(t, testenv.WithEntities(faultQueue), testenv.WithDuplicateDetection(faultQueue))
		env = append(env, "ServiceBusConnection="+s.sb.ConnectionString, "DVROUTER_QUEUE="+faultQueue)
	}
	s.router = &loadtest.Router{Bin: bin, Env: env, Port: port, Log: filepath.Join(dir, "dvrouter.log")}
	t.Cleanup(func() {
		_ = s.router.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("dvrouter log ends:\n%s", loadtest.Tail(s.router.Log, 40))
		}
	})
	if err := s.router.Start(time.Minute); err != nil {
		t.Fatal(err)
	}
	if queued {
		s.host = testenv.StartHost(t, testenv.HostOptions{
			ConnectionString: s.sb.ConnectionString,
			Queue:            faultQueue,
			HandlerURL:       s.router.URL(),
			Concurrency:      16,
		})
	}
	return s
}

func (s *faultSuite) routesFile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The fault suite's routes: one per table, fixed consumers, short timeouts and a\n")
	fmt.Fprintf(&b, "# breaker that reopens quickly, so that faults of a few seconds exercise every path.\n")
	fmt.Fprintf(&b, "x-policy: &policy\n  timeout: %s\n  retry: {attempts: 3, initialDelay: 50ms, maxDelay: 500ms}\n", consumerTimeout)
	fmt.Fprintf(&b, "  breaker: {failureRatio: 0.5, minRequests: 20, openFor: %s, halfOpenRequests: 1}\n  maxConcurrency: 16\n", breakerOpenFor)
	b.WriteString("consumers:\n")
	for _, name := range faultConsumers {
		fmt.Fprintf(&b, "  - <<: *policy\n    name: %s\n    type: http\n    format: row\n    url: %s\n", name, s.consumers[name].URL)
	}
	fmt.Fprintf(&b, "  - <<: *policy\n    name: %s\n    type: dataverse\n    environment: %q\n    table: new_ledger\n    key: [new_sourceid]\n", webAPIConsumer, s.webapi.URL)
	b.WriteString("    columns: {new_sourceid: accountid, new_name: name}\n")
	b.WriteString("routes:\n")
	for _, table := range slices.Sorted(maps.Keys(faultRoutes)) {
		fmt.Fprintf(&b, "  - name: %s-changes\n    table: %s\n    consumers: [%s]\n", table, table, strings.Join(faultRoutes[table], ", "))
	}
	return b.String()
}

// fault is one step of a timeline: at a fraction of the sending time, do something.
type fault struct {
	at   float64
	what string
	do   func()
}

func (s *faultSuite) set(name string, f *loadtest.Fault) func() {
	return func() { s.consumers[name].SetFault(f) }
}

func (s *faultSuite) healthy(name string) func() { return s.set(name, nil) }

// outage is how long Azurite or dvrouter stays down: several seconds, longer in a longer run.
func (s *faultSuite) outage() time.Duration {
	return max(4*time.Second, s.cfg.sending()/10)
}

// directTimeline: every consumer fault, one after another, then the failure store down while a
// consumer fails, so failures cannot be kept and the webhook must answer 503.
func (s *faultSuite) directTimeline() []fault {
	stall := &loadtest.Fault{Stall: 3 * consumerTimeout}
	return []fault{
		// The ledger goes down first, while its breaker is closed, so that the outage gets
		// traffic; throttled first, its breaker opened and stayed open through the outage.
		{0.08, "alpha answers 500; ledger down (503)", func() {
			s.set("alpha", &loadtest.Fault{Status: http.StatusInternalServerError})()
			s.webAPIDown()
		}},
		{0.20, "alpha healthy; bravo answers 429 with Retry-After: 1; ledger back", func() {
			s.healthy("alpha")()
			s.set("bravo", &loadtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"})()
			s.webapi.Heal()
		}},
		// No Heal after: the ledger sends about one request a second while it is throttled
		// (its Retry-After holds every request back), so its 15 429s take a while.
		{0.32, "bravo healthy; charlie stalls past its timeout; ledger throttles (429, Retry-After: 1) its next 15 requests", func() {
			s.healthy("bravo")()
			s.set("charlie", stall)()
			s.webapi.ThrottleAfter(0, 15, "1")
		}},
		{0.44, "charlie healthy; alpha resets connections", func() {
			s.healthy("charlie")()
			s.set("alpha", &loadtest.Fault{Reset: true})()
		}},
		{0.52, "alpha healthy; bravo refuses connections (listener closed)", func() {
			s.healthy("alpha")()
			s.consumers["bravo"].Refuse()
		}},
		{0.62, "bravo listens again; charlie answers 503; Azurite stopped for " + s.outage().String(), func() {
			if err := s.consumers["bravo"].Accept(); err != nil {
				s.t.Fatal(err)
			}
			s.set("charlie", &loadtest.Fault{Status: http.StatusServiceUnavailable})()
			s.az.Stop()
			time.Sleep(s.outage())
			s.az.Start(s.t)
			s.t.Logf("  Azurite back after %s", s.outage())
		}},
		{0.90, "charlie healthy", s.healthy("charlie")},
	}
}

// queuedTimeline: consumer faults while the queue is worked, dvrouter killed with SIGKILL in
// the middle of it all and started again, then the failure store down while a consumer fails:
// those failures cannot be kept, so their invocations must fail and Service Bus redeliver them
// until the store is back.
func (s *faultSuite) queuedTimeline() []fault {
	return []fault{
		// Down before throttled, as in directTimeline, so that the outage gets traffic.
		{0.08, "alpha answers 500 to 30% of requests; ledger down (503)", func() {
			s.set("alpha", &loadtest.Fault{Status: http.StatusInternalServerError, Ratio: 0.3})()
			s.webAPIDown()
		}},
		{0.20, "ledger back", s.webapi.Heal},
		{0.25, "charlie stalls past its timeout; ledger throttles (429, Retry-After: 1) its next 15 requests", func() {
			s.set("charlie", &loadtest.Fault{Stall: 3 * consumerTimeout})()
			s.webapi.ThrottleAfter(0, 15, "1")
		}},
		{0.40, "charlie resets connections", s.set("charlie", &loadtest.Fault{Reset: true})},
		{0.50, "dvrouter killed with SIGKILL mid-run, started again after 2s", func() {
			if err := s.router.Kill(); err != nil {
				s.t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			if err := s.router.Start(time.Minute); err != nil {
				s.t.Fatal(err)
			}
		}},
		{0.60, "charlie healthy; bravo refuses connections (listener closed)", func() {
			s.healthy("charlie")()
			s.consumers["bravo"].Refuse()
		}},
		{0.72, "bravo listens again; alpha healthy", func() {
			if err := s.consumers["bravo"].Accept(); err != nil {
				s.t.Fatal(err)
			}
			s.healthy("alpha")()
		}},
		{0.78, "charlie answers 503; Azurite stopped for " + s.outage().String(), func() {
			s.set("charlie", &loadtest.Fault{Status: http.StatusServiceUnavailable})()
			s.az.Stop()
			time.Sleep(s.outage())
			s.az.Start(s.t)
			s.t.Logf("  Azurite back after %s (host so far: %+v)", s.outage(), s.host.Stats())
		}},
		{0.95, "charlie healthy", s.healthy("charlie")},
	}
}

// sent is one generated event and how its posting went.
type sent struct {
	id       string
	table    string
	delivery loadtest.Delivery
}

func (s *faultSuite) run(timeline []fault) {
	t := s.t
	start := time.Now()
	events := make([]sent, s.cfg.n)
	seen := map[string]int{}
	for i := range events {
		ev := s.next(i)
		decoded, err := dataverse.Decode(ev.Body)
		if err != nil {
			t.Fatalf("event %d (%s): %v", i, ev.Template.Name, err)
		}
		if j, dup := seen[decoded.ID]; dup {
			t.Fatalf("events %d and %d have the same id %s: the generator must vary them", j, i, decoded.ID)
		}
		seen[decoded.ID] = i
		s.records[decoded.ID] = decoded.RecordID
		events[i] = sent{id: decoded.ID, table: ev.Template.Table, delivery: loadtest.Delivery{Event: ev}}
	}

	// The generator runs beside the timeline: events go out on a fixed schedule, each posted
	// until accepted, as Dataverse would retry it, with the same bytes every time.
	sendCtx, cancel := context.WithTimeout(context.Background(), s.cfg.sending()+5*time.Minute)
	defer cancel()
	client := loadtest.NewClient(s.router.URL()+"/api/dataverse/webhook", 64)
	var wg sync.WaitGroup
	generated := make(chan struct{})
	go func() {
		defer close(generated)
		slots := make(chan struct{}, 64)
		interval := time.Duration(float64(time.Second) / s.cfg.rate)
		for i := range events {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				events[i].delivery = client.PostUntilAccepted(sendCtx, events[i].delivery.Event)
			})
		}
		wg.Wait()
	}()

	sending := s.cfg.sending()
	t.Logf("%s mode: %d events at %.0f/s (%s); faults:", s.mode(), s.cfg.n, s.cfg.rate, sending.Round(time.Second))
	for _, f := range timeline {
		if d := time.Until(start.Add(time.Duration(f.at * float64(sending)))); d > 0 {
			time.Sleep(d)
		}
		t.Logf("  t=%5.1fs  %s", time.Since(start).Seconds(), f.what)
		f.do()
	}
	for _, name := range faultConsumers {
		s.consumers[name].SetFault(nil)
	}
	s.webapi.Heal()
	<-generated
	t.Logf("  t=%5.1fs  every event sent", time.Since(start).Seconds())
	if s.queued {
		s.drainQueue(3 * time.Minute)
		t.Logf("  t=%5.1fs  queue drained (host: %+v)", time.Since(start).Seconds(), s.host.Stats())
	}

	r := s.account(events)
	kept := s.listFailures("")
	for pair := range kept {
		r.kept++
		if !r.expected[pair] {
			r.misrouted = append(r.misrouted, "kept "+pair.String())
		}
	}
	for pair := range r.expected {
		if s.delivered(pair) == 0 && !kept[pair] {
			r.lostBefore = append(r.lostBefore, pair.String())
		}
	}
	r.deliveredBefore = s.deliveredPairs(r.expected)

	r.replay = s.replayAll(3 * time.Minute)
	r.pendingAfter = len(s.listFailures("pending"))
	for pair := range r.expected {
		n := s.delivered(pair)
		if n == 0 {
			r.lost = append(r.lost, pair.String())
		}
		if n > 1 {
			r.duplicates += n - 1
			r.duplicatedPairs++
		}
	}
	for name, c := range s.consumers {
		for id, n := range c.Deliveries() {
			if !r.expected[pairKey{id, name}] {
				r.misrouted = append(r.misrouted, fmt.Sprintf("delivered %d times: %s", n, pairKey{id, name}))
			}
		}
	}
	r.took = time.Since(start)
	s.report(r)
	s.reportWebAPI(r.expected, kept)
	s.checkNeverOpened(randomFailer)
}

func (s *faultSuite) mode() string {
	if s.queued {
		return "queued"
	}
	return "direct"
}

type pairKey struct{ event, consumer string }

func (p pairKey) String() string { return p.consumer + " <- " + p.event }

type faultReport struct {
	events, accepted, refusedFirst int
	statuses                       map[int]int // answers that were not accepted, by status (0: no answer)
	answerMismatch                 []string    // direct mode: dvrouter's answer disagrees with the expected consumers
	expected                       map[pairKey]bool
	deliveredBefore, kept          int
	lostBefore                     []string
	replay                         replayTotals
	pendingAfter                   int
	lost                           []string
	duplicates, duplicatedPairs    int
	misrouted                      []string
	took                           time.Duration
}

// account builds the expected pairs from the accepted events and checks dvrouter's answers.
func (s *faultSuite) account(events []sent) *faultReport {
	r := &faultReport{events: len(events), statuses: map[int]int{}, expected: map[pairKey]bool{}}
	for _, e := range events {
		d := e.delivery
		for _, st := range d.Statuses {
			if st < 200 || st > 299 {
				r.statuses[st]++
			}
		}
		if !d.Accepted {
			continue
		}
		r.accepted++
		if d.Attempts > 1 {
			r.refusedFirst++
		}
		want := faultRoutes[e.table]
		for _, c := range want {
			r.expected[pairKey{e.id, c}] = true
		}
		var answer struct {
			ID        string   `json:"id"`
			Queued    bool     `json:"queued"`
			Delivered []string `json:"delivered"`
			Failed    []string `json:"failed"`
		}
		if err := json.Unmarshal(d.Last.Body, &answer); err != nil || answer.ID != e.id {
			r.answerMismatch = append(r.answerMismatch, fmt.Sprintf("event %d: answer %q does not carry id %s", e.delivery.Event.Seq, d.Last.Body, e.id))
			continue
		}
		if s.queued {
			if !answer.Queued || d.Last.Status != http.StatusAccepted {
				r.answerMismatch = append(r.answerMismatch, fmt.Sprintf("event %s: queued mode answered %d %s", e.id, d.Last.Status, d.Last.Body))
			}
			continue
		}
		got := slices.Sorted(slices.Values(append(answer.Delivered, answer.Failed...)))
		if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			r.answerMismatch = append(r.answerMismatch, fmt.Sprintf("event %s (%s): answer names consumers %v, want %v", e.id, e.table, got, want))
		}
	}
	return r
}

// delivered is how often the pair's event reached its consumer: for the ledger, the writes of
// the event's row.
func (s *faultSuite) delivered(pair pairKey) int {
	if pair.consumer == webAPIConsumer {
		return s.webapi.Written("new_ledger", map[string]any{"new_sourceid": s.records[pair.event]})
	}
	return s.consumers[pair.consumer].Delivered(pair.event)
}

// reportWebAPI logs what the ledger's environment went through.
func (s *faultSuite) reportWebAPI(expected, kept map[pairKey]bool) {
	pairs, keptPairs := 0, 0
	for pair := range expected {
		if pair.consumer == webAPIConsumer {
			pairs++
			if kept[pair] {
				keptPairs++
			}
		}
	}
	statuses := map[int]int{}
	for _, r := range s.webapi.Requests() {
		statuses[r.Status]++
	}
	s.t.Logf("  %s (dataverse consumer, Web API stand-in): %d pairs, %d kept before replay; requests answered 2xx %d, 429 %d, 503 %d; %d rows",
		webAPIConsumer, pairs, keptPairs, statuses[200]+statuses[204], statuses[429], statuses[503], s.webapi.RowCount("new_ledger"))
	if statuses[503] == 0 {
		s.t.Errorf("%s: the stand-in answered no 503: its outage got no traffic, so the suite did not exercise it", webAPIConsumer)
	}
	// In queued mode the throttling overlaps the kill and the breaker the outage opened, so
	// that a small run may see a single 429: only direct mode must show it.
	if statuses[429] == 0 && !s.queued {
		s.t.Errorf("%s: the stand-in answered no 429: its throttling got no traffic", webAPIConsumer)
	}
}

// webAPIDown makes the ledger's environment answer 503 to everything until Heal.
func (s *faultSuite) webAPIDown() {
	statuses := make([]int, 100000)
	for i := range statuses {
		statuses[i] = http.StatusServiceUnavailable
	}
	s.webapi.FailNext(statuses...)
}

func (s *faultSuite) deliveredPairs(expected map[pairKey]bool) int {
	n := 0
	for pair := range expected {
		if s.delivered(pair) > 0 {
			n++
		}
	}
	return n
}

// drainQueue waits until every message on the ingress queue is settled.
func (s *faultSuite) drainQueue(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.sb.Messages(s.t, faultQueue)
		open := 0
		for _, m := range msgs {
			if m.State != "completed" && m.State != "deadlettered" && m.State != "duplicate" {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d queue messages still unsettled after %s (host: %+v)", open, len(msgs), timeout, s.host.Stats())
		}
		time.Sleep(time.Second)
	}
}

// listFailures lists every kept failure, of any status when status is "", through the
// failures API.
func (s *faultSuite) listFailures(status string) map[pairKey]bool {
	out := map[pairKey]bool{}
	for _, consumer := range listedConsumers {
		cont := ""
		for {
			q := url.Values{"consumer": {consumer}, "top": {"1000"}}
			if status != "" {
				q.Set("status", status)
			}
			if cont != "" {
				q.Set("continuation", cont)
			}
			var page struct {
				Items []struct {
					EventID  string `json:"eventId"`
					Consumer string `json:"consumer"`
				} `json:"items"`
				Continuation string `json:"continuation"`
			}
			s.callAPI(http.MethodGet, "/api/failures?"+q.Encode(), nil, &page)
			for _, it := range page.Items {
				out[pairKey{it.EventID, it.Consumer}] = true
			}
			if cont = page.Continuation; cont == "" {
				break
			}
		}
	}
	return out
}

type replayTotals struct {
	rounds, delivered, failed, skipped, stoppedEarly int
}

// replayAll bulk-replays each consumer's pending failures until none is left, waiting for a
// breaker that is still open from the faults to half-open.
func (s *faultSuite) replayAll(timeout time.Duration) replayTotals {
	var tot replayTotals
	deadline := time.Now().Add(timeout)
	for _, consumer := range listedConsumers {
		for time.Now().Before(deadline) {
			var res struct {
				Matched      int  `json:"matched"`
				Delivered    int  `json:"delivered"`
				Failed       int  `json:"failed"`
				Skipped      int  `json:"skipped"`
				StoppedEarly bool `json:"stoppedEarly"`
			}
			body := fmt.Sprintf(`{"consumer": %q, "max": 100000}`, consumer)
			s.callAPI(http.MethodPost, "/api/failures/replay", []byte(body), &res)
			tot.rounds++
			tot.delivered += res.Delivered
			tot.failed += res.Failed
			tot.skipped += res.Skipped
			if res.StoppedEarly {
				tot.stoppedEarly++
			}
			if res.Matched == 0 {
				break
			}
			if res.StoppedEarly || res.Failed > 0 || res.Skipped > 0 {
				time.Sleep(breakerOpenFor + 200*time.Millisecond)
			}
		}
	}
	return tot
}

func (s *faultSuite) callAPI(method, path string, body []byte, out any) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.router.URL()+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("x-functions-key", s.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.api.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		s.t.Fatalf("%s %s: %s: %v", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
}

func (s *faultSuite) report(r *faultReport) {
	t := s.t
	var refusals []string
	for _, st := range slices.Sorted(maps.Keys(r.statuses)) {
		label := strconv.Itoa(st)
		if st == 0 {
			label = "no answer"
		}
		refusals = append(refusals, fmt.Sprintf("%s x%d", label, r.statuses[st]))
	}
	if len(refusals) == 0 {
		refusals = []string{"none"}
	}
	pairs := len(r.expected)
	t.Logf("fault suite, %s mode, %s:", s.mode(), r.took.Round(time.Second))
	t.Logf("  events:        %d sent, %d accepted (%d only after a retry; answers not accepted: %s)",
		r.events, r.accepted, r.refusedFirst, strings.Join(refusals, ", "))
	t.Logf("  pairs:         %d (event, consumer) pairs the routes call for", pairs)
	t.Logf("  before replay: %d delivered, %d kept in the failure store, %d neither",
		r.deliveredBefore, r.kept, len(r.lostBefore))
	t.Logf("  bulk replay:   %d delivered, %d failed again, %d skipped in %d requests (%d stopped early by an open breaker); %d still pending",
		r.replay.delivered, r.replay.failed, r.replay.skipped, r.replay.rounds, r.replay.stoppedEarly, r.pendingAfter)
	t.Logf("  after replay:  %d of %d pairs delivered at least once", pairs-len(r.lost), pairs)
	t.Logf("  duplicates:    %d extra deliveries over %d pairs", r.duplicates, r.duplicatedPairs)
	if s.queued {
		dlq := s.sb.Messages(t, faultQueue+"/$deadletterqueue")
		msgs := s.sb.Messages(t, faultQueue)
		dropped := 0
		for _, m := range msgs {
			if m.State == "duplicate" {
				dropped++
			}
		}
		t.Logf("  queue:         %d messages sent, %d dropped as duplicates, %d dead-lettered; host %+v", len(msgs), dropped, len(dlq), s.host.Stats())
	}
	t.Logf("  lost: %d", len(r.lost))

	// The faults must have bitten, or the suite proved nothing about them.
	if r.kept == 0 {
		t.Errorf("no failure was kept: the consumer faults never reached the failure store")
	}
	if !s.queued && r.statuses[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no webhook answer was 503: the failure store outage was never felt")
	}
	if s.queued && r.statuses[0] == 0 {
		t.Errorf("no webhook request went unanswered: dvrouter's kill was never felt")
	}
	if s.queued && s.host.Stats().Refused == 0 {
		t.Errorf("no invocation was refused: the failure store outage was never felt in queued mode")
	}
	if s.queued && s.host.Stats().Hangs+s.host.Stats().Malformed > 0 {
		t.Errorf("dvrouter answered invocations the host cannot read: %+v", s.host.Stats())
	}
	if r.accepted != r.events {
		t.Errorf("%d of %d events were never accepted", r.events-r.accepted, r.events)
	}
	if len(r.lostBefore) > 0 {
		t.Errorf("before replay, %d pairs were neither delivered nor kept: %s", len(r.lostBefore), first(r.lostBefore, 5))
	}
	if len(r.lost) > 0 {
		t.Errorf("lost: %d pairs never delivered: %s", len(r.lost), first(r.lost, 5))
	}
	if r.pendingAfter > 0 {
		t.Errorf("%d failures still pending after the bulk replay", r.pendingAfter)
	}
	if len(r.misrouted) > 0 {
		t.Errorf("%d deliveries or kept failures for pairs no route calls for: %s", len(r.misrouted), first(r.misrouted, 5))
	}
	if len(r.answerMismatch) > 0 {
		t.Errorf("%d webhook answers disagree with the expected consumers: %s", len(r.answerMismatch), first(r.answerMismatch, 5))
	}
}

func first(list []string, n int) string {
	sort.Strings(list)
	if len(list) > n {
		return strings.Join(list[:n], "; ") + fmt.Sprintf("; and %d more", len(list)-n)
	}
	return strings.Join(list, "; ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomFailer fails a share of its requests at random throughout the run, as a consumer with
// a flaky dependency does. Its breaker must never open: retried, nearly every delivery
// succeeds, and the breaker judges deliveries, not attempts.
const randomFailer = "delta"

var randomFailures = &loadtest.Fault{Status: http.StatusInternalServerError, Ratio: 0.3}

// checkNeverOpened fails the run if consumer's breaker ever left closed: no state change in
// dvrouter's log (kept across restarts) and none in the shared breaker table.
func (s *faultSuite) checkNeverOpened(consumer string) {
	t := s.t
	logged, err := os.ReadFile(s.router.Log)
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	for _, line := range strings.Split(string(logged), "\n") {
		var l struct {
			Msg      string `json:"message"`
			Consumer string `json:"consumer"`
			To       string `json:"to"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "breaker state changed" && l.Consumer == consumer {
			changes++
			t.Logf("  %s: %s", consumer, line)
		}
	}
	var list struct {
		Items []struct {
			Consumer string `json:"consumer"`
			State    string `json:"state"`
			Opened   int64  `json:"opened"`
			Shared   bool   `json:"shared"`
		} `json:"items"`
	}
	s.callAPI(http.MethodGet, "/api/consumers", nil, &list)
	for _, it := range list.Items {
		if it.Consumer != consumer {
			continue
		}
		t.Logf("  %s (%s throughout): breaker %s, opened %d times, %d state changes logged; %d requests answered",
			consumer, randomFailures, it.State, it.Opened, changes, s.consumers[consumer].Requests())
		if it.State != "closed" || it.Opened != 0 || changes != 0 {
			t.Errorf("%s's breaker opened (state %s, opened %d, %d changes logged): a consumer failing %.0f%% at random must not be shut off",
				consumer, it.State, it.Opened, changes, randomFailures.Ratio*100)
		}
		return
	}
	t.Errorf("GET /api/consumers does not list %s: %+v", consumer, list.Items)
}
