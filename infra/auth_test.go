package infra_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAuth_SignInGuardsTheSupportAPIAndNothingElse: App Service authentication requires sign-in,
// and its excluded paths are exactly the functions that authenticate otherwise: every
// invocation the Functions host makes itself (non-HTTP triggers, POST /<Name>), the webhook and
// the health probe. The console and the support API are not excluded.
func TestAuth_SignInGuardsTheSupportAPIAndNothingElse(t *testing.T) {
	text := read(t, "infra/modules/auth.bicep")
	for _, want := range []string{"requireAuthentication: true", "name: 'authsettingsV2'", "'Microsoft.Web/sites/config@"} {
		if !strings.Contains(text, want) {
			t.Errorf("auth.bicep lacks %q", want)
		}
	}
	if !regexp.MustCompile(`tokenStore:\s*\{\s*enabled:\s*false\s*\}`).MatchString(text) {
		t.Error("auth.bicep keeps users' tokens (tokenStore); dvrouter needs only the identity")
	}
	excluded := map[string]bool{}
	loc := regexp.MustCompile(`param excludedPaths array = \[([^\]]*)\]`).FindStringSubmatch(text)
	if loc == nil {
		t.Fatal("auth.bicep has no `param excludedPaths array = [...]`")
	}
	for _, m := range regexp.MustCompile(`'([^']+)'`).FindAllStringSubmatch(loc[1], -1) {
		excluded[m[1]] = true
	}

	dirs, err := os.ReadDir(filepath.Join(root(t), "functions"))
	if err != nil {
		t.Fatal(err)
	}
	wantExcluded := map[string]bool{}
	for _, d := range dirs {
		var fn struct {
			Bindings []struct {
				Type, Direction, Route, AuthLevel string
			}
		}
		b, err := os.ReadFile(filepath.Join(root(t), "functions", d.Name(), "function.json"))
		if err != nil {
			continue
		}
		if err := json.Unmarshal(b, &fn); err != nil {
			t.Fatalf("functions/%s/function.json: %v", d.Name(), err)
		}
		for _, bnd := range fn.Bindings {
			if bnd.Direction != "in" {
				continue
			}
			switch {
			case bnd.Type != "httpTrigger":
				wantExcluded["/"+d.Name()] = true
			case bnd.Route == "dataverse/webhook" || bnd.Route == "health":
				wantExcluded["/api/"+bnd.Route] = true
			default:
				path := "/api/" + strings.Split(bnd.Route, "/")[0]
				if excluded[path] {
					t.Errorf("%s (function %s) is excluded from sign-in", path, d.Name())
				}
			}
		}
	}
	for p := range wantExcluded {
		if !excluded[p] {
			t.Errorf("%s is not excluded from sign-in: the caller has no Entra ID token", p)
		}
	}
	for p := range excluded {
		if !wantExcluded[p] {
			t.Errorf("%s is excluded from sign-in, but no function needs that", p)
		}
	}
}

// TestAuth_PrincipalTrustedExactlyWhenAuthIsDeployed: DVROUTER_APPSERVICE_AUTH, which makes
// dvrouter trust x-ms-client-principal, comes from the same condition that deploys auth.bicep.
func TestAuth_PrincipalTrustedExactlyWhenAuthIsDeployed(t *testing.T) {
	main := read(t, "infra/main.bicep")
	cond := submatch(t, main, `(?m)^module\s+auth\s+'modules/auth\.bicep'\s*=\s*if\s*\((.+)\)\s*\{`)
	passed := submatch(t, main, `(?m)^\s*appServiceAuth:\s*(.+?)\s*$`)
	if cond != passed {
		t.Errorf("auth.bicep is deployed if (%s), but appServiceAuth is %s: the two must be the same", cond, passed)
	}
	app := read(t, "infra/modules/functionapp.bicep")
	if got := submatch(t, app, `(?m)^\s*DVROUTER_APPSERVICE_AUTH:\s*(.+?)\s*$`); got != "appServiceAuth ? 'true' : 'false'" {
		t.Errorf("DVROUTER_APPSERVICE_AUTH is %s, want it from the appServiceAuth parameter", got)
	}
}
