package main

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// A dataverse consumer writes with the identity DVROUTER_DATAVERSE_CLIENT_ID names, into the
// environment DVROUTER_DATAVERSE_ENVIRONMENTS names, as `dvrouter serve` wires it.
func TestServe_DataverseConsumerWritesWithTheDataverseIdentity(t *testing.T) {
	const clientID = "6f1c3c52-0d7a-4f1e-9a57-3b1d2f8e9c10"
	w := testenv.StartWebAPI(t).EnableWrites()
	w.AddTable(testenv.WebAPITable{LogicalName: "new_crmcontact", EntitySetName: "new_crmcontacts", PrimaryID: "new_crmcontactid",
		Columns: []string{"new_crmid", "new_lastname"}})
	prev := webAPICredential
	webAPICredential = func(id string) (azcore.TokenCredential, error) {
		if id != clientID {
			return nil, errors.New("not the identity DVROUTER_DATAVERSE_CLIENT_ID names")
		}
		return w.Credential(), nil
	}
	t.Cleanup(func() { webAPICredential = prev })
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(`consumers:
  - name: erp
    type: dataverse
    environment: crm
    table: new_crmcontact
    key: [new_crmid]
    columns: {new_crmid: contactid}
routes:
  - {name: contacts, table: contact, consumers: [erp]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT":    port,
		"DVROUTER_ROUTES":                 routes,
		"DVROUTER_DATAVERSE_ENVIRONMENTS": "crm=" + w.URL,
		"DVROUTER_DATAVERSE_CLIENT_ID":    clientID,
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	go func() { run([]string{"serve"}, nil, stdout, stderr, func(k string) string { return env[k] }) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post("http://127.0.0.1:"+port+"/api/dataverse/webhook", "application/json", strings.NewReader(clearsProject))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never answered 200 (last %v); stderr: %s", err, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := w.RowCount("new_crmcontact"); n != 1 {
		t.Errorf("%d rows written, want 1; stderr: %s", n, stderr)
	}
}
