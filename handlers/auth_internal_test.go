package handlers

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
)

func encode(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestPrincipalIdentity(t *testing.T) {
	tests := []struct {
		name, principal, header string
		wantName                string
		wantRole                config.Role
		wantProblem             string
	}{
		{"user with both roles", encode(`{"auth_typ":"aad","claims":[{"typ":"name","val":"Ann Lee"},{"typ":"preferred_username","val":"ann@contoso.com"},{"typ":"roles","val":"reader"},{"typ":"roles","val":"operator"}],"role_typ":"roles"}`),
			"", "ann@contoso.com", config.RoleOperator, ""},
		{"roles under the long claim type App Service may name", encode(`{"claims":[{"typ":"preferred_username","val":"bo@contoso.com"},{"typ":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role","val":"Reader"}],"role_typ":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}`),
			"", "bo@contoso.com", config.RoleReader, ""},
		{"name from the header when no claim has one", encode(`{"claims":[{"typ":"roles","val":"reader"}]}`),
			"cy@contoso.com", "cy@contoso.com", config.RoleReader, ""},
		{"an application with its own token", encode(`{"claims":[{"typ":"azp","val":"6f1c2b3a-0000-4000-8000-000000000001"},{"typ":"roles","val":"operator"}]}`),
			"", "app:6f1c2b3a-0000-4000-8000-000000000001", config.RoleOperator, ""},
		{"an unknown role grants nothing", encode(`{"claims":[{"typ":"preferred_username","val":"di@contoso.com"},{"typ":"roles","val":"admin"}]}`),
			"", "di@contoso.com", "", ""},
		{"control characters are dropped from the name", encode(`{"claims":[{"typ":"preferred_username","val":"ed\u001b[2J@contoso.com"},{"typ":"roles","val":"reader"}]}`),
			"", "ed[2J@contoso.com", config.RoleReader, ""},
		{"unpadded base64", strings.TrimRight(encode(`{"claims":[{"typ":"preferred_username","val":"fi@contoso.com"}]}`), "="),
			"", "fi@contoso.com", "", ""},
		{"not base64", "%%%", "", "", "", "x-ms-client-principal"},
		{"not JSON", encode("hello"), "", "", "", "x-ms-client-principal"},
		{"nobody", encode(`{"claims":[]}`), "", "", "", "no name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, problem := principalIdentity(tc.principal, tc.header)
			if tc.wantProblem != "" {
				if !strings.Contains(problem, tc.wantProblem) {
					t.Errorf("problem %q, want one mentioning %q", problem, tc.wantProblem)
				}
				return
			}
			if problem != "" || id.name != tc.wantName || id.role != tc.wantRole || id.via != "appservice" {
				t.Errorf("got %+v %q, want name %q role %q", id, problem, tc.wantName, tc.wantRole)
			}
		})
	}
}

// FuzzPrincipalIdentity: whatever a principal header holds, reading it never panics, and an
// identity it yields has a name and a known role or none.
func FuzzPrincipalIdentity(f *testing.F) {
	f.Add(encode(`{"claims":[{"typ":"preferred_username","val":"ann@contoso.com"},{"typ":"roles","val":"operator"}],"role_typ":"roles"}`), "")
	f.Add(encode(`{"claims":null}`), "x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, principal, header string) {
		id, problem := principalIdentity(principal, header)
		if problem != "" {
			return
		}
		if id.name == "" || len([]rune(id.name)) > maxWhoChars+4 {
			t.Fatalf("identity without a fit name: %+v", id)
		}
		switch id.role {
		case "", config.RoleReader, config.RoleOperator:
		default:
			t.Fatalf("unknown role %q", id.role)
		}
	})
}
