package config

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// Vault names the settings dvrouter reads from Key Vault itself rather than through App
// Service's Key Vault references.
//
// Why: on Flex Consumption, App Service cannot resolve Key Vault references from a vault that
// is closed to public networks, even with virtual network integration ("Considerations" on
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan). A setting holding
// such a reference then arrives as its literal `@Microsoft.KeyVault(...)` text. dvrouter's own
// process does run inside the virtual network, so it reads the secrets over the vault's private
// endpoint with its managed identity, on every plan alike.
type Vault struct {
	URI      string        // DVROUTER_KEYVAULT_URI, https://<vault>.vault.azure.net/
	ClientID string        // DVROUTER_KEYVAULT_CLIENT_ID: the user-assigned identity; empty uses DefaultAzureCredential
	Secrets  []VaultSecret // DVROUTER_KEYVAULT_SECRETS: SETTING=secret-name,...
	Refresh  time.Duration // DVROUTER_KEYVAULT_REFRESH, default 1h; 0 reads only at start-up
}

// VaultSecret is one app setting whose value is the current version of a vault secret.
type VaultSecret struct {
	Setting string
	Secret  string
}

// Configured reports whether any setting is read from the vault.
func (v Vault) Configured() bool { return v.URI != "" }

const (
	EnvKeyVaultURI      = "DVROUTER_KEYVAULT_URI"
	EnvKeyVaultClientID = "DVROUTER_KEYVAULT_CLIENT_ID"
	EnvKeyVaultSecrets  = "DVROUTER_KEYVAULT_SECRETS"
	EnvKeyVaultRefresh  = "DVROUTER_KEYVAULT_REFRESH"
)

var (
	settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// Secret names: 1 to 127 letters, digits and dashes
	// (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#objects-identifiers-and-versioning).
	secretName = regexp.MustCompile(`^[A-Za-z0-9-]{1,127}$`)
)

// LoadVault reads and validates the vault settings. Every problem is reported, each naming its
// setting. A setting read from the vault must not also have a value of its own, unless that
// value is a Key Vault reference (which is what it replaces).
func LoadVault(getenv func(string) string) (Vault, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("setting %s: "+format, append([]any{name}, args...)...))
	}
	v := Vault{
		URI:      strings.TrimSpace(getenv(EnvKeyVaultURI)),
		ClientID: strings.TrimSpace(getenv(EnvKeyVaultClientID)),
		Refresh:  time.Hour,
	}
	if v.URI != "" {
		u, err := url.Parse(v.URI)
		switch {
		case err != nil || u.Host == "":
			bad(EnvKeyVaultURI, "%q is not a URL", v.URI)
		case u.Scheme != "https":
			bad(EnvKeyVaultURI, "%q must be an https URL (Key Vault takes tokens over TLS only)", v.URI)
		case u.RawQuery != "" || (u.Path != "" && u.Path != "/"):
			bad(EnvKeyVaultURI, "%q must be the vault's URL alone, like https://<vault>.vault.azure.net/", u.Scheme+"://"+u.Host+u.Path)
		}
	}
	seen := map[string]bool{}
	for _, pair := range splitList(getenv(EnvKeyVaultSecrets)) {
		setting, secret, ok := strings.Cut(pair, "=")
		setting, secret = strings.TrimSpace(setting), strings.TrimSpace(secret)
		switch {
		case !ok || !settingName.MatchString(setting):
			bad(EnvKeyVaultSecrets, "%q must be SETTING=secret-name", pair)
		case !secretName.MatchString(secret):
			bad(EnvKeyVaultSecrets, "%q: a secret name is 1 to 127 letters, digits and dashes", secret)
		case seen[setting]:
			bad(EnvKeyVaultSecrets, "%s is named twice", setting)
		default:
			seen[setting] = true
			if own := strings.TrimSpace(getenv(setting)); own != "" && !IsUnresolvedReference(own) {
				bad(EnvKeyVaultSecrets, "%s has a value of its own and is also read from the vault; keep one", setting)
			}
			v.Secrets = append(v.Secrets, VaultSecret{Setting: setting, Secret: secret})
		}
	}
	if r := strings.TrimSpace(getenv(EnvKeyVaultRefresh)); r != "" {
		d, err := time.ParseDuration(r)
		if err != nil || d < 0 || (d > 0 && d < time.Minute) {
			bad(EnvKeyVaultRefresh, "%q must be a duration of at least 1m, or 0 to read only at start-up", r)
		}
		v.Refresh = d
	}
	if v.URI == "" && len(v.Secrets) > 0 {
		bad(EnvKeyVaultURI, "%s names secrets but no vault is set", EnvKeyVaultSecrets)
	}
	if v.URI != "" && len(v.Secrets) == 0 && len(errs) == 0 {
		bad(EnvKeyVaultSecrets, "a vault is set (%s) but no setting is read from it", EnvKeyVaultURI)
	}
	return v, errors.Join(errs...)
}

