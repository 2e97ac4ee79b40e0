package infra_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The roles the template must grant, each on the one resource that needs it (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var requiredRoles = map[string]string{
	"Storage Blob Data Owner":         "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
	"Storage Table Data Contributor":  "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
	"Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
	"Azure Service Bus Data Sender":   "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
	"Key Vault Secrets User":          "4633458b-17de-408a-b874-0445c86b69e6",
	"Monitoring Metrics Publisher":    "3913510d-42f4-4e42-8a64-420c390055eb",
}

// fallbackSettings is what the program reads, used only while local.settings.sample.json does
// not exist yet; the test prefers the file.
var fallbackSettings = []string{
	"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", "ServiceBusConnection",
	"ServiceBusConnection__fullyQualifiedNamespace", "ServiceBusConnection__clientId",
	"DVROUTER_QUEUE", "DVROUTER_ROUTES", "DVROUTER_TABLES", "DVROUTER_TABLES__tableServiceUri",
	"DVROUTER_TABLES__clientId", "DVROUTER_FAILURES_TABLE", "DVROUTER_WEBHOOK_KEYS",
	"DVROUTER_ADMIN_KEYS", "DVROUTER_ALLOWED_ORGS", "DVROUTER_MAX_BODY",
	"DVROUTER_DELIVERY_BUDGET", "DVROUTER_LOG_LEVEL",
}

// azureOnlySettings are set in Azure whatever the sample says: the identity halves of the
// identity-based connections and the Application Insights settings.
var azureOnlySettings = []string{
	"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
	"ServiceBusConnection__fullyQualifiedNamespace", "ServiceBusConnection__credential",
	"ServiceBusConnection__clientId", "DVROUTER_TABLES__tableServiceUri", "DVROUTER_TABLES__clientId",
	"AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

// inAzureAs maps a local connection-string setting to the identity-based form Azure uses.
var inAzureAs = map[string]string{
	"AzureWebJobsStorage":  "AzureWebJobsStorage__accountName",
	"ServiceBusConnection": "ServiceBusConnection__fullyQualifiedNamespace",
	"DVROUTER_TABLES":      "DVROUTER_TABLES__tableServiceUri",
}

// hostLocal are local settings that must not be set on the Function App, and why.
var hostLocal = map[string]string{
	"FUNCTIONS_CUSTOMHANDLER_PORT": "the Functions host sets it",
	"PORT":                         "standalone listen port; under the host FUNCTIONS_CUSTOMHANDLER_PORT is used",
	"FUNCTIONS_WORKER_RUNTIME":     "Elastic Premium only (premiumSettings); Flex takes the runtime from functionAppConfig",
}

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

// infraFiles lists the repository-relative paths of the files under infra/ with the given
// extension.
func infraFiles(t *testing.T, ext string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root(t), "infra"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ext) {
			rel, _ := filepath.Rel(root(t), p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no %s files under infra/", ext)
	}
	return out
}

// runChecker runs infra/check-bicep.mjs with args from the repository root and returns its
// output and exit code.
func runChecker(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runNode(t, "infra/check-bicep.mjs", args...)
}

// runNode runs one of the Node checkers in infra/ from the repository root.
func runNode(t *testing.T, script string, args ...string) (string, int) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; the Bicep checks need Node.js (make test installs the rest with npm ci)")
	}
	for _, need := range []string{"node_modules/web-tree-sitter", "node_modules/tree-sitter-bicep/tree-sitter-bicep.wasm", "node_modules/typescript"} {
		if _, err := os.Stat(filepath.Join(root(t), need)); err != nil {
			t.Fatalf("%s is missing: run `npm ci` at the repository root", need)
		}
	}
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Dir = root(t)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("run %s: %v", script, err)
		return "", -1
	}
}

func TestBicep_EveryFileParses(t *testing.T) {
	out, code := runChecker(t)
	if code != 0 {
		t.Fatalf("check-bicep exit %d:\n%s", code, out)
	}
	want := len(infraFiles(t, ".bicep")) + len(infraFiles(t, ".bicepparam"))
	if !strings.Contains(out, fmt.Sprintf("%d file(s) parse cleanly", want)) {
		t.Errorf("check-bicep did not check all %d files:\n%s", want, out)
	}
}

