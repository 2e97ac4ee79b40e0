package webapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"time"
)

// Do sends req (built by NewRequest, or any request to this environment) with a bearer token,
// inside the environment's concurrency limit and the service protection rules:
//
//   - a 429 is sent again after its Retry-After, and every other request to the environment
//     waits out that same Retry-After first (Dataverse lengthens the wait of a client that keeps
//     sending);
//   - a GET or HEAD answered 5xx, or whose connection broke, is sent again after a short backoff
//     (other methods are not: the request may have been carried out);
//   - nothing waits past the context's deadline: when the wait asked for would end after it,
//     Do returns at once with the 429 as an *Error (its RetryAfter says how long).
//
// A request whose body cannot be replayed (no GetBody; NewRequest's can) is sent once. Do sets
// its Authorization header, so a request is for one Do. Close the response's body: it holds one
// of the environment's request slots until then. A response other than 2xx is returned
// as it is, with a nil error, once the retries are spent: ResponseError reads it into an *Error.
func (e *Environment) Do(req *http.Request) (*http.Response, error) {
	return e.do(req, e.client.opts.MaxAttempts)
}

// do is Do with at most attempts sends.
func (e *Environment) do(req *http.Request, attempts int) (*http.Response, error) {
	ctx := req.Context()
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead
	maxAttempts := attempts
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		maxAttempts = 1 // its body would be gone the second time
	}
	for attempt := 1; ; attempt++ {
		if err := e.waitThrottle(ctx); err != nil {
			return nil, err
		}
		resp, err := e.send(ctx, req)
		last := attempt >= maxAttempts
		switch {
		case err != nil:
			if !idempotent || last || ctx.Err() != nil {
				return nil, err
			}
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return nil, err
			}
			continue
		case resp.StatusCode == http.StatusTooManyRequests:
			wait := ParseRetryAfter(resp.Header.Get("Retry-After"))
			if wait <= 0 {
				wait = backoff(attempt)
			}
			e.throttle(wait)
			if last {
				return resp, nil
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				// Waiting would outlast the caller: say so now, while there is time to record it.
				xerr := ResponseError(e, req.Method, "", "", resp)
				xerr.RetryAfter = wait
				return nil, xerr
			}
			drain(resp)
			continue
		case resp.StatusCode >= 500 && idempotent && !last:
			drain(resp)
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return nil, werr
			}
			continue
		}
		return resp, nil
	}
}

// send makes one attempt, holding one of the environment's slots while the request is out.
func (e *Environment) send(ctx context.Context, req *http.Request) (*http.Response, error) {
	tok, err := e.Token(ctx)
	if err != nil {
		return nil, err
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("dataverse %s: waiting for a free request slot (%d in flight): %w", e.url, cap(e.slots), ctx.Err())
	}
	// The request is sent as it is, its body renewed for each attempt (a clone would copy
	// every header for nothing: the caller does not keep the request).
	r := req
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			<-e.slots
			return nil, fmt.Errorf("dataverse %s: %w", e.url, err)
		}
		r.Body = body
	}
	r.Header["Authorization"] = []string{"Bearer " + tok}
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = []string{e.client.opts.UserAgent}
	}
	// The transport is called directly: the Web API does not redirect, and http.Client would
	// copy every header for its redirect rules on each request. Its Timeout still holds, when
	// the context does not end sooner.
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if trace, ok := ctx.Value(writeTraceKey{}).(*httptrace.ClientTrace); ok {
		rctx = httptrace.WithClientTrace(rctx, trace)
	}
	if t := e.client.opts.HTTPClient.Timeout; t > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > t {
			rctx, cancel = context.WithTimeout(rctx, t)
		}
	}
	if rctx != ctx {
		r = r.WithContext(rctx)
	}
	resp, err := e.transport().RoundTrip(r)
	if err != nil {
		cancel()
		<-e.slots
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("dataverse %s: %s %s: %w", e.url, req.Method, req.URL.Path, err)
	}
	// The slot is held until the body is read or closed: the answer is still being sent.
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { cancel(); <-e.slots }}
	return resp, nil
}

