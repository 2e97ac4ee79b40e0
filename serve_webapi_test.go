package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// serve wires DVROUTER_DATAVERSE_ENVIRONMENTS: a size-exceeded webhook event is completed from
// the Web API stand-in (only the columns the routes read), matched on them, and its consumer
// sees reread: true.
func TestServe_SizeExceededEventIsReadFromTheWebAPI(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "events", "update-account-size-exceeded.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ctx struct{ OrganizationID, PrimaryEntityID string }
	if err := json.Unmarshal(raw, &ctx); err != nil {
		t.Fatal(err)
	}
	w := testenv.StartWebAPI(t)
	w.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid", Columns: []string{"name", "creditlimit"}})
	w.SetRow("account", ctx.PrimaryEntityID, map[string]any{"accountid": ctx.PrimaryEntityID, "name": "Fourth Coffee", "creditlimit": json.Number("90000")})
	prev := webAPICredential
	webAPICredential = func(string) (azcore.TokenCredential, error) { return w.Credential(), nil }
	t.Cleanup(func() { webAPICredential = prev })

	consumer := testenv.StartConsumer(t)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(`consumers:
  - {name: erp, type: http, url: "`+consumer.URL+`", format: row}
routes:
  - {name: big, table: account, filter: "creditlimit gt 50000", consumers: [erp]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT":    port,
		"DVROUTER_ROUTES":                 routes,
		"DVROUTER_DATAVERSE_ENVIRONMENTS": ctx.OrganizationID + "=" + w.URL,
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"serve"}, nil, stdout, stderr, func(k string) string { return env[k] }) }()
	url := "http://127.0.0.1:" + port

	var body []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/dataverse/webhook", strings.NewReader(string(raw)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-ms-dynamics-msg-size-exceeded", "true")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook did not answer 200 (%v, %s); stderr %s", err, body, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(body), `"matched":["big"]`) {
		t.Errorf("webhook answer %s", body)
	}
	reqs := consumer.Wait(t, 1, 5*time.Second)
	var ev struct {
		Reread bool           `json:"reread"`
		Row    map[string]any `json:"row"`
	}
	if err := json.Unmarshal(reqs[0].Body, &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.Reread || ev.Row["creditlimit"] != float64(90000) || hasKey(ev.Row, "name") {
		t.Errorf("consumer got reread %v, row %v", ev.Reread, ev.Row)
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, stderr)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
}
