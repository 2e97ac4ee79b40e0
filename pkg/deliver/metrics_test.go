package deliver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
)

// metricsTotals sums the "consumer metrics" lines of one consumer.
func metricsTotals(t *testing.T, logs *logBuffer, consumer string) (lines int, sum map[string]float64, last map[string]any) {
	t.Helper()
	sum = map[string]float64{}
	for _, l := range logs.withMsg(t, "consumer metrics") {
		if l["consumer"] != consumer {
			continue
		}
		if _, ok := l[zerolog.LevelFieldName]; ok {
			t.Errorf("metrics line %v has a level: it must be written whatever the log level", l)
		}
		lines++
		for _, k := range []string{"delivered", "failed", "paused", "kept", "notKept", "retried", "breakerRefused", "breakerChanges", "latencyCount"} {
			v, ok := l[k].(float64)
			if !ok {
				t.Fatalf("metrics line %v: %s missing or not a number", l, k)
			}
			sum[k] += v
		}
		last = l
	}
	return lines, sum, last
}

func TestMetrics_OneLinePerConsumerPerIntervalWithTheRightCounts(t *testing.T) {
	healthy := testenv.StartConsumer(t)
	// flaky fails the first attempt of the first 3 deliveries, then 2 whole deliveries (2
	// attempts each), which opens its breaker (minRequests 5 at ratio 0.4: 2 of 5), so the
	// next is refused.
	bad, good := testenv.ReplyStatus(http.StatusBadGateway), testenv.Reply{}
	replies := append([]testenv.Reply{bad, good, bad, good, bad, good}, testenv.Repeat(4, testenv.ReplyStatus(http.StatusServiceUnavailable))...)
	flaky := testenv.StartConsumer(t, replies...)
	fc := consumerConfig("flaky", flaky.URL)
	fc.Retry.Attempts = 2
	fc.Breaker = config.Breaker{FailureRatio: 0.4, MinRequests: 5, OpenFor: time.Minute, HalfOpenRequests: 1}
	logs := &logBuffer{}
	rec := &memRecorder{}
	// The level is error: the metrics lines come anyway.
	d, err := deliver.New([]config.Consumer{consumerConfig("healthy", healthy.URL), fc, consumerConfig("idle", healthy.URL)}, rec,
		deliver.Options{Logger: zerolog.New(logs).Level(zerolog.ErrorLevel), MetricsInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	for range 7 {
		if _, err := d.Deliver(context.Background(), testEvent(), []deliver.Target{target("healthy")}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(250 * time.Millisecond) // at least one line goes out on the ticker
	for range 6 {
		if _, err := d.Deliver(context.Background(), testEvent(), []deliver.Target{target("flaky")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(context.Background()); err != nil { // writes what was counted since the last line
		t.Fatal(err)
	}

	lines, got, _ := metricsTotals(t, logs, "healthy")
	// The 7 went out on the ticker, in one line or, when a tick fell among them on a busy
	// machine, two; the idle intervals after them wrote nothing.
	if lines < 1 || lines > 2 || got["delivered"] != 7 || got["failed"] != 0 || got["retried"] != 0 || got["latencyCount"] != 7 {
		t.Errorf("healthy: %d lines summing to %v, want one or two lines: 7 delivered, nothing else", lines, got)
	}
	for _, l := range logs.withMsg(t, "consumer metrics") {
		if l["consumer"] == "healthy" && l["delivered"] == float64(0) {
			t.Errorf("healthy has a metrics line for an interval with nothing delivered: %v", l)
		}
	}
	lines, got, last := metricsTotals(t, logs, "flaky")
	want := map[string]float64{"delivered": 3, "failed": 3, "kept": 3, "notKept": 0, "retried": 5, "breakerRefused": 1, "breakerChanges": 1, "latencyCount": 5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("flaky: %s = %v over %d lines, want %v (all: %v)", k, got[k], lines, v, got)
		}
	}
	if last["breaker"] != "open" {
		t.Errorf("flaky's last line says breaker %v, want open", last["breaker"])
	}
	for _, k := range []string{"latencyAvgMs", "latencyP50Ms", "latencyP95Ms", "latencyP99Ms", "latencyMaxMs", "intervalSeconds"} {
		if v, ok := last[k].(float64); !ok || v <= 0 {
			t.Errorf("flaky's last line: %s = %v, want a positive number", k, last[k])
		}
	}
	if lines, _, _ := metricsTotals(t, logs, "idle"); lines != 0 {
		t.Errorf("idle consumer got %d metrics lines, want none", lines)
	}
}

func TestMetrics_APausedConsumerCountsItsHeldDeliveries(t *testing.T) {
	erp := testenv.StartConsumer(t)
	logs := &logBuffer{}
	rec := &memRecorder{}
	d, err := deliver.New([]config.Consumer{consumerConfig("erp", erp.URL)}, rec,
		deliver.Options{Logger: zerolog.New(logs).Level(zerolog.ErrorLevel), MetricsInterval: 0})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.Pause(ctx, "erp", "alice", "ERP upgrade"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := d.Deliver(ctx, testEvent(), []deliver.Target{target("erp")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	lines, got, _ := metricsTotals(t, logs, "erp")
	if lines != 1 || got["paused"] != 3 || got["kept"] != 3 || got["failed"] != 0 || got["delivered"] != 0 || got["latencyCount"] != 0 {
		t.Errorf("erp: %d lines summing to %v, want one line: 3 paused and kept, nothing failed or sent", lines, got)
	}
	if n := erp.Count(); n != 0 {
		t.Errorf("the paused consumer got %d requests, want 0", n)
	}
}
