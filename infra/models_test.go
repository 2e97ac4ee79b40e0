package infra_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The model check (check-models.mjs) reads Azure's management SDK models and checks every key
// and literal enum value of every resource body against them: what a Bicep compiler would
// refuse, found without one.

func TestBicep_MatchesTheSDKModels(t *testing.T) {
	out, code := runNode(t, "infra/check-models.mjs", "--verbose")
	if code != 0 {
		t.Fatalf("check-models exit %d:\n%s", code, out)
	}
	want := 0
	for _, f := range infraFiles(t, ".bicep") {
		want += len(regexp.MustCompile(`(?m)^resource\s`).FindAllStringIndex(read(t, f), -1))
	}
	if !strings.Contains(out, fmt.Sprintf("check-models: %d resource(s) in %d file(s) match the SDK models", want, len(infraFiles(t, ".bicep")))) {
		t.Errorf("check-models did not check all %d resources:\n%s", want, out)
	}
	// Where the SDK is older than the template's API version, the checker says what it used.
	for _, want := range []string{
		"Microsoft.ServiceBus/namespaces@2024-01-01 checked with @azure/arm-servicebus@6.1.0 SBNamespace (API 2021-11-01, older than the template's 2024-01-01; later keys from",
		"Microsoft.Insights/components@2020-02-02 checked with @azure/arm-appinsights@4.0.0 ApplicationInsightsComponent (API 2018-05-01-preview, older",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verbose output lacks %q:\n%s", want, out)
		}
	}
}

// authSample is an App Service authentication resource of the shape the auth module uses:
// Microsoft.Web/sites/config named authsettingsV2, with its timer-like settings (cookie and
// nonce lifetimes, token refresh hours).
const authSample = `param appName string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: appName
}

resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: 'https://sts.windows.net/${tenant().tenantId}/v2.0'
          clientId: '00000000-0000-0000-0000-000000000000'
        }
        validation: {
          allowedAudiences: [
            'api://dvrouter'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: true
        tokenRefreshExtensionHours: 72
      }
      cookieExpiration: {
        convention: 'FixedTime'
        timeToExpiration: '08:00:00'
      }
      nonce: {
        validateNonce: true
        nonceExpirationInterval: '00:05:00'
      }
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
  }
}
`

// extraSample holds resource types the template does not use today but modules may add: each
// read through a different kind of SDK package (TypeSpec serializers, CommonJS AutoRest mappers).
const extraSample = `resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: 'kv'
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'example'
  properties: {
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}

resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: 'id'
}

resource github 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: id
  name: 'github'
  properties: {
    issuer: 'https://token.actions.githubusercontent.com'
    subject: 'repo:owner/repo:environment:prod'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}
`

// plant is one error written into a copy of infra/: the text replaced (which must occur
// exactly once, so the test cannot pass by planting nothing) and what the checker must say.
type plant struct {
	file, old, new string
	want           string
}

