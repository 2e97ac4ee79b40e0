package httpdest

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"2", 2 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"Wed, 01 May 2024 10:00:30 GMT", 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
		{"1.5", 0},
	}
	for _, tc := range cases {
		if got := ParseRetryAfter(tc.value, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}

func TestSetHeaders_SameAsSettingEachHeader(t *testing.T) {
	s := Spec{URL: "http://127.0.0.1:1/events", Headers: map[string]string{
		"x-api-key": "k", "content-type": "text/plain", "Idempotency-Key": "configured", "X-DVROUTER-ROUTE": "configured",
	}}
	c := config.Consumer{Name: "erp", Spec: s}
	p, err := New(c, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	m := dest.Message{Event: &dataverse.Event{ID: "evt-1"}, Route: "contacts", Attempt: 3, ContentType: "application/json"}

	// What setHeaders replaces: the configured headers, then one Set per header every request carries.
	want := http.Header{}
	for k, v := range s.Headers {
		want.Set(k, v)
	}
	want.Set("Content-Type", m.ContentType)
	want.Set("User-Agent", userAgent)
	want.Set(HeaderIdempotencyKey, m.Event.ID)
	want.Set(HeaderRoute, m.Route)
	want.Set(HeaderAttempt, "3")

	got := http.Header{}
	p.setHeaders(got, m)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("headers = %v, want %v", got, want)
	}
	// The values share one array: adding to one header must leave the next one alone.
	got.Add("Content-Type", "extra")
	if v := got.Values("User-Agent"); len(v) != 1 || v[0] != userAgent {
		t.Fatalf("User-Agent = %q after adding to Content-Type", v)
	}
}

func TestNewClient_WritesATypicalRequestInOneBuffer(t *testing.T) {
	tr := NewClient(16).Transport.(*http.Transport)
	if tr.WriteBufferSize < 16<<10 {
		t.Fatalf("WriteBufferSize = %d, want room for a typical event and its headers", tr.WriteBufferSize)
	}
}

// The CloudEvents HTTP binding (section 3.1.3.2) percent-encodes space, '"', '%' and anything
// outside printable ASCII in ce-* header values, byte by byte of the UTF-8.
func TestCEHeaderValue(t *testing.T) {
	cases := map[string]string{
		"com.microsoft.dataverse.contact.update": "com.microsoft.dataverse.contact.update",
		"https://contoso.crm.dynamics.com/":      "https://contoso.crm.dynamics.com/",
		"a b":                                    "a%20b",
		`say "hi"`:                               "say%20%22hi%22",
		"100%":                                   "100%25",
		"Grüße":                                  "Gr%C3%BC%C3%9Fe",
		"tab\there":                              "tab%09here",
	}
	for in, want := range cases {
		if got := ceHeaderValue(in); got != want {
			t.Errorf("ceHeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
}
