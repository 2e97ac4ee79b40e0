// Package verify checks what a running dvrouter delivers with the official libraries of each
// standard its consumers use: every request to an HTTP consumer through the npm
// `standardwebhooks` package's Webhook.verify (two secrets while rotating included), every
// CloudEvent through the npm `cloudevents` package, structured and binary, over HTTP and as
// AMQP application properties on Service Bus. The served binary gets every event of
// testdata/events; loopback consumers and the Service Bus stand-in record what arrives; Node
// runs verify.mjs over it. Missing Node or node_modules fail the test: `make test` installs them.
package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

// buildDvrouter builds the binary once: the program is tested as users get it.
func buildDvrouter(tb testing.TB) string { return testenv.BuildDvrouter(tb) }

// node returns the node binary, failing the test when it or the two verifying packages are
// missing.
func node(t *testing.T) string {
	t.Helper()
	modules := testenv.NodeModules(t)
	for _, pkg := range []string{"standardwebhooks", "cloudevents"} {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			t.Fatalf("%s/%s is missing: run `npm ci` (make test does)", modules, pkg)
		}
	}
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: %v", err)
	}
	return bin
}

// secret is a Standard Webhooks secret of n random-looking bytes, made from seed.
func secret(seed string, n int, prefixed bool) string {
	key := bytes.Repeat([]byte(seed), n/len(seed)+1)[:n]
	s := base64.StdEncoding.EncodeToString(key)
	if prefixed {
		return "whsec_" + s
	}
	return s
}

const orgHost = "contoso.crm4.dynamics.com"

// httpConsumer is one HTTP consumer of the route file, and what verify.mjs should check.
type httpConsumer struct {
	name, yaml string
	secrets    []string // verifying secrets (each alone); the setting holds them space-separated
	cloudevent map[string]string
	raw        bool
}

func TestDeliveries_VerifyWithTheOfficialLibraries(t *testing.T) {
	nodeBin := node(t)
	bin := buildDvrouter(t)
	sb := testenv.StartServiceBus(t, testenv.WithEntities("ce-amqp-binary", "ce-amqp-structured"))
	srv := testenv.StartConsumer(t)

	oldSecret, newSecret := secret("old-key!", 32, true), secret("new-key?", 48, true)
	consumers := []httpConsumer{
		{name: "row-signed", secrets: []string{oldSecret}},
		{name: "row-rotating", secrets: []string{oldSecret, newSecret}},
		{name: "raw-unprefixed", secrets: []string{secret("plain-b64", 24, false)}, raw: true, yaml: "format: raw"},
		{name: "ce-structured", secrets: []string{newSecret}, cloudevent: map[string]string{"mode": "structured"}, yaml: "format: cloudevent"},
		{name: "ce-binary", secrets: []string{oldSecret, newSecret}, cloudevent: map[string]string{"mode": "binary", "typePrefix": "com.contoso.crm"},
			yaml: "format: cloudevent\n    cloudevent: {mode: binary, typePrefix: com.contoso.crm}"},
		{name: "ce-binary-fixed-source", cloudevent: map[string]string{"mode": "binary", "source": "urn:contoso:dataverse:prod"},
			yaml: "format: cloudevent\n    cloudevent: {mode: binary, source: \"urn:contoso:dataverse:prod\"}"},
	}
	var routeFile strings.Builder
	env := []string{"SB_CONN=" + sb.ConnectionString}
	routeFile.WriteString("consumers:\n")
	var names []string
	for i, c := range consumers {
		fmt.Fprintf(&routeFile, "  - name: %s\n    type: http\n    url: %s/%s\n    retry: {attempts: 1}\n", c.name, srv.URL, c.name)
		if c.yaml != "" {
			fmt.Fprintf(&routeFile, "    %s\n", c.yaml)
		}
		if len(c.secrets) > 0 {
			setting := "SECRET_" + strconv.Itoa(i)
			fmt.Fprintf(&routeFile, "    signingSecret: \"%%%s%%\"\n", setting)
			env = append(env, setting+"="+strings.Join(c.secrets, " "))
		}
		names = append(names, c.name)
	}
	routeFile.WriteString(`  - name: bus-binary
    type: servicebus
    connection: "%SB_CONN%"
    queue: ce-amqp-binary
    format: cloudevent
    cloudevent: {mode: binary}
  - name: bus-structured
    type: servicebus
    connection: "%SB_CONN%"
    queue: ce-amqp-structured
    format: cloudevent
routes:
  - name: everything
    table: "*"
    consumers: [` + strings.Join(append(names, "bus-binary", "bus-structured"), ", ") + "]\n")
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(routeFile.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// dvrouter validate accepts the file it is about to serve.
	validate := exec.Command(bin, "validate", "--routes", routes)
	validate.Env = append(env, "PATH="+os.Getenv("PATH"))
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("dvrouter validate: %v\n%s\n%s", err, out, routeFile.String())
	}

	url := serve(t, bin, routes, env)
	events, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "testdata", "events", "*.json"))
	if err != nil || len(events) < 5 {
		t.Fatalf("testdata/events: %d files, %v", len(events), err)
	}
	for i, path := range events {
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, url+"/api/dataverse/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if i%2 == 0 { // the other half has no host: source falls back to the organization id
			req.Header.Set("x-ms-dynamics-organization", orgHost)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer := new(bytes.Buffer)
		_, _ = answer.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(answer.String(), `"failed":[]`) {
			t.Fatalf("%s: %d %s", filepath.Base(path), resp.StatusCode, answer)
		}
	}

	byName := map[string]httpConsumer{}
	for _, c := range consumers {
		byName[c.name] = c
	}
	type request struct {
		Consumer    string            `json:"consumer"`
		Headers     map[string]string `json:"headers"`
		Body        []byte            `json:"body"`
		Secrets     []string          `json:"secrets"`
		WrongSecret string            `json:"wrongSecret,omitempty"`
		CloudEvent  map[string]string `json:"cloudevent"`
		Raw         bool              `json:"raw"`
	}
	var deliveries struct {
		Requests []request `json:"requests"`
		Messages []any     `json:"messages"`
	}
	perConsumer := map[string]int{}
	for _, r := range srv.Requests() {
		c := byName[strings.TrimPrefix(r.Path, "/")]
		perConsumer[c.name]++
		h := map[string]string{}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		wrong := ""
		if len(c.secrets) > 0 {
			wrong = secret("wrong-key", 32, true)
		} else if h["webhook-signature"] != "" {
			t.Errorf("%s: signed without a signingSecret", c.name)
		}
		if n := len(strings.Fields(h["webhook-signature"])); n != len(c.secrets) {
			t.Errorf("%s: %d signatures, want one per secret (%d)", c.name, n, len(c.secrets))
		}
		deliveries.Requests = append(deliveries.Requests, request{Consumer: c.name, Headers: h, Body: r.Body,
			Secrets: c.secrets, WrongSecret: wrong, CloudEvent: c.cloudevent, Raw: c.raw})
	}
	for _, c := range consumers {
		if perConsumer[c.name] != len(events) {
			t.Errorf("%s received %d requests, want one per event (%d)", c.name, perConsumer[c.name], len(events))
		}
	}
	for _, q := range []string{"ce-amqp-binary", "ce-amqp-structured"} {
		msgs := sb.WaitMessages(t, q, len(events), 10*time.Second)
		for _, m := range msgs {
			deliveries.Messages = append(deliveries.Messages, struct {
				testenv.SBMessage
				Consumer string `json:"consumer"`
			}{m, q})
		}
	}

	file := filepath.Join(t.TempDir(), "deliveries.json")
	data, err := json.Marshal(deliveries)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeBin, filepath.Join(testenv.RepoRoot(), "test", "verify", "verify.mjs"), file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verify.mjs: %v\n%s", err, failures(out))
	}
	want := fmt.Sprintf(`{"checked":%d,"failed":0}`, len(deliveries.Requests)+len(deliveries.Messages))
	if !bytes.Contains(out, []byte(want)) {
		t.Fatalf("verify.mjs summary: want %s in\n%s", want, out)
	}
}