func TestBicep_CheckerFlagsSyntaxErrors(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		// A property without a value and an unclosed resource body.
		"broken.bicep": "resource s 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n  properties: {\n    allowSharedKeyAccess:\n  }\n",
		// An unterminated string in a parameters file.
		"broken.bicepparam": "using './main.bicep'\n\nparam environmentName = 'dev\n",
		// Typeless assignments are how parameters files look: they must pass.
		"fine.bicepparam": "using './main.bicep'\n\nparam environmentName = 'dev'\nparam tags = {\n  a: 'b'\n}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runChecker(t, dir)
	if code != 1 {
		t.Fatalf("check-bicep exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"broken.bicep:4:", "broken.bicepparam:", "2 of 3 file(s) have syntax errors"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fine.bicepparam") {
		t.Errorf("a valid parameters file was flagged:\n%s", out)
	}
}

// TestTemplate_NoKeysSASOrListFunctions: nothing in the deployment reads or carries a key.
// Bicep function names are case-insensitive, so the match is too.
func TestTemplate_NoKeysSASOrListFunctions(t *testing.T) {
	forbidden := []struct {
		re   *regexp.Regexp
		what string
	}{
		{regexp.MustCompile(`(?i)\blist\w*\(`), "a list* function (listKeys, listSecrets, listAccountSas...)"},
		{regexp.MustCompile(`(?i)AccountKey\s*=`), "a storage account key"},
		{regexp.MustCompile(`(?i)SharedAccessKey`), "a Service Bus SAS key"},
		{regexp.MustCompile(`(?i)\bsig=`), "a SAS signature"},
	}
	files := append(infraFiles(t, ".bicep"), infraFiles(t, ".bicepparam")...)
	files = append(files, ".github/workflows/deploy.yml", "scripts/package.sh")
	for _, f := range files {
		text := read(t, f)
		for i, fb := range forbidden {
			if i == 0 && strings.HasSuffix(f, ".sh") {
				continue // list*( is a Bicep rule; the script's Python has os.listdir(
			}
			if loc := fb.re.FindStringIndex(text); loc != nil {
				t.Errorf("%s:%d: %s: %q", f, lineOf(text, loc[0]), fb.what, text[loc[0]:loc[1]])
			}
		}
	}
}

// TestTemplate_HardeningFlags: each property is set in its module, and wherever it appears
// there it has the hardened value.
func TestTemplate_HardeningFlags(t *testing.T) {
	cases := []struct {
		file, property, value string
	}{
		{"infra/modules/storage.bicep", "allowSharedKeyAccess", "false"},
		{"infra/modules/storage.bicep", "minimumTlsVersion", "'TLS1_2'"},
		{"infra/modules/storage.bicep", "allowBlobPublicAccess", "false"},
		{"infra/modules/storage.bicep", "supportsHttpsTrafficOnly", "true"},
		{"infra/modules/servicebus.bicep", "disableLocalAuth", "true"},
		{"infra/modules/servicebus.bicep", "requiresDuplicateDetection", "true"},
		{"infra/modules/servicebus.bicep", "duplicateDetectionHistoryTimeWindow", "'PT10M'"},
		{"infra/modules/servicebus.bicep", "deadLetteringOnMessageExpiration", "true"},
		{"infra/modules/servicebus.bicep", "maxDeliveryCount", "10"},
		{"infra/modules/monitoring.bicep", "DisableLocalAuth", "true"},
		{"infra/modules/functionapp.bicep", "httpsOnly", "true"},
		{"infra/modules/functionapp.bicep", "minTlsVersion", "'1.2'"},
		{"infra/modules/functionapp.bicep", "ftpsState", "'Disabled'"},
		{"infra/modules/keyvault.bicep", "enableRbacAuthorization", "true"},
	}
	for _, c := range cases {
		t.Run(c.property, func(t *testing.T) {
			text := read(t, c.file)
			re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(c.property) + `\s*:\s*(.+?)\s*$`)
			all := re.FindAllStringSubmatchIndex(text, -1)
			if len(all) == 0 {
				t.Errorf("%s does not set %s", c.file, c.property)
			}
			for _, m := range all {
				if got := text[m[2]:m[3]]; got != c.value {
					t.Errorf("%s:%d: %s: %s, want %s", c.file, lineOf(text, m[0]), c.property, got, c.value)
				}
			}
		})
	}
}

