package supportapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls the support API of one dvrouter.
type Client struct {
	base  string
	key   string // admin key, sent as KeyHeader
	token string // Entra ID access token, sent as a bearer token (App Service authentication)
	hc    *http.Client
}

// maxAnswer bounds what the client reads from one answer (a shown failure carries a payload of
// up to a few MiB once normalized).
const maxAnswer = 64 << 20

// NewClient returns a client for the dvrouter at endpoint (http or https). key is an admin key
// and token an access token for the app registration when App Service authentication is in
// front; either may be empty.
func NewClient(endpoint, key, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q must be an http or https URL such as http://127.0.0.1:7071", endpoint)
	}
	// A bulk chunk can take a while: each replay may use a consumer's whole delivery budget.
	hc := &http.Client{
		Timeout: 5 * time.Minute,
		// App Service authentication sends a caller without a valid token to the sign-in page;
		// following that would only fetch a login form.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), key: key, token: token, hc: hc}, nil
}

// Base is the endpoint the client calls.
func (c *Client) Base() string { return c.base }

// APIError is a refusal from the API, or an answer that is not one of its own.
type APIError struct {
	Status        int
	Title, Detail string
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	return e.Title
}

// ListQuery holds the filters of GET /api/failures; empty fields do not filter.
type ListQuery struct {
	Consumer, Status, Kind, Table string
	// Event, Record (with Table) and Correlation find the failures of one event, record or
	// correlation.
	Event, Record, Correlation string
	From, To                   string // RFC 3339, or a date (2024-07-25, UTC; as To, the whole day)
	Top                        int    // 0: the server's default (50)
	Continuation               string
}

func (q ListQuery) values() url.Values {
	v := url.Values{}
	for name, s := range map[string]string{"consumer": q.Consumer, "status": q.Status, "kind": q.Kind,
		"table": q.Table, "event": q.Event, "record": q.Record, "correlation": q.Correlation,
		"from": q.From, "to": q.To, "continuation": q.Continuation} {
		if s != "" {
			v.Set(name, s)
		}
	}
	if q.Top != 0 {
		v.Set("top", fmt.Sprint(q.Top))
	}
	return v
}

// List is GET /api/failures.
func (c *Client) List(ctx context.Context, q ListQuery) (FailureList, error) {
	var out FailureList
	err := c.Do(ctx, http.MethodGet, FailuresPath, q.values(), nil, &out)
	return out, err
}

// HistoryQuery is one lookup of GET /api/history: one of Event, Table and Record,
// Correlation, or Consumer (with Since); Since and Until are dates (2024-07-25) or RFC 3339.
type HistoryQuery struct {
	Event, Table, Record, Correlation, Consumer string
	Since, Until                                string
	Top                                         int
}

// History is GET /api/history.
func (c *Client) History(ctx context.Context, q HistoryQuery) (History, error) {
	v := url.Values{}
	for name, s := range map[string]string{"event": q.Event, "table": q.Table, "record": q.Record,
		"correlation": q.Correlation, "consumer": q.Consumer, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(name, s)
		}
	}
	if q.Top != 0 {
		v.Set("top", fmt.Sprint(q.Top))
	}
	var out History
	err := c.Do(ctx, http.MethodGet, HistoryPath, v, nil, &out)
	return out, err
}

// Show is GET /api/failures/{id}.
func (c *Client) Show(ctx context.Context, id string) (ShownFailure, error) {
	var out ShownFailure
	err := c.Do(ctx, http.MethodGet, FailuresPath+"/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// Replay is POST /api/failures/{id}/replay.
func (c *Client) Replay(ctx context.Context, id string) (ReplayResult, error) {
	var out ReplayResult
	err := c.Do(ctx, http.MethodPost, FailuresPath+"/"+url.PathEscape(id)+"/replay", nil, nil, &out)
	return out, err
}

// ReplayMany is POST /api/failures/replay.
func (c *Client) ReplayMany(ctx context.Context, req BulkReplayRequest) (BulkReplayResult, error) {
	var out BulkReplayResult
	err := c.Do(ctx, http.MethodPost, FailuresPath+"/replay", nil, req, &out)
	return out, err
}

// Discard is POST /api/failures/{id}/discard.
func (c *Client) Discard(ctx context.Context, id, reason string) (Failure, error) {
	var out Failure
	err := c.Do(ctx, http.MethodPost, FailuresPath+"/"+url.PathEscape(id)+"/discard", nil, DiscardRequest{Reason: reason}, &out)
	return out, err
}

// Consumers is GET /api/consumers.
func (c *Client) Consumers(ctx context.Context) (ConsumerList, error) {
	var out ConsumerList
	err := c.Do(ctx, http.MethodGet, ConsumersPath, nil, nil, &out)
	return out, err
}

// Pause is POST /api/consumers/{name}/pause.
func (c *Client) Pause(ctx context.Context, consumer, reason string) (ConsumerAction, error) {
	var out ConsumerAction
	err := c.Do(ctx, http.MethodPost, consumerPath(consumer, "pause"), nil, PauseRequest{Reason: reason}, &out)
	return out, err
}

// Resume is POST /api/consumers/{name}/resume.
func (c *Client) Resume(ctx context.Context, consumer string) (ConsumerAction, error) {
	var out ConsumerAction
	err := c.Do(ctx, http.MethodPost, consumerPath(consumer, "resume"), nil, nil, &out)
	return out, err
}

// ResetBreaker is POST /api/consumers/{name}/reset.
func (c *Client) ResetBreaker(ctx context.Context, consumer string) (ConsumerAction, error) {
	var out ConsumerAction
	err := c.Do(ctx, http.MethodPost, consumerPath(consumer, "reset"), nil, nil, &out)
	return out, err
}

// SendTest is POST /api/consumers/{name}/test.
func (c *Client) SendTest(ctx context.Context, consumer string) (TestResult, error) {
	var out TestResult
	err := c.Do(ctx, http.MethodPost, consumerPath(consumer, "test"), nil, nil, &out)
	return out, err
}

func consumerPath(consumer, action string) string {
	return ConsumersPath + "/" + url.PathEscape(consumer) + "/" + action
}

// Me is GET /api/me.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var out Me
	err := c.Do(ctx, http.MethodGet, MePath, nil, nil, &out)
	return out, err
}

// Do sends one request (in, when not nil, as its JSON body) and decodes a 2xx JSON answer into
// out. A refusal is an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set(KeyHeader, c.key)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach dvrouter at %s (is it running? check the endpoint): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer from %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return &APIError{Status: http.StatusUnauthorized, Title: "sign-in required",
			Detail: fmt.Sprintf("%s sent the request to a sign-in page (App Service authentication): send an access token for dvrouter's app registration", c.base)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Status: resp.StatusCode}
		var body Error
		if json.Unmarshal(raw, &body) == nil && body.Error != "" {
			e.Title, e.Detail = body.Error, body.Detail
		} else {
			e.Title = fmt.Sprintf("%s answered HTTP %d %s", c.base, resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("the answer from %s is not what dvrouter sends: %w", c.base, err)
	}
	return nil
}
