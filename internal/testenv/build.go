package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// program is a binary built from the repository once per test binary run.
type program struct {
	once sync.Once
	path string
	err  error
}

// build runs `go build` of pkg (a path from the repository root) into a temporary directory,
// the first time only, and returns the binary's path.
func (p *program) build(name, pkg string) (string, error) {
	p.once.Do(func() {
		dir, err := os.MkdirTemp("", "dvrouter-"+name)
		if err != nil {
			p.err = err
			return
		}
		p.path = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", p.path, pkg)
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			p.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	return p.path, p.err
}

var dvrouterProgram program

// BuildDvrouter builds the dvrouter binary from the repository root once per test binary run,
// for the tests that run the program as users and the Functions host do.
func BuildDvrouter(tb testing.TB) string {
	tb.Helper()
	path, err := dvrouterProgram.build("dvrouter", ".")
	if err != nil {
		tb.Fatalf("build dvrouter: %v", err)
	}
	return path
}
