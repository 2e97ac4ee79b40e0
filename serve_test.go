package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// These tests run the real binary, as the Functions host would: started with a port in
// FUNCTIONS_CUSTOMHANDLER_PORT, probed with GET /, stopped with a signal.

// buildBinary builds dvrouter once per test binary run.
func buildBinary(tb testing.TB) string { return testenv.BuildDvrouter(tb) }

func freePort(tb testing.TB) string {
	tb.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return strconv.Itoa(port)
}

type served struct {
	cmd    *exec.Cmd
	url    string
	stdout *outputBuffer
	stderr *outputBuffer
}

// outputBuffer collects a process's output; tests read it while the process still writes.
type outputBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *outputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *outputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startServe(tb testing.TB, env ...string) *served {
	tb.Helper()
	port := freePort(tb)
	cmd := exec.Command(buildBinary(tb), "serve")
	cmd.Env = append([]string{"FUNCTIONS_CUSTOMHANDLER_PORT=" + port, "PATH=" + os.Getenv("PATH")}, env...)
	s := &served{cmd: cmd, url: "http://127.0.0.1:" + port, stdout: &outputBuffer{}, stderr: &outputBuffer{}}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return s
}

// waitProbe polls GET / like the host does, until any HTTP answer.
func (s *served) waitProbe(tb testing.TB) *http.Response {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url + "/")
		if err == nil {
			return resp
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatalf("no answer to GET / within 10s; stderr: %s", s.stderr)
	return nil
}

func TestServe_ProbeIsAnsweredBeforeStoresAreReachable(t *testing.T) {
	// A failure store nobody listens on: start-up keeps retrying it, yet the probe is answered.
	dead := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:" + freePort(t) + "/devstoreaccount1;"
	s := startServe(t, "DVROUTER_TABLES="+dead)
	resp := s.waitProbe(t)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "starting") {
		t.Fatalf("GET / = %d %s, want 200 starting", resp.StatusCode, body)
	}
	// Other requests wait for readiness rather than being served half-built.
	client := http.Client{Timeout: 300 * time.Millisecond}
	if _, err := client.Get(s.url + "/api/health"); err == nil {
		t.Fatal("health answered before the service was ready")
	}
}

func TestServe_ReadyServesHealthAndStopsOnSIGTERM(t *testing.T) {
	az := testenv.StartAzurite(t)
	s := startServe(t, "DVROUTER_TABLES="+az.ConnectionString(), "DVROUTER_ROUTES=examples/routes.yaml")
	s.waitProbe(t).Body.Close()

	var health struct {
		Status string `json:"status"`
		Mode   string `json:"mode"`
		Routes int    `json:"routes"`
		Store  bool   `json:"store"`
	}
	client := http.Client{Timeout: 40 * time.Second}
	resp, err := client.Get(s.url + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || health.Status != "ok" || health.Mode != "direct" || health.Routes != 3 || !health.Store {
		t.Fatalf("health = %+v (err %v)", health, err)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after SIGTERM")
	}
	if !strings.Contains(s.stdout.String(), `"message":"stopped"`) {
		t.Fatalf("no stop line in the log: %s", s.stdout)
	}
}

func TestServe_InvalidRouteFileStopsStartUpNamingFileLineColumn(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	os.WriteFile(routes, []byte("consumers:\n  - name: a\n    type: http\n    url: http://127.0.0.1:1/x\nroutes:\n  - name: r\n    table: contact\n    consumers: [nobody]\n"), 0o600)
	s := startServe(t, "DVROUTER_ROUTES="+routes)
	err := s.cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
		t.Fatalf("exit = %v, want status 1", err)
	}
	if !strings.Contains(s.stderr.String(), routes+":8:") {
		t.Fatalf("stderr does not point at %s:8: %s", routes, s.stderr)
	}
}

func TestServe_InvalidSettingStopsStartUpNamingIt(t *testing.T) {
	s := startServe(t, "DVROUTER_DELIVERY_BUDGET=forever")
	err := s.cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(s.stderr.String(), "DVROUTER_DELIVERY_BUDGET") {
		t.Fatalf("exit = %v, stderr %s", err, s.stderr)
	}
}

// In-process handler tests: the same handler runServe wires, served over loopback so that
// connection-level behaviour (deadlines, stalls) is real.

func handlerServer(t *testing.T, env map[string]string, q handlers.Enqueuer) (*httptest.Server, *config.Settings) {
	t.Helper()
	s, err := config.LoadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	routes, err := route.Compile(&config.RouteFile{}, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Deps{Settings: s, Dispatcher: &dispatch.Dispatcher{Routes: routes}, Queue: q, Log: zerolog.Nop()})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, s
}

// stalledQueue is a Service Bus that never answers: Enqueue returns only when its context ends.
type stalledQueue struct{}

