package supportapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

// The client against a loopback server that answers the way App Service authentication and
// dvrouter do; the client against the real API is tested with the CLI (cmd_failures_test.go).
func TestClient_SendsCredentialsAndReadsRefusals(t *testing.T) {
	var gotKey, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotAuth = r.Header.Get("x-functions-key"), r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/api/me":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"name":"desk","roles":["reader"],"via":"key"}`))
		case "/api/failures/x/replay":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"operator role required","detail":"desk holds the reader role"}`))
		default: // what App Service authentication does without a session or token
			http.Redirect(w, r, "https://login.microsoftonline.com/tenant/oauth2/v2.0/authorize", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()

	c, err := supportapi.NewClient(srv.URL, "desk-key-0123456789", "token-abc")
	if err != nil {
		t.Fatal(err)
	}
	me, err := c.Me(ctx)
	if err != nil || me.Name != "desk" || len(me.Roles) != 1 || me.Via != "key" {
		t.Fatalf("me: %+v, %v", me, err)
	}
	if gotKey != "desk-key-0123456789" || gotAuth != "Bearer token-abc" {
		t.Errorf("sent key %q, authorization %q", gotKey, gotAuth)
	}
	var apiErr *supportapi.APIError
	if _, err := c.Replay(ctx, "x"); !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(err.Error(), "reader") {
		t.Errorf("replay: %v, want the 403 with its detail", err)
	}
	if _, err := c.List(ctx, supportapi.ListQuery{}); !errors.As(err, &apiErr) || apiErr.Status != 401 || !strings.Contains(err.Error(), "sign-in") {
		t.Errorf("list redirected to sign-in: %v, want a 401 saying so", err)
	}
	if _, err := supportapi.NewClient("ftp://x", "", ""); err == nil {
		t.Error("an ftp endpoint was accepted")
	}
}
