package handlers_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// The ingress side of the custom-handler contract (https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers): the host's probe, the
// forwarded webhook, the Service Bus invocation envelope, and every bad input each of them must
// refuse with its status and a JSON error, while the server keeps serving.

const webhookKey = "webhook-key-0123456789"

func ingressSettings(t *testing.T, env map[string]string) *config.Settings {
	t.Helper()
	s, err := config.LoadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s.AdminKeys = []config.AdminKey{{Name: "support", Key: supportKey}}
	return s
}

func TestProbeAndHealth(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, map[string]string{config.EnvWebhookKeys: webhookKey})})

	if status, _ := fx.raw("GET", "/", ""); status != http.StatusOK {
		t.Fatalf("GET / = %d, want 200 (the host polls it at start-up)", status)
	}
	var health map[string]any
	status, raw := fx.raw("GET", "/api/health", "", "x-functions-key", "")
	if status != http.StatusOK || json.Unmarshal(raw, &health) != nil {
		t.Fatalf("GET /api/health = %d %s", status, raw)
	}
	if health["status"] != "ok" || health["mode"] == nil || health["routes"] == nil || health["store"] == nil || health["version"] == nil {
		t.Fatalf("health = %v, want status, version, mode, routes, store", health)
	}
	for _, secret := range []string{webhookKey, supportKey} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("health leaks a key: %s", raw)
		}
	}
}

func TestWebhook_DirectModeDeliversAndAnswersOutcome(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, nil)})

	var out struct {
		ID        string   `json:"id"`
		Matched   []string `json:"matched"`
		Delivered []string `json:"delivered"`
		Failed    []string `json:"failed"`
	}
	if status := fx.call("POST", "/api/dataverse/webhook", string(contactEvent(1)), &out); status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	if out.ID == "" || fmt.Sprint(out.Matched) != "[contacts-to-erp]" || fmt.Sprint(out.Delivered) != "[erp]" || len(out.Failed) != 0 {
		t.Fatalf("answer = %+v", out)
	}
	reqs := fx.erp.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Idempotency-Key") != out.ID {
		t.Fatalf("consumer got %d requests, want 1 with Idempotency-Key %s", len(reqs), out.ID)
	}
	if fx.crm.Count() != 0 {
		t.Fatal("an unmatched consumer got the event")
	}
}

func TestWebhook_FailedDeliveryIsRecordedBeforeAnswering(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, nil)})
	fx.erp.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))

	var out struct {
		ID     string   `json:"id"`
		Failed []string `json:"failed"`
	}
	if status := fx.call("POST", "/api/dataverse/webhook", string(contactEvent(2)), &out); status != http.StatusOK {
		t.Fatalf("status = %d, want 200: the failure is kept, so the event is durable", status)
	}
	if fmt.Sprint(out.Failed) != "[erp]" {
		t.Fatalf("failed = %v", out.Failed)
	}
	page, err := fx.store.List(t.Context(), failures.Query{Consumer: "erp"})
	if err != nil || len(page.Items) != 1 || page.Items[0].EventID != out.ID || page.Items[0].Kind != failures.KindDelivery {
		t.Fatalf("store holds %+v (err %v), want the one failure of event %s", page.Items, err, out.ID)
	}
}

