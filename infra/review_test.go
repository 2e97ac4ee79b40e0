package infra_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
)

// Rules from a review of the template against Microsoft's Flex Consumption and Functions
// documentation; infra/README.md cites the pages.

// paramBlock returns the decorators and declaration of one parameter.
func paramBlock(t *testing.T, file, text, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)((?:@[^\n]*\n(?:[ \t]+[^\n]*\n|\]\)\n)*)*)param\s+` + name + `\s[^\n]*`).FindString(text)
	if m == "" {
		t.Fatalf("%s declares no param %s", file, name)
	}
	return m
}

func TestTemplate_FlexMaximumInstanceCountIsAtLeast40(t *testing.T) {
	for _, f := range []string{"infra/main.bicep", "infra/modules/functionapp.bicep"} {
		p := paramBlock(t, f, read(t, f), "maximumInstanceCount")
		if !strings.Contains(p, "@minValue(40)") || !strings.Contains(p, "@maxValue(1000)") {
			t.Errorf("%s: maximumInstanceCount must be @minValue(40) @maxValue(1000) (Flex's limits):\n%s", f, p)
		}
	}
}

// TestTemplate_PremiumOnlySiteSettingsStayInThePremiumBranch: Flex Consumption does not use
// these siteConfig settings, so they are set only when the plan is not Flex.
func TestTemplate_PremiumOnlySiteSettingsStayInThePremiumBranch(t *testing.T) {
	const file = "infra/modules/functionapp.bicep"
	text := read(t, file)
	loc := regexp.MustCompile(`siteConfig:\s*union\(\{`).FindStringIndex(text)
	if loc == nil {
		t.Fatalf("%s: siteConfig is not union({every plan}, isFlex ? {} : {Premium})", file)
	}
	common, err := closingBrace(text, loc[1]-1)
	if err != nil {
		t.Fatal(err)
	}
	rest := text[common:]
	branch := regexp.MustCompile(`^\},\s*isFlex\s*\?\s*\{\}\s*:\s*\{`).FindStringIndex(rest)
	if branch == nil {
		t.Fatalf("%s: siteConfig's second argument is not isFlex ? {} : {...}", file)
	}
	premEnd, err := closingBrace(rest, branch[1]-1)
	if err != nil {
		t.Fatal(err)
	}
	everyPlan, premium := text[loc[1]:common], rest[branch[1]:premEnd]
	for _, key := range []string{"ftpsState", "vnetRouteAllEnabled", "functionsRuntimeScaleMonitoringEnabled"} {
		if regexp.MustCompile(`(?m)^\s*` + key + `:`).MatchString(everyPlan) {
			t.Errorf("%s: siteConfig.%s is set on every plan; Flex does not use it", file, key)
		}
		if !regexp.MustCompile(`(?m)^\s*` + key + `:`).MatchString(premium) {
			t.Errorf("%s: siteConfig.%s is missing from the Elastic Premium branch", file, key)
		}
	}
	if !strings.Contains(everyPlan, "minTlsVersion: '1.2'") {
		t.Errorf("%s: minTlsVersion '1.2' must apply to every plan", file)
	}
}

// TestFunctionApp_NoTimeZoneSettingOnFlex: Flex Consumption does not support WEBSITE_TIME_ZONE
// or TZ, so a timer schedule cannot lean on them there.
func TestFunctionApp_NoTimeZoneSettingOnFlex(t *testing.T) {
	const file = "infra/modules/functionapp.bicep"
	common := settingsBlock(t, file, read(t, file), "appSettings")
	for _, s := range []string{"WEBSITE_TIME_ZONE", "TZ"} {
		if common[s] {
			t.Errorf("%s is in the settings of every plan; Flex Consumption does not support it", s)
		}
	}
}

func TestStorage_DeployerPrincipalTypeIsAParameter(t *testing.T) {
	for _, f := range []string{"infra/main.bicep", "infra/modules/storage.bicep"} {
		text := read(t, f)
		p := paramBlock(t, f, text, "deployerPrincipalType")
		for _, v := range []string{"'User'", "'Group'", "'ServicePrincipal'"} {
			if !strings.Contains(p, v) {
				t.Errorf("%s: deployerPrincipalType does not allow %s:\n%s", f, v, p)
			}
		}
		if !strings.Contains(p, "= 'ServicePrincipal'") {
			t.Errorf("%s: deployerPrincipalType should default to ServicePrincipal (the pipeline)", f)
		}
	}
	text := read(t, "infra/modules/storage.bicep")
	if !regexp.MustCompile(`principalId:\s*deployerPrincipalId\s*\n\s*principalType:\s*deployerPrincipalType`).MatchString(text) {
		t.Error("the deployer's role assignment does not use deployerPrincipalType")
	}
	if !strings.Contains(read(t, "infra/main.bicep"), "deployerPrincipalType: deployerPrincipalType") {
		t.Error("main.bicep does not pass deployerPrincipalType to the storage module")
	}
}

func TestServiceBus_TriggerRoleReceiverOrOwner(t *testing.T) {
	const file = "infra/modules/servicebus.bicep"
	text := read(t, file)
	p := paramBlock(t, file, text, "triggerRole")
	if !strings.Contains(p, "'Receiver'") || !strings.Contains(p, "'Owner'") || !strings.Contains(p, "= 'Receiver'") {
		t.Errorf("triggerRole must allow Receiver and Owner and default to Receiver:\n%s", p)
	}
	for _, want := range []string{
		"var serviceBusDataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419'",
		"resource receiverRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (triggerRole == 'Receiver') {",
		"resource ownerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (triggerRole == 'Owner') {",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
	if !strings.Contains(read(t, "infra/main.bicep"), "triggerRole: serviceBusTriggerRole") {
		t.Error("main.bicep does not pass serviceBusTriggerRole to the Service Bus module")
	}
}

// TestFunctionApp_PrivateNetworkingReadsSecretsInTheApp: with private networking the app
// gets the vault settings pkg/config reads, and no Key Vault reference for those secrets.
func TestFunctionApp_PrivateNetworkingReadsSecretsInTheApp(t *testing.T) {
	const file = "infra/modules/functionapp.bicep"
	text := read(t, file)
	if !strings.Contains(text, "var secretsReadByApp = integrated") {
		t.Errorf("%s: secrets are not read by the app when the app is integrated into the network", file)
	}
	vault := settingsBlock(t, file, text, "vaultSettings")
	for _, name := range []string{config.EnvKeyVaultURI, config.EnvKeyVaultClientID, config.EnvKeyVaultSecrets, config.EnvKeyVaultRefresh} {
		if !vault[name] {
			t.Errorf("%s: vaultSettings lacks %s", file, name)
		}
	}
	for _, want := range []string{
		"DVROUTER_KEYVAULT_URI: keyVaultUri",
		"DVROUTER_KEYVAULT_CLIENT_ID: identityClientId",
		"'DVROUTER_WEBHOOK_KEYS=${webhookKeysSecret}'",
		"'DVROUTER_ADMIN_KEYS=${adminKeysSecret}'",
		"map(consumerSecrets, setting => '${setting}=${replace(setting, '_', '-')}')",
		"DVROUTER_ADMIN_KEYS: secretsReadByApp ? '' :",
		"requireWebhookHeaderKey && !secretsReadByApp ?",
		"var consumerSecretSettings = secretsReadByApp ? {} :",
		"union(appSettings, isFlex ? {} : premiumSettings, consumerSecretSettings, secretsReadByApp ? vaultSettings : {})",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
	// The identity may read the secrets: Key Vault Secrets User on the vault.
	if !strings.Contains(read(t, "infra/modules/keyvault.bicep"), "resource secretsUserRole") {
		t.Error("keyvault.bicep grants no Key Vault Secrets User to the app")
	}
}

// TestDeploy_PremiumSyncsTriggersAfterRestart: after a package upload and restart, Elastic
// Premium must be told to sync triggers, in the workflow and in the README's manual steps.
func TestDeploy_PremiumSyncsTriggersAfterRestart(t *testing.T) {
	for _, f := range []string{".github/workflows/deploy.yml", "infra/README.md"} {
		text := read(t, f)
		upload := strings.Index(text, "az storage blob upload")
		restart := strings.Index(text, "az functionapp restart")
		sync := strings.Index(text, "syncfunctiontriggers")
		if upload < 0 || restart < upload || sync < restart {
			t.Errorf("%s: want the package upload, then az functionapp restart, then a syncfunctiontriggers call (at %d, %d, %d)", f, upload, restart, sync)
		}
	}
}