func TestBicep_ModelCheckFindsPlantedErrors(t *testing.T) {
	plants := []plant{
		// A misspelt key.
		{"infra/modules/storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAcess: false",
			"properties.allowSharedKeyAcess: unknown key in StorageAccountCreateParameters; nearest known name 'allowSharedKeyAccess'"},
		// A key one level too deep: the account's TLS floor written inside its network rules.
		{"infra/modules/storage.bicep", "      bypass: 'AzureServices'\n", "      bypass: 'AzureServices'\n      minimumTlsVersion: 'TLS1_2'\n",
			"properties.networkAcls.minimumTlsVersion: unknown key in NetworkRuleSet; the resource has minimumTlsVersion at properties.minimumTlsVersion"},
		// A key one level too deep: Flex's instance count outside scaleAndConcurrency.
		{"infra/modules/functionapp.bicep", "      scaleAndConcurrency: {\n        maximumInstanceCount: maximumInstanceCount\n", "      maximumInstanceCount: 40\n      scaleAndConcurrency: {\n",
			"properties.functionAppConfig.maximumInstanceCount: unknown key in FunctionAppConfig; the resource has maximumInstanceCount at properties.functionAppConfig.scaleAndConcurrency.maximumInstanceCount"},
		// An envelope key inside properties.
		{"infra/modules/servicebus.bicep", "    disableLocalAuth: true\n", "    disableLocalAuth: true\n    sku: 'Premium'\n",
			"properties.sku: one level too deep; sku belongs beside properties, not in it"},
		// A wrong enum value (a string-literal union in an AutoRest package).
		{"infra/modules/storage.bicep", "    accessTier: 'Hot'", "    accessTier: 'Hott'",
			"properties.accessTier: 'Hott' is not a value of AccessTier"},
		// A wrong value of an extensible enum (KnownFtpsState).
		{"infra/modules/functionapp.bicep", "ftpsState: 'Disabled'", "ftpsState: 'Off'",
			"properties.siteConfig.ftpsState: 'Off' is not a value of FtpsState (AllAllowed, FtpsOnly, Disabled)"},
		// A string where the model wants a number.
		{"infra/modules/functionapp.bicep", "instanceMemoryMB: 2048", "instanceMemoryMB: '2048'",
			"properties.functionAppConfig.scaleAndConcurrency.instanceMemoryMB: a number is expected; given a string"},
		// A key the newer API added, misspelt: checked by the later-keys list, not the old SDK.
		{"infra/modules/servicebus.bicep", "premiumMessagingPartitions: 1", "premiumMessagingPartition: 1",
			"properties.premiumMessagingPartition: unknown key in SBNamespace; nearest known name 'premiumMessagingPartitions'"},
		// A wire name the SDK renames for JavaScript (networkAcls is networkRuleSet there).
		{"infra/modules/keyvault.bicep", "    enableRbacAuthorization: true", "    enableRbacAuthorisation: true",
			"properties.enableRbacAuthorisation: unknown key in VaultProperties; nearest known name 'enableRbacAuthorization'"},
		// The authentication settings: a wrong enum value and a timer setting of the wrong type.
		{"infra/modules/auth-sample.bicep", "convention: 'FixedTime'", "convention: 'FixedTme'",
			"properties.login.cookieExpiration.convention: 'FixedTme' is not a value of CookieExpirationConvention (FixedTime, IdentityProviderDerived); nearest 'FixedTime'"},
		{"infra/modules/auth-sample.bicep", "tokenRefreshExtensionHours: 72", "tokenRefreshExtensionHours: '72h'",
			"properties.login.tokenStore.tokenRefreshExtensionHours: a number is expected; given a string"},
		// Keys of models read from CommonJS AutoRest mappers and TypeSpec serializers.
		{"infra/modules/extra-sample.bicep", "    audiences: [", "    audience: [",
			"properties.audience: unknown key in FederatedIdentityCredential; nearest known name 'audiences'"},
		{"infra/modules/extra-sample.bicep", "    contentType: 'text/plain'", "    contentTyp: 'text/plain'",
			"properties.contentTyp: unknown key in SecretProperties; nearest known name 'contentType'"},
		{"infra/modules/auth-sample.bicep", "    globalValidation: {\n      requireAuthentication: true\n", "    globalValidation: {\n      requireAuthentication: true\n      requireHttps: true\n",
			"properties.globalValidation.requireHttps: unknown key in GlobalValidation; the resource has requireHttps at properties.httpSettings.requireHttps"},
	}

	// A clean copy with the auth sample passes first: the sample itself is right.
	dir := copyInfra(t, map[string]string{"infra/modules/auth-sample.bicep": authSample, "infra/modules/extra-sample.bicep": extraSample})
	if out, code := runNode(t, "infra/check-models.mjs", filepath.Join(dir, "infra")); code != 0 {
		t.Fatalf("the unplanted copy has findings (exit %d):\n%s", code, out)
	}

	for _, p := range plants {
		path := filepath.Join(dir, filepath.FromSlash(p.file))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), p.old); n != 1 {
			t.Fatalf("%s: %q occurs %d times; the plant needs exactly one", p.file, p.old, n)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), p.old, p.new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runNode(t, "infra/check-models.mjs", filepath.Join(dir, "infra"))
	if code != 1 {
		t.Fatalf("check-models exit %d, want 1:\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, p := range plants {
		// Each finding names the planted file and the line of the planted key: the first line
		// of the new text that the old text does not have.
		text, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p.file)))
		at := strings.Index(string(text), p.new)
		for _, l := range strings.SplitAfter(p.new, "\n") {
			if !strings.Contains(p.old, strings.TrimSpace(l)) {
				break
			}
			at += len(l)
		}
		line := lineOf(string(text), at)
		prefix := fmt.Sprintf("%s:%d:", filepath.Base(p.file), line)
		found := false
		for _, l := range lines {
			if strings.Contains(l, "/"+prefix) && strings.Contains(l, p.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no finding %s ... %q in:\n%s", prefix, p.want, out)
		}
	}
	if want := fmt.Sprintf("check-models: %d finding(s)", len(plants)); !strings.Contains(out, want) {
		t.Errorf("want exactly the %d planted findings:\n%s", len(plants), out)
	}
}

// copyInfra copies infra/*.bicep (and modules) into a temporary folder laid out like the
// repository, plus extra files, and returns the folder.
func copyInfra(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range infraFiles(t, ".bicep") {
		files[f] = read(t, f)
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
