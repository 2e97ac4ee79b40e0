package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles dvrouter from the module at root into dir and returns the binary's path.
func Build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "dvrouter")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, ".")
	cmd.Dir = root
	// The environment is the caller's, so the build shares the cache of the tests around it.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build dvrouter: %w\n%s", err, out)
	}
	return bin, nil
}

// goTool is the go command that runs this program or test, else the one on PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Router is `dvrouter serve` running as a separate process on a fixed loopback port, so that
// it can be killed and started again on the same port.
type Router struct {
	Bin  string   // the dvrouter binary
	Env  []string // settings (KEY=value), added to this process's environment
	Port int
	Log  string // file its output is appended to

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// URL is the router's base URL.
func (r *Router) URL() string { return "http://127.0.0.1:" + strconv.Itoa(r.Port) }

// Start starts `dvrouter serve` and waits until GET /api/health answers 200, which it does only
// once the routes are loaded and the stores connected.
func (r *Router) Start(timeout time.Duration) error {
	r.mu.Lock()
	if r.cmd != nil {
		r.mu.Unlock()
		return errors.New("dvrouter: already running")
	}
	logFile, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("dvrouter log: %w", err)
	}
	cmd := exec.Command(r.Bin, "serve")
	cmd.Env = append(os.Environ(), r.Env...)
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(r.Port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		r.mu.Unlock()
		return fmt.Errorf("start dvrouter: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(r.URL() + "/api/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			r.forget(cmd)
			return fmt.Errorf("dvrouter exited while starting; its log %s ends:\n%s", r.Log, Tail(r.Log, 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = r.Kill()
			return fmt.Errorf("dvrouter not healthy after %s; its log %s ends:\n%s", timeout, r.Log, Tail(r.Log, 20))
		}
	}
}

// Kill ends the process with SIGKILL, as a crash or an out-of-memory kill would, and waits
// for it. Killing a stopped router does nothing.
func (r *Router) Kill() error { return r.halt(syscall.SIGKILL, 0) }

// Stop asks the process to shut down (SIGTERM) and waits for it, killing it after grace.
func (r *Router) Stop(grace time.Duration) error { return r.halt(syscall.SIGTERM, grace) }

func (r *Router) halt(sig syscall.Signal, grace time.Duration) error {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal dvrouter: %w", err)
	}
	if grace > 0 {
		select {
		case <-exited:
			return nil
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-exited
	return nil
}

func (r *Router) forget(cmd *exec.Cmd) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == cmd {
		r.cmd = nil
	}
}

// PID is the running process's id, 0 when stopped.
func (r *Router) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// PeakRSS is the process's peak resident set size (VmHWM in /proc/PID/status), in bytes.
func (r *Router) PeakRSS() (int64, error) {
	pid := r.PID()
	if pid == 0 {
		return 0, errors.New("dvrouter is not running")
	}
	return procStatusBytes(pid, "VmHWM")
}

// CPUTime is the CPU time (user + system) the process has used so far, from /proc/PID/stat.
func (r *Router) CPUTime() (time.Duration, error) {
	pid := r.PID()
	if pid == 0 {
		return 0, errors.New("dvrouter is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3, utime field 14 and stime field 15, in clock ticks.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	// Linux reports these in USER_HZ, which is 100 on every architecture Go supports there.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// procStatusBytes reads a "kB" field of /proc/PID/status.
func procStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