// VaultReader reads the vault's secrets for the settings that name them.
type VaultReader struct {
	vault  Vault
	client *azsecrets.Client
}

// NewVaultReader connects to the vault with cred. opts is nil in production; tests pass a
// transport that trusts their loopback stand-in.
func NewVaultReader(v Vault, cred azcore.TokenCredential, opts *azsecrets.ClientOptions) (*VaultReader, error) {
	client, err := azsecrets.NewClient(v.URI, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("key vault %s: %w", v.URI, err)
	}
	return &VaultReader{vault: v, client: client}, nil
}

// Read returns the current value of every secret, by setting name, or an error naming each
// secret that could not be read and why. Values never appear in errors.
func (r *VaultReader) Read(ctx context.Context) (map[string]string, error) {
	values := make(map[string]string, len(r.vault.Secrets))
	var errs []error
	for _, s := range r.vault.Secrets {
		// An empty version asks for the current one: GET {vault}/secrets/{name}
		// (https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret).
		resp, err := r.client.GetSecret(ctx, s.Secret, "", nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("setting %s: secret %s in %s: %s", s.Setting, s.Secret, r.vault.URI, explain(err)))
			continue
		}
		if resp.Value == nil {
			errs = append(errs, fmt.Errorf("setting %s: secret %s in %s has no value", s.Setting, s.Secret, r.vault.URI))
			continue
		}
		values[s.Setting] = *resp.Value
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return values, nil
}

// explain turns a Key Vault error into what to do about it.
func explain(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound:
			return fmt.Sprintf("not found (%s); set it with az keyvault secret set", re.ErrorCode)
		case http.StatusForbidden:
			return fmt.Sprintf("forbidden (%s); the app's identity needs Key Vault Secrets User on the vault, and the vault must accept its network", re.ErrorCode)
		case http.StatusUnauthorized:
			return fmt.Sprintf("unauthorized (%s); check the identity (%s)", re.ErrorCode, EnvKeyVaultClientID)
		}
		return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
	}
	return err.Error()
}

// Watch re-reads the secrets every Refresh and calls changed with the new values when any
// differs from last. A failed read is passed to failed and the values in use stay. It returns
// when ctx ends; it does nothing when Refresh is 0.
func (r *VaultReader) Watch(ctx context.Context, last map[string]string, changed func(map[string]string), failed func(error)) {
	if r.vault.Refresh <= 0 {
		return
	}
	tick := time.NewTicker(r.vault.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		readCtx, cancel := context.WithTimeout(ctx, time.Minute)
		values, err := r.Read(readCtx)
		cancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				failed(err)
			}
		case !maps.Equal(values, last):
			last = values
			changed(values)
		}
	}
}

// Overlay returns a getenv that answers the settings read from the vault with their secret
// values and every other setting from getenv.
func Overlay(getenv func(string) string, values map[string]string) func(string) string {
	return func(name string) string {
		if v, ok := values[name]; ok {
			return v
		}
		return getenv(name)
	}
}
