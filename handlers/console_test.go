package handlers_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/console"
)

// The console's files: served anonymously (the page asks for the key itself), with headers
// that keep the page to its own scripts and out of frames. test/console drives the page itself
// in a browser.

func consoleServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: &config.Settings{}, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	return srv
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func TestConsole_ServesEveryFileWithItsTypeAndSecurityHeaders(t *testing.T) {
	srv := consoleServer(t)
	wantType := map[string]string{".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	files := console.Files()
	names, err := fs.Glob(files, "*")
	if err != nil || len(names) < 5 {
		t.Fatalf("console files = %v (%v)", names, err)
	}
	for _, name := range append(names, "") { // "" is the folder itself: index.html
		resp, err := http.Get(srv.URL + "/api/console/" + name)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if name == "" {
			name = "index.html"
		}
		want, _ := fs.ReadFile(files, name)
		if resp.StatusCode != http.StatusOK || string(body) != string(want) {
			t.Errorf("GET %s = %d, %d bytes; want 200 with its %d bytes", name, resp.StatusCode, len(body), len(want))
		}
		ext := name[strings.LastIndex(name, "."):]
		ct := resp.Header.Get("Content-Type")
		if wt := wantType[ext]; wt == "" || !strings.HasPrefix(ct, wt) && !(ext == ".js" && strings.HasPrefix(ct, "application/javascript")) {
			t.Errorf("GET %s: Content-Type %q, want %q", name, ct, wantType[ext])
		}
		checkConsoleHeaders(t, name, resp.Header)
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q; want an ETag and no-cache (revalidate each load)", name, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
		}
	}
}

func checkConsoleHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"frame-ancestors 'none'", "base-uri 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("%s: Content-Security-Policy %q allows unsafe sources", what, csp)
	}
	for name, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
}

func TestConsole_PageHasNoInlineScriptOrStyle(t *testing.T) {
	page, err := fs.ReadFile(console.Files(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	// The CSP would block them; this says which line to fix before a browser says nothing.
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(s, bad) {
			t.Errorf("index.html holds %q: inline script and style are refused by the page's CSP", bad)
		}
	}
}

func TestConsole_UnchangedFileAnswers304(t *testing.T) {
	srv := consoleServer(t)
	resp, err := http.Get(srv.URL + "/api/console/console.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/console/console.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Fatalf("GET with If-None-Match = %d, want 304", again.StatusCode)
	}
}

func TestConsole_RefusesWhatIsNotAFileOrAGet(t *testing.T) {
	srv := consoleServer(t)
	client := &http.Client{CheckRedirect: noRedirect}
	cases := []struct {
		method, path string
		status       int
		location     string
	}{
		{http.MethodGet, "/api/console", http.StatusMovedPermanently, "/api/console/"},
		{http.MethodGet, "/api/console/nope.js", http.StatusNotFound, ""},
		{http.MethodGet, "/api/console/assets/index.html", http.StatusNotFound, ""},
		{http.MethodPost, "/api/console/", http.StatusMethodNotAllowed, ""},
		{http.MethodHead, "/api/console/", http.StatusOK, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Location") != c.location {
			t.Errorf("%s %s = %d Location %q, want %d %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Location"), c.status, c.location)
		}
		checkConsoleHeaders(t, c.method+" "+c.path, resp.Header)
	}
}