func TestWebhook_StoreDownAnswers503AndNothingIsLost(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, nil)})
	fx.erp.Otherwise(testenv.ReplyStatus(http.StatusServiceUnavailable))
	body := string(contactEvent(3))

	az.Stop()
	var e errorAnswer
	if status := fx.call("POST", "/api/dataverse/webhook", body, &e); status != http.StatusServiceUnavailable {
		t.Fatalf("with the store down: status = %d, want 503 so Dataverse retries", status)
	}
	if e.Error == "" {
		t.Fatal("503 without a JSON error")
	}
	// What failed, not where: no storage URL, address, account or table reaches the caller.
	// (The fixture's table is named Failures<digits>.)
	if infra := regexp.MustCompile(`127\.0\.0\.1|:\d+|devstoreaccount1|https?:|Failures\d`).FindString(e.Error + " " + e.Detail); infra != "" {
		t.Errorf("503 answer %q / %q names infrastructure (%q)", e.Error, e.Detail, infra)
	}
	if !strings.Contains(e.Detail, "failure store did not answer") {
		t.Errorf("503 detail %q does not say what failed", e.Detail)
	}
	az.Start(t)
	// Dataverse retries the same bytes; now the failure can be kept.
	if status := fx.call("POST", "/api/dataverse/webhook", body, nil); status != http.StatusOK {
		t.Fatalf("after the store is back: status = %d, want 200", status)
	}
	page, err := fx.store.List(t.Context(), failures.Query{Consumer: "erp"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("store holds %d failures (err %v), want 1", len(page.Items), err)
	}
}

func TestWebhook_BadInput(t *testing.T) {
	az := testenv.StartAzurite(t)
	otherOrg := "11111111-2222-3333-4444-555555555555"
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, map[string]string{
		config.EnvWebhookKeys: webhookKey + ",second-key-0123456789",
		config.EnvAllowedOrgs: otherOrg + ",4EF5B371-E89E-E711-8122-000D3AA2331C",
		config.EnvMaxBody:     "65536",
	})})
	valid := string(contactEvent(4))
	foreign := strings.ReplaceAll(valid, "4ef5b371-e89e-e711-8122-000d3aa2331c", "99999999-e89e-e711-8122-000d3aa2331c")
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)

	tests := []struct {
		name    string
		method  string
		body    string
		headers []string
		status  int
		detail  string // a piece the detail must contain
	}{
		{"truncated JSON names the byte offset", "POST", valid[:200], nil, 400, "at byte 200"},
		{"not JSON", "POST", "hello, webhook", nil, 400, ""},
		{"invalid UTF-8 in a structural position", "POST", "{\xff\xfe}", nil, 400, ""},
		{"deeply nested", "POST", deep, nil, 400, ""},
		{"over DVROUTER_MAX_BODY", "POST", `{"x":"` + strings.Repeat("a", 70000) + `"}`, nil, 413, "65536"},
		{"form content type", "POST", valid, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"XML content type", "POST", "<a/>", []string{"Content-Type", "application/xml"}, 415, ""},
		{"JSON that is not a RemoteExecutionContext", "POST", `{"hello":"world"}`, nil, 422, ""},
		{"JSON array", "POST", `[1,2]`, nil, 422, ""},
		{"empty body", "POST", "", []string{"Content-Type", "application/json"}, 400, "empty"},
		{"missing key", "POST", valid, []string{"x-dvrouter-key", ""}, 401, "x-dvrouter-key"},
		{"wrong key", "POST", valid, []string{"x-dvrouter-key", webhookKey + "x"}, 401, ""},
		{"organization not allowed", "POST", foreign, nil, 403, "99999999-e89e-e711-8122-000d3aa2331c"},
		{"GET on the webhook", "GET", "", nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := append([]string{"x-dvrouter-key", webhookKey}, tt.headers...)
			status, raw := fx.raw(tt.method, "/api/dataverse/webhook", tt.body, headers...)
			var e errorAnswer
			if status != tt.status || json.Unmarshal(raw, &e) != nil || e.Error == "" {
				t.Fatalf("status %d body %s, want %d with a JSON error", status, raw, tt.status)
			}
			if !strings.Contains(e.Detail, tt.detail) {
				t.Fatalf("detail %q does not mention %q", e.Detail, tt.detail)
			}
			// And the server keeps serving.
			if status, _ := fx.raw("GET", "/", ""); status != http.StatusOK {
				t.Fatalf("server stopped answering after %s", tt.name)
			}
		})
	}
	t.Run("the second rotation key and the allowed organization pass", func(t *testing.T) {
		if status, raw := fx.raw("POST", "/api/dataverse/webhook", valid, "x-dvrouter-key", "second-key-0123456789"); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, raw)
		}
	})
	t.Run("size-exceeded header is not an error", func(t *testing.T) {
		status, _ := fx.raw("POST", "/api/dataverse/webhook", string(contactEvent(5)), "x-dvrouter-key", webhookKey, "x-ms-dynamics-msg-size-exceeded", "true")
		if status != http.StatusOK {
			t.Fatalf("status %d, want 200", status)
		}
		if got := fx.erp.Requests(); !bytes.Contains(got[len(got)-1].Body, []byte(`"sizeExceeded":true`)) {
			t.Fatal("the consumer's event does not say sizeExceeded")
		}
	})
}

