package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// IdentityEndpoint is a TEST STAND-IN for the App Service managed identity endpoint, handing out
// the Web API stand-in's token, so that a dvrouter process (whose credential is azidentity's
// default chain) reaches the stand-in as an app in Azure reaches Dataverse. Give the process
// IDENTITY_ENDPOINT=Endpoint and IDENTITY_HEADER=Header. It answers as the App Service REST
// endpoint reference describes
// (https://learn.microsoft.com/azure/app-service/overview-managed-identity, "REST endpoint
// reference"): GET ?resource=<uri>&api-version=2019-08-01 with the X-IDENTITY-HEADER header,
// answered {"access_token", "expires_on", "resource", "token_type"}.
type IdentityEndpoint struct {
	Endpoint string
	Header   string
}

// StartIdentityEndpoint starts the endpoint for w; it stops when the test ends.
func (w *WebAPI) StartIdentityEndpoint(tb testing.TB) *IdentityEndpoint {
	tb.Helper()
	id := &IdentityEndpoint{Header: fmt.Sprintf("identity-header-%d", newIDs.Add(1))}
	cred := w.Credential()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-IDENTITY-HEADER") != id.Header {
			http.Error(rw, `{"statusCode":400,"message":"X-IDENTITY-HEADER missing or wrong"}`, http.StatusBadRequest)
			return
		}
		resource := r.URL.Query().Get("resource")
		tok, err := cred.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}})
		if err != nil {
			http.Error(rw, fmt.Sprintf(`{"statusCode":400,"message":%q}`, err.Error()), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]string{
			"access_token": tok.Token, "expires_on": strconv.FormatInt(tok.ExpiresOn.Unix(), 10),
			"resource": resource, "token_type": "Bearer",
		})
	}))
	tb.Cleanup(srv.Close)
	id.Endpoint = srv.URL + "/msi/token"
	return id
}