func TestTemplate_FlexRunsTheCustomHandlerRuntime(t *testing.T) {
	text := read(t, "infra/modules/functionapp.bicep")
	runtime := regexp.MustCompile(`runtime:\s*\{\s*name:\s*flexRuntimeName\s*version:\s*flexRuntimeVersion\s*\}`)
	if !runtime.MatchString(text) {
		t.Error("functionAppConfig.runtime is not {name: flexRuntimeName, version: flexRuntimeVersion}")
	}
	// The runtime is a parameter, defaulting to the custom handler's, in the module and in main.
	for _, f := range []string{"infra/modules/functionapp.bicep", "infra/main.bicep"} {
		text := read(t, f)
		for name, def := range map[string]string{"flexRuntimeName": "'custom'", "flexRuntimeVersion": "'1.0'"} {
			if !regexp.MustCompile(`(?m)^param\s+` + name + `\s+string\s*=\s*` + regexp.QuoteMeta(def) + `\s*$`).MatchString(text) {
				t.Errorf("%s: param %s does not default to %s", f, name, def)
			}
		}
	}
	if !strings.Contains(text, "type: 'UserAssignedIdentity'") {
		t.Error("the Flex deployment container is not read with the user-assigned identity")
	}
}

// TestTemplate_LockCoversDeliveryBudget: a message's lock must outlast the time dvrouter may
// spend on it, with room to record failures, or Service Bus redelivers it mid-flight.
func TestTemplate_LockCoversDeliveryBudget(t *testing.T) {
	lockText := submatch(t, read(t, "infra/modules/servicebus.bicep"), `lockDuration:\s*'([^']+)'`)
	budgetText := submatch(t, read(t, "infra/modules/functionapp.bicep"), `DVROUTER_DELIVERY_BUDGET:\s*'([^']+)'`)
	lock, err := isoDuration(lockText)
	if err != nil {
		t.Fatal(err)
	}
	budget, err := time.ParseDuration(budgetText)
	if err != nil {
		t.Fatalf("DVROUTER_DELIVERY_BUDGET %q: %v", budgetText, err)
	}
	if lock < 2*budget {
		t.Errorf("lockDuration %s (%v) is under twice the delivery budget %v", lockText, lock, budget)
	}
}

type block struct {
	symbol, typ, body string
	line              int
}

var resourceDecl = regexp.MustCompile(`(?m)^[ \t]*resource\s+(\w+)\s+'([^']+)'\s*(?:existing\s*)?=\s*(?:\[\s*for\s[^:]*:\s*)?(?:if\s*\([^)]*\)\s*)?\{`)

// resources returns the resource declarations of a Bicep file with their bodies.
func resources(t *testing.T, file, text string) []block {
	t.Helper()
	var out []block
	for _, m := range resourceDecl.FindAllStringSubmatchIndex(text, -1) {
		end, err := closingBrace(text, m[1]-1)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, lineOf(text, m[0]), err)
		}
		out = append(out, block{symbol: text[m[2]:m[3]], typ: text[m[4]:m[5]], body: text[m[1]:end], line: lineOf(text, m[0])})
	}
	return out
}

var (
	guidVar   = regexp.MustCompile(`(?m)^var\s+(\w+)\s*=\s*'([0-9a-fA-F-]{36})'`)
	guidLit   = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	scopeProp = regexp.MustCompile(`(?m)^\s*scope:\s*(.+?)\s*$`)
	ident     = regexp.MustCompile(`\b[A-Za-z_]\w*\b`)
)