// envelope is the host's invocation for the DataverseQueue function with "dataType": "binary",
// encoded as the host does (testdata/envelopes/README.md): strings as SerializeObject text inside
// a string, numbers as strings, DateTime with no zone, DateTimeOffset with its offset.
func envelope(body []byte, contentType, messageID string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`{"Data":{"message":%s},"Metadata":{"MessageId":%s,"DeliveryCount":"1","ContentType":%s,`+
		`"EnqueuedTimeUtc":"2024-05-01T09:00:00","EnqueuedTime":"2024-05-01T09:00:00+00:00","SequenceNumber":"7",`+
		`"ApplicationProperties":{"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName":"contact"},`+
		`"UserProperties":{"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName":"contact"},`+
		`"sys":{"MethodName":"DataverseQueue","UtcNow":"2024-05-01T09:00:01.1234567Z","RandGuid":"0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"}}}`,
		q(base64.StdEncoding.EncodeToString(body)), q(q(messageID)), q(q(contentType)))
}

type invokeAnswer struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue map[string]any `json:"ReturnValue"`
}

func TestQueueInvocation_Contract(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, nil)})
	hostHeaders := []string{"x-functions-key", "", "X-Azure-Functions-InvocationId", "3c9f2e0a-0000-4000-8000-000000000001", "User-Agent", "Azure-Functions-Host/4.1036.0"}

	t.Run("binary envelope is processed and answered in the host's shape", func(t *testing.T) {
		var out invokeAnswer
		status := fx.call("POST", "/DataverseQueue", envelope(contactEvent(10), "application/json", "m-10"), &out, hostHeaders...)
		if status != http.StatusOK || out.Outputs == nil || len(out.Logs) == 0 || out.ReturnValue["id"] == nil {
			t.Fatalf("status %d answer %+v", status, out)
		}
		if fx.erp.Count() != 1 {
			t.Fatalf("consumer got %d events, want 1", fx.erp.Count())
		}
	})
	t.Run("double-encoded body of a binding without dataType", func(t *testing.T) {
		once, _ := json.Marshal(string(contactEvent(11))) // JsonConvert.SerializeObject of the body text
		raw, _ := json.Marshal(string(once))              // then the envelope's own serialization
		var out invokeAnswer
		status := fx.call("POST", "/DataverseQueue", `{"Data":{"message":`+string(raw)+`},"Metadata":{}}`, &out, hostHeaders...)
		if status != http.StatusOK || len(out.Logs) == 0 {
			t.Fatalf("status %d answer %+v", status, out)
		}
	})
	t.Run("text XML and binary XML messages are delivered like JSON", func(t *testing.T) {
		// The same event in Dataverse's other two message formats (testdata/servicebus), named by
		// the message's ContentType or, without one, told from the first bytes.
		for i, c := range []struct{ file, contentType string }{
			{"create-contact-sync.xml", "application/xml"}, {"create-contact-sync.msbin1", "application/msbin1"},
			{"create-contact-sync.xml", ""}, {"create-contact-sync.msbin1", ""},
		} {
			body, err := os.ReadFile(filepath.Join("..", "testdata", "servicebus", c.file))
			if err != nil {
				t.Fatal(err)
			}
			before := fx.erp.Count()
			var out invokeAnswer
			status := fx.call("POST", "/DataverseQueue", envelope(body, c.contentType, fmt.Sprintf("fmt-%d", i)), &out, hostHeaders...)
			if status != http.StatusOK || out.ReturnValue["id"] == nil {
				t.Fatalf("%s (%q): status %d answer %+v", c.file, c.contentType, status, out)
			}
			if fx.erp.Count() != before+1 {
				t.Errorf("%s (%q): consumer got %d events, want 1", c.file, c.contentType, fx.erp.Count()-before)
			}
		}
	})
	t.Run("truncated binary XML message is kept as poison and acknowledged", func(t *testing.T) {
		body := []byte{0x40, 0x18, 'R', 'e', 'm', 'o', 't', 'e'}
		var out invokeAnswer
		status := fx.call("POST", "/DataverseQueue", envelope(body, "application/msbin1", "poison-1"), &out, hostHeaders...)
		if status != http.StatusOK || len(out.Logs) == 0 || !strings.Contains(out.Logs[0], "poison") {
			t.Fatalf("status %d answer %+v", status, out)
		}
		// The reason names the format and the byte offset.
		if !strings.Contains(out.Logs[0], "application/msbin1") || !strings.Contains(out.Logs[0], "at byte 8") {
			t.Errorf("poison reason %q does not name the format and offset", out.Logs[0])
		}
		page, err := fx.store.List(t.Context(), failures.Query{Kind: string(failures.KindPoison)})
		if err != nil || len(page.Items) != 1 || page.Items[0].MessageID != "poison-1" {
			t.Fatalf("poison in store: %+v (err %v)", page.Items, err)
		}
		kept, _, err := fx.store.Get(t.Context(), page.Items[0].ID)
		if err != nil || !bytes.Equal(kept.Payload, body) {
			t.Fatalf("poison payload %q (err %v), want the raw bytes", kept.Payload, err)
		}

	})
	t.Run("not JSON at all is poison too", func(t *testing.T) {
		status := fx.call("POST", "/DataverseQueue", envelope([]byte("plain text"), "text/plain", "poison-2"), nil, hostHeaders...)
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		page, err := fx.store.List(t.Context(), failures.Query{Kind: string(failures.KindPoison)})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Items {
			if f.MessageID != "poison-2" {
				continue
			}
			// Dated by the enqueue time as the host writes it (no zone), not year 0001.
			if want := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC); !f.OccurredAt.Equal(want) {
				t.Fatalf("poison dated %v, want the enqueue time %v", f.OccurredAt, want)
			}
			return
		}
		t.Fatalf("poison-2 not in the store: %+v", page.Items)
	})
	t.Run("malformed envelope fails the invocation with JSON", func(t *testing.T) {
		var e errorAnswer
		if status := fx.call("POST", "/DataverseQueue", `{"Data":`, &e, hostHeaders...); status != http.StatusBadRequest || e.Error == "" {
			t.Fatalf("status %d error %+v", status, e)
		}
		if status := fx.call("POST", "/DataverseQueue", `{"Data":{},"Metadata":{}}`, &e, hostHeaders...); status != http.StatusBadRequest {
			t.Fatalf("missing binding: status %d", status)
		}
	})
	t.Run("an outcome that cannot be recorded fails the invocation so Service Bus redelivers", func(t *testing.T) {
		fx.erp.Otherwise(testenv.ReplyStatus(http.StatusInternalServerError))
		az.Stop()
		defer az.Start(t)
		var out invokeAnswer
		status := fx.call("POST", "/DataverseQueue", envelope(contactEvent(12), "application/json", "m-12"), &out, hostHeaders...)
		if status < 300 || len(out.Logs) == 0 {
			t.Fatalf("status %d answer %+v, want non-2xx with Logs", status, out)
		}
	})
}

