package dataverse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir holds real, public Dataverse payloads next to the repository (shared/corpus/dataverse
// beside its root), when present. They are read in place, never copied into the project.
var corpusDir = filepath.Join("..", "..", "..", "shared", "corpus", "dataverse")

// TestConformance_Corpus decodes every real payload and checks the invariants every normalized
// event must keep.
func TestConformance_Corpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", corpusDir)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkInvariants(t, raw, ev)
		})
	}
}

// checkInvariants compares the event with what encoding/json reads from the same body, and
// checks that nothing of the wire format leaks into the output.
func checkInvariants(t *testing.T, raw []byte, ev *Event) {
	t.Helper()
	var ctx struct {
		MessageName, PrimaryEntityName, PrimaryEntityId string
		Mode, Stage                                     int
	}
	if err := json.Unmarshal(bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF")), &ctx); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	if !uuidShape.MatchString(ev.ID) {
		t.Errorf("id %q is not UUID-shaped", ev.ID)
	}
	if ev.Message != ctx.MessageName || ev.Table != ctx.PrimaryEntityName || ev.RecordID != ctx.PrimaryEntityId {
		t.Errorf("message/table/recordId = %q/%q/%q, want %q/%q/%q",
			ev.Message, ev.Table, ev.RecordID, ctx.MessageName, ctx.PrimaryEntityName, ctx.PrimaryEntityId)
	}
	if ev.Stage != ctx.Stage || ev.Mode != [...]string{"sync", "async"}[ctx.Mode] {
		t.Errorf("stage/mode = %d/%q, want %d/%d", ev.Stage, ev.Mode, ctx.Stage, ctx.Mode)
	}
	if !strings.HasSuffix(ev.OperationCreatedOn, "Z") {
		t.Errorf("operationCreatedOn %q is not UTC", ev.OperationCreatedOn)
	}
	if ev.Row["SdkMessage"] != ev.Message {
		t.Errorf("row SdkMessage = %v", ev.Row["SdkMessage"])
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	for _, leak := range []string{"__type", "/Date(", `\/Date(`} {
		if bytes.Contains(out, []byte(leak)) {
			t.Errorf("output still contains %q", leak)
		}
	}
	for _, row := range []Row{ev.Row, ev.PreImage, ev.PostImage} {
		walkRow(row, func(key string, v any) {
			s, ok := v.(string)
			// Formatted values are Dataverse's own text (local times included): leave them be.
			if !ok || strings.Contains(key, "@") || !isoLike(s) {
				return
			}
			if !strings.HasSuffix(s, "Z") || len(s) != len("2006-01-02T15:04:05Z") {
				t.Errorf("%s = %q: dates must be UTC to the second", key, s)
			}
		})
	}
}

func isoLike(s string) bool {
	return len(s) >= 19 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':'
}

func walkRow(row Row, fn func(key string, v any)) {
	for k, v := range row {
		fn(k, v)
		switch x := v.(type) {
		case Row:
			walkRow(x, fn)
		case []any:
			for _, e := range x {
				if r, ok := e.(Row); ok {
					walkRow(r, fn)
				}
			}
		}
	}
}

// TestConformance_OwnPayloads holds the project's own payloads to the same invariants.
func TestConformance_OwnPayloads(t *testing.T) {
	for _, path := range eventFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw := readEvent(t, filepath.Base(path))
			ev, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, raw, ev)
		})
	}
}

// TestConformance_DocsSampleDates pins the /Date()/ offset rule (the offset is informational; the milliseconds are UTC) on the Microsoft Learn
// sample: OperationCreatedOn "/Date(1506409448000-0700)/" is one second after the Target's
// modifiedon "/Date(1506384247000)/".
func TestConformance_DocsSampleDates(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(corpusDir, "docs-webhook-update-contact-async-postop-parentcontext.json"))
	if err != nil {
		t.Skip(err)
	}
	ev, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ev.OperationCreatedOn != "2017-09-26T00:04:08Z" || ev.Row["modifiedon"] != "2017-09-26T00:04:07Z" {
		t.Errorf("operationCreatedOn %q, modifiedon %v", ev.OperationCreatedOn, ev.Row["modifiedon"])
	}
}
