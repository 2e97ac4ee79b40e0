package handlers

import (
	"net/textproto"
	"testing"
)

func TestHeaderNames_AreCanonical(t *testing.T) {
	for _, name := range []string{headerWebhookKey, headerSizeExceeded, headerOrganization, headerContentType, headerInvocationID} {
		if got := textproto.CanonicalMIMEHeaderKey(name); got != name {
			t.Errorf("%q is not canonical; Header.Get would look for %q", name, got)
		}
	}
}

func TestJSONContentType(t *testing.T) {
	cases := []struct {
		value string
		ok    bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"Application/JSON", true},
		{"text/json", true},
		{"application/cloudevents+json", true},
		{"", false},
		{"application/xml", false},
		{"application/json;;", false},
		{"application/jsonx", false},
	}
	for _, tc := range cases {
		if msg, ok := jsonContentType(tc.value); ok != tc.ok || (ok && msg != "") || (!ok && msg == "") {
			t.Errorf("jsonContentType(%q) = %q, %v; want ok %v", tc.value, msg, ok, tc.ok)
		}
	}
}
