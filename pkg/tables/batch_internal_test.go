package tables

import (
	"bytes"
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
		var b bytes.Buffer
		appendKeyInURL(&b, k)
		if want := url.PathEscape(strings.ReplaceAll(k, "'", "''")); b.String() != want {
			t.Errorf("key %q: %q, want %q", k, b.String(), want)
		}
	}
}