func (stalledQueue) Enqueue(ctx context.Context, _ *dataverse.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestWebhook_QueueThatDoesNotAnswerGets503WithinTheBudget(t *testing.T) {
	srv, s := handlerServer(t, nil, stalledQueue{})
	s.DeliveryBudget = 100 * time.Millisecond
	body, err := os.ReadFile("testdata/events/create-contact-sync.json")
	if err != nil {
		t.Fatal(err)
	}
	// Dataverse gives up after 60 s and then does not retry; a 503 before that, it retries.
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(srv.URL+"/api/dataverse/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("no answer while the queue stalls: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", resp.StatusCode)
	}
}

func TestWebhook_TricklingBodyIsRefusedAfterTheReadTimeout(t *testing.T) {
	srv, s := handlerServer(t, nil, nil)
	s.BodyReadTimeout = 200 * time.Millisecond
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Announce 1000 bytes, send 10, then stall.
	_, _ = io.WriteString(conn, "POST /api/dataverse/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":\"bbbb")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the handler is still waiting for the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status = %d, want 408", resp.StatusCode)
	}
}

func TestQueueInvocation_RefusalsKeepTheCustomHandlerShape(t *testing.T) {
	srv, _ := handlerServer(t, nil, nil)
	for name, body := range map[string]string{
		"not JSON":        `{"Data":`,
		"missing binding": `{"Data":{},"Metadata":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/DataverseQueue", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Outputs map[string]any `json:"Outputs"`
				Logs    []string       `json:"Logs"`
				Error   string         `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" ||
				out.Outputs == nil || len(out.Logs) == 0 || out.Error == "" {
				t.Fatalf("status %d %s answer %+v: want 400 JSON with Outputs, Logs and error", resp.StatusCode, resp.Header.Get("Content-Type"), out)
			}
		})
	}
}

// Under the Functions host the body of a non-2xx invocation answer is thrown away, Logs
// included (DefaultHttpWorkerService.ProcessDefaultInvocationRequest calls
// EnsureSuccessStatusCode before it reads the answer); only the handler's stdout reaches the
// function's log. So every reason an invocation is refused must be written there, at a level
// that DVROUTER_LOG_LEVEL=warn still keeps.
func TestServe_InvocationRefusalsReachStdout(t *testing.T) {
	consumer := testenv.StartConsumer(t)
	consumer.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	routesYAML := "consumers:\n  - name: erp\n    type: http\n    url: " + consumer.URL + "\n    retry: {attempts: 1}\n" +
		"routes:\n  - name: contacts\n    table: contact\n    consumers: [erp]\n"
	if err := os.WriteFile(routes, []byte(routesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	event, err := os.ReadFile("testdata/events/create-contact-sync.json")
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "DVROUTER_LOG_LEVEL=warn", "DVROUTER_ROUTES="+routes)
	s.waitProbe(t).Body.Close()
	envelope := func(body []byte, id string) string {
		return `{"Data":{"message":"` + base64.StdEncoding.EncodeToString(body) + `"},"Metadata":{"MessageId":"\"` + id + `\"","DeliveryCount":"1"}}`
	}
	tests := []struct {
		name, body string
		status     int
		line       []string // what one stdout line must say
	}{
		{"envelope not JSON", `{"Data":`, http.StatusBadRequest,
			[]string{`"invocation refused"`, "invocation envelope: unexpected end of JSON input"}},
		{"no data under the binding", `{"Data":{},"Metadata":{}}`, http.StatusBadRequest,
			[]string{`"invocation refused"`, `envelope has no message data \"message\"`}},
		{"poison that cannot be kept (no failure store)", envelope([]byte("not a context"), "m-poison"), http.StatusInternalServerError,
			[]string{`"poison message not recorded"`, `"messageId":"m-poison"`, "no failure store configured", `"reason":"`}},
		{"a failed delivery that cannot be kept", envelope(event, "m-event"), http.StatusInternalServerError,
			[]string{`"outcome not durable"`, `"messageId":"m-event"`, "record failure of consumer erp: no failure store configured"}},
	}
	has := func(want []string) (string, bool) {
		for _, line := range strings.Split(s.stdout.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return line, true
			}
		}
		return "", false
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.url+"/DataverseQueue", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Azure-Functions-InvocationId", "inv-"+strings.ReplaceAll(tt.name, " ", "-"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			// The answer is written after the line is logged, but the pipe may lag.
			deadline := time.Now().Add(5 * time.Second)
			line, ok := has(tt.line)
			for ; !ok && time.Now().Before(deadline); line, ok = has(tt.line) {
				time.Sleep(10 * time.Millisecond)
			}
			if !ok {
				t.Fatalf("no stdout line says all of %q:\n%s", tt.line, s.stdout)
			}
			var entry struct{ Level, InvocationID string }
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Fatalf("stdout line is not JSON: %s", line)
			}
			if entry.Level != "warn" && entry.Level != "error" {
				t.Errorf("reason logged at %q: %s", entry.Level, line)
			}
			if entry.InvocationID != req.Header.Get("X-Azure-Functions-InvocationId") {
				t.Errorf("line without the invocation id: %s", line)
			}
		})
	}
	if strings.Contains(s.stderr.String(), "invocation") {
		t.Errorf("refusals went to stderr, which the host logs as errors of its own: %s", s.stderr)
	}
}
