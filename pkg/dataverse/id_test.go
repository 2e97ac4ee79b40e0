package dataverse

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestID_IsAVersion8UUID(t *testing.T) {
	for _, path := range eventFiles(t) {
		ev := decodeFile(t, filepath.Base(path))
		if !uuidShape.MatchString(ev.ID) {
			t.Errorf("%s: id %q is not a lowercase version-8 UUID", filepath.Base(path), ev.ID)
		}
	}
}

func TestID_SameBytesSameID(t *testing.T) {
	raw := readEvent(t, "update-account-async-images.json")
	a, b := mustDecode(t, string(raw)), mustDecode(t, string(raw))
	if a.ID != b.ID {
		t.Errorf("ids differ: %s %s", a.ID, b.ID)
	}
}

// reserialize writes v back as JSON with every object's keys in the order keyOrder gives, and
// with encoding/json's escaping (no "\/", HTML characters as \u003c and the like).
func reserialize(t *testing.T, raw []byte, keyOrder func([]string)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var write func(v any)
	write = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			keyOrder(keys)
			buf.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					buf.WriteByte(',')
				}
				kb, _ := json.Marshal(k)
				buf.Write(kb)
				buf.WriteByte(':')
				write(x[k])
			}
			buf.WriteByte('}')
		case []any:
			buf.WriteByte('[')
			for i, e := range x {
				if i > 0 {
					buf.WriteString(", ")
				}
				write(e)
			}
			buf.WriteByte(']')
		default:
			b, err := json.Marshal(x)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
		}
	}
	write(v)
	return buf.Bytes()
}

// TestID_ReserializedBodyGivesTheSameEvent re-writes every payload with its keys sorted, then
// reversed ("__type" no longer first, "value" before "key"), and other escaping: the id, and the
// whole normalized event, must not change.
func TestID_ReserializedBodyGivesTheSameEvent(t *testing.T) {
	orders := map[string]func([]string){
		"sorted":   sort.Strings,
		"reversed": func(k []string) { sort.Sort(sort.Reverse(sort.StringSlice(k))) },
	}
	for _, path := range eventFiles(t) {
		name := filepath.Base(path)
		raw := readEvent(t, name)
		orig := mustDecode(t, string(raw))
		for oname, order := range orders {
			t.Run(name+"/"+oname, func(t *testing.T) {
				again := reserialize(t, raw, order)
				if bytes.Equal(again, raw) {
					t.Fatal("re-serialization did not change the bytes")
				}
				ev := mustDecode(t, string(again))
				if ev.ID != orig.ID {
					t.Errorf("id %s, want %s", ev.ID, orig.ID)
				}
				ev.Raw, orig.Raw = nil, nil
				if !reflect.DeepEqual(ev, orig) {
					a, _ := json.Marshal(orig)
					b, _ := json.Marshal(ev)
					t.Errorf("normalized events differ:\n orig %s\n again %s", a, b)
				}
			})
		}
	}
}

// idBase is a context with every identifying field set; the tests change one at a time.
func idBase() map[string]any {
	return map[string]any{
		"OrganizationId":     "0a000000-0000-4000-8000-000000000001",
		"OperationId":        "0b000000-0000-4000-8000-000000000001",
		"CorrelationId":      "0c000000-0000-4000-8000-000000000001",
		"RequestId":          "0d000000-0000-4000-8000-000000000001",
		"OwningExtension":    map[string]any{"Id": "0e000000-0000-4000-8000-000000000001", "LogicalName": "sdkmessageprocessingstep", "Name": nil},
		"MessageName":        "Update",
		"PrimaryEntityName":  "account",
		"PrimaryEntityId":    "0f000000-0000-4000-8000-000000000001",
		"Stage":              40,
		"Depth":              1,
		"OperationCreatedOn": "/Date(1735725600000)/",
		"Mode":               1,
		"OrganizationName":   "contoso",
		"UserId":             "10000000-0000-4000-8000-000000000001",
		"InputParameters":    []any{},
	}
}

func idOf(t *testing.T, ctx map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return mustDecode(t, string(raw)).ID
}