// A client that sends a whole oversized body before reading the answer, as most do, must read
// its 413 rather than a connection reset: the server reads and throws away what keeps coming
// (within bounds) before it closes the connection.
func TestWebhook_OversizedBodyStillGets413WhileTheClientKeepsSending(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, nil)}) // DVROUTER_MAX_BODY default, 1 MiB
	// Small socket buffers, as on a real network, where far less than 2 MiB is in flight: on
	// loopback the kernel would otherwise take in the whole body before the server closes.
	srv := httptest.NewUnstartedServer(fx.srv.Config.Handler)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	body := bytes.Repeat([]byte("a"), 2<<20)
	addr := strings.TrimPrefix(srv.URL, "http://")

	for _, tt := range []struct {
		name, path string
		chunked    bool
	}{
		{"webhook, Content-Length", "/api/dataverse/webhook", false},
		{"webhook, chunked", "/api/dataverse/webhook", true},
		{"queue invocation, Content-Length over its envelope bound", "/DataverseQueue", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payload := body
			if tt.path == "/DataverseQueue" {
				payload = bytes.Repeat([]byte("a"), 5<<20) // the envelope may be 4 x DVROUTER_MAX_BODY
			}
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetWriteBuffer(32 << 10)
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			head := "POST " + tt.path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n"
			if tt.chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += fmt.Sprintf("Content-Length: %d\r\n\r\n", len(payload))
			}
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			// Send every byte before reading anything.
			for off := 0; off < len(payload); off += 64 << 10 {
				chunk := payload[off:min(off+64<<10, len(payload))]
				if tt.chunked {
					_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
				} else {
					_, err = conn.Write(chunk)
				}
				if err != nil {
					t.Fatalf("sending the body, %d of %d bytes sent: %v", off, len(payload), err)
				}
			}
			if tt.chunked {
				if _, err := io.WriteString(conn, "0\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer after sending %d bytes: %v", len(payload), err)
			}
			defer resp.Body.Close()
			var e errorAnswer
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("413 body: %v", err)
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error == "" || !strings.Contains(e.Detail, "DVROUTER_MAX_BODY") {
				t.Fatalf("answer %d %+v, want 413 with a JSON error naming DVROUTER_MAX_BODY", resp.StatusCode, e)
			}
			if resp.Header.Get("Connection") != "close" && !resp.Close {
				t.Errorf("413 without Connection: close")
			}
		})
	}
	t.Run("Go's own client", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/api/dataverse/webhook", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e errorAnswer
		if resp.StatusCode != http.StatusRequestEntityTooLarge || json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error == "" {
			t.Fatalf("answer %d %+v, want 413 with a JSON error", resp.StatusCode, e)
		}
	})
	if status, _ := fx.raw("GET", "/", ""); status != http.StatusOK {
		t.Fatalf("server stopped answering: %d", status)
	}
}