// TestTemplate_RolesGrantedOnSpecificResources: each required role is assigned in a
// roleAssignments resource whose scope is a resource declared in the same file, and no role
// assignment anywhere is scoped to the resource group or subscription.
func TestTemplate_RolesGrantedOnSpecificResources(t *testing.T) {
	found := map[string][]string{} // role id -> where
	for _, f := range infraFiles(t, ".bicep") {
		text := read(t, f)
		vars := map[string]string{}
		for _, m := range guidVar.FindAllStringSubmatch(text, -1) {
			vars[m[1]] = strings.ToLower(m[2])
		}
		blocks := resources(t, f, text)
		declared := map[string]bool{}
		for _, b := range blocks {
			declared[b.symbol] = true
		}
		for _, b := range blocks {
			if !strings.HasPrefix(strings.ToLower(b.typ), "microsoft.authorization/roleassignments@") {
				continue
			}
			m := scopeProp.FindStringSubmatch(b.body)
			if m == nil {
				t.Errorf("%s:%d: role assignment %s has no scope (it would apply to the whole resource group)", f, b.line, b.symbol)
				continue
			}
			scope := m[1]
			if !declared[scope] {
				t.Errorf("%s:%d: role assignment %s is scoped to %q, not to a resource declared in %s", f, b.line, b.symbol, scope, f)
				continue
			}
			ids := map[string]bool{}
			for _, g := range guidLit.FindAllString(b.body, -1) {
				ids[strings.ToLower(g)] = true
			}
			for _, id := range ident.FindAllString(b.body, -1) {
				if g, ok := vars[id]; ok {
					ids[g] = true
				}
			}
			for id := range ids {
				found[id] = append(found[id], fmt.Sprintf("%s:%d %s on %s", f, b.line, b.symbol, scope))
			}
		}
	}
	names := make([]string, 0, len(requiredRoles))
	for n := range requiredRoles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if where := found[requiredRoles[n]]; len(where) == 0 {
			t.Errorf("no role assignment of %s (%s) scoped to a resource", n, requiredRoles[n])
		} else {
			t.Logf("%s: %s", n, strings.Join(where, "; "))
		}
	}
}

