package route

import (
	"testing"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

func TestMatch_SourceKeepsPluginAndChangeTrackingEventsApart(t *testing.T) {
	s := compile(t, `  - {name: plugin, table: account, consumers: [erp]}
  - {name: changes, table: account, source: changes, messages: [Create, Update], stage: 40, consumers: [erp]}
  - {name: both, table: account, source: both, messages: [Update], consumers: [erp]}
  - {name: deletes, table: account, source: changes, messages: [Delete], consumers: [erp]}
`, Options{})
	cases := []struct {
		name string
		ev   dataverse.Event
		want []string
	}{
		{"plugin update", dataverse.Event{Message: "Update", Table: "account", Stage: 40}, []string{"plugin", "both"}},
		// An Upsert matches Create or Update; stage and mode do not apply to a change.
		{"changed row", dataverse.Event{Message: "Upsert", Table: "account", Source: dataverse.SourceChanges}, []string{"changes", "both"}},
		{"deleted row", dataverse.Event{Message: "Delete", Table: "account", Source: dataverse.SourceChanges}, []string{"deletes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range s.Match(&tc.ev) {
				got = append(got, r.Name)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("matched %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("matched %v, want %v", got, tc.want)
				}
			}
		})
	}
	ex := s.Explain(&dataverse.Event{Message: "Upsert", Table: "account", Source: dataverse.SourceChanges})
	if ex[0].Reason != "source: a change-tracking event, and the route takes plugin events only" {
		t.Fatalf("reason = %q", ex[0].Reason)
	}
}
