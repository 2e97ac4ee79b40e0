package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// buildDvrouter builds the binary once: the program is tested as users get it.
func buildDvrouter(tb testing.TB) string { return testenv.BuildDvrouter(tb) }

// dvrouter is a running `dvrouter serve`.
type dvrouter struct {
	URL    string
	out    *output
	cmd    *exec.Cmd
	exited chan struct{}
}

// startDvrouter runs `dvrouter serve` standalone (PORT, not the Functions host's port, so its
// own admin-key check is on) with env, waits until it is ready, and stops it when tb ends.
func startDvrouter(tb testing.TB, env ...string) *dvrouter {
	tb.Helper()
	d, err := launchDvrouter(buildDvrouter(tb), env...)
	if d != nil {
		tb.Cleanup(d.stop)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// launchDvrouter starts bin serve and waits for it to be ready; the caller stops it.
func launchDvrouter(bin string, env ...string) (*dvrouter, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append([]string{"PORT=" + strconv.Itoa(port), "PATH=" + os.Getenv("PATH"), "DVROUTER_LOG_LEVEL=warn"}, env...)
	d := &dvrouter{URL: "http://127.0.0.1:" + strconv.Itoa(port), out: &output{}, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	// /api/health answers once start-up (routes, store) is done; before that it waits.
	client := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return d, fmt.Errorf("dvrouter exited during start-up: %s", d.out)
		default:
		}
		resp, err := client.Get(d.URL + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, fmt.Errorf("dvrouter not ready within 60s: %s", d.out)
}

// output is a child process's output, written by it while a test may read it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (d *dvrouter) stop() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// openStore opens the failure store on table of az, as dvrouter will.
func openStore(tb testing.TB, az *testenv.Azurite, table string) *failures.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := failures.Open(ctx, failures.Config{ConnectionString: az.ConnectionString(), Table: table})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	return s
}

// event reads a Dataverse payload from testdata/events, with replacements (old, new) applied
// to its bytes.
func event(tb testing.TB, name string, replace ...string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testdata", "events", name))
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if !bytes.Contains(b, []byte(replace[i])) {
			tb.Fatalf("%s has no %q to replace", name, replace[i])
		}
		b = bytes.ReplaceAll(b, []byte(replace[i]), []byte(replace[i+1]))
	}
	return b
}

// jsonString is s as a JSON string literal, quotes included.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// recordAll records fs with a few writers at once (Azurite takes about a millisecond each).
func recordAll(tb testing.TB, store *failures.Store, fs []failures.Failure) []failures.Failure {
	tb.Helper()
	out := make([]failures.Failure, len(fs))
	errs := make(chan error, len(fs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				f, err := store.Record(ctx, fs[i])
				cancel()
				if err != nil {
					errs <- err
					continue
				}
				out[i] = f
			}
		})
	}
	for i := range fs {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatalf("record: %v", err)
	}
	return out
}

// requireBrowser fails t when chromium or playwright-core is missing (make test installs both).
func requireBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: install Debian's chromium (make test does: apt-get install -y chromium): %v", chromiumPath, err)
	}
	nodeModules := testenv.NodeModules(t)
	if _, err := os.Stat(filepath.Join(nodeModules, "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core is missing from %s: run npm ci (make test does)", nodeModules)
	}
}

// screenshotDir is where the browser scripts save their screenshots: CONSOLE_SCREENSHOTS,
// made when missing, or a temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return shots
}

// runBrowserScript runs test/console/<script> in node with env beside the browser's own settings
// (CHROMIUM, a fresh BROWSER_PROFILE), logs what it printed and fails t, with srv's log, when it
// fails.
func runBrowserScript(ctx context.Context, t *testing.T, srv *dvrouter, script string, env ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(testenv.RepoRoot(), "test", "console", script))
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(append(os.Environ(), env...), "CHROMIUM="+chromiumPath, "BROWSER_PROFILE="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("browser script:\n%s", out)
	if err != nil {
		t.Fatalf("browser script failed: %v\ndvrouter log:\n%s", err, srv.out)
	}
}
