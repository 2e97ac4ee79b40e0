// Package loadtest drives dvrouter from outside, as Dataverse and its consumers would: it makes
// many distinct events from the project's test payloads, posts them to the webhook (retrying
// what is not accepted, as Dataverse does), runs consumers that can fail in every way a real
// one does, and runs `dvrouter serve` as a separate process it can kill. The load run
// (loadtest/cmd/load, `make bench`) and the fault suite (TestFaults, `make faults`) are built
// on it. Test tooling only: nothing in the product imports it.
package loadtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Template is one of the project's Dataverse payloads (testdata/events), the source of
// generated events.
type Template struct {
	Name         string // file name without .json
	Table        string // PrimaryEntityName
	Message      string // MessageName
	SizeExceeded bool   // sent with x-ms-dynamics-msg-size-exceeded, as Dataverse does over 256 KB

	raw         []byte
	correlation string // the payload's CorrelationId
	record      string // the payload's PrimaryEntityId
}

// LoadTemplates reads every *.json payload in dir, in name order.
func LoadTemplates(dir string) ([]*Template, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("templates in %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("templates in %s: no .json files", dir)
	}
	sort.Strings(paths)
	out := make([]*Template, 0, len(paths))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", p, err)
		}
		var head struct {
			CorrelationID     string `json:"CorrelationId"`
			PrimaryEntityID   string `json:"PrimaryEntityId"`
			PrimaryEntityName string `json:"PrimaryEntityName"`
			MessageName       string `json:"MessageName"`
		}
		if err := json.Unmarshal(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")), &head); err != nil {
			return nil, fmt.Errorf("template %s: %w", p, err)
		}
		if head.CorrelationID == "" || head.PrimaryEntityID == "" || head.PrimaryEntityName == "" {
			return nil, fmt.Errorf("template %s: CorrelationId, PrimaryEntityId or PrimaryEntityName missing", p)
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		out = append(out, &Template{
			Name:         name,
			Table:        head.PrimaryEntityName,
			Message:      head.MessageName,
			SizeExceeded: strings.Contains(name, "size-exceeded"),
			raw:          raw,
			correlation:  strings.ToLower(head.CorrelationID),
			record:       strings.ToLower(head.PrimaryEntityID),
		})
	}
	return out, nil
}

// Event is one generated Dataverse webhook request. The same (run, seq) always gives the same
// bytes, so a retry of an event is the same event (the same event id in dvrouter).
type Event struct {
	Seq           int
	Template      *Template
	Body          []byte
	CorrelationID string
	RecordID      string
}

// Event makes event number seq of a run from t: the payload with its correlation id and record
// id replaced, everywhere they occur, by GUIDs derived from (run, seq). Distinct (run, seq)
// pairs give distinct events.
func (t *Template) Event(run string, seq int) Event {
	corr := derivedGUID(run, seq, "correlation")
	rec := derivedGUID(run, seq, "record")
	body := replaceGUID(t.raw, t.correlation, corr)
	body = replaceGUID(body, t.record, rec)
	return Event{Seq: seq, Template: t, Body: body, CorrelationID: corr, RecordID: rec}
}

// Mix cycles through templates: event seq of a run is made from templates[seq % len].
func Mix(templates []*Template, run string) func(seq int) Event {
	return func(seq int) Event {
		return templates[seq%len(templates)].Event(run, seq)
	}
}

// replaceGUID replaces old by new in lower and upper case. A GUID may appear in either.
func replaceGUID(b []byte, old, new string) []byte {
	b = bytes.ReplaceAll(b, []byte(old), []byte(new))
	return bytes.ReplaceAll(b, []byte(strings.ToUpper(old)), []byte(strings.ToUpper(new)))
}

func derivedGUID(run string, seq int, what string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%s", run, seq, what))
	sum[6] = sum[6]&0x0f | 0x40
	sum[8] = sum[8]&0x3f | 0x80
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
