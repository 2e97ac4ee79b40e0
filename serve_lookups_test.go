package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// serve wires the route file's lookups: into the webhook: a row consumer of the real binary gets
// the cleared custom lookup as the Web API writes it.
func TestServe_RouteFileLookupHintsReachTheRowConsumer(t *testing.T) {
	consumer := testenv.StartConsumer(t)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(`consumers:
  - {name: projects, type: http, url: "`+consumer.URL+`", format: row}
routes:
  - {name: contacts, table: contact, consumers: [projects]}
lookups:
  contact: [new_projectid]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "DVROUTER_ROUTES="+routes)
	s.waitProbe(t).Body.Close()

	// The probe answers before the app is built; the webhook answers 503 until then.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post(s.url+"/api/dataverse/webhook", "application/json", strings.NewReader(clearsProject))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("webhook = %d %s; stderr: %s", resp.StatusCode, body, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	reqs := consumer.Wait(t, 1, 5*time.Second)
	var ev struct {
		Row map[string]any `json:"row"`
	}
	if err := json.Unmarshal(reqs[0].Body, &ev); err != nil {
		t.Fatal(err)
	}
	if v, ok := ev.Row["_new_projectid_value"]; !ok || v != nil || hasKey(ev.Row, "new_projectid") {
		t.Errorf("row = %v, want _new_projectid_value: null and no new_projectid", ev.Row)
	}
}
