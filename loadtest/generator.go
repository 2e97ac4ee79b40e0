package loadtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Client posts events to one URL as Dataverse posts to a webhook.
type Client struct {
	URL    string
	Header http.Header // added to every request (a webhook key, say)
	http   *http.Client
}

// NewClient makes a client that keeps up to conns connections open to url.
func NewClient(url string, conns int) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns
	t.MaxIdleConnsPerHost = conns
	// Dataverse gives up on a webhook after 60 s.
	return &Client{URL: url, http: &http.Client{Transport: t, Timeout: 60 * time.Second}}
}

// Answer is the outcome of one POST.
type Answer struct {
	Status int // 0 when no HTTP answer came (connection refused or reset, timeout)
	Body   []byte
	Err    error
}

// Accepted reports a 2xx answer: the only answer that means dvrouter has the event.
func (a Answer) Accepted() bool { return a.Status >= 200 && a.Status < 300 }

// Post sends ev once, with the headers Dataverse sends.
func (c *Client) Post(ctx context.Context, ev Event) Answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return Answer{Err: err}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("x-ms-dynamics-organization", "contoso.crm.dynamics.com")
	req.Header.Set("x-ms-dynamics-entity-name", ev.Template.Table)
	req.Header.Set("x-ms-dynamics-request-name", ev.Template.Message)
	req.Header.Set("x-ms-correlation-request-id", ev.CorrelationID)
	if ev.Template.SizeExceeded {
		req.Header.Set("x-ms-dynamics-msg-size-exceeded", "true")
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return Answer{Status: resp.StatusCode, Body: body, Err: err}
}

// Delivery is how an event fared when posted until accepted.
type Delivery struct {
	Event    Event
	Accepted bool
	Attempts int
	Statuses []int // status of each attempt, 0 for no answer
	Last     Answer
}

// PostUntilAccepted posts ev until it is accepted (2xx) or ctx ends, with the same bytes each
// time, waiting between attempts from 100 ms doubling to 2 s. Dataverse itself retries a
// webhook once, on 502/503/504; this keeps going, as a patient sender would, so that every
// event ends up accepted and the suite can account for it.
func (c *Client) PostUntilAccepted(ctx context.Context, ev Event) Delivery {
	d := Delivery{Event: ev}
	wait := 100 * time.Millisecond
	for {
		a := c.Post(ctx, ev)
		d.Attempts++
		d.Statuses = append(d.Statuses, a.Status)
		d.Last = a
		if a.Accepted() {
			d.Accepted = true
			return d
		}
		select {
		case <-ctx.Done():
			return d
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// Step is one stage of a load run.
type Step struct {
	// Rate is the events per second, sent on a fixed schedule whatever the answers (open
	// loop); 0 means as fast as Workers can go (closed loop).
	Rate     float64
	Duration time.Duration
	// MaxInFlight bounds requests in flight in an open-loop step; a request whose turn comes
	// while all are busy waits, and the wait counts in its latency.
	MaxInFlight int
	Workers     int // closed-loop senders
}

// StepResult is what one step measured.
type StepResult struct {
	Step      Step
	Sent      int
	Accepted  int
	Elapsed   time.Duration   // from the first send to the last answer
	Latencies []time.Duration // of accepted requests, from their scheduled time to the answer
	Statuses  map[int]int     // answers by status, 0 for no answer
	// LongestGap is the longest time between two answers (or the start and the first), with
	// when it began: a stall shows here, whoever caused it.
	LongestGap   time.Duration
	LongestGapAt time.Duration // from the start of the step
}

// Throughput is accepted events per second.
func (r StepResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 to 100) of the accepted requests' latencies.
func (r StepResult) Percentile(p float64) time.Duration { return Percentile(r.Latencies, p) }

// RunStep posts events next(first), next(first+1), ... for one step, once each.
func (c *Client) RunStep(ctx context.Context, step Step, first int, next func(seq int) Event) StepResult {
	res := StepResult{Step: step, Statuses: map[int]int{}}
	var mu sync.Mutex
	start := time.Now()
	lastAnswer := start
	record := func(a Answer, scheduled time.Time) {
		now := time.Now()
		took := now.Sub(scheduled)
		mu.Lock()
		defer mu.Unlock()
		if gap := now.Sub(lastAnswer); gap > res.LongestGap {
			res.LongestGap, res.LongestGapAt = gap, lastAnswer.Sub(start)
		}
		lastAnswer = now
		res.Sent++
		res.Statuses[a.Status]++
		if a.Accepted() {
			res.Accepted++
			res.Latencies = append(res.Latencies, took)
		}
	}
	end := start.Add(step.Duration)
	var wg sync.WaitGroup
	if step.Rate <= 0 {
		var seq sync.Mutex
		n := first
		for range max(step.Workers, 1) {
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(end) {
					seq.Lock()
					ev := next(n)
					n++
					seq.Unlock()
					sent := time.Now()
					record(c.Post(ctx, ev), sent)
				}
			})
		}
	} else {
		slots := make(chan struct{}, max(step.MaxInFlight, 1))
		interval := time.Duration(float64(time.Second) / step.Rate)
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if !at.Before(end) || ctx.Err() != nil {
				break
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			ev := next(first + i)
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				record(c.Post(ctx, ev), at)
			})
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// Percentile returns the p-th percentile (0 to 100) of ds, nearest rank; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
