package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devAccountName and devAccountKey are Azurite's well-known development account. The key is
// published in Azurite's and Azure's documentation and only opens the local emulator; it is
// kept here, in one place, so nothing else spells it out.
const (
	devAccountName = "devstoreaccount1"
	devAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteStartTimeout bounds how long node may take to bring Azurite up on a busy machine.
const azuriteStartTimeout = 30 * time.Second

// Azurite is a running azurite-table process (the local Table Storage emulator).
//
// StartAzurite keeps the data in a folder under t.TempDir() (Azurite's --location), not in
// memory, so that Stop followed by Start on the same port keeps every entity: tests that take
// the store down and bring it back can check that nothing was lost. Stop shuts Azurite down
// with SIGINT, which makes it save its database before exiting.
//
// LaunchAzurite keeps the data in memory (faster: nothing is written to disk), for one
// instance shared by a whole test binary (benchmarks comparing two ways of writing into the same
// Azurite, say); Start after Stop then begins empty.
type Azurite struct {
	bin    string
	dir    string // data folder; "" when in memory
	port   int
	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed when cmd has exited
}

// StartAzurite starts Azurite's table service on a free loopback port and stops it when the
// test ends. It fails the test (it does not skip) when node_modules is missing.
func StartAzurite(t testing.TB) *Azurite {
	t.Helper()
	bin, err := azuriteBinary()
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	a := &Azurite{bin: bin, dir: t.TempDir()}
	t.Cleanup(a.Stop)
	if err := a.startOnFreePort(); err != nil {
		t.Fatalf("azurite: %v", err)
	}
	return a
}

// LaunchAzurite starts an in-memory Azurite that outlives any one test; the caller stops it
// with Stop (from TestMain, after m.Run).
func LaunchAzurite() (*Azurite, error) {
	bin, err := azuriteBinary()
	if err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}
	a := &Azurite{bin: bin}
	if err := a.startOnFreePort(); err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}
	return a, nil
}

// SharedAzurite is one in-memory Azurite (LaunchAzurite) for a whole test binary: the first test
// that asks for it launches it, so a run of tests that need none starts none, and Run stops it
// after the last. A package declares one and wires it up in two lines:
//
//	var shared testenv.SharedAzurite
//
//	func TestMain(m *testing.M) { shared.Run(m) }
type SharedAzurite struct {
	once sync.Once
	az   *Azurite
	err  error
}

// Get returns the shared Azurite, launching it on first use. It fails the test (it does not
// skip) when Azurite cannot start, and every later Get fails with the same error.
func (s *SharedAzurite) Get(t testing.TB) *Azurite {
	t.Helper()
	s.once.Do(func() { s.az, s.err = LaunchAzurite() })
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.az
}

// Run runs the tests, stops the shared Azurite when one was launched and exits with the tests'
// code: what a TestMain does.
func (s *SharedAzurite) Run(m *testing.M) {
	code := m.Run()
	if s.az != nil {
		s.az.Stop()
	}
	os.Exit(code)
}

func (a *Azurite) startOnFreePort() error {
	var err error
	// A port found free can be taken before Azurite binds it; try a few.
	for range 3 {
		if a.port, err = FreePort(); err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
		if err = a.start(); err == nil {
			return nil
		}
	}
	return err
}

// Start starts Azurite again after Stop, on the same port.
func (a *Azurite) Start(t testing.TB) {
	t.Helper()
	if err := a.start(); err != nil {
		t.Fatalf("azurite: restart on port %d: %v", a.port, err)
	}
}

// Stop shuts Azurite down and waits for it to exit. Stopping a stopped Azurite does nothing.
func (a *Azurite) Stop() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Port is the TCP port Azurite listens on (127.0.0.1).
func (a *Azurite) Port() int { return a.port }

// TableEndpoint is the table service URL of the development account.
func (a *Azurite) TableEndpoint() string {
	return "http://127.0.0.1:" + strconv.Itoa(a.port) + "/" + devAccountName
}

// ConnectionString is a Table Storage connection string for the development account.
func (a *Azurite) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + devAccountName +
		";AccountKey=" + devAccountKey +
		";TableEndpoint=" + a.TableEndpoint() + ";"
}

func (a *Azurite) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return errors.New("already running")
	}
	args := []string{
		"--disableTelemetry",
		"--silent", // no access log: the tests make thousands of requests
		"--tableHost", "127.0.0.1",
		"--tablePort", strconv.Itoa(a.port),
		"--skipApiVersionCheck",
		"--loose",
	}
	if a.dir != "" {
		args = append(args, "--location", a.dir)
	} else {
		args = append(args, "--inMemoryPersistence")
	}
	cmd := exec.Command(a.bin, args...)
	out := &processOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", a.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	// Azurite prints this once it listens. Waiting for it rather than for the port to accept
	// also catches a port that another process took first (Azurite then exits).
	const ready = "successfully started"
	deadline := time.Now().Add(azuriteStartTimeout)
	for !strings.Contains(out.String(), ready) {
		select {
		case <-exited:
			return fmt.Errorf("exited while starting on port %d: %s", a.port, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("not ready on port %d after %s: %s", a.port, azuriteStartTimeout, out.String())
		}
	}
	a.cmd, a.exited = cmd, exited
	return nil
}

// azuriteBinary finds node_modules/.bin/azurite-table at the repository root.
func azuriteBinary() (string, error) {
	root := RepoRoot()
	if root == "" {
		return "", errors.New("no go.mod above the working directory")
	}
	bin := filepath.Join(root, "node_modules", ".bin", "azurite-table")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found: run `npm ci` first (make test does)", bin)
	}
	return bin, nil
}

// CPUTime is the user and system CPU time Azurite's process has used so far (Linux: from
// /proc), so that a benchmark can count the store's work next to its own process's.
func (a *Azurite) CPUTime() (time.Duration, error) {
	a.mu.Lock()
	cmd := a.cmd
	a.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("azurite is not running")
	}
	t, err := processCPUTime(cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("azurite %w", err)
	}
	return t, nil
}

// SelfCPUTime is the user and system CPU time this process has used so far, every goroutine's:
// what a benchmark counts as its own work, next to a store's CPUTime.
func SelfCPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// processCPUTime is the user and system CPU time process pid has used so far (Linux: from
// /proc).
func processCPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces: state is
	// the first, utime and stime the 12th and 13th (proc(5)), in clock ticks of 1/100 s.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("cpu time: short /proc stat %q", s)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
