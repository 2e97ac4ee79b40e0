package deliver

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics: each consumer counts its deliveries in atomics on the hot path, and a background loop
// writes one "consumer metrics" line per consumer per interval (none for a consumer that had
// nothing). The Functions host sends stdout to Application Insights as traces, so the workbook
// and alerts chart these lines with KQL and nothing on the Azure side needs code. The line has
// no level, so it is written whatever DVROUTER_LOG_LEVEL says.

// stats are one consumer's counts since the last metrics line.
type stats struct {
	delivered      atomic.Int64 // deliveries the consumer took
	failed         atomic.Int64 // deliveries that ended failed, refused by the breaker included
	refused        atomic.Int64 // of those, refused by the breaker without an attempt
	retried        atomic.Int64 // attempts after the first
	paused         atomic.Int64 // deliveries held by an operator's pause: never attempted, kept
	kept           atomic.Int64 // failed or held deliveries recorded in the failure store
	notKept        atomic.Int64 // failed deliveries the store could not take (the event comes again)
	breakerChanges atomic.Int64 // breaker state changes this instance made
	latency        histogram    // deliveries that reached the consumer, retries included
}

func (s *stats) count(err error, attempts int, took time.Duration, refused bool) {
	if err == nil {
		s.delivered.Add(1)
	} else {
		s.failed.Add(1)
	}
	if refused {
		s.refused.Add(1)
	}
	if attempts > 1 {
		s.retried.Add(int64(attempts - 1))
	}
	if attempts > 0 {
		s.latency.observe(took)
	}
}

func (s *stats) recorded(ok bool) {
	if ok {
		s.kept.Add(1)
	} else {
		s.notKept.Add(1)
	}
}

// Latency buckets grow by a quarter each, from 100 µs: bucket i holds durations up to
// 100µs*1.25^i, and the last (about 2.5 minutes) everything longer. A percentile is reported as
// its bucket's upper bound, so it is at most 25% high.
const (
	latencyBuckets = 64
	latencyBase    = 100 * time.Microsecond
	latencyGrowth  = 1.25
)

type histogram struct {
	counts [latencyBuckets]atomic.Int64
	sum    atomic.Int64 // nanoseconds
	max    atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	if d > latencyBase {
		i = min(int(math.Ceil(math.Log(float64(d)/float64(latencyBase))/math.Log(latencyGrowth))), latencyBuckets-1)
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// latencySummary is a histogram taken and reset.
type latencySummary struct {
	n                  int64
	avg, p50, p95, p99 time.Duration
	max                time.Duration
}

func (h *histogram) take() latencySummary {
	var counts [latencyBuckets]int64
	var s latencySummary
	for i := range counts {
		counts[i] = h.counts[i].Swap(0)
		s.n += counts[i]
	}
	sum, longest := h.sum.Swap(0), h.max.Swap(0)
	if s.n == 0 {
		return s
	}
	s.avg, s.max = time.Duration(sum/s.n), time.Duration(longest)
	quantile := func(q float64) time.Duration {
		rank := int64(math.Ceil(q * float64(s.n)))
		seen := int64(0)
		for i, c := range counts {
			if seen += c; seen >= rank {
				return min(time.Duration(float64(latencyBase)*math.Pow(latencyGrowth, float64(i))), s.max)
			}
		}
		return s.max
	}
	s.p50, s.p95, s.p99 = quantile(0.50), quantile(0.95), quantile(0.99)
	return s
}

// metricsLoop writes the lines every interval until stopped, and once more when stopped.
type metricsLoop struct {
	d        *Deliverer
	last     time.Time
	quit     chan struct{}
	finished chan struct{}
	once     sync.Once
}

func startMetrics(d *Deliverer, interval time.Duration) *metricsLoop {
	m := &metricsLoop{d: d, last: time.Now(), quit: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(m.finished)
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-tick:
				m.write()
			case <-m.quit:
				m.write()
				return
			}
		}
	}()
	return m
}

func (m *metricsLoop) stop() {
	m.once.Do(func() { close(m.quit) })
	<-m.finished
}

// write logs one line per consumer that had deliveries since the last line. Keep the message
// and field names: the workbook and the alerts query them.
func (m *metricsLoop) write() {
	now := time.Now()
	seconds := now.Sub(m.last).Seconds()
	m.last = now
	for _, name := range m.d.names {
		c := m.d.consumers[name]
		s := &c.stats
		delivered, failed, refused, paused := s.delivered.Swap(0), s.failed.Swap(0), s.refused.Swap(0), s.paused.Swap(0)
		retried, kept, notKept, changes := s.retried.Swap(0), s.kept.Swap(0), s.notKept.Swap(0), s.breakerChanges.Swap(0)
		lat := s.latency.take()
		if delivered+failed+paused+kept+notKept+changes == 0 {
			continue
		}
		ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }
		m.d.log.Log().Str("consumer", name).Float64("intervalSeconds", math.Round(seconds*1000)/1000).
			Int64("delivered", delivered).Int64("failed", failed).Int64("paused", paused).Int64("kept", kept).Int64("notKept", notKept).
			Int64("retried", retried).Int64("breakerRefused", refused).Int64("breakerChanges", changes).
			Str("breaker", c.cb.Status().State).
			Int64("latencyCount", lat.n).Float64("latencyAvgMs", ms(lat.avg)).Float64("latencyP50Ms", ms(lat.p50)).
			Float64("latencyP95Ms", ms(lat.p95)).Float64("latencyP99Ms", ms(lat.p99)).Float64("latencyMaxMs", ms(lat.max)).
			Msg("consumer metrics")
	}
}
