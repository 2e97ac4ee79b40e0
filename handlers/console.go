package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// consolePath is where the support console is served: the Console function's route
// (console/{*path}) under the host's "api" prefix, and the same path under `dvrouter serve`.
const consolePath = "/api/console/"

// consoleCSP lets the page load its own scripts, styles and API answers and nothing else: no
// inline script or style, no other origin, no plug-ins, no framing. Trusted Types with no
// policy make any HTML sink (innerHTML and the like) throw, so a value from the API can only
// ever be shown as text. (Content Security Policy Level 3 and Trusted Types, W3C.)
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// consoleFile is one file of the console, read once at start-up.
type consoleFile struct {
	body        []byte
	contentType string
	etag        string
}

// consoleFiles serves the console's files under consolePath with strict security headers. It
// only serves files: the page calls the failures API like any other client.
type consoleFiles struct {
	files map[string]consoleFile
}

// consoleTypes are the content types of the console's files, as Go's built-in table
// (mime.TypeByExtension) has them. Not mime.TypeByExtension itself: its first call loads the
// machine's MIME database (/usr/share/mime/globs2 and the like) into the heap for the life of
// the process, about 450 KB of small maps that every garbage collection then marks, which made
// each webhook request pay for it (docs/performance.md).
var consoleTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".ico":  "image/vnd.microsoft.icon",
	".js":   "text/javascript; charset=utf-8",
	".json": "application/json",
	".mjs":  "text/javascript; charset=utf-8",
	".png":  "image/png",
	".svg":  "image/svg+xml",
	".txt":  "text/plain; charset=utf-8",
	".wasm": "application/wasm",
	".webp": "image/webp",
}

// newConsole reads every file of files once. Those are embedded in the binary (pkg/console),
// so reading them cannot fail; a file that could not be read is simply not served.
func newConsole(files fs.FS) http.Handler {
	c := &consoleFiles{files: map[string]consoleFile{}}
	_ = fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil
		}
		ct := consoleTypes[path.Ext(name)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		c.files[name] = consoleFile{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return c
}

func (c *consoleFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers without CSP 2
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", r.URL.Path+" accepts GET and HEAD only")
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, consolePath)
	if !ok {
		// /api/console without the slash: the page's relative links need it.
		http.Redirect(w, r, consolePath, http.StatusMovedPermanently)
		return
	}
	if name == "" {
		name = "index.html"
	}
	f, ok := c.files[name]
	if !ok {
		writeError(w, http.StatusNotFound, "not found", r.URL.Path+" is not a file of the console")
		return
	}
	h.Set("Content-Type", f.contentType)
	// Revalidated on every load (cheap: the ETag answers 304), so a new version of dvrouter
	// is seen at once and the page and its scripts never come from different versions.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
