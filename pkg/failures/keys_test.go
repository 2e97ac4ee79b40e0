package failures

import (
	"strings"
	"testing"
	"time"
)

func TestKeys_IDRoundTripsAndIsURLSafe(t *testing.T) {
	for _, occurred := range []time.Time{{}, baseTime, time.Unix(0, 0), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		k := keysFor("d\x00e\x00c", occurred)
		id := k.id()
		if strings.ContainsAny(id, "/\\#?%&+ ") {
			t.Errorf("id %q has a character that is not URL-safe", id)
		}
		back, err := parseID(id)
		if err != nil || back != k {
			t.Errorf("parseID(%q) = %+v, %v; want %+v", id, back, err, k)
		}
		if got, ok := idFromKeys(k.pk, k.rk); !ok || got != id {
			t.Errorf("idFromKeys = %q %v, want %q", got, ok, id)
		}
	}
}

func TestKeys_LaterEventsSortFirst(t *testing.T) {
	early := keysFor("a", baseTime)
	late := keysFor("b", baseTime.Add(time.Nanosecond*100))
	if !(late.rk < early.rk) {
		t.Errorf("later row key %s does not sort before earlier %s", late.rk, early.rk)
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(keysFor("x", baseTime).id())
	f.Add("0f-0000000000000000000-00000000000000000000000000000000")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		k, err := parseID(id)
		if err != nil {
			return
		}
		if k.id() != id {
			t.Errorf("parseID(%q) gives keys of id %q", id, k.id())
		}
		if strings.ContainsAny(k.pk+k.rk, "/\\#?'") {
			t.Errorf("keys %q %q carry a forbidden character", k.pk, k.rk)
		}
	})
}

func FuzzParseContinuation(f *testing.F) {
	f.Add("c1.r" + strings.Repeat("1", invDigits) + "-" + strings.Repeat("a", hashHex))
	f.Add("c1.r' or true")
	f.Fuzz(func(t *testing.T, token string) {
		rk, err := parseContinuation(token)
		if err == nil && strings.ContainsAny(rk, "'/\\#?") {
			t.Errorf("continuation %q accepted with row key %q", token, rk)
		}
	})
}