func (e *Environment) transport() http.RoundTripper {
	if t := e.client.opts.HTTPClient.Transport; t != nil {
		return t
	}
	return http.DefaultTransport
}

type releaseBody struct {
	io.ReadCloser
	release func()
	done    bool
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.done {
		b.done = true
		b.release()
	}
	return err
}

// throttle makes every request to the environment wait d from now.
func (e *Environment) throttle(d time.Duration) {
	until := time.Now().Add(d)
	e.mu.Lock()
	if until.After(e.notBefore) {
		e.notBefore = until
	}
	e.mu.Unlock()
}

// waitThrottle waits out the environment's last Retry-After, or fails at once when that would
// outlast ctx.
func (e *Environment) waitThrottle(ctx context.Context) error {
	e.mu.Lock()
	wait := time.Until(e.notBefore)
	e.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return &Error{Env: e.url, Status: http.StatusTooManyRequests, RetryAfter: wait,
			Message: "the environment asked dvrouter to wait (Retry-After) past this request's deadline"}
	}
	return sleep(ctx, wait)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff is a short jittered wait for a retry nobody said how long to wait for: 100 ms, 200 ms,
// 400 ms ... at most 2 s.
func backoff(attempt int) time.Duration {
	d := min(100*time.Millisecond<<(attempt-1), 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// ParseRetryAfter reads a Retry-After value: delta-seconds (what Dataverse sends), or an HTTP
// date. It returns 0 for an absent, malformed or past value.
func ParseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// Error is a Web API request that failed: the environment, what was asked (table and id when
// the request was for a row), the HTTP status and the Web API's own error code and message
// ({"error": {"code": "0x80040217", "message": "..."}}).
type Error struct {
	Env        string // https://contoso.crm4.dynamics.com
	Method     string
	Table      string // logical name, when known
	ID         string // record id, when known
	Status     int
	Code       string // the Web API's error code, "0x80040217"
	Message    string
	RetryAfter time.Duration // for a 429: how long the environment asked to wait
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dataverse ")
	b.WriteString(e.Env)
	if e.Table != "" {
		b.WriteString(": ")
		if e.Method != "" {
			b.WriteString(e.Method + " ")
		}
		b.WriteString(e.Table)
		if e.ID != "" {
			b.WriteString(" " + e.ID)
		}
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (Retry-After %s)", e.RetryAfter.Round(time.Millisecond))
	}
	return b.String()
}

// Throttled reports whether the environment refused the request under its service protection
// limits (429).
func (e *Error) Throttled() bool { return e.Status == http.StatusTooManyRequests }

// NotFound reports whether the row (or table) does not exist.
func (e *Error) NotFound() bool { return e.Status == http.StatusNotFound }

// IsThrottled reports whether err is, or wraps, a 429 Error.
func IsThrottled(err error) bool {
	var we *Error
	return errors.As(err, &we) && we.Throttled()
}

// ResponseError reads a non-2xx response into an *Error and closes its body.
func ResponseError(e *Environment, method, table, id string, resp *http.Response) *Error {
	defer resp.Body.Close()
	out := &Error{Env: e.url, Method: method, Table: table, ID: id, Status: resp.StatusCode}
	if resp.StatusCode == http.StatusTooManyRequests {
		out.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"))
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		out.Code, out.Message = body.Error.Code, body.Error.Message
	} else if s := strings.TrimSpace(string(data)); s != "" {
		out.Message = truncate(s, 300)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// writeTraceKey holds the httptrace.ClientTrace that withWriteTrace gives send.
type writeTraceKey struct{}

// withWriteTrace has send report each attempt's request written (httptrace's WroteRequest)
// to wrote. The trace is put on the request's own context only, after the token: a credential
// that fetches its token over HTTP with the caller's context (azidentity does) would otherwise
// be counted as one of the request's writes.
func withWriteTrace(ctx context.Context, wrote func(httptrace.WroteRequestInfo)) context.Context {
	return context.WithValue(ctx, writeTraceKey{}, &httptrace.ClientTrace{WroteRequest: wrote})
}
