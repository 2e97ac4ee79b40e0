package loadtest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// Fault is how a Consumer misbehaves. The zero Fault, or nil, is a healthy consumer.
type Fault struct {
	Status     int           // answer this status instead of 200 (500, 429, 503, ...)
	RetryAfter string        // with this Retry-After header
	Stall      time.Duration // wait this long before answering (less if the client gives up)
	Reset      bool          // reset the connection instead of answering
	// Ratio is the share of requests the fault applies to, from 0 to 1; 0 means all of them.
	Ratio float64
}

func (f *Fault) String() string {
	if f == nil {
		return "healthy"
	}
	var s string
	switch {
	case f.Reset:
		s = "resets the connection"
	case f.Stall > 0:
		s = fmt.Sprintf("stalls %s", f.Stall)
	case f.RetryAfter != "":
		s = fmt.Sprintf("answers %d with Retry-After %s", f.Status, f.RetryAfter)
	default:
		s = fmt.Sprintf("answers %d", f.Status)
	}
	if f.Ratio > 0 && f.Ratio < 1 {
		s += fmt.Sprintf(" to %.0f%% of requests", f.Ratio*100)
	}
	return s
}

// Consumer is an HTTP consumer on a fixed loopback port. It counts every delivery it accepted
// (answered 2xx) by the request's Idempotency-Key (the event id), can misbehave (SetFault),
// and can stop listening and come back on the same port (Refuse, Accept). Safe for
// concurrent use.
type Consumer struct {
	Name string
	URL  string // http://127.0.0.1:PORT/events

	addr  string
	fault atomic.Pointer[Fault]

	mu         sync.Mutex
	srv        *http.Server // nil while refusing
	served     chan struct{}
	deliveries map[string]int // event id -> 2xx answers

	requests atomic.Int64
}

// StartConsumer starts a healthy consumer on a free loopback port.
func StartConsumer(name string) (*Consumer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	c := &Consumer{Name: name, addr: ln.Addr().String(), deliveries: map[string]int{}}
	c.URL = "http://" + c.addr + "/events"
	c.serve(ln)
	return c, nil
}

// SetFault makes the consumer misbehave as f says from now on; nil makes it healthy.
func (c *Consumer) SetFault(f *Fault) { c.fault.Store(f) }

// Refuse closes the listener and every open connection: new connections are refused until
// Accept.
func (c *Consumer) Refuse() {
	c.mu.Lock()
	srv, served := c.srv, c.served
	c.srv = nil
	c.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-served
}

// Accept listens again on the same port after Refuse.
func (c *Consumer) Accept() error {
	c.mu.Lock()
	running := c.srv != nil
	c.mu.Unlock()
	if running {
		return nil
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel has not let it go.
	for range 50 {
		if ln, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: listen again on %s: %w", c.Name, c.addr, err)
	}
	c.serve(ln)
	return nil
}

// Close stops the consumer for good.
func (c *Consumer) Close() { c.Refuse() }

// Delivered returns how many times the event was accepted.
func (c *Consumer) Delivered(eventID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deliveries[eventID]
}

// Deliveries returns a copy of the accepted deliveries: event id -> times accepted.
func (c *Consumer) Deliveries() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.deliveries))
	for k, v := range c.deliveries {
		out[k] = v
	}
	return out
}

// Requests is how many requests arrived, whatever the answer.
func (c *Consumer) Requests() int64 { return c.requests.Load() }

func (c *Consumer) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(c.handle), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	c.mu.Lock()
	c.srv, c.served = srv, served
	c.mu.Unlock()
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
}

func (c *Consumer) handle(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	f := c.fault.Load()
	if f != nil && f.Ratio > 0 && f.Ratio < 1 && rand.Float64() >= f.Ratio {
		f = nil
	}
	status := http.StatusOK
	if f != nil {
		if f.Stall > 0 {
			t := time.NewTimer(f.Stall)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Reset {
			testenv.ResetConnection(w)
			return
		}
		if f.Status != 0 {
			status = f.Status
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
	}
	if status >= 200 && status < 300 {
		// Counted before answering: if the answer is lost on the way, dvrouter sees a failure
		// and keeps it, so the event may arrive twice but is never missing.
		if id := r.Header.Get("Idempotency-Key"); id != "" {
			c.mu.Lock()
			c.deliveries[id]++
			c.mu.Unlock()
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(0))
	w.WriteHeader(status)
}
