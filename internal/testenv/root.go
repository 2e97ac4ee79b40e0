// Package testenv starts the real things the tests run against: Azurite, the Service Bus
// stand-in, consumer servers on loopback. Test code only.
package testenv

import (
	"bytes"
	"net"
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

// processOutput keeps the start of a child process's output (Azurite, the Service Bus
// stand-in) for failure messages. The process writes it from another goroutine, and only the
// start explains a failed start, so it is locked and bounded.
type processOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *processOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buf.Len() < 256<<10 {
		o.buf.Write(p)
	}
	return len(p), nil
}

func (o *processOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
