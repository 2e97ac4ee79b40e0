package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var built struct {
	once sync.Once
	path string
	err  error
}

// BuildDvrouter builds the dvrouter binary from the repository root once per test binary run,
// for the tests that run the program as users and the Functions host do.
func BuildDvrouter(tb testing.TB) string {
	tb.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "dvrouter-bin")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "dvrouter")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if built.err != nil {
		tb.Fatalf("build dvrouter: %v", built.err)
	}
	return built.path
}
