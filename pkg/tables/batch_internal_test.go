package tables

import (
	"net/url"
	"strings"
	"testing"
)

// An entity's address is written as the SDK writes it: quotes doubled, then url.PathEscape.
func TestAppendKeyInURL_IsPathEscapeOfTheODataLiteral(t *testing.T) {
	var all strings.Builder
	for c := range 256 {
		all.WriteByte(byte(c))
	}
	for _, k := range []string{"", "plain", "c|erp|2024072510|3", "ev-'1'|a b%7C", "ünï/co?de#", all.String()} {
		want := url.PathEscape(strings.ReplaceAll(k, "'", "''"))
		if got := appendKeyInURL(nil, k); string(got) != want {
			t.Errorf("key %q: %q, want %q", k, got, want)
		}
		if got := appendKeyInURL([]byte("x"), []byte(k)); string(got) != "x"+want {
			t.Errorf("key %q as bytes: %q, want %q", k, got, "x"+want)
		}
	}
}
