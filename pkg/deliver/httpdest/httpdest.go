// Package httpdest delivers events to HTTP consumers (webhooks): one POST (or the configured
// method) per attempt, optionally signed as Standard Webhooks do, with the answer classified for
// the retry policy.
package httpdest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// Header names every request carries.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderRoute          = "X-Dvrouter-Route"
	HeaderAttempt        = "X-Dvrouter-Attempt"
	// HeaderTest is "true" on a test event (and absent on every other request).
	HeaderTest = "X-Dvrouter-Test"
	// HeaderReread is "true" on an event whose row was read from the Dataverse Web API before
	// matching (dataverse.Event.Reread), so that a raw consumer, whose body is the context as
	// Dataverse sent it, can tell too; absent on every other request.
	HeaderReread = "X-Dvrouter-Reread"

	// Standard Webhooks (https://www.standardwebhooks.com).
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

const userAgent = "dvrouter"

// errorTextLimit bounds how much of a failed answer's body goes into the error text;
// drainLimit bounds how much more is read so the connection can be reused. A body longer than
// that is cut off by closing the connection instead.
const (
	errorTextLimit = 256
	drainLimit     = 64 << 10
)

// writeBufferSize is the size of each connection's write buffer (see NewClient): 32 KB holds
// nearly every encoded event with its headers, at a cost of 32 KB per open connection.
const writeBufferSize = 32 << 10

// Publisher sends to one HTTP consumer.
type Publisher struct {
	client *http.Client
	// rt is client's transport when a request can skip client.Do (a client of NewClient's:
	// no cookie jar, no overall timeout, redirects not followed), so that each attempt skips
	// what Do spends on following redirects: a copy of the request's headers, kept for a
	// redirect that is never followed, and its closures (see roundTrip). Nil: client.Do.
	rt      http.RoundTripper
	method  string
	url     string
	u       *url.URL // url, parsed once for every request
	errURL  string   // url as client.Do's errors name it, without a password
	headers http.Header
	keys    [][]byte // Standard Webhooks signing keys, one signature each; none means unsigned
	now     func() time.Time
}

// New makes the publisher for consumer c, sending through client (shared by every HTTP consumer,
// see NewClient).
func New(c config.Consumer, client *http.Client) (*Publisher, error) {
	s, err := spec(c)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: url: %w", c.Name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("consumer %s: url %q is not an absolute http(s) url", c.Name, s.URL)
	}
	method := s.Method
	if method == "" {
		method = http.MethodPost
	}
	p := &Publisher{client: client, method: method, url: s.URL, u: u, headers: make(http.Header, len(s.Headers)+1), now: time.Now}
	for k, v := range s.Headers {
		p.headers.Set(k, v)
	}
	if client.Jar == nil && client.Timeout == 0 && client.CheckRedirect != nil &&
		reflect.ValueOf(client.CheckRedirect).Pointer() == reflect.ValueOf(noRedirect).Pointer() {
		p.rt = client.Transport
		p.errURL = u.String()
		if _, ok := u.User.Password(); ok {
			p.errURL = strings.Replace(p.errURL, u.User.String()+"@", u.User.Username()+":***@", 1)
		}
		if p.rt == nil {
			p.rt = http.DefaultTransport
		}
		// What client.Do adds for credentials in the url, unless a configured header says otherwise.
		if u.User != nil && p.headers.Get("Authorization") == "" {
			password, _ := u.User.Password()
			p.headers.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+password)))
		}
	}
	if s.SigningSecret != "" {
		if p.keys, err = config.SigningKeys(s.SigningSecret); err != nil {
			return nil, fmt.Errorf("consumer %s: signingSecret: %w", c.Name, err)
		}
	}
	return p, nil
}

