package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// OpenLazy does not create the table (main.go tries once, and Table Storage may be away then):
// the first batch that finds it missing creates it and is written.
func TestWriter_CreatesAMissingTableAndWrites(t *testing.T) {
	j, err := OpenLazy(Config{Account: tables.Account{ConnectionString: sharedAzurite(t).ConnectionString()},
		Table: tableName(t), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(context.Background())
	for i := range 30 {
		j.Add(entry(i, "sink", Delivered))
	}
	flush(t, j)
	if s := j.Stats(); s.Written != 30 || s.Lost != 0 {
		t.Fatalf("stats %+v, want 30 written", s)
	}
	if got, err := j.Lookup(context.Background(), Query{EventID: "ev-00007"}); err != nil || len(got) != 1 {
		t.Errorf("lookup: %d entries, %v", len(got), err)
	}
}

// The partition hashes written by hand are hash/fnv's.
func TestEncoder_HashesAreHashFNVs(t *testing.T) {
	for _, s := range []string{"", "ev-1", `quo"te`, "ünïcode", "a%7Cb", "c|erp|2024072510|3"} {
		h := fnv.New32a()
		_, _ = h.Write([]byte(s))
		if got := fnv32a(s); got != h.Sum32() {
			t.Errorf("fnv32a(%q) = %d, want %d", s, got, h.Sum32())
		}
		if pk, _ := indexKeys("e", s); pk != fmt.Sprintf("e%02x", h.Sum32()%indexBuckets) {
			t.Errorf("indexKeys(%q) = %s", s, pk)
		}
		h64 := fnv.New64a()
		_, _ = h64.Write([]byte(s))
		if got := fnv64a([]byte(s)); got != h64.Sum64() {
			t.Errorf("fnv64a(%q) = %d, want %d", s, got, h64.Sum64())
		}
	}
}

// Every string encodes as encoding/json encodes it, byte for byte.
func TestEncoder_StringsAreEncodingJSONs(t *testing.T) {
	cases := []string{"", "plain", `quo"te`, `back\slash`, "<html> & co", "ünïcode", "line\nbreak\t\r\b\f", "\x7f\x00\x1f", "\xff invalid", "\u2028"}
	for c := range 256 {
		cases = append(cases, string([]byte{'a', byte(c), 'z'}))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("%q: %s, want %s", s, got[1:], want)
		}
		if got := appendJSONString(nil, []byte(s)); string(got) != string(want) {
			t.Errorf("%q as bytes: %s, want %s", s, got, want)
		}
	}
}

// wanted is an entity as the layout in the package comment has it, built the plain way: keys
// from the functions the lookups use, JSON from encoding/json.
type wanted struct {
	pk, rk string
	body   []byte
}

func wantEntities(t *testing.T, e Entry) []wanted {
	t.Helper()
	x := entity{At: e.At.UTC().Format(time.RFC3339Nano), EventID: e.EventID, CorrelationID: e.CorrelationID,
		Table: e.Table, RecordID: e.RecordID, Message: e.Message, Route: e.Route, Consumer: e.Consumer,
		Outcome: string(e.Outcome), AttemptCount: e.AttemptCount, StatusCode: e.StatusCode,
		DurationMs: float64(e.Duration) / float64(time.Millisecond), Error: truncate(e.Error),
		FailureID: e.FailureID, Source: e.Source, Version: e.Version}
	if len(e.Attempts) > 0 {
		kept := slices.Clone(e.Attempts[max(0, len(e.Attempts)-maxAttempts):])
		for i := range kept {
			kept[i].Error = failures.CutError(kept[i].Error)
		}
		b, err := json.Marshal(kept)
		if err != nil {
			t.Fatal(err)
		}
		x.Attempts = string(b)
	}
	tail := tables.InvertedTime(e.At) + "|" + escape(e.EventID) + "|" + escape(e.Consumer)
	x.PartitionKey, x.RowKey = rowKeys(tail)
	body, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	out := []wanted{{x.PartitionKey, x.RowKey, body}}
	index := func(pk, prefix string) {
		b, _ := json.Marshal(indexRow{PartitionKey: pk, RowKey: prefix + "|" + tail})
		out = append(out, wanted{pk, prefix + "|" + tail, b})
	}
	index(eventKeys(e.EventID))
	if e.Table != "" && e.RecordID != "" {
		index(recordKeys(e.Table, e.RecordID))
	}
	if e.CorrelationID != "" {
		index(correlationKeys(e.CorrelationID))
	}
	return out
}

// The encoder writes, without encoding/json and into reused buffers, the bytes that the key
// functions and encoding/json give: every key, and every entity's JSON.
func TestEncoder_EntitiesAreWhatTheLayoutAndEncodingJSONGive(t *testing.T) {
	at := time.Date(2024, 7, 25, 10, 30, 0, 123456789, time.UTC)
	many := make([]Attempt, 12) // more than an entry keeps
	for i := range many {
		many[i] = Attempt{At: at.Add(time.Duration(i) * time.Second).In(time.FixedZone("x", 7200)), StatusCode: 500 + i,
			Duration: time.Duration(i) * time.Millisecond, Error: fmt.Sprintf("said \"no\" <%d> ü", i)}
	}
	many[11].Error = strings.Repeat("é", 600) // cut as the failure store cuts it
	cases := map[string]Entry{
		"guids": {At: at, EventID: "7f8a9b0c-1d2e-4f3a-8b4c-000000000001", CorrelationID: "0f6b2c3d-8e9a-4b1c-9d2e-000000000001",
			Table: "opportunity", RecordID: "3c2b1a09-8f7e-4d6c-b5a4-000000000001", Message: "Update", Route: "opportunities",
			Consumer: "erp", Outcome: Delivered, AttemptCount: 1, StatusCode: 200, Duration: 3 * time.Millisecond,
			Attempts: []Attempt{{At: at.Local(), StatusCode: 200, Duration: 3 * time.Millisecond}}},
		"keys to escape": {At: at, EventID: "ev/1#?|%", CorrelationID: "Corr-ÄB", Table: "Account", RecordID: "REC-1",
			Consumer: "crm/sink#1?", Outcome: Failed, Attempts: many, AttemptCount: 12, StatusCode: 511,
			Duration: 1030 * time.Millisecond, Error: "consumer said \"no\"\n<html> & ünïcode \x01" + strings.Repeat("x", 2000),
			FailureID: "00-123", Source: "changes", Version: "42"},
		"bare":        {At: at, EventID: "e", Consumer: "c", Outcome: BreakerOpen},
		"zero time":   {EventID: "e", Consumer: "c", Outcome: Discarded, Duration: 1},
		"huge":        {At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), EventID: "e", Consumer: "c", Duration: math.MaxInt64, AttemptCount: -1},
		"no consumer": {At: at, EventID: "e", Consumer: NoConsumer, Outcome: RereadFailed, Table: "t"},
	}
	var c encoder
	for range 2 { // the second time into the first time's buffers
		for name, e := range cases {
			want := wantEntities(t, e)
			if err := c.encode(&e); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if c.n != len(want) {
				t.Fatalf("%s: %d entities, want %d", name, c.n, len(want))
			}
			for i, w := range want {
				got := c.ents[i]
				if string(got.pk) != w.pk || string(got.rk) != w.rk {
					t.Errorf("%s, entity %d: keys %q %q, want %q %q", name, i, got.pk, got.rk, w.pk, w.rk)
				}
				if !bytes.Equal(got.body, w.body) {
					t.Errorf("%s, entity %d:\n%s\nwant\n%s", name, i, got.body, w.body)
				}
			}
		}
	}
	if err := c.encode(&Entry{EventID: "e"}); err == nil {
		t.Error("an entry without a consumer encoded")
	}
	if err := c.encode(&Entry{EventID: "e", Consumer: "c", Attempts: []Attempt{{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}); err == nil {
		t.Error("an attempt time encoding/json refuses encoded")
	}
}

// Encoding an outcome allocates nothing once the encoder's buffers have grown.
func TestEncoder_AllocatesNothing(t *testing.T) {
	e := Entry{At: time.Now(), EventID: "7f8a9b0c-1d2e-4f3a-8b4c-000000000001", CorrelationID: "0f6b2c3d-8e9a-4b1c-9d2e-000000000001",
		Table: "opportunity", RecordID: "3c2b1a09-8f7e-4d6c-b5a4-000000000001", Message: "Update", Route: "opportunities",
		Consumer: "erp", Outcome: Delivered, AttemptCount: 1, StatusCode: 200, Duration: 3 * time.Millisecond,
		Attempts: []Attempt{{At: time.Now(), StatusCode: 200, Duration: 3 * time.Millisecond}}}
	var c encoder
	if n := testing.AllocsPerRun(100, func() { _ = c.encode(&e) }); n != 0 {
		t.Errorf("%.0f allocations per outcome", n)
	}
}
