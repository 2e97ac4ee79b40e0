package handlers

import (
	"io/fs"
	"mime"
	"path"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/console"
)

// consoleTypes must say what mime.TypeByExtension says (whose built-in entries win over the
// machine's MIME database), and know every extension the console has.
func TestConsoleTypes_AsMimeTypeByExtension(t *testing.T) {
	for ext, ct := range consoleTypes {
		if want := mime.TypeByExtension(ext); ct != want {
			t.Errorf("consoleTypes[%q] = %q, mime.TypeByExtension says %q", ext, ct, want)
		}
	}
	_ = fs.WalkDir(console.Files(), ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && consoleTypes[path.Ext(name)] == "" {
			t.Errorf("console file %s: extension %q has no type in consoleTypes", name, path.Ext(name))
		}
		return nil
	})
}