// NewClient returns the HTTP client every HTTP consumer shares. Its transport keeps up to
// idlePerHost idle connections per host (the consumers' maxConcurrency, summed) so that a burst
// of concurrent deliveries reuses connections instead of opening new ones. It has no overall
// timeout (each attempt's context bounds it) and does not follow redirects: a consumer that
// redirects a webhook is misconfigured, and following a 302 would turn the POST into a GET.
//
// Its write buffer holds a whole request of up to writeBufferSize bytes, so that a typical event
// (a few KB of headers and JSON) leaves in one write, not a first 4 KB and then the rest: two
// writes cost two trips through the TCP stack, and the consumer may wake for the first part only
// to wait for the second.
func NewClient(idlePerHost int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(idlePerHost, 100)
	t.MaxIdleConnsPerHost = max(idlePerHost, 2)
	t.IdleConnTimeout = 90 * time.Second
	t.WriteBufferSize = writeBufferSize
	return &http.Client{
		Transport:     t,
		CheckRedirect: noRedirect,
	}
}

// noRedirect is NewClient's CheckRedirect: the redirect is the answer.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Sign is the value of webhook-signature for body: for each key, "v1," followed by the base64 of
// HMAC-SHA256(key, id + "." + timestamp + "." + body), space-separated, as the Standard
// Webhooks specification lists several signatures for zero-downtime secret rotation.
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	var ts [20]byte
	out := make([]byte, 0, len(keys)*48)
	for i, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write(strconv.AppendInt(ts[:0], timestamp, 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, mac.Sum(nil))
	}
	return string(out)
}

// Publish makes one request. It returns nil on a 2xx answer; a *dest.Error for any other answer
// (retryable for 408, 429 and 5xx, with the Retry-After the consumer sent); the transport's error
// (retryable) when no answer came.
func (p *Publisher) Publish(ctx context.Context, m dest.Message) error {
	req, err := p.request(ctx, m.Body)
	if err != nil {
		return dest.Permanent(fmt.Errorf("build request: %w", err))
	}
	h := req.Header
	p.setHeaders(h, m)
	if ce := m.CloudEvent; ce != nil && ce.Binary {
		setCloudEventHeaders(h, ce)
	}
	if m.Test {
		h[HeaderTest] = []string{"true"}
	}
	if m.Event.Reread {
		h[HeaderReread] = []string{"true"}
	}
	if len(p.keys) > 0 {
		// Signed per attempt: the timestamp is the time of sending, so a receiver's replay window
		// judges this attempt, not the first one.
		ts := p.now().Unix()
		h[HeaderWebhookID] = []string{m.Event.ID}
		h[HeaderWebhookTimestamp] = []string{strconv.FormatInt(ts, 10)}
		h[HeaderWebhookSignature] = []string{Sign(p.keys, m.Event.ID, ts, m.Body)}
	}

	var resp *http.Response
	if p.rt != nil {
		resp, err = p.roundTrip(req)
	} else {
		resp, err = p.client.Do(req)
	}
	if err != nil {
		return describeTransportError(err)
	}
	defer func() {
		if resp.ContentLength != 0 { // most consumers answer with no body: nothing to drain
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		}
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return p.answerError(resp)
}

// request is one attempt's request, to the url parsed at New: http.NewRequestWithContext with
// the url would parse it again on every attempt.
func (p *Publisher) request(ctx context.Context, body []byte) (*http.Request, error) {
	if p.rt == nil {
		return http.NewRequestWithContext(ctx, p.method, p.url, bytes.NewReader(body))
	}
	// An empty url parses to nothing, at no cost; the parsed one replaces it. The request only
	// reads it, so every request shares it.
	req, err := http.NewRequestWithContext(ctx, p.method, "", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.URL, req.Host = p.u, p.u.Host
	return req, nil
}

// roundTrip is client.Do for a client of NewClient's, without its redirect machinery: one
// RoundTrip, its error reported as Do reports it (a *url.Error, a TLS answer from a plain HTTP
// server as http.ErrSchemeMismatch), and a redirect returned as the answer, as noRedirect has Do
// return it. Credentials in the url are in p.headers (see New), where Do would have put them.
func (p *Publisher) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		if tlsErr, ok := err.(tls.RecordHeaderError); ok && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: p.errURL, Err: err}
	}
	return resp, nil
}