// failures keeps the lines of verify.mjs's output that report a problem.
func failures(out []byte) string {
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, `"ok":true`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// serve starts `dvrouter serve` in direct mode and returns its base URL once it answers.
func serve(t *testing.T, bin, routes string, env []string) string {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--routes", routes)
	cmd.Env = append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port), "PATH="+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("dvrouter serve did not become healthy within 15s:\n%s", stderr.String())
	return ""
}

// What `dvrouter validate` refuses, `dvrouter serve` refuses, with the same message: the secret
// checks are one function both run.
func TestValidateAndServeRefuseTheSameSigningSecrets(t *testing.T) {
	bin := buildDvrouter(t)
	srvURL := "http://127.0.0.1:1"
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	src := "consumers:\n  - name: erp\n    type: http\n    url: " + srvURL + "/hook\n    signingSecret: \"%ERP_SECRET%\"\n" +
		"routes:\n  - name: all\n    table: \"*\"\n    consumers: [erp]\n"
	if err := os.WriteFile(routes, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{"whsec_", secret("a", 32, true) + " whsec_", secret("short", 16, true), "not base64!", secret("a", 32, true) + " " + secret("a", 32, true)} {
		env := []string{"ERP_SECRET=" + value, "PATH=" + os.Getenv("PATH")}
		validate := exec.Command(bin, "validate", "--routes", routes)
		validate.Env = env
		vout, verr := validate.CombinedOutput()
		port, _ := testenv.FreePort()
		srv := exec.Command(bin, "serve", "--routes", routes)
		srv.Env = append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
		done := make(chan struct{})
		var sout []byte
		var serr error
		go func() { sout, serr = srv.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-done
			t.Fatalf("serve kept running with signingSecret %q", value)
		}
		if verr == nil || serr == nil {
			t.Fatalf("secret %q: validate err %v, serve err %v; want both to refuse\n%s\n%s", value, verr, serr, vout, sout)
		}
		line := strings.SplitN(strings.TrimSpace(string(vout)), "\n", 2)[0]
		_, msg, _ := strings.Cut(line, ": signingSecret: ")
		if msg == "" || !bytes.Contains(sout, []byte(msg)) {
			t.Errorf("secret %q: validate says %q; serve's output does not:\n%s", value, line, sout)
		}
		if value != "" && len(value) > 8 && (bytes.Contains(vout, []byte(value)) || bytes.Contains(sout, []byte(value))) {
			t.Errorf("the secret is echoed")
		}
	}
}
