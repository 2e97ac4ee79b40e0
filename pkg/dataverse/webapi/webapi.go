// Package webapi is a client of the Dataverse Web API: one Environment per organization, each
// with its base URL, its tokens (scope <environment URL>/.default), its table metadata (entity
// set names, lookup columns), its share of the service protection limits (a concurrency cap and
// the wait a 429 asks for) and Do, which sends any request under those rules. GetRow reads one
// row in the Web API shape the rest of dvrouter works with.
//
// The Web API pages it follows: Retrieve a table row
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/retrieve-entity-using-web-api),
// Query table definitions
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api),
// Compose HTTP requests and handle errors
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors)
// and Service protection API limits
// (https://learn.microsoft.com/power-apps/developer/data-platform/api-limits).
package webapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// APIPath is the Web API's root under an environment URL.
const APIPath = "/api/data/v9.2/"

// DefaultConcurrency is how many requests one environment gets at a time when Options leaves it
// unset. Dataverse refuses more than 52 concurrent requests per user with 429; the other
// instances of the Function App share that, so each stays well below.
const DefaultConcurrency = 8

// Options configure a Client.
type Options struct {
	// Credential gets the tokens (azidentity's managed identity or default chain in production;
	// tests pass a static one).
	Credential azcore.TokenCredential
	// HTTPClient sends the requests; nil means NewHTTPClient(Concurrency, 30 s).
	HTTPClient *http.Client
	// Concurrency is the most requests in flight per environment; 0 means DefaultConcurrency.
	Concurrency int
	// MaxAttempts bounds how often one request is sent (429, and 5xx or a broken connection for
	// GET); 0 means 4. A request never waits past its context's deadline either way.
	MaxAttempts int
	// WriteAttempts bounds how often a write (Apply, Batch) is sent, 429s included; 0 means
	// MaxAttempts. A caller with a retry policy of its own (the dataverse consumers) sets 1, so
	// that a 429 comes back to it at once, its Retry-After still kept by the environment.
	WriteAttempts int
	// UserAgent is sent with every request; empty means "dvrouter".
	UserAgent string
}

// Client holds the environments dvrouter reads from. It is safe for concurrent use.
type Client struct {
	envs []*Environment
	opts Options
}

// New makes a client for envs, a map from what identifies an organization in an event (its
// organization id, its unique name or its host name) to its environment URL
// (https://contoso.crm4.dynamics.com). Several keys may name one URL: they share one
// Environment, so one concurrency limit and one token.
func New(envs map[string]string, opts Options) (*Client, error) {
	if opts.Credential == nil {
		return nil, errors.New("dataverse web api: no credential")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = NewHTTPClient(opts.Concurrency, 30*time.Second)
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 4
	}
	if opts.WriteAttempts <= 0 {
		opts.WriteAttempts = opts.MaxAttempts
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "dvrouter"
	}
	c := &Client{opts: opts}
	byURL := map[string]*Environment{}
	for key, raw := range envs {
		u, err := ParseEnvironmentURL(raw)
		if err != nil {
			return nil, fmt.Errorf("dataverse environment %q: %w", key, err)
		}
		e := byURL[u]
		if e == nil {
			e = newEnvironment(u, c)
			byURL[u] = e
			c.envs = append(c.envs, e)
		}
		e.keys = append(e.keys, strings.ToLower(strings.TrimSpace(key)))
	}
	return c, nil
}

// NewHTTPClient is an HTTP client for the Web API: as many idle connections per host as
// requests may be in flight to one environment (perHost), no redirects followed, timeout for
// each request, and a write buffer that holds a $batch of 100 writes (some 30 KB) whole: one
// smaller sends it 4 KiB at a time, and one the body overflows has net/http copy the rest
// through a fresh 32 KiB buffer per request.
func NewHTTPClient(perHost int, timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(perHost, 2)
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 32 << 10
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ParseEnvironmentURL checks an environment URL and returns it as scheme://host, the form the
// token scope and every request are built on. Only https is accepted, and http to loopback (for
// tests and local stand-ins).
func ParseEnvironmentURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL such as https://contoso.crm4.dynamics.com", raw)
	}
	loopback := u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return "", fmt.Errorf("%q must be an https URL", raw)
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" || u.RawQuery != "" {
		return "", fmt.Errorf("%q must be the environment's URL alone (https://host), without a path or query", raw)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// Environments returns every configured environment.