// settingsBlock returns the keys of the object assigned to `var name = {...}` in text.
func settingsBlock(t *testing.T, file, text, name string) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`(?m)^var\s+` + name + `\s*=\s*\{`)
	loc := re.FindStringIndex(text)
	if loc == nil {
		t.Fatalf("%s has no `var %s = {`", file, name)
	}
	end, err := closingBrace(text, loc[1]-1)
	if err != nil {
		t.Fatalf("%s: var %s: %v", file, name, err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*([A-Za-z_]\w*)\s*:`).FindAllStringSubmatch(text[loc[1]:end], -1) {
		keys[m[1]] = true
	}
	return keys
}

// sampleSettings reads the setting names from local.settings.sample.json, or the fallback
// list while that file does not exist.
func sampleSettings(t *testing.T) ([]string, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "local.settings.sample.json"))
	if errors.Is(err, os.ErrNotExist) {
		return fallbackSettings, "fallback list (local.settings.sample.json does not exist yet)"
	}
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		Values map[string]string
	}
	if err := json.Unmarshal(b, &sample); err != nil {
		t.Fatalf("local.settings.sample.json: %v", err)
	}
	if len(sample.Values) == 0 {
		t.Fatal("local.settings.sample.json has no Values")
	}
	var names []string
	for n := range sample.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, "local.settings.sample.json"
}

// TestFunctionApp_SetsEverySettingTheProgramReads compares the sample settings (what the
// program reads) with the Function App's settings.
func TestFunctionApp_SetsEverySettingTheProgramReads(t *testing.T) {
	const file = "infra/modules/functionapp.bicep"
	text := read(t, file)
	common := settingsBlock(t, file, text, "appSettings")
	premium := settingsBlock(t, file, text, "premiumSettings")

	names, source := sampleSettings(t)
	t.Logf("settings from %s", source)
	for _, n := range append(names, azureOnlySettings...) {
		if why, ok := hostLocal[n]; ok {
			if common[n] {
				t.Errorf("%s is set on every plan, but must not be: %s", n, why)
			}
			continue
		}
		want := n
		if az, ok := inAzureAs[n]; ok {
			want = az
			if common[n] || premium[n] {
				t.Errorf("%s is set as a connection string; Azure uses the identity-based %s", n, az)
			}
		}
		if !common[want] {
			t.Errorf("%s (from %s) is not set in %s appSettings", want, source, file)
		}
	}
}

func TestFunctionApp_WorkerRuntimeOnlyOnElasticPremium(t *testing.T) {
	const file = "infra/modules/functionapp.bicep"
	text := read(t, file)
	if !settingsBlock(t, file, text, "premiumSettings")["FUNCTIONS_WORKER_RUNTIME"] {
		t.Error("premiumSettings lacks FUNCTIONS_WORKER_RUNTIME (Elastic Premium needs custom)")
	}
	if settingsBlock(t, file, text, "appSettings")["FUNCTIONS_WORKER_RUNTIME"] {
		t.Error("FUNCTIONS_WORKER_RUNTIME is in the settings of every plan; Flex Consumption refuses it")
	}
	if n := strings.Count(text, "FUNCTIONS_WORKER_RUNTIME:"); n != 1 {
		t.Errorf("FUNCTIONS_WORKER_RUNTIME is set %d times, want once (premiumSettings)", n)
	}
	if !regexp.MustCompile(`isFlex \? \{\} : premiumSettings`).MatchString(text) {
		t.Error("premiumSettings is not applied only when the plan is not Flex")
	}
}

var paramDecl = regexp.MustCompile(`(?m)^param\s+(\w+)\s+[^\n=]+?(=)?[^\n=]*$`)

// TestParamFiles_UseMainAndSetOnlyItsParameters: the bicepparam files are checked by meaning
// here, since the grammar cannot check them.
func TestParamFiles_UseMainAndSetOnlyItsParameters(t *testing.T) {
	main := read(t, "infra/main.bicep")
	declared := map[string]bool{}
	var required []string
	for _, m := range paramDecl.FindAllStringSubmatch(main, -1) {
		declared[m[1]] = true
		if m[2] == "" {
			required = append(required, m[1])
		}
	}
	if len(declared) == 0 {
		t.Fatal("no parameters found in main.bicep")
	}
	for _, env := range []string{"dev", "prod"} {
		f := "infra/" + env + ".bicepparam"
		text := read(t, f)
		if !regexp.MustCompile(`(?m)^using\s+'\./main\.bicep'\s*$`).MatchString(text) {
			t.Errorf("%s does not start from `using './main.bicep'`", f)
		}
		set := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^param\s+(\w+)\s*=`).FindAllStringSubmatch(text, -1) {
			set[m[1]] = true
			if !declared[m[1]] {
				t.Errorf("%s sets %s, which main.bicep does not declare", f, m[1])
			}
		}
		for _, r := range required {
			if !set[r] {
				t.Errorf("%s does not set %s, which main.bicep requires", f, r)
			}
		}
		if got := submatch(t, text, `(?m)^param\s+environmentName\s*=\s*'([^']*)'`); got != env {
			t.Errorf("%s: environmentName %q, want %q", f, got, env)
		}
	}
}

func TestMain_Outputs(t *testing.T) {
	text := read(t, "infra/main.bicep")
	for _, name := range []string{"functionAppName", "webhookUrl", "failuresApiUrl", "queueName"} {
		if !regexp.MustCompile(`(?m)^output\s+` + name + `\s`).MatchString(text) {
			t.Errorf("main.bicep has no output %s", name)
		}
	}
	webhook := submatch(t, text, `(?m)^output\s+webhookUrl\s+string\s*=\s*'([^']*)'`)
	if !strings.HasSuffix(webhook, "/api/dataverse/webhook") || strings.Contains(webhook, "code=") {
		t.Errorf("webhookUrl %q: want https://<host>/api/dataverse/webhook with no key", webhook)
	}
}

func TestWorkflow_FederatedLoginTestPackageDeploy(t *testing.T) {
	text := read(t, ".github/workflows/deploy.yml")
	for _, want := range []string{
		"id-token: write", "contents: read", "azure/login@", "client-id:", "tenant-id:", "subscription-id:",
		"make test", "make package", "az deployment group create", "infra/main.bicep", ".bicepparam",
		"az functionapp deployment source config-zip", "environment:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("deploy.yml lacks %q", want)
		}
	}
	for _, bad := range []string{"client-secret", "creds:", "publish-profile"} {
		if strings.Contains(text, bad) {
			t.Errorf("deploy.yml uses %q: deployments must log in with OIDC, not a stored secret", bad)
		}
	}
}

