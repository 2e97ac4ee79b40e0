package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// clearProject is an Update of a contact whose Target clears the custom lookup new_projectid,
// with no image that shows it: the context's "new_projectid": null carries no type.
const clearProject = `{"MessageName":"Update","PrimaryEntityName":"contact","PrimaryEntityId":"11111111-2222-4333-8444-555555555555",` +
	`"OrganizationId":"0b9d3f5e-1c2a-4b6d-8e0f-a1b2c3d4e5f6","Mode":1,"Stage":40,"Depth":1,` +
	`"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",` +
	`"Attributes":[{"key":"new_projectid","value":null},{"key":"contactid","value":"11111111-2222-4333-8444-555555555555"}],` +
	`"FormattedValues":[],"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"contact"}}],` +
	`"PreEntityImages":[],"PostEntityImages":[]}`

// failOnRecord stands in for the failure store where no delivery may fail: it fails the test.
type failOnRecord struct{ t *testing.T }

func (r failOnRecord) Record(_ context.Context, f failures.Failure) (failures.Failure, error) {
	r.t.Errorf("a delivery failed: %s", f.LastError)
	return f, nil
}

// A row consumer gets a cleared custom lookup as the Web API writes it when the route file's
// lookups: names the column, and as the context has it when it does not, whether the event
// comes to the webhook (direct mode) or from the queue.
func TestLookupHints_RowConsumerGetsTheClearedLookupInWebAPIShape(t *testing.T) {
	for _, tc := range []struct {
		name, lookups, wantKey, notKey string
	}{
		{"hinted", "lookups:\n  contact: [new_projectid]\n", "_new_projectid_value", "new_projectid"},
		{"not hinted", "", "new_projectid", "_new_projectid_value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			consumer := testenv.StartConsumer(t)
			rf, err := config.LoadRoutesBytes("routes.yaml", []byte(`consumers:
  - {name: projects, type: http, url: "`+consumer.URL+`", format: row, retry: {attempts: 1}}
routes:
  - {name: project-cleared, table: contact, messages: [Update], consumers: [projects]}
`+tc.lookups), nil)
			if err != nil {
				t.Fatal(err)
			}
			routes, err := route.Compile(rf, route.Options{})
			if err != nil {
				t.Fatal(err)
			}
			deliverer, err := deliver.New(rf.Consumers, failOnRecord{t}, deliver.Options{Budget: 5 * time.Second, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = deliverer.Close(context.Background()) })
			srv := httptest.NewServer(handlers.New(handlers.Deps{
				Settings:   ingressSettings(t, nil),
				Dispatcher: &dispatch.Dispatcher{Routes: routes, Deliver: deliverer, Log: zerolog.Nop()},
				Lookups:    rf.Lookups,
				Log:        zerolog.Nop(),
			}))
			t.Cleanup(srv.Close)

			post := func(path, contentType, body string) {
				t.Helper()
				resp, err := http.Post(srv.URL+path, contentType, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("POST %s = %d %s", path, resp.StatusCode, out)
				}
			}
			post("/api/dataverse/webhook", "application/json", clearProject)
			post("/DataverseQueue", "application/json", envelope([]byte(clearProject), "application/json", "m-1"))

			reqs := consumer.Wait(t, 2, 5*time.Second)
			for i, via := range []string{"webhook", "queue"} {
				var ev struct {
					Row      map[string]any `json:"row"`
					PreImage map[string]any `json:"preImage"`
				}
				if err := json.Unmarshal(reqs[i].Body, &ev); err != nil {
					t.Fatalf("%s: %v: %s", via, err, reqs[i].Body)
				}
				if v, ok := ev.Row[tc.wantKey]; !ok || v != nil {
					t.Errorf("%s: row[%q] = %#v (present %v), want null; row %v", via, tc.wantKey, v, ok, ev.Row)
				}
				if v, ok := ev.Row[tc.notKey]; ok {
					t.Errorf("%s: row[%q] = %#v, want no such key", via, tc.notKey, v)
				}
				for k := range ev.Row {
					if strings.Contains(k, "projectid") && strings.Contains(k, "@") {
						t.Errorf("%s: row has %q: a cleared lookup has no annotations", via, k)
					}
				}
			}
		})
	}
}
