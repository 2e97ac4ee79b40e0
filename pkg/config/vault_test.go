package config

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

func TestLoadVault_ReadsTheSettingsItNames(t *testing.T) {
	v, err := LoadVault(getenvOf(map[string]string{
		EnvKeyVaultURI:      "https://kv-dvrouter-prod.vault.azure.net/",
		EnvKeyVaultClientID: "11111111-2222-3333-4444-555555555555",
		EnvKeyVaultSecrets:  "DVROUTER_ADMIN_KEYS=dvrouter-admin-keys, ERP_API_KEY=ERP-API-KEY",
		EnvKeyVaultRefresh:  "30m",
		// What App Service leaves when it cannot resolve a reference: replaced, not a conflict.
		EnvAdminKeys: "@Microsoft.KeyVault(VaultName=kv;SecretName=dvrouter-admin-keys)",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []VaultSecret{{"DVROUTER_ADMIN_KEYS", "dvrouter-admin-keys"}, {"ERP_API_KEY", "ERP-API-KEY"}}
	if !v.Configured() || v.Refresh != 30*time.Minute || len(v.Secrets) != 2 || v.Secrets[0] != want[0] || v.Secrets[1] != want[1] {
		t.Fatalf("vault = %+v", v)
	}
	none, err := LoadVault(getenvOf(nil))
	if err != nil || none.Configured() {
		t.Fatalf("no vault settings: %+v, %v", none, err)
	}
}

func TestLoadVault_RefusesNamingTheSetting(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvKeyVaultURI: "http://kv.vault.azure.net/", EnvKeyVaultSecrets: "A=b"}, "DVROUTER_KEYVAULT_URI: \"http://kv.vault.azure.net/\" must be an https URL"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/secrets/x?sig=abc", EnvKeyVaultSecrets: "A=b"}, "must be the vault's URL alone"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/"}, "DVROUTER_KEYVAULT_SECRETS: a vault is set"},
		{map[string]string{EnvKeyVaultSecrets: "A=b"}, "DVROUTER_KEYVAULT_URI: DVROUTER_KEYVAULT_SECRETS names secrets but no vault is set"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/", EnvKeyVaultSecrets: "dvrouter-admin-keys"}, "\"dvrouter-admin-keys\" must be SETTING=secret-name"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/", EnvKeyVaultSecrets: "ERP_API_KEY=ERP_API_KEY"}, "a secret name is 1 to 127 letters, digits and dashes"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/", EnvKeyVaultSecrets: "A=a,A=b"}, "A is named twice"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/", EnvKeyVaultSecrets: "A=a", "A": "plain value"}, "A has a value of its own and is also read from the vault"},
		{map[string]string{EnvKeyVaultURI: "https://kv.vault.azure.net/", EnvKeyVaultSecrets: "A=a", EnvKeyVaultRefresh: "5s"}, "DVROUTER_KEYVAULT_REFRESH: \"5s\" must be a duration of at least 1m"},
	}
	for _, c := range cases {
		_, err := LoadVault(getenvOf(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadVault(%v) = %v, want an error containing %q", c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "plain value") {
			t.Errorf("an error echoes a setting's value: %v", err)
		}
	}
}

func TestVaultReader_ReadsEachSecretOverHTTPSWithChallengeAuth(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	kv.Set("dvrouter-admin-keys", "support=0123456789abcdef0123")
	kv.Set("dvrouter-webhook-keys", "fedcba9876543210fedcba")
	r, err := NewVaultReader(Vault{URI: kv.URL, Secrets: []VaultSecret{
		{EnvAdminKeys, "dvrouter-admin-keys"}, {EnvWebhookKeys, "dvrouter-webhook-keys"},
	}}, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	values, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if values[EnvAdminKeys] != "support=0123456789abcdef0123" || values[EnvWebhookKeys] != "fedcba9876543210fedcba" || kv.Reads.Load() != 2 {
		t.Fatalf("values = %v after %d reads", values, kv.Reads.Load())
	}

	// The values then go through the same validation as any setting.
	base := getenvOf(map[string]string{EnvAdminKeys: "@Microsoft.KeyVault(VaultName=kv;SecretName=dvrouter-admin-keys)"})
	s, err := LoadSettings(Overlay(base, values))
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := s.AdminKeyName("0123456789abcdef0123"); !ok || name != "support" || !s.WebhookKeyValid("fedcba9876543210fedcba") {
		t.Fatalf("settings from the vault: admin %q %v, webhook keys %d", name, ok, len(s.WebhookKeys))
	}
}

func TestVaultReader_NamesEachSecretItCannotRead(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	kv.Set("readable", "value-that-must-not-leak")
	kv.Set("locked", "another-value-that-must-not-leak")
	kv.Forbid("locked")
	r, err := NewVaultReader(Vault{URI: kv.URL, Secrets: []VaultSecret{
		{"A", "readable"}, {"B", "missing"}, {"C", "locked"},
	}}, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	values, err := r.Read(context.Background())
	if err == nil {
		t.Fatalf("read %v, want errors for B and C", values)
	}
	for _, want := range []string{
		"setting B: secret missing in " + kv.URL + ": not found (SecretNotFound)",
		"setting C: secret locked in " + kv.URL + ": forbidden (Forbidden); the app's identity needs Key Vault Secrets User",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "must-not-leak") || strings.Contains(err.Error(), "setting A") {
		t.Errorf("error mentions a secret that was read, or its value:\n%v", err)
	}
}

func TestVaultReader_WrongIdentityIsRefused(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	kv.Set("s", "v")
	other := testenv.StartKeyVault(t) // a credential for another vault's identity
	r, err := NewVaultReader(Vault{URI: kv.URL, Secrets: []VaultSecret{{"A", "s"}}}, other.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("read with another identity's token: %v, want unauthorized", err)
	}
}

func TestVaultReader_WatchReportsARotatedSecretOnce(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	kv.Set("k", "first-value-0123456789")
	v := Vault{URI: kv.URL, Secrets: []VaultSecret{{"K", "k"}}, Refresh: 20 * time.Millisecond}
	r, err := NewVaultReader(v, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var changes []map[string]string
	changed := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Watch(ctx, first, func(m map[string]string) {
			mu.Lock()
			changes = append(changes, m)
			mu.Unlock()
			changed <- struct{}{}
		}, func(err error) { t.Errorf("watch read failed: %v", err) })
	}()
	// Unchanged values are not reported: wait for several reads first.
	for deadline := time.Now().Add(5 * time.Second); kv.Reads.Load() < 4; {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not re-read the vault")
		}
		time.Sleep(5 * time.Millisecond)
	}
	kv.Set("k", "second-value-0123456789")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("a rotated secret was not reported")
	}
	reads := kv.Reads.Load()
	for deadline := time.Now().Add(5 * time.Second); kv.Reads.Load() < reads+3; {
		if time.Now().After(deadline) {
			t.Fatal("the watch stopped re-reading")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 1 || changes[0]["K"] != "second-value-0123456789" {
		t.Fatalf("changes = %v, want one with the new value", changes)
	}
}
