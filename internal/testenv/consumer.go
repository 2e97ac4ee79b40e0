package testenv

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Reply is how a Consumer answers one request. The zero Reply answers 200 with an empty body.
type Reply struct {
	Status int         // 0 means 200
	Header http.Header // added to the answer (Retry-After, ...)
	Body   string
	Stall  time.Duration // wait this long before answering (less if the client gives up first)
	Reset  bool          // answer nothing: reset the TCP connection (RST)
}

// ReplyStatus answers with status code.
func ReplyStatus(code int) Reply { return Reply{Status: code} }

// ReplyRetryAfter answers code (429 or 503) with a Retry-After header: delta-seconds ("2") or
// an HTTP date (http.TimeFormat).
func ReplyRetryAfter(code int, retryAfter string) Reply {
	return Reply{Status: code, Header: http.Header{"Retry-After": {retryAfter}}}
}

// ReplyStall answers 200 after d, or gives up when the client does.
func ReplyStall(d time.Duration) Reply { return Reply{Stall: d} }

// ReplyReset resets the connection without answering.
func ReplyReset() Reply { return Reply{Reset: true} }

// Repeat is n copies of r, for Consumer.Next.
func Repeat(n int, r Reply) []Reply {
	out := make([]Reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// ReceivedRequest is one request a Consumer received.
type ReceivedRequest struct {
	Time    time.Time // when its headers had arrived
	Method  string
	Path    string // with the query, as sent
	Header  http.Header
	Body    []byte
	Attempt int // X-Dvrouter-Attempt, 0 when absent or malformed
}

// Consumer is a scriptable HTTP consumer on loopback: it answers requests with the scripted
// replies in order (Next), then with its default reply (Otherwise; 200 unless set), and records
// every request. Its methods are safe for concurrent use.
type Consumer struct {
	URL string

	srv  *httptest.Server
	stop chan struct{}

	mu          sync.Mutex
	script      []Reply
	fallback    Reply
	requests    []ReceivedRequest
	inFlight    int
	maxInFlight int
	arrived     chan struct{} // closed and replaced on every arrival, for Wait
}

// StartConsumer starts a consumer that answers its first requests with replies, then 200, and
// stops it when the test ends.
func StartConsumer(t testing.TB, replies ...Reply) *Consumer {
	t.Helper()
	c := &Consumer{stop: make(chan struct{}), script: replies, arrived: make(chan struct{})}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	c.URL = c.srv.URL
	t.Cleanup(func() {
		// Release stalled handlers first: Close waits for every handler to return.
		close(c.stop)
		c.srv.Close()
	})
	return c
}

// Next appends replies to the script: the next requests get them, in order.
func (c *Consumer) Next(replies ...Reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.script = append(c.script, replies...)
}

// Otherwise sets the reply for every request once the script is used up.
func (c *Consumer) Otherwise(r Reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fallback = r
}

// Requests returns a copy of every request received so far, in arrival order.
func (c *Consumer) Requests() []ReceivedRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ReceivedRequest(nil), c.requests...)
}

// Count is the number of requests received so far.
func (c *Consumer) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

// MaxInFlight is the most requests that were being handled at the same time.
func (c *Consumer) MaxInFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxInFlight
}

// Wait blocks until at least n requests have arrived, failing the test after timeout.
func (c *Consumer) Wait(t testing.TB, n int, timeout time.Duration) []ReceivedRequest {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, arrived := len(c.requests), c.arrived
		c.mu.Unlock()
		if got >= n {
			return c.Requests()
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("consumer: %d requests after %s, want %d", got, timeout, n)
		}
	}
}

func (c *Consumer) serve(w http.ResponseWriter, r *http.Request) {
	arrivedAt := time.Now()
	body, _ := io.ReadAll(r.Body)
	attempt, _ := strconv.Atoi(r.Header.Get("X-Dvrouter-Attempt"))

	c.mu.Lock()
	c.requests = append(c.requests, ReceivedRequest{
		Time: arrivedAt, Method: r.Method, Path: r.URL.RequestURI(),
		Header: r.Header.Clone(), Body: body, Attempt: attempt,
	})
	reply := c.fallback
	if len(c.script) > 0 {
		reply, c.script = c.script[0], c.script[1:]
	}
	c.inFlight++
	c.maxInFlight = max(c.maxInFlight, c.inFlight)
	close(c.arrived)
	c.arrived = make(chan struct{})
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()

	if reply.Stall > 0 {
		timer := time.NewTimer(reply.Stall)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		case <-c.stop:
			return
		}
	}
	if reply.Reset {
		ResetConnection(w)
		return
	}
	for k, v := range reply.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(orDefault(reply.Status, http.StatusOK))
	_, _ = io.WriteString(w, reply.Body)
}

// ResetConnection closes the request's connection with SO_LINGER 0, so the client sees a reset
// rather than an orderly end of stream.
func ResetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// net/http's own way to abort a response: the client sees the connection close.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

func orDefault(v, fallback int) int {
	if v == 0 {
		return fallback
	}
	return v
}