var moduleDecl = regexp.MustCompile(`(?m)^[ \t]*module\s+(\w+)\s+'([^']+)'\s*=\s*(?:\[\s*for\s[^:]*:\s*)?(?:if\s*\([^)]*\)\s*)?\{`)

// TestModules_GetExactlyTheirParameters: every module call passes only parameters the module
// declares, and every parameter the module requires (the compiler's check, done offline).
func TestModules_GetExactlyTheirParameters(t *testing.T) {
	calls := 0
	for _, f := range infraFiles(t, ".bicep") {
		text := read(t, f)
		for _, m := range moduleDecl.FindAllStringSubmatchIndex(text, -1) {
			calls++
			name, path := text[m[2]:m[3]], text[m[4]:m[5]]
			end, err := closingBrace(text, m[1]-1)
			if err != nil {
				t.Fatalf("%s:%d: %v", f, lineOf(text, m[0]), err)
			}
			body := text[m[1]:end]
			loc := regexp.MustCompile(`(?m)^\s*params:\s*\{`).FindStringIndex(body)
			if loc == nil {
				t.Errorf("%s:%d: module %s has no params", f, lineOf(text, m[0]), name)
				continue
			}
			pend, err := closingBrace(body, loc[1]-1)
			if err != nil {
				t.Fatalf("%s: module %s params: %v", f, name, err)
			}
			passed := topLevelKeys(body[loc[1]:pend])

			target := filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
			declared := map[string]bool{}
			for _, d := range paramDecl.FindAllStringSubmatch(read(t, target), -1) {
				declared[d[1]] = d[2] != ""
			}
			for _, p := range passed {
				if _, ok := declared[p]; !ok {
					t.Errorf("%s: module %s passes %s, which %s does not declare", f, name, p, target)
				}
			}
			for p, hasDefault := range declared {
				if !hasDefault && !slices.Contains(passed, p) {
					t.Errorf("%s: module %s does not pass %s, which %s requires", f, name, p, target)
				}
			}
		}
	}
	if calls == 0 {
		t.Fatal("no module calls found")
	}
}

// topLevelKeys returns the property names at the outer level of an object body.
func topLevelKeys(body string) []string {
	var keys []string
	depth := 0
	key := regexp.MustCompile(`^\s*([A-Za-z_]\w*)\s*:`)
	for _, line := range strings.Split(body, "\n") {
		if m := key.FindStringSubmatch(line); m != nil && depth == 0 {
			keys = append(keys, m[1])
		}
		depth += strings.Count(line, "{") + strings.Count(line, "[") - strings.Count(line, "}") - strings.Count(line, "]")
	}
	return keys
}

// closingBrace returns the index of the brace that closes the one at open, skipping Bicep
// strings ('...' with \ escapes, ”'...”') and comments.
func closingBrace(text string, open int) (int, error) {
	depth := 0
	for i := open; i < len(text); i++ {
		switch {
		case strings.HasPrefix(text[i:], "'''"):
			end := strings.Index(text[i+3:], "'''")
			if end < 0 {
				return 0, errors.New("unterminated ''' string")
			}
			i += 3 + end + 2
		case text[i] == '\'':
			for i++; i < len(text) && text[i] != '\''; i++ {
				if text[i] == '\\' {
					i++
				}
			}
		case strings.HasPrefix(text[i:], "//"):
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return 0, errors.New("unterminated comment")
			}
			i += 2 + end + 1
		case text[i] == '{':
			depth++
		case text[i] == '}':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, errors.New("unbalanced braces")
}

func lineOf(text string, offset int) int { return strings.Count(text[:offset], "\n") + 1 }

func submatch(t *testing.T, text, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no match for %s", pattern)
	}
	return m[1]
}

// isoDuration parses the ISO 8601 durations ARM uses for times of day (PT1M, PT2H30M, PT45S).
func isoDuration(s string) (time.Duration, error) {
	m := regexp.MustCompile(`^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$`).FindStringSubmatch(s)
	if m == nil || s == "PT" {
		return 0, fmt.Errorf("%q is not an ISO 8601 time duration", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * unit
		}
	}
	return d, nil
}