// urlErrorOp is the Op of client.Do's *url.Error for method: "Post" for POST.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// setHeaders puts one request's headers into h (empty): the consumer's configured ones, then
// those every request carries, which replace a configured header of the same name. The
// per-request values share one array rather than take an allocation each, as a Set per header
// would; the keys are already canonical, as Set would make them.
func (p *Publisher) setHeaders(h http.Header, m dest.Message) {
	for k, v := range p.headers {
		h[k] = v
	}
	v := [...]string{m.ContentType, userAgent, m.Event.ID, m.Route, strconv.Itoa(m.Attempt)}
	// Full slice expressions: an append to one value must not run into the next.
	h["Content-Type"] = v[0:1:1]
	h["User-Agent"] = v[1:2:2]
	h[HeaderIdempotencyKey] = v[2:3:3]
	h[HeaderRoute] = v[3:4:4]
	h[HeaderAttempt] = v[4:5:5]
}

// CloudEvents HTTP binding (binary content mode, section 3.1.3): each attribute but
// datacontenttype (which is Content-Type) is a header named ce-<attribute>.
const (
	HeaderCESpecVersion = "Ce-Specversion"
	HeaderCEID          = "Ce-Id"
	HeaderCESource      = "Ce-Source"
	HeaderCEType        = "Ce-Type"
	HeaderCESubject     = "Ce-Subject"
	HeaderCETime        = "Ce-Time"
	HeaderCEReread      = "Ce-Dvrouterreread" // dest.CloudEventRereadExtension, in canonical form
)

func setCloudEventHeaders(h http.Header, ce *dest.CloudEvent) {
	h[HeaderCESpecVersion] = []string{"1.0"}
	h[HeaderCEID] = []string{ceHeaderValue(ce.ID)}
	h[HeaderCESource] = []string{ceHeaderValue(ce.Source)}
	h[HeaderCEType] = []string{ceHeaderValue(ce.Type)}
	if ce.Subject != "" {
		h[HeaderCESubject] = []string{ceHeaderValue(ce.Subject)}
	}
	if !ce.Time.IsZero() {
		h[HeaderCETime] = []string{ce.TimeText()}
	}
	if ce.Reread {
		h[HeaderCEReread] = []string{"true"}
	}
}

// ceHeaderValue percent-encodes what the CloudEvents HTTP binding (section 3.1.3.2) says a ce-*
// header value must not carry as is: space, '"', '%' and anything outside printable ASCII,
// each byte of its UTF-8 encoding as %XX.
func ceHeaderValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7F || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(v)+16)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7F || c == '"' || c == '%' {
			out = append(out, '%', hex[c>>4], hex[c&15])
		} else {
			out = append(out, c)
		}
	}
	return string(out)
}

// Close has nothing to release: the client is shared and closed by its owner.
func (p *Publisher) Close(context.Context) error { return nil }

func (p *Publisher) answerError(resp *http.Response) error {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorTextLimit))
	text := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))
	msg := "consumer answered " + resp.Status
	if text != "" {
		msg += ": " + text
	}
	code := resp.StatusCode
	e := &dest.Error{Err: errors.New(msg), StatusCode: code}
	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		e.Retryable = true
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), p.now())
	}
	return e
}

// ParseRetryAfter reads a Retry-After value, delta-seconds or an HTTP date, as a wait from now.
// It returns 0 for an absent, malformed or past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		// Beyond a day is no longer a wait worth honouring exactly; the caller caps it anyway.
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// describeTransportError keeps the transport's error (so errors.Is still sees context and net
// errors) but drops the "Post \"url\":" prefix that would repeat the url in every failure.
func describeTransportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return fmt.Errorf("no answer: %w", ue.Err)
		}
		return fmt.Errorf("request failed: %w", ue.Err)
	}
	return err
}