func (c *Client) Environments() []*Environment { return c.envs }

// EnvironmentAt returns the environment whose URL is u (https://contoso.crm4.dynamics.com, in
// any case), or nil when the client has none there.
func (c *Client) EnvironmentAt(u string) *Environment {
	want, err := ParseEnvironmentURL(u)
	if err != nil {
		return nil
	}
	for _, e := range c.envs {
		if e.url == want {
			return e
		}
	}
	return nil
}

// Environment returns the environment an event comes from, by its organization id, its unique
// name or the host name the webhook named (any may be empty), or nil when none is configured.
func (c *Client) Environment(orgID, orgName, host string) *Environment {
	for _, want := range []string{orgID, host, orgName} {
		want = strings.ToLower(strings.TrimSpace(want))
		if want == "" {
			continue
		}
		for _, e := range c.envs {
			for _, k := range e.keys {
				if k == want {
					return e
				}
			}
		}
	}
	// An environment configured by its URL alone is also known by its host.
	if host = strings.ToLower(strings.TrimSpace(host)); host != "" {
		for _, e := range c.envs {
			if strings.TrimPrefix(strings.TrimPrefix(e.url, "https://"), "http://") == host {
				return e
			}
		}
	}
	return nil
}

// Environment is one Dataverse environment (organization). It is safe for concurrent use.
type Environment struct {
	url    string // https://contoso.crm4.dynamics.com
	keys   []string
	client *Client
	slots  chan struct{} // the concurrency limit

	mu         sync.Mutex
	token      azcore.AccessToken
	notBefore  time.Time // no request is sent before this: the last 429's Retry-After
	tables     map[string]*tableInfo
	tableCalls map[string]*tableCall
}

func newEnvironment(u string, c *Client) *Environment {
	return &Environment{url: u, client: c, slots: make(chan struct{}, c.opts.Concurrency),
		tables: map[string]*tableInfo{}, tableCalls: map[string]*tableCall{}}
}

// URL is the environment URL, https://contoso.crm4.dynamics.com.
func (e *Environment) URL() string { return e.url }

// APIURL is the Web API root, https://contoso.crm4.dynamics.com/api/data/v9.2/.
func (e *Environment) APIURL() string { return e.url + APIPath }

// Scope is the token scope for the environment.
func (e *Environment) Scope() string { return e.url + "/.default" }

// Token returns a bearer token for the environment, reusing it until five minutes before it
// expires.
func (e *Environment) Token(ctx context.Context) (string, error) {
	e.mu.Lock()
	tok := e.token
	e.mu.Unlock()
	if tok.Token != "" && time.Until(tok.ExpiresOn) > 5*time.Minute {
		return tok.Token, nil
	}
	tok, err := e.client.opts.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.Scope()}})
	if err != nil {
		return "", fmt.Errorf("dataverse %s: get token for %s: %w", e.url, e.Scope(), err)
	}
	e.mu.Lock()
	e.token = tok
	e.mu.Unlock()
	return tok.Token, nil
}

// NewRequest builds a request to path under the Web API root (e.g. "accounts(<id>)?$select=name"),
// with the headers every Web API request carries.
func (e *Environment) NewRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequestWithContext(ctx, method, e.APIURL()+path, bytes.NewReader(body))
	} else {
		req, err = http.NewRequestWithContext(ctx, method, e.APIURL()+path, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("dataverse %s: %w", e.url, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("OData-Version", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
