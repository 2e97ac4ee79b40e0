package config

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func getenvOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadSettings_Defaults(t *testing.T) {
	s, err := LoadSettings(getenvOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "127.0.0.1:7071" || s.MaxBody != 1<<20 || s.Queue != "dataverse-events" ||
		s.Tables.Table != "DeliveryFailures" || s.DeliveryBudget != 20*time.Second || s.Mode() != "direct" || s.UnderFunctionsHost ||
		s.BreakerTable != "ConsumerBreakers" || s.BreakerSync != time.Second || s.MetricsInterval != time.Minute {
		t.Fatalf("defaults = %+v", s)
	}
}

func TestLoadSettings_PortPrecedence(t *testing.T) {
	s, err := LoadSettings(getenvOf(map[string]string{EnvCustomHandlerPort: "4000", EnvPort: "5000"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "127.0.0.1:4000" || !s.UnderFunctionsHost {
		t.Fatalf("Addr = %s, under host %v", s.Addr, s.UnderFunctionsHost)
	}
	s, _ = LoadSettings(getenvOf(map[string]string{EnvPort: "5000"}))
	if s.Addr != "127.0.0.1:5000" {
		t.Fatalf("Addr = %s", s.Addr)
	}
}

func TestLoadSettings_QueuedModeAndStores(t *testing.T) {
	s, err := LoadSettings(getenvOf(map[string]string{
		EnvServiceBusNS: "dvr.servicebus.windows.net", EnvServiceBusClient: "id-1",
		EnvTablesURI: "https://acct.table.core.windows.net", EnvTablesClient: "id-1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode() != "queued" || !s.Tables.Configured() || s.Tables.ClientID != "id-1" {
		t.Fatalf("settings = %+v", s)
	}
	s, _ = LoadSettings(getenvOf(map[string]string{EnvTables: "UseDevelopmentStorage=true"}))
	if !strings.Contains(s.Tables.ConnectionString, "TableEndpoint=http://127.0.0.1:10002/") {
		t.Fatalf("UseDevelopmentStorage not expanded: %q", s.Tables.ConnectionString)
	}
}

func TestLoadSettings_Keys(t *testing.T) {
	s, err := LoadSettings(getenvOf(map[string]string{
		EnvWebhookKeys: "0123456789abcdef-old, 0123456789abcdef-new",
		EnvAdminKeys:   "alice=alice-key-0123456789,bob=bob-key-0123456789",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"0123456789abcdef-old", "0123456789abcdef-new"} {
		if !s.WebhookKeyValid(k) {
			t.Errorf("key %q refused", k)
		}
	}
	for _, k := range []string{"", "0123456789abcdef", "0123456789abcdef-ol", "0123456789abcdef-oldx"} {
		if s.WebhookKeyValid(k) {
			t.Errorf("key %q accepted", k)
		}
	}
	if name, ok := s.AdminKeyName("bob-key-0123456789"); !ok || name != "bob" {
		t.Errorf("AdminKeyName = %q, %v", name, ok)
	}
	if _, ok := s.AdminKeyName("alice"); ok {
		t.Error("a key name must not work as a key")
	}
}

func TestLoadSettings_ErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvPort: "http"}, EnvPort},
		{map[string]string{EnvMaxBody: "12"}, EnvMaxBody},
		{map[string]string{EnvDeliveryBudget: "90s"}, EnvDeliveryBudget},
		{map[string]string{EnvDeliveryBudget: "soon"}, EnvDeliveryBudget},
		{map[string]string{EnvWebhookKeys: "short"}, EnvWebhookKeys},
		{map[string]string{EnvAllowedOrgs: "contoso"}, EnvAllowedOrgs},
		{map[string]string{EnvAdminKeys: "no-equals-sign-here"}, EnvAdminKeys},
		{map[string]string{EnvServiceBus: "Endpoint=sb://x/", EnvServiceBusNS: "x.servicebus.windows.net"}, EnvServiceBus},
		{map[string]string{EnvTablesURI: "ftp://x"}, EnvTablesURI},
		{map[string]string{EnvLogLevel: "loud"}, EnvLogLevel},
		{map[string]string{EnvAdminKeys: "ann:admin=ann-key-0123456789"}, "roles are reader and operator"},
		{map[string]string{EnvAdminKeys: "ann=ann-key-0123456789,ann:reader=ann-key-9876543210"}, "used by two keys"},
		{map[string]string{EnvAppServiceAuth: "yes please"}, EnvAppServiceAuth},
		{map[string]string{EnvFailureRetention: "a month"}, EnvFailureRetention},
		{map[string]string{EnvFailureRetention: "30m"}, EnvFailureRetention},
		{map[string]string{EnvFailureRetention: "0d"}, EnvFailureRetention},
		{map[string]string{EnvFailureRetention: "7d", EnvResolvedRetention: "14d"}, EnvResolvedRetention},
		{map[string]string{EnvResolvedRetention: "0"}, EnvResolvedRetention},
		{map[string]string{EnvBreakerTable: "9lives"}, EnvBreakerTable},
		{map[string]string{EnvBreakerTable: "deliveryfailures"}, "a table of their own"},
		{map[string]string{EnvBreakerSync: "1ms"}, EnvBreakerSync},
		{map[string]string{EnvMetricsInterval: "often"}, EnvMetricsInterval},
		{map[string]string{EnvWebhookKeys: "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/webhook-keys/)"}, "Key Vault reference was not resolved"},
	}
	for _, tt := range tests {
		_, err := LoadSettings(getenvOf(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err = %v, want it to mention %s", tt.env, err, tt.want)
		}
	}
}

func TestLoadSettings_ReportsEveryProblem(t *testing.T) {
	_, err := LoadSettings(getenvOf(map[string]string{EnvPort: "x", EnvLogLevel: "loud"}))
	if err == nil || !strings.Contains(err.Error(), EnvPort) || !strings.Contains(err.Error(), EnvLogLevel) {
		t.Fatalf("err = %v, want both settings named", err)
	}
}

func TestLoadSettings_ErrorDoesNotEchoAQueryString(t *testing.T) {
	_, err := LoadSettings(getenvOf(map[string]string{EnvTablesURI: "http://acct.table.core.windows.net/?sv=2024&sig=c2VjcmV0"}))
	if err == nil || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("err = %v, want an error that does not echo the query string", err)
	}
}

func TestLoadSettings_AdminKeyRoles(t *testing.T) {
	s, err := LoadSettings(getenvOf(map[string]string{
		EnvAdminKeys: "ops=ops-key-0123456789, desk:reader=desk-key-0123456789, lead:operator=lead-key-0123456789",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]AdminKey{
		"ops-key-0123456789":  {Name: "ops", Key: "ops-key-0123456789", Role: RoleOperator},
		"desk-key-0123456789": {Name: "desk", Key: "desk-key-0123456789", Role: RoleReader},
		"lead-key-0123456789": {Name: "lead", Key: "lead-key-0123456789", Role: RoleOperator},
	} {
		if got, ok := s.AdminKeyFor(key); !ok || got != want {
			t.Errorf("AdminKeyFor(%s) = %+v, %v; want %+v", key, got, ok, want)
		}
	}
	if _, ok := s.AdminKeyFor("desk"); ok {
		t.Error("a key name must not work as a key")
	}
}

func TestLoadSettings_Retention(t *testing.T) {
	tests := []struct {
		env             map[string]string
		failed, resolve time.Duration
	}{
		{map[string]string{}, 30 * 24 * time.Hour, 30 * 24 * time.Hour},
		{map[string]string{EnvFailureRetention: "0"}, 0, 0},
		{map[string]string{EnvFailureRetention: "90d", EnvResolvedRetention: "7d"}, 90 * 24 * time.Hour, 7 * 24 * time.Hour},
		{map[string]string{EnvFailureRetention: "0", EnvResolvedRetention: "36h"}, 0, 36 * time.Hour},
	}
	for _, tt := range tests {
		s, err := LoadSettings(getenvOf(tt.env))
		if err != nil {
			t.Errorf("%v: %v", tt.env, err)
			continue
		}
		if s.FailureRetention != tt.failed || s.ResolvedRetention != tt.resolve {
			t.Errorf("%v: retention %v / %v, want %v / %v", tt.env, s.FailureRetention, s.ResolvedRetention, tt.failed, tt.resolve)
		}
	}
	s, err := LoadSettings(getenvOf(map[string]string{EnvAppServiceAuth: "true"}))
	if err != nil || !s.AppServiceAuth {
		t.Errorf("%s=true: %v, %v", EnvAppServiceAuth, s, err)
	}
}

func TestLoadSettings_DataverseEnvironments(t *testing.T) {
	s, err := LoadSettings(getenvOf(map[string]string{
		EnvDataverseEnvs: " 2D3B6A62-1B8A-4E2C-9F33-0E5C8A7B4D10=https://contoso.crm4.dynamics.com/ ; fabrikam=https://fabrikam.crm.dynamics.com;https://Adventure.crm.dynamics.com",
		EnvDataverseConc: "4",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"2d3b6a62-1b8a-4e2c-9f33-0e5c8a7b4d10": "https://contoso.crm4.dynamics.com",
		"fabrikam":                             "https://fabrikam.crm.dynamics.com",
		"adventure.crm.dynamics.com":           "https://adventure.crm.dynamics.com",
	}
	if len(s.Dataverse.Environments) != len(want) || s.Dataverse.Concurrency != 4 || !s.Dataverse.Configured() {
		t.Fatalf("dataverse = %+v", s.Dataverse)
	}
	for k, v := range want {
		if s.Dataverse.Environments[k] != v {
			t.Errorf("%s = %q, want %q", k, s.Dataverse.Environments[k], v)
		}
	}
	if d, _ := LoadSettings(getenvOf(nil)); d.Dataverse.Configured() || d.Dataverse.Concurrency != 8 {
		t.Errorf("default = %+v", d.Dataverse)
	}
}

func TestLoadSettings_DataverseEnvironmentsRefused(t *testing.T) {
	for _, v := range []string{"x=contoso.crm.dynamics.com", "x=http://contoso.crm.dynamics.com", "x=https://contoso.crm.dynamics.com/api/data/v9.2",
		"x=https://a.crm.dynamics.com;x=https://b.crm.dynamics.com"} {
		_, err := LoadSettings(getenvOf(map[string]string{EnvDataverseEnvs: v}))
		if err == nil || !strings.Contains(err.Error(), EnvDataverseEnvs) {
			t.Errorf("%q: err = %v", v, err)
		}
	}
	for name, v := range map[string]string{EnvDataverseConc: "100", EnvDataverseClient: "not-a-guid"} {
		if _, err := LoadSettings(getenvOf(map[string]string{name: v})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: err = %v", name, v, err)
		}
	}
}

func TestLoadSettings_DataverseEnvironmentsErrorNamesTheBadEntry(t *testing.T) {
	_, err := LoadSettings(getenvOf(map[string]string{EnvDataverseEnvs: "good=https://a.crm.dynamics.com; erp=contoso.crm4.dynamics.com ; x=https://b.crm.dynamics.com/api"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{EnvDataverseEnvs, `entry "erp=contoso.crm4.dynamics.com"`, `entry "x=https://b.crm.dynamics.com/api"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "good=") {
		t.Errorf("err = %v names a good entry", err)
	}
}

func TestParseDataverseEnvironments_IsWhatLoadSettingsReads(t *testing.T) {
	const v = "Contoso=https://Contoso.crm4.dynamics.com;https://fabrikam.crm.dynamics.com"
	envs, err := ParseDataverseEnvironments(v)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(getenvOf(map[string]string{EnvDataverseEnvs: v}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"contoso": "https://contoso.crm4.dynamics.com", "fabrikam.crm.dynamics.com": "https://fabrikam.crm.dynamics.com"}
	if !maps.Equal(envs, want) || !maps.Equal(s.Dataverse.Environments, want) {
		t.Errorf("parsed %v, settings %v, want %v", envs, s.Dataverse.Environments, want)
	}
}