// smallBuffers gives every accepted connection a small receive buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(32 << 10)
	}
	return c, err
}

// The envelopes written from the host's serialization rules (testdata/envelopes) are processed:
// the event reaches its consumer once per invocation, dated and identified from the metadata.
func TestQueueInvocation_HostEnvelopesAreProcessed(t *testing.T) {
	az := testenv.StartAzurite(t)
	fx := newAPIFixture(t, az, fixtureOptions{settings: ingressSettings(t, nil)})
	for i, name := range []string{"binary-json.json", "binary-all-keys.json", "string-json.json"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "testdata", "envelopes", name))
			if err != nil {
				t.Fatal(err)
			}
			var out invokeAnswer
			status := fx.call("POST", "/DataverseQueue", string(raw), &out,
				"x-functions-key", "", "X-Azure-Functions-InvocationId", "3c9f2e0a-0000-4000-8000-00000000000"+strconv.Itoa(i))
			if status != http.StatusOK || out.ReturnValue["id"] == nil || len(out.Logs) != 1 {
				t.Fatalf("status %d answer %+v, want 200 with the event id and one Logs line", status, out)
			}
			if got := fx.erp.Count(); got != i+1 {
				t.Fatalf("consumer got %d events after %d envelopes", got, i+1)
			}
		})
	}
}
