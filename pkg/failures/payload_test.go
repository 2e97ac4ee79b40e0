package failures

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"
)

func TestPayload_RoundTripsByteExact(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	tests := []struct {
		name    string
		payload []byte
		chunks  int // chunk entities the payload spills into
	}{
		{"empty", nil, 0},
		{"one byte", []byte{0}, 0},
		{"5 KB event", eventJSON(1, 5000), 0},
		{"100 KB random", randomBytes(1, 100_000), 0},
		{"900 KB random", randomBytes(2, 900_000), 0},
		{"main entity full, random", randomBytes(3, mainParts*partSize), 0},
		{"main entity full plus one byte, random", randomBytes(4, mainParts*partSize+1), 1},
		{"1 MiB compressible", eventJSON(2, 1<<20), 0},
		{"1 MiB random", randomBytes(5, 1<<20), 1},
		{"MaxPayloadSize random", randomBytes(6, MaxPayloadSize), 4},
		{"MaxPayloadSize compressible", eventJSON(3, MaxPayloadSize+100)[:MaxPayloadSize], 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := deliveryFailure(i, "erp")
			f.Payload = tt.payload
			rec, err := s.Record(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := s.Get(ctx, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Payload, tt.payload) {
				t.Fatalf("payload of %d bytes came back as %d bytes, not byte-exact", len(tt.payload), len(got.Payload))
			}
			if got.PayloadSize != len(tt.payload) {
				t.Errorf("PayloadSize %d, want %d", got.PayloadSize, len(tt.payload))
			}
			k, _ := parseID(rec.ID)
			m, err := s.readMeta(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if m.chunks != tt.chunks {
				t.Errorf("spilled into %d chunk entities, want %d", m.chunks, tt.chunks)
			}
		})
	}
}

func TestPayload_OverMaxPayloadSizeIsRejected(t *testing.T) {
	s := newStore(t)
	f := deliveryFailure(1, "erp")
	f.Payload = make([]byte, MaxPayloadSize+1)
	if _, err := s.Record(testCtx(t), f); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("Record = %v, want ErrPayloadTooLarge", err)
	}
}

func TestPayload_RecordAgainKeepsThePayloadAndLeavesNoChunks(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	f := deliveryFailure(1, "erp")
	f.Payload = randomBytes(1, 2<<20)
	rec, err := s.Record(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, f); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Payload, f.Payload) || got.Attempts != 2 {
		t.Fatalf("after recording twice: attempts %d, payload intact %v", got.Attempts, bytes.Equal(got.Payload, f.Payload))
	}
	// The second Record wrote its own chunks before finding the failure stored; they must go.
	k, _ := parseID(rec.ID)
	m, err := s.readMeta(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, k.pk, chunkStart, chunkStart+"~"); n != m.chunks {
		t.Errorf("%d chunk entities stored, want %d (the failure's own)", n, m.chunks)
	}
}

func TestPayload_CorruptStoredPayloadIsAnErrorNotWrongBytes(t *testing.T) {
	stored := []byte("hello")
	sp, err := encodePayload(stored)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		codec string
		n     int
		data  []byte
	}{
		"bit flipped":     {sp.codec, len(stored), []byte("hellp")},
		"truncated":       {sp.codec, len(stored), []byte("hell")},
		"unknown codec":   {"zstd", len(stored), stored},
		"not deflate":     {codecDeflate, len(stored), []byte{0xff, 0xff, 0xff}},
		"deflate too big": {codecDeflate, 2, mustDeflate(t, stored)},
	} {
		t.Run(name, func(t *testing.T) {
			if p, err := decodePayload(tc.codec, tc.n, sp.crc, tc.data); err == nil {
				t.Errorf("decoded %q without error", p)
			}
		})
	}
}

func mustDeflate(t *testing.T, p []byte) []byte {
	t.Helper()
	sp, err := encodePayload(bytes.Repeat(p, 100))
	if err != nil || sp.codec != codecDeflate {
		t.Fatalf("encode: %v, codec %s", err, sp.codec)
	}
	return bytes.Join(sp.parts, nil)
}

func TestEntitySize_FullMainEntityFitsOneMiB(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), 100_000)) // caps apply; UTF-16 counts 2 bytes each
	f := Failure{
		EventID: long, Consumer: long, Route: long, Table: long, Message: long, RecordID: long,
		CorrelationID: long, MessageID: long, Kind: KindBreakerOpen, Status: StatusPending,
		Attempts: 1, OccurredAt: baseTime, FirstFailedAt: baseTime, LastFailedAt: baseTime,
		LastError: long, LastStatusCode: 503, UpdatedBy: long, UpdatedAt: baseTime,
	}
	sp, err := encodePayload(randomBytes(1, MaxPayloadSize))
	if err != nil {
		t.Fatal(err)
	}
	k := keysFor("x", baseTime)
	p, rest := mainProps(k, f, sp)
	p[pWriteID], p[pPayloadSpill], p[pPayloadChunks] = "0123456789abcdef", "0123456789abcdef", int32(4)
	// What a later status change may add or grow.
	p.str(pClaimedBy, long, maxFieldChars)
	p.time(pClaimedAt, baseTime)
	p.str(pReason, long, maxFieldChars)
	var h []Change
	for range maxHistory + 5 {
		p.history(h, Change{At: baseTime, By: long, Action: ActionReplayFailed, Status: StatusPending, Detail: long})
		if err := json.Unmarshal([]byte(p[pHistory].(string)), &h); err != nil {
			t.Fatal(err)
		}
	}
	if len(h) != maxHistory {
		t.Errorf("history keeps %d changes, want %d", len(h), maxHistory)
	}
	if n := 2 * utf8.RuneCountInString(p[pHistory].(string)); n > 64<<10 {
		t.Errorf("history at its cap is %d bytes as UTF-16, over a string property's 64 KiB", n)
	}
	var tries []Try
	for range MaxTries + 5 {
		tries = append(tries, Try{At: baseTime, StatusCode: 503, Duration: time.Hour, Error: long})
	}
	if kept := p.tries(tries); len(kept) != MaxTries {
		t.Errorf("tries keeps %d, want %d", len(kept), MaxTries)
	}
	if n := 2 * utf8.RuneCountInString(p[pTries].(string)); n > 64<<10 {
		t.Errorf("tries at their cap are %d bytes as UTF-16, over a string property's 64 KiB", n)
	}
	const limit = 1 << 20
	if size := entitySize(p); size > limit {
		t.Errorf("main entity at every cap is %d bytes, over %d", size, limit)
	} else {
		t.Logf("main entity at every cap: %d bytes of %d", size, limit)
	}
	chunk := chunkProps(k.pk, k.chunkPrefix("0123456789abcdef")+"99", rest[:chunkParts])
	if size := entitySize(chunk); size > limit {
		t.Errorf("full chunk entity is %d bytes, over %d", size, limit)
	}
	if len(p) > 255 || len(chunk) > 255 {
		t.Errorf("%d and %d properties, over 255", len(p), len(chunk))
	}
}
