package supportapi

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The API only ever adds fields. These are the JSON names each answer and request had when the
// console and the CLI were first written against them; none may disappear or be renamed.
var publishedFields = map[reflect.Type][]string{
	reflect.TypeFor[Failure](): {"id", "eventId", "consumer", "route", "table", "message", "recordId", "correlationId",
		"messageId", "kind", "status", "attempts", "occurredAt", "firstFailedAt", "lastFailedAt", "lastError",
		"lastStatusCode", "updatedBy", "updatedAt", "claimedBy", "claimedAt", "reason", "payloadSize", "history"},
	reflect.TypeFor[Change]():            {"at", "by", "action", "status", "detail"},
	reflect.TypeFor[FailureList]():       {"items", "continuation"},
	reflect.TypeFor[ShownFailure]():      {"payload", "payloadEncoding", "payloadError"},
	reflect.TypeFor[ReplayResult]():      {"id", "result", "error", "dispatch"},
	reflect.TypeFor[Routed]():            {"id", "matched", "delivered", "failed"},
	reflect.TypeFor[BulkReplayRequest](): {"consumer", "status", "kind", "table", "from", "to", "max", "dryRun", "continuation", "all"},
	reflect.TypeFor[BulkReplayResult](): {"matched", "delivered", "failed", "skipped", "dryRun", "stoppedEarly", "reason",
		"continuation", "errors"},
	reflect.TypeFor[ItemError]():      {"id", "error"},
	reflect.TypeFor[DiscardRequest](): {"reason"},
	reflect.TypeFor[Me]():             {"name", "roles", "via"},
	reflect.TypeFor[Error]():          {"error", "detail"},
}

func TestWireTypes_KeepEveryPublishedField(t *testing.T) {
	for typ, want := range publishedFields {
		var have []string
		for f := range typ.Fields() {
			if f.Anonymous {
				continue // ShownFailure embeds Failure, checked on its own
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			have = append(have, name)
		}
		for _, w := range want {
			if !slices.Contains(have, w) {
				t.Errorf("%s lost JSON field %q (has %v)", typ.Name(), w, have)
			}
		}
	}
}
