package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// `dvrouter serve` under the host reads a `source: changes` table when the ChangeTracking timer
// fires, with the identity DVROUTER_CHANGES_CLIENT_ID names, keeps the token in DVROUTER_TABLES,
// and shows the table in GET /api/changes.
func TestServe_ChangeTrackingTimerReadsAndDelivers(t *testing.T) {
	const clientID = "0c0e3f7e-52a4-4a51-8f36-9a2b44d1c1aa"
	w := testenv.StartWebAPI(t)
	w.AddTable(testenv.WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid", Columns: []string{"name"}})
	for i := range 5 {
		w.SetRow("account", fmt.Sprintf("00000000-0000-0000-0000-%012d", i), map[string]any{"name": fmt.Sprint("a", i)})
	}
	w.TrackChanges("account")
	prev := webAPICredential
	webAPICredential = func(id string) (azcore.TokenCredential, error) {
		if id != clientID {
			return nil, errors.New("not the identity DVROUTER_CHANGES_CLIENT_ID names")
		}
		return w.Credential(), nil
	}
	t.Cleanup(func() { webAPICredential = prev })
	az := testenv.StartAzurite(t)
	consumer := testenv.StartConsumer(t)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(`consumers:
  - {name: erp, type: http, url: "`+consumer.URL+`"}
routes:
  - {name: accounts, table: account, source: changes, select: [name], consumers: [erp]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": port,
		"DVROUTER_ROUTES":              routes,
		"DVROUTER_TABLES":              az.ConnectionString(),
		"DVROUTER_ADMIN_KEYS":          "desk:reader=" + cliKey,
		"DVROUTER_CHANGES_ENVIRONMENT": w.URL,
		"DVROUTER_CHANGES_CLIENT_ID":   clientID,
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	go func() { run([]string{"serve"}, nil, stdout, stderr, func(k string) string { return env[k] }) }()
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready (last %v); stderr: %s", err, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx := context.Background()
	ans, err := testenv.InvokeTimer(ctx, base, "ChangeTracking", "timer", false)
	if err != nil || ans.Status != 200 || len(ans.Logs) != 1 || !strings.Contains(ans.Logs[0], "account: 5 changed") {
		t.Fatalf("invocation %+v (err %v); stdout: %s", ans, err, stdout)
	}
	if n := consumer.Count(); n != 5 {
		t.Fatalf("consumer got %d, want 5", n)
	}
	client, _ := supportapi.NewClient(base, cliKey, "")
	st, err := client.ChangesStatus(ctx)
	if err != nil || st.Environment != w.URL || len(st.Tables) != 1 || st.Tables[0].Changed != 5 || st.Tables[0].TokenAt.IsZero() {
		t.Fatalf("status %+v (err %v)", st, err)
	}
}

// Change tracking shares the reads' Environment (one concurrency limit, one Retry-After) when
// DVROUTER_DATAVERSE_ENVIRONMENTS holds its environment with the same identity, and has its
// own otherwise.
func TestChangesEnvironment_SharedWithTheReadsWhenTheSame(t *testing.T) {
	w := testenv.StartWebAPI(t)
	prev := webAPICredential
	webAPICredential = func(string) (azcore.TokenCredential, error) { return w.Credential(), nil }
	t.Cleanup(func() { webAPICredential = prev })
	reads, err := webapi.New(map[string]string{"crm": w.URL}, webapi.Options{Credential: w.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{Changes: config.Changes{Environment: w.URL}}
	e, err := changesEnvironment(s, reads)
	if err != nil || e != reads.Environments()[0] {
		t.Fatalf("same environment, same identity: %v (err %v), want the reads' Environment", e, err)
	}
	s.Changes.ClientID = "another-identity"
	if e, err = changesEnvironment(s, reads); err != nil || e == reads.Environments()[0] || e.URL() != w.URL {
		t.Fatalf("another identity: %v (err %v), want an Environment of its own", e, err)
	}
}
