package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// KeyVault is a TEST STAND-IN for Azure Key Vault's secrets API, on a loopback HTTPS server.
// It answers the one call dvrouter makes, Get Secret, as Microsoft's REST reference describes
// it (https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret):
//
//	GET {vault}/secrets/{name}[/{version}]?api-version=...
//	-> 200 {"value": "...", "id": "{vault}/secrets/{name}/{version}", "attributes": {...}}
//	-> 404 {"error": {"code": "SecretNotFound", "message": "..."}}
//
// with Key Vault's challenge authentication
// (https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses):
// a request without a bearer token gets 401 and a WWW-Authenticate header naming the
// authority and resource, and only the token of the identity that may read secrets passes.
type KeyVault struct {
	URL   string // the vault URI to configure, https://127.0.0.1:PORT/
	srv   *httptest.Server
	token string

	mu        sync.Mutex
	secrets   map[string]string
	versions  map[string]int
	forbidden map[string]bool
	// Reads counts authorized Get Secret requests.
	Reads atomic.Int64
}

const keyVaultTenant = "72f988bf-0000-0000-0000-000000000000"

// StartKeyVault starts the stand-in; it stops when the test ends.
func StartKeyVault(tb testing.TB) *KeyVault {
	tb.Helper()
	kv := &KeyVault{
		token:     fmt.Sprintf("test-token-%d", time.Now().UnixNano()),
		secrets:   map[string]string{},
		versions:  map[string]int{},
		forbidden: map[string]bool{},
	}
	kv.srv = httptest.NewTLSServer(http.HandlerFunc(kv.serve))
	kv.URL = kv.srv.URL + "/"
	tb.Cleanup(kv.srv.Close)
	return kv
}

// Set creates the secret or adds a new current version of it.
func (kv *KeyVault) Set(name, value string) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.secrets[name] = value
	kv.versions[name]++
}

// Forbid makes reads of the secret fail as Azure RBAC refuses them (403).
func (kv *KeyVault) Forbid(name string) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.forbidden[name] = true
}

// Credential is the identity allowed to read the vault: it hands out the token the stand-in
// accepts, for Key Vault's scope only.
func (kv *KeyVault) Credential() azcore.TokenCredential { return vaultCredential{kv.token} }

// ClientOptions trust the stand-in's certificate. Its challenge names Key Vault's public
// resource (https://vault.azure.net) while it listens on 127.0.0.1, so the check that the two
// match is turned off here, and only here.
func (kv *KeyVault) ClientOptions() *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: kv.srv.Client(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	}
}

type vaultCredential struct{ token string }

func (c vaultCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 || opts.Scopes[0] != "https://vault.azure.net/.default" {
		return azcore.AccessToken{}, fmt.Errorf("test credential: token asked for scopes %v, want Key Vault's", opts.Scopes)
	}
	if opts.TenantID != keyVaultTenant {
		return azcore.AccessToken{}, fmt.Errorf("test credential: token asked for tenant %q, want the challenge's %q", opts.TenantID, keyVaultTenant)
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (kv *KeyVault) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Header.Get("Authorization") != "Bearer "+kv.token {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/`+keyVaultTenant+`", resource="https://vault.azure.net"`)
		kvError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid api-version.")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" {
		kvError(w, http.StatusNotFound, "NotFound", "The operation is not supported by this test stand-in.")
		return
	}
	name := parts[1]
	kv.mu.Lock()
	value, ok := kv.secrets[name]
	version, forbidden := kv.versions[name], kv.forbidden[name]
	kv.mu.Unlock()
	switch {
	case forbidden:
		kvError(w, http.StatusForbidden, "Forbidden", "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")
		return
	case !ok || (len(parts) == 3 && parts[2] != "" && parts[2] != fmt.Sprintf("v%d", version)):
		kvError(w, http.StatusNotFound, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault.", name))
		return
	}
	kv.Reads.Add(1)
	now := time.Now().Unix()
	_ = json.NewEncoder(w).Encode(map[string]any{
		"value": value,
		"id":    fmt.Sprintf("%ssecrets/%s/v%d", kv.URL, name, version),
		"attributes": map[string]any{
			"enabled": true, "created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable",
		},
	})
}

func kvError(w http.ResponseWriter, status int, code, message string) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}
