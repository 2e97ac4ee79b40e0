// Package testenv starts the real things the tests run against: Azurite, the Service Bus
// stand-in, consumer servers on loopback. Test code only.
package testenv

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	rootOnce sync.Once
	rootDir  string
)

// RepoRoot returns the directory holding go.mod, found by walking up from the working
// directory (go test runs each package in its own folder). It returns "" when there is none.
func RepoRoot() string {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	return rootDir
}

// NodeModules returns the repository's node_modules folder. It fails the test, rather than
// skipping it, when the folder or rhea (the stand-in's AMQP library) is missing: a test that
// silently skips proves nothing.
func NodeModules(t testing.TB) string {
	t.Helper()
	root := RepoRoot()
	if root == "" {
		t.Fatalf("testenv: no go.mod above the working directory")
	}
	dir := filepath.Join(root, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, "rhea", "package.json")); err != nil {
		t.Fatalf("testenv: %s/rhea is missing: run `npm ci` first (make test does)", dir)
	}
	return dir
}
