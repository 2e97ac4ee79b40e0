package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// identity is who is calling the support API and what they may do.
type identity struct {
	name string      // recorded as the actor of what they do
	key  string      // the admin key's name, when they used one
	via  string      // supportapi.ViaKey or supportapi.ViaAppService
	role config.Role // the strongest role they hold
}

type identityKey struct{}

func identityOf(r *http.Request) identity {
	id, _ := r.Context().Value(identityKey{}).(identity)
	return id
}

// Headers App Service authentication sets on every request it lets through, after removing any
// a client sent (https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities).
// Nothing else removes them: the Functions host forwards whatever the caller sent, so they are
// read only when the settings say App Service authentication is in front.
const (
	headerPrincipal     = "X-Ms-Client-Principal"
	headerPrincipalName = "X-Ms-Client-Principal-Name"
	maxWhoChars         = 256
)

// authenticate lets a request through only with a known identity, which the handlers behind it
// find with identityOf:
//   - with App Service authentication declared (DVROUTER_APPSERVICE_AUTH), the signed-in user or
//     application in x-ms-client-principal, with the app roles Entra ID gave them;
//   - otherwise, or when no principal is present, an admin key in x-functions-key, compared in
//     constant time against DVROUTER_ADMIN_KEYS (name=key is an operator, name:reader=key a reader).
//
// Principal headers sent without App Service authentication declared are ignored, so a key
// holder cannot write someone else's name into the audit trail.
func authenticate(s *config.Settings, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.AppServiceAuth {
			if raw := r.Header.Get(headerPrincipal); raw != "" {
				id, problem := principalIdentity(raw, r.Header.Get(headerPrincipalName))
				if problem != "" {
					writeError(w, http.StatusUnauthorized, "unauthorized", problem)
					return
				}
				if id.role == "" {
					writeError(w, http.StatusForbidden, "no role",
						id.name+" is signed in but holds neither the reader nor the operator app role of dvrouter's app registration; ask devops to assign one")
					return
				}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
				return
			}
		}
		if len(s.AdminKeys) == 0 {
			if s.AppServiceAuth {
				writeError(w, http.StatusUnauthorized, "unauthorized",
					"sign in first: the request carries no App Service authentication principal")
				return
			}
			writeError(w, http.StatusForbidden, "support API disabled",
				"no admin key is configured and App Service authentication is not declared: set "+config.EnvAdminKeys+
					" (name=key for an operator, name:reader=key for a reader), or "+config.EnvAppServiceAuth+"=true behind App Service authentication")
			return
		}
		k, ok := s.AdminKeyFor(r.Header.Get(supportapi.KeyHeader))
		if !ok {
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"header x-functions-key is missing or matches no key in "+config.EnvAdminKeys)
			return
		}
		role := k.Role
		if role == "" {
			role = config.RoleOperator // the role of name=key, and of keys from before roles existed
		}
		id := identity{name: k.Name, key: k.Name, via: supportapi.ViaKey, role: role}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// requireOperator refuses callers who hold only the reader role.
func requireOperator(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id := identityOf(r); id.role != config.RoleOperator {
			writeError(w, http.StatusForbidden, "operator role required",
				id.name+" holds the reader role: listing and showing failures is allowed, replaying and discarding needs the operator role")
			return
		}
		next(w, r)
	}
}

// clientPrincipal is the decoded x-ms-client-principal: the claims of the user's (or calling
// application's) token, with the claim types App Service uses for the name and the roles.
type clientPrincipal struct {
	AuthType string `json:"auth_typ"`
	NameType string `json:"name_typ"`
	RoleType string `json:"role_typ"`
	Claims   []struct {
		Type  string `json:"typ"`
		Value string `json:"val"`
	} `json:"claims"`
}

// Claim types read from the principal. Entra ID puts app roles in "roles" (one claim per role);
// App Service names its role claim type in role_typ, often the long WS-Federation URI.
const (
	claimRolesShort = "roles"
	claimRoleURI    = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
)

// principalIdentity reads the identity App Service authentication passed on. problem is set
// when the header is not a principal at all.
func principalIdentity(raw, headerName string) (identity, string) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(raw))
	}
	var p clientPrincipal
	if err != nil || json.Unmarshal(b, &p) != nil {
		return identity{}, "header x-ms-client-principal is not the base64 JSON App Service authentication sends"
	}
	claims := map[string][]string{}
	for _, c := range p.Claims {
		claims[c.Type] = append(claims[c.Type], c.Value)
	}
	first := func(types ...string) string {
		for _, t := range types {
			for _, v := range claims[t] {
				if v = clean(v, maxWhoChars); v != "" {
					return v
				}
			}
		}
		return ""
	}
	// The sign-in name (UPN or e-mail) first: it is unique, where a display name is not. An
	// application calling with its own token has neither; its client id names it.
	name := first("preferred_username", "upn", "email", p.NameType, "name")
	if name == "" {
		name = clean(headerName, maxWhoChars)
	}
	if name == "" {
		if app := first("azp", "appid"); app != "" {
			name = "app:" + app
		}
	}
	if name == "" {
		name = first("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
	}
	if name == "" {
		return identity{}, "the App Service authentication principal carries no name, client id or object id"
	}
	roleTypes := []string{claimRolesShort, claimRoleURI}
	if p.RoleType != "" && !slices.Contains(roleTypes, p.RoleType) {
		roleTypes = append(roleTypes, p.RoleType)
	}
	var role config.Role
	for _, t := range roleTypes {
		for _, v := range claims[t] {
			switch config.Role(strings.ToLower(strings.TrimSpace(v))) {
			case config.RoleOperator:
				role = config.RoleOperator
			case config.RoleReader:
				if role == "" {
					role = config.RoleReader
				}
			}
		}
	}
	return identity{name: name, via: supportapi.ViaAppService, role: role}, ""
}

// roleNames lists what a role allows, as /api/me reports it.
func roleNames(r config.Role) []string {
	if r == config.RoleOperator {
		return []string{supportapi.RoleReader, supportapi.RoleOperator}
	}
	return []string{supportapi.RoleReader}
}

// clean keeps a header value fit to record: no control characters, at most n characters.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n])
	}
	return s
}
