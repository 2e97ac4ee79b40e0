package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// serveWithVault runs `dvrouter serve` in this process against the Key Vault stand-in, with
// the settings the template gives the app on a private network.
func serveWithVault(t *testing.T, kv *testenv.KeyVault, env map[string]string) (url string, stdout, stderr *syncBuffer, done chan int) {
	t.Helper()
	prevCred, prevOpts := vaultCredential, vaultOptions
	vaultCredential = func(string) (azcore.TokenCredential, error) { return kv.Credential(), nil }
	vaultOptions = kv.ClientOptions()
	t.Cleanup(func() { vaultCredential, vaultOptions = prevCred, prevOpts })

	port := freePort(t)
	env["FUNCTIONS_CUSTOMHANDLER_PORT"] = port
	env["DVROUTER_KEYVAULT_URI"] = kv.URL
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done = make(chan int, 1)
	go func() { done <- run([]string{"serve"}, nil, stdout, stderr, func(k string) string { return env[k] }) }()
	return "http://127.0.0.1:" + port, stdout, stderr, done
}

// syncBuffer is a log the test reads while the server writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServe_SecretsComeFromKeyVaultWhenReferencesCannotBeResolved(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	const webhookKey = "vault-webhook-key-0123456789"
	kv.Set("dvrouter-webhook-keys", webhookKey)
	url, stdout, stderr, done := serveWithVault(t, kv, map[string]string{
		"DVROUTER_KEYVAULT_SECRETS": "DVROUTER_WEBHOOK_KEYS=dvrouter-webhook-keys",
		// What Flex leaves in a setting whose reference it could not resolve.
		"DVROUTER_WEBHOOK_KEYS": "@Microsoft.KeyVault(VaultName=kv;SecretName=dvrouter-webhook-keys)",
	})

	var health *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(url + "/api/health")
		if err == nil {
			health = resp
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer: %v; stderr %s", err, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	health.Body.Close()
	if kv.Reads.Load() != 1 {
		t.Fatalf("the vault was read %d times at start-up, want 1", kv.Reads.Load())
	}

	post := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/dataverse/webhook", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("x-dvrouter-key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != http.StatusUnauthorized {
		t.Errorf("webhook without the key = %d, want 401", got)
	}
	if got := post("@Microsoft.KeyVault(VaultName=kv;SecretName=dvrouter-webhook-keys)"); got != http.StatusUnauthorized {
		t.Errorf("webhook with the reference text as key = %d, want 401", got)
	}
	if got := post(webhookKey); got == http.StatusUnauthorized {
		t.Errorf("webhook with the vault's key = 401; the key from Key Vault is not in use")
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
	if strings.Contains(stdout.String()+stderr.String(), webhookKey) {
		t.Error("the secret's value appears in the log")
	}
}

func TestServe_RotatedVaultSecretIsAppliedWithoutARestart(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	const oldKey, newKey = "first-webhook-key-0123456789", "second-webhook-key-0123456789"
	kv.Set("dvrouter-webhook-keys", oldKey)
	prev := vaultRefresh
	vaultRefresh = 50 * time.Millisecond
	t.Cleanup(func() { vaultRefresh = prev })
	url, stdout, stderr, done := serveWithVault(t, kv, map[string]string{
		"DVROUTER_KEYVAULT_SECRETS": "DVROUTER_WEBHOOK_KEYS=dvrouter-webhook-keys",
	})
	status := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/dataverse/webhook", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-dvrouter-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			select {
			case code := <-done:
				t.Fatalf("serve exited %d: %s", code, stderr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out; log %s", what, stdout)
			}
		}
	}
	waitFor("the first key is accepted", func() bool { s := status(oldKey); return s != 0 && s != http.StatusUnauthorized })

	// A rotation to a value that does not validate (too short) keeps the service as it is.
	kv.Set("dvrouter-webhook-keys", "short")
	waitFor("the invalid rotation is refused", func() bool {
		return strings.Contains(stdout.String(), "the settings they give are invalid: keeping the ones in use")
	})
	if s := status(oldKey); s == http.StatusUnauthorized {
		t.Fatal("an invalid rotation replaced the keys in use")
	}

	kv.Set("dvrouter-webhook-keys", newKey)
	waitFor("the rotated key is accepted", func() bool { s := status(newKey); return s != 0 && s != http.StatusUnauthorized })
	if s := status(oldKey); s != http.StatusUnauthorized {
		t.Errorf("the old key still gets %d after the rotation, want 401", s)
	}
	if !strings.Contains(stdout.String(), "secrets changed in Key Vault: settings reloaded") {
		t.Errorf("no reload line in the log: %s", stdout)
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
	for _, secret := range []string{oldKey, newKey} {
		if strings.Contains(stdout.String()+stderr.String(), secret) {
			t.Error("a secret's value appears in the log")
		}
	}
}

func TestServe_UnreadableVaultSecretStopsStartUpNamingIt(t *testing.T) {
	kv := testenv.StartKeyVault(t)
	_, _, stderr, done := serveWithVault(t, kv, map[string]string{
		"DVROUTER_KEYVAULT_SECRETS": "DVROUTER_ADMIN_KEYS=dvrouter-admin-keys",
	})
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "setting DVROUTER_ADMIN_KEYS: secret dvrouter-admin-keys in "+kv.URL+": not found") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