func TestID_DiffersWhenAnIdentifyingFieldDiffers(t *testing.T) {
	changes := map[string]func(map[string]any){
		"OrganizationId": func(c map[string]any) { c["OrganizationId"] = "0a000000-0000-4000-8000-000000000002" },
		"OperationId":    func(c map[string]any) { c["OperationId"] = "0b000000-0000-4000-8000-000000000002" },
		"CorrelationId":  func(c map[string]any) { c["CorrelationId"] = "0c000000-0000-4000-8000-000000000002" },
		"RequestId":      func(c map[string]any) { c["RequestId"] = "0d000000-0000-4000-8000-000000000002" },
		"RequestId null": func(c map[string]any) { c["RequestId"] = nil },
		"step": func(c map[string]any) {
			c["OwningExtension"].(map[string]any)["Id"] = "0e000000-0000-4000-8000-000000000002"
		},
		"MessageName":        func(c map[string]any) { c["MessageName"] = "Create" },
		"PrimaryEntityName":  func(c map[string]any) { c["PrimaryEntityName"] = "contact" },
		"PrimaryEntityId":    func(c map[string]any) { c["PrimaryEntityId"] = "0f000000-0000-4000-8000-000000000002" },
		"Stage":              func(c map[string]any) { c["Stage"] = 20 },
		"Depth":              func(c map[string]any) { c["Depth"] = 2 },
		"OperationCreatedOn": func(c map[string]any) { c["OperationCreatedOn"] = "/Date(1735725601000)/" },
	}
	base := idOf(t, idBase())
	seen := map[string]string{base: "base"}
	for _, name := range slices.Sorted(maps.Keys(changes)) {
		ctx := idBase()
		changes[name](ctx)
		id := idOf(t, ctx)
		if other, dup := seen[id]; dup {
			t.Errorf("changing %s gives the id of %s: %s", name, other, id)
		}
		seen[id] = name
	}
}

func TestID_IgnoresWhatDoesNotIdentifyTheEvent(t *testing.T) {
	base := idOf(t, idBase())
	changes := map[string]func(map[string]any){
		"OrganizationName": func(c map[string]any) { c["OrganizationName"] = "renamed" },
		"UserId":           func(c map[string]any) { c["UserId"] = "10000000-0000-4000-8000-000000000002" },
		"SizeExceeded strip": func(c map[string]any) {
			delete(c, "InputParameters")
		},
		"GUID case":      func(c map[string]any) { c["OrganizationId"] = strings.ToUpper(c["OrganizationId"].(string)) },
		"same instant":   func(c map[string]any) { c["OperationCreatedOn"] = "/Date(1735722000000+0100)/" },
		"ParentContext":  func(c map[string]any) { c["ParentContext"] = map[string]any{"MessageName": "Update"} },
		"SharedVariable": func(c map[string]any) { c["SharedVariables"] = []any{map[string]any{"key": "a", "value": 1}} },
	}
	for _, name := range slices.Sorted(maps.Keys(changes)) {
		ctx := idBase()
		changes[name](ctx)
		if id := idOf(t, ctx); id != base {
			t.Errorf("changing %s changed the id: %s, want %s", name, id, base)
		}
	}
}

// TestID_FollowsTheDocumentedDerivation recomputes the id as eventID's doc comment (and the
// package README) describe it.
func TestID_FollowsTheDocumentedDerivation(t *testing.T) {
	b := []byte("dvrouter-event-id/v1")
	for _, f := range []string{
		"0a000000-0000-4000-8000-000000000001", "0b000000-0000-4000-8000-000000000001",
		"0c000000-0000-4000-8000-000000000001", "0d000000-0000-4000-8000-000000000001",
		"0e000000-0000-4000-8000-000000000001", "Update", "account",
		"0f000000-0000-4000-8000-000000000001", "40", "1", "1735725600000",
	} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(b)
	sum[6] = sum[6]&0x0f | 0x80
	sum[8] = sum[8]&0x3f | 0x80
	h := hex.EncodeToString(sum[:16])
	want := fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
	if got := idOf(t, idBase()); got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
}
